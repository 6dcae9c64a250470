package main

// The "Exactly-once effects" and "Event order" fragments of README.md and
// docs/effects.md, compiled in this module because they name pgxstore,
// riverqueue and pgx. The core module's internal/readme test checks that
// the text here and in the markdown is the same; edit both together.

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
	"github.com/nectarhooks/nectarhooks/pgxstore"
	"github.com/nectarhooks/nectarhooks/riverqueue"
)

// readmeEffects is README.md's "Exactly-once effects" and "Event order".
func readmeEffects(ctx context.Context, pool *pgxpool.Pool, secret string) (*nectarhooks.Handler, error) {
	store, err := pgxstore.New(ctx, pool) // the replicas' idempotency table
	if err != nil {
		return nil, err
	}
	h, err := nectarhooks.NewHandler(secret, nectarhooks.WithIdempotency(store))
	if err != nil {
		return nil, err
	}

	order, err := pgxstore.NewOrder(ctx, pool, "") // the entities' newest versions
	if err != nil {
		return nil, err
	}

	h.OnConnectionUpdated(func(ctx context.Context, e *nectarhooks.ConnectionUpdated) error {
		return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			if err := order.ApplyTx(ctx, tx, e); err != nil {
				return err // nectarhooks.ErrStale: a newer update was applied; acknowledged, nothing written
			}
			_, err := tx.Exec(ctx, `UPDATE connections SET status = $1 WHERE id = $2`, e.Status, e.ID)
			if err != nil {
				return err
			}
			return store.CompleteTx(ctx, tx) // pgxstore.ErrClaimLost if another delivery took the message over
		})
	})
	return h, nil
}

// readmeRiver is docs/effects.md's River worker callback.
func readmeRiver(h *nectarhooks.Handler, pool *pgxpool.Pool) {
	h.OnDocumentCreated(func(ctx context.Context, e *nectarhooks.DocumentCreated) error {
		return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, `INSERT INTO documents (id, site) VALUES ($1, $2)`, e.ID, e.Site.ID)
			if err != nil {
				return err
			}
			return riverqueue.CompleteTx(ctx, tx) // riverqueue.ErrJobLost if River gave the job to a later attempt
		})
	})
}

// TestReadmeFragments runs README.md's callback with a newer update, then
// an older one, of one connection: the older one is acknowledged and
// leaves the newer status. (readmeRiver needs a River worker: the
// TestExactlyOnceEffects runs of -mode river run its like.)
func TestReadmeFragments(t *testing.T) {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, newDatabase(t))
	require.NoError(t, err)
	defer pool.Close()
	_, err = pool.Exec(ctx, `CREATE TABLE connections (id text PRIMARY KEY, status text NOT NULL);
		INSERT INTO connections VALUES ('c1', 'NONE')`)
	require.NoError(t, err)
	h, err := readmeEffects(ctx, pool, nectarhookstest.NewSecret())
	require.NoError(t, err)
	_ = readmeRiver

	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	for _, u := range []struct {
		status string
		at     time.Time
	}{{"CONNECTED", t0.Add(time.Second)}, {"PENDING", t0}} {
		msg := nectarhooks.Message{ID: nectarhookstest.NewMessageID(), Payload: connectionUpdate(t, "c1", u.status, u.at)}
		require.NoError(t, h.DispatchVerified(ctx, msg), "acknowledged, stale or not")
	}
	var status string
	require.NoError(t, pool.QueryRow(ctx, `SELECT status FROM connections WHERE id = 'c1'`).Scan(&status))
	assert.Equal(t, "CONNECTED", status)
}
