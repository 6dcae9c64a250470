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
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
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
			return riverqueue.CompleteTx(ctx, tx) // nectarhooks.ErrAlreadyProcessed if an earlier attempt committed
		})
	})
}

// readmeRiverBatch is docs/effects.md's River worker callback in one round
// trip.
func readmeRiverBatch(h *nectarhooks.Handler, pool *pgxpool.Pool) {
	h.OnDocumentCreated(func(ctx context.Context, e *nectarhooks.DocumentCreated) error {
		var b pgx.Batch
		b.Queue(`INSERT INTO documents (id, site) VALUES ($1, $2)`, e.ID, e.Site.ID)
		return riverqueue.CompleteBatch(ctx, pool, &b) // the INSERT and the job's marker: one implicit transaction
	})
}

// TestReadmeFragments runs README.md's callback with a newer update, then
// an older one, of one connection: the older one is acknowledged and
// leaves the newer status. (readmeRiver and readmeRiverBatch need a River
// worker: the TestExactlyOnceEffects runs of -mode river and river-batch
// run their like.)
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

// TestReadmeRiverFragments runs docs/effects.md's two River callbacks in
// River workers, each message twice (the second a retry after its
// effects committed): one document row and one marker per message, and
// the second run acknowledged.
func TestReadmeRiverFragments(t *testing.T) {
	for name, register := range map[string]func(*nectarhooks.Handler, *pgxpool.Pool){
		"CompleteTx": readmeRiver, "CompleteBatch": readmeRiverBatch,
	} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			pool, err := pgxpool.New(ctx, newDatabase(t))
			require.NoError(t, err)
			defer pool.Close()
			require.NoError(t, riverqueue.Migrate(ctx, pool, riverqueue.WithMigrateLogger(nil)))
			_, err = pool.Exec(ctx, `CREATE TABLE documents (id text NOT NULL, site text NOT NULL)`)
			require.NoError(t, err)
			h, err := nectarhooks.NewHandler(nectarhookstest.NewSecret())
			require.NoError(t, err)
			register(h, pool)
			workers := river.NewWorkers()
			river.AddWorker(workers, riverqueue.NewWorker(h))
			client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
				Queues: map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 2}}, Workers: workers,
				FetchCooldown: 10 * time.Millisecond, FetchPollInterval: 50 * time.Millisecond, Logger: quietLogger(),
			})
			require.NoError(t, err)
			require.NoError(t, client.Start(ctx))
			defer client.Stop(ctx)

			msg := nectarhooks.Message{ID: nectarhookstest.NewMessageID(), Timestamp: time.Now().UTC(),
				EventType: nectarhooks.EventDocumentCreated, Payload: nectarhookstest.Sample(nectarhooks.EventDocumentCreated)}
			res, err := client.Insert(ctx, riverqueue.NewArgs(msg), nil)
			require.NoError(t, err)
			done := func() bool {
				var state string
				require.NoError(t, pool.QueryRow(ctx, `SELECT state::text FROM river_job WHERE id = $1`, res.Job.ID).Scan(&state))
				return state == "completed"
			}
			require.Eventually(t, done, time.Minute, 20*time.Millisecond)
			_, err = client.JobRetry(ctx, res.Job.ID) // run again, as after a crash past the commit
			require.NoError(t, err)
			require.Eventually(t, done, time.Minute, 20*time.Millisecond)

			var docs, markers, attempt int
			require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM documents`).Scan(&docs))
			require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM nectarhooks_job_effects WHERE job_id = $1`, res.Job.ID).Scan(&markers))
			require.NoError(t, pool.QueryRow(ctx, `SELECT attempt FROM river_job WHERE id = $1`, res.Job.ID).Scan(&attempt))
			assert.Equal(t, 1, docs, "document rows")
			assert.Equal(t, 1, markers, "markers")
			assert.Equal(t, 2, attempt, "the job ran twice")
		})
	}
}
