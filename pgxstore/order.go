package pgxstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/nectarhooks/nectarhooks"
)

// DefaultOrderTable is the table an Order keeps entity versions in unless
// NewOrder is given another.
const DefaultOrderTable = "nectarhooks_order"

// Order is an ordering guard (see nectarhooks.EventVersion) in a
// PostgreSQL table, shared by every replica that uses the table, and
// applied inside the callback's own transaction: the check, the record of
// the new version and the callback's writes commit together, and two
// events of one entity cannot interleave (the second waits for the
// first's row lock, then sees its version). The table holds one row per
// entity:
//
//	CREATE TABLE nectarhooks_order (
//		entity  text COLLATE "C" PRIMARY KEY, -- "connection:" or "document:" and the id
//		updated timestamptz NOT NULL          -- the newest version applied
//	);
//
// Rows are never deleted by the Order: an entity's newest version must be
// remembered for as long as an older event of it may still arrive (Svix
// retries for about 28 hours). Delete rows of entities gone for good
// yourself, if their number matters. It is safe for concurrent use.
type Order struct {
	table    tableName
	applySQL string
}

// NewOrder returns an Order on table (DefaultOrderTable when empty, with
// the rules of WithTable), and creates the table when it is missing, as
// New does for a Store.
func NewOrder(ctx context.Context, pool *pgxpool.Pool, table string) (*Order, error) {
	if pool == nil {
		return nil, errors.New("pgxstore: NewOrder with a nil pool")
	}
	if table == "" {
		table = DefaultOrderTable
	}
	t, err := parseTable(table)
	if err != nil {
		return nil, err
	}
	if err := ensureTable(ctx, pool, t, "an Order", "entity, updated", `CREATE TABLE IF NOT EXISTS `+t.sql()+` (
	entity  text COLLATE "C" PRIMARY KEY,
	updated timestamptz NOT NULL
)`); err != nil {
		return nil, err
	}
	q := t.sql()
	return &Order{table: t,
		// Inserts the entity's first version, or raises it to this one
		// when it is not older (a tie is applied); RETURNING then gives a
		// row, and no row means stale. ON CONFLICT … DO UPDATE locks the
		// row until the caller's transaction ends, and re-reads it after
		// waiting for another transaction's lock: the later of two
		// concurrent events is decided on the earlier one's outcome.
		applySQL: `INSERT INTO ` + q + ` AS o (entity, updated) VALUES ($1, $2)
ON CONFLICT (entity) DO UPDATE SET updated = excluded.updated
WHERE o.updated <= excluded.updated
RETURNING true`,
	}, nil
}

// ApplyTx records ev's version as its entity's newest inside tx, the
// transaction of the callback's writes, or returns an error matching
// nectarhooks.ErrStale when a newer version was applied already. Call it
// first in the transaction, return its error (pgx.BeginFunc then rolls the
// transaction back, and the Handler acknowledges the stale event), and
// write only when it returns nil:
//
//	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
//		if err := order.ApplyTx(ctx, tx, e); err != nil {
//			return err // nectarhooks.ErrStale: acknowledged, not applied
//		}
//		if _, err := tx.Exec(ctx, `UPDATE connections SET status = $1 WHERE id = $2`, e.Status, e.ID); err != nil {
//			return err
//		}
//		return store.CompleteTx(ctx, tx)
//	})
//
// Events nectarhooks.EventVersion cannot order are applied without a
// statement. The rolled-back transaction of a failed callback records
// nothing, so a retry of the event can still apply it.
func (o *Order) ApplyTx(ctx context.Context, tx pgx.Tx, ev nectarhooks.Event) error {
	v, ok := nectarhooks.EventVersion(ctx, ev)
	if !ok {
		return nil
	}
	var applied bool
	err := tx.QueryRow(ctx, o.applySQL, v.Entity, v.Updated).Scan(&applied)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("%w: %s at %s", nectarhooks.ErrStale, v.Entity, v.Updated.Format(nectarhooks.TimeLayout))
	case err != nil:
		return fmt.Errorf("pgxstore: order: %w", err)
	}
	return nil
}
