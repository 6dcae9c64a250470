package pgxstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nectarhooks/nectarhooks"
)

// DefaultDeadLetterTable is the table DeadLetters keeps its dead letters
// in unless NewDeadLetters is given another.
const DefaultDeadLetterTable = "nectarhooks_dead_letters"

// DeadLetters is a nectarhooks.DeadLetterStore in a PostgreSQL table, one
// row per account and message id, shared by every replica that uses the table; the
// nectarhooks CLI lists, shows and replays its rows (nectarhooks dead).
// Its rows stay until a replay succeeds: nothing expires them. The table:
//
//	account          text               Message.Account, '' without NewAccountHandler
//	id               text               the svix-id; PRIMARY KEY (account, id)
//	event_type       text               as the Handler resolved it, '' when unknown
//	payload          bytea              the body as received, byte for byte
//	svix_timestamp   timestamptz        the svix-timestamp of the attempt that failed
//	error            text               the last attempt's error
//	attempts         integer            failed attempts, counted on by replays
//	first_failed_at  timestamptz
//	last_failed_at   timestamptz        indexed, for listing oldest first
//	claim_token      bigint             a replay's claim (Take), NULL when none
//	claimed_until    timestamptz        when that claim ends
//
// Take is one UPDATE … WHERE unclaimed or expired … RETURNING, so that of
// replays taking one row at once exactly one gets it; claims are timed on
// the database's clock. It is safe for concurrent use and needs no Close:
// the pool stays the caller's.
type DeadLetters struct {
	pool                                   *pgxpool.Pool
	table                                  tableName
	recordSQL, listSQL, takeSQL, removeSQL string
}

var _ nectarhooks.DeadLetterStore = (*DeadLetters)(nil)

// deadIndexSuffix names the last_failed_at index after its table.
const deadIndexSuffix = "_failed_idx"

// deadColumns are the columns a DeadLetter is read from, in scan order.
const deadColumns = "account, id, event_type, payload, svix_timestamp, error, attempts, first_failed_at, last_failed_at"

// NewDeadLetters returns a DeadLetters keeping its rows in table (a name or
// "schema.name", as WithTable accepts; "" for DefaultDeadLetterTable),
// reached through pool, and creates the table and its index when they are
// missing; replicas may call it at once. It fails when the name is invalid
// (ErrInvalidTable), the database cannot be reached, or a table of that
// name lacks the columns above.
func NewDeadLetters(ctx context.Context, pool *pgxpool.Pool, table string) (*DeadLetters, error) {
	if pool == nil {
		return nil, errors.New("pgxstore: NewDeadLetters with a nil pool")
	}
	if table == "" {
		table = DefaultDeadLetterTable
	}
	t, err := parseTable(table)
	if err != nil {
		return nil, err
	}
	if err := ensureTable(ctx, pool, t, "a dead-letter table", deadColumns+", claim_token, claimed_until",
		`CREATE TABLE IF NOT EXISTS `+t.sql()+` (
	account         text COLLATE "C" NOT NULL,
	id              text COLLATE "C" NOT NULL,
	event_type      text NOT NULL,
	payload         bytea NOT NULL,
	svix_timestamp  timestamptz NOT NULL,
	error           text NOT NULL,
	attempts        integer NOT NULL,
	first_failed_at timestamptz NOT NULL,
	last_failed_at  timestamptz NOT NULL,
	claim_token     bigint,
	claimed_until   timestamptz,
	PRIMARY KEY (account, id)
)`,
		"CREATE INDEX IF NOT EXISTS "+pgx.Identifier{t.name + deadIndexSuffix}.Sanitize()+" ON "+t.sql()+" (last_failed_at)"); err != nil {
		return nil, err
	}
	q := t.sql()
	return &DeadLetters{
		pool:  pool,
		table: t,
		// A message that fails again is one row: its attempts add up, its
		// first failure stays, and a replay's claim on it ends, so that
		// the replay's late Remove cannot delete the new failure.
		recordSQL: `INSERT INTO ` + q + ` AS d (` + deadColumns + `)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (account, id) DO UPDATE SET event_type = excluded.event_type, payload = excluded.payload,
	svix_timestamp = excluded.svix_timestamp, error = excluded.error, attempts = d.attempts + excluded.attempts,
	last_failed_at = excluded.last_failed_at, claim_token = NULL, claimed_until = NULL`,
		listSQL: `SELECT ` + deadColumns + ` FROM ` + q + `
WHERE ($1 = '' OR id = $1) AND ($2 = '' OR event_type = $2) AND ($3::timestamptz IS NULL OR last_failed_at >= $3)
	AND ($5 = '' OR account = $5)
ORDER BY last_failed_at, id, account LIMIT $4`,
		// READ COMMITTED re-checks the WHERE on the row once a concurrent
		// UPDATE of it commits: of replays taking it at once, one sets
		// the claim and the others find it claimed.
		takeSQL: `UPDATE ` + q + ` SET claim_token = $2, claimed_until = clock_timestamp() + $3 * interval '1 microsecond'
WHERE account = $4 AND id = $1 AND (claim_token IS NULL OR claimed_until <= now())
RETURNING ` + deadColumns,
		removeSQL: `DELETE FROM ` + q + ` WHERE account = $3 AND id = $1 AND claim_token = $2`,
	}, nil
}

// Record implements nectarhooks.DeadLetterStore in one statement.
func (s *DeadLetters) Record(ctx context.Context, d nectarhooks.DeadLetter) error {
	m := d.Message
	payload := m.Payload
	if payload == nil {
		payload = []byte{} // NOT NULL: an empty body is still a body
	}
	if _, err := s.pool.Exec(ctx, s.recordSQL, m.Account, m.ID, string(m.EventType), payload, m.Timestamp,
		d.Error, d.Attempts, d.FirstFailedAt, d.LastFailedAt); err != nil {
		return fmt.Errorf("pgxstore: recording dead letter %s: %w", m.ID, err)
	}
	return nil
}

// List implements nectarhooks.DeadLetterStore.
func (s *DeadLetters) List(ctx context.Context, f nectarhooks.DeadLetterFilter) ([]nectarhooks.DeadLetter, error) {
	var since, limit any
	if !f.Since.IsZero() {
		since = f.Since
	}
	if f.Limit > 0 {
		limit = f.Limit
	}
	rows, err := s.pool.Query(ctx, s.listSQL, f.ID, string(f.EventType), since, limit, f.Account)
	if err != nil {
		return nil, fmt.Errorf("pgxstore: listing dead letters: %w", err)
	}
	out, err := pgx.CollectRows(rows, scanDeadLetter)
	if err != nil {
		return nil, fmt.Errorf("pgxstore: listing dead letters: %w", err)
	}
	return out, nil
}

// Take implements nectarhooks.DeadLetterStore in one statement; the lease
// is rounded up to whole microseconds.
func (s *DeadLetters) Take(ctx context.Context, account, id string, lease time.Duration) (nectarhooks.DeadLetter, string, bool, error) {
	token := newToken()
	rows, err := s.pool.Query(ctx, s.takeSQL, id, token, microseconds(lease), account)
	if err != nil {
		return nectarhooks.DeadLetter{}, "", false, fmt.Errorf("pgxstore: taking dead letter %s: %w", id, err)
	}
	d, err := pgx.CollectOneRow(rows, scanDeadLetter)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nectarhooks.DeadLetter{}, "", false, nil
	case err != nil:
		return nectarhooks.DeadLetter{}, "", false, fmt.Errorf("pgxstore: taking dead letter %s: %w", id, err)
	}
	return d, formatToken(token), true, nil
}

// Remove implements nectarhooks.DeadLetterStore in one statement.
func (s *DeadLetters) Remove(ctx context.Context, account, id, token string) error {
	if _, err := s.pool.Exec(ctx, s.removeSQL, id, parseToken(token), account); err != nil {
		return fmt.Errorf("pgxstore: removing dead letter %s: %w", id, err)
	}
	return nil
}

func scanDeadLetter(row pgx.CollectableRow) (nectarhooks.DeadLetter, error) {
	var d nectarhooks.DeadLetter
	var et string
	err := row.Scan(&d.Message.Account, &d.Message.ID, &et, &d.Message.Payload, &d.Message.Timestamp, &d.Error, &d.Attempts,
		&d.FirstFailedAt, &d.LastFailedAt)
	d.Message.EventType = nectarhooks.EventType(et)
	d.Message.Timestamp = d.Message.Timestamp.UTC()
	d.FirstFailedAt, d.LastFailedAt = d.FirstFailedAt.UTC(), d.LastFailedAt.UTC()
	return d, err
}
