package main

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/stretchr/testify/require"
	"log/slog"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
	"github.com/nectarhooks/nectarhooks/pgxstore"
	"github.com/nectarhooks/nectarhooks/riverqueue"
)

// benchPool returns a pool of n connections on dbURL.
func benchPool(b *testing.B, dbURL string, n int32) *pgxpool.Pool {
	cfg, err := pgxpool.ParseConfig(dbURL)
	require.NoError(b, err)
	cfg.MaxConns = n
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(b, err)
	b.Cleanup(pool.Close)
	return pool
}

// BenchmarkRiverDrain measures how fast River workers drain a backlog of
// message jobs whose callback writes one row, three ways, in alternating
// rounds of the same run so that the machine's drift slows all alike:
//
//   - bare: River workers and a Handler without idempotency; the callback's
//     row is one autocommit INSERT, River completes the job (its completer
//     batches completions);
//   - idempotency: the same with WithIdempotency(pgxstore): Claim and
//     Complete around the callback, two autocommit statements per job;
//   - exactly-once: no idempotency store; the callback's INSERT and the
//     job's marker (riverqueue.CompleteTx) in one transaction;
//   - exactly-once-batch: the same INSERT and marker in one round trip,
//     one implicit transaction (riverqueue.CompleteBatch);
//   - bare-tx: as bare, with the INSERT in a transaction of its own: what
//     the transaction alone costs.
//
// Each worker client has 100 workers, FetchCooldown 10 ms and a pool of 12
// connections. It reports jobs/s for each and the ratios to bare.
//
//	go test -run '^$' -bench RiverDrain -benchtime 50000x ./examples/effects
func BenchmarkRiverDrain(b *testing.B) {
	const round, maxWorkers, conns = 2000, 100, 12
	dbURL := newDatabase(b)
	ctx := context.Background()
	admin := benchPool(b, dbURL, 4)
	require.NoError(b, riverqueue.Migrate(ctx, admin))
	_, err := admin.Exec(ctx, `CREATE TABLE effects (message_id text NOT NULL, replica text NOT NULL)`)
	require.NoError(b, err)
	inserter, err := river.NewClient(riverpgxv5.New(admin), &river.Config{})
	require.NoError(b, err)

	type variant struct {
		name   string
		client *river.Client[pgx.Tx]
		done   <-chan *river.Event
	}
	newVariant := func(name string, configure func(pool *pgxpool.Pool) (*nectarhooks.Handler, error)) *variant {
		pool := benchPool(b, dbURL, conns)
		h, err := configure(pool)
		require.NoError(b, err)
		workers := river.NewWorkers()
		river.AddWorker(workers, riverqueue.NewWorker(h))
		client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
			Queues:        map[string]river.QueueConfig{name: {MaxWorkers: maxWorkers}},
			Workers:       workers,
			FetchCooldown: 10 * time.Millisecond,
			Logger:        quietLogger(),
		})
		require.NoError(b, err)
		done, cancel := client.Subscribe(river.EventKindJobCompleted, river.EventKindJobFailed)
		b.Cleanup(cancel)
		require.NoError(b, client.Start(ctx))
		b.Cleanup(func() { client.Stop(context.Background()) })
		return &variant{name: name, client: client, done: done}
	}
	insert := func(ctx context.Context, pool *pgxpool.Pool, id string) error {
		_, err := pool.Exec(ctx, `INSERT INTO effects (message_id, replica) VALUES ($1, 'bench')`, id)
		return err
	}
	secret := nectarhookstest.NewSecret()
	variants := []*variant{
		newVariant("bare", func(pool *pgxpool.Pool) (*nectarhooks.Handler, error) {
			h, err := nectarhooks.NewHandler(secret)
			h.OnDocumentCreated(func(ctx context.Context, _ *nectarhooks.DocumentCreated) error {
				m, _ := nectarhooks.MessageFromContext(ctx)
				return insert(ctx, pool, m.ID)
			})
			return h, err
		}),
		newVariant("idempotency", func(pool *pgxpool.Pool) (*nectarhooks.Handler, error) {
			store, err := pgxstore.New(ctx, pool, pgxstore.WithTable("bench_messages"))
			if err != nil {
				return nil, err
			}
			h, err := nectarhooks.NewHandler(secret, nectarhooks.WithIdempotency(store), nectarhooks.WithStoreTimeout(10*time.Second))
			h.OnDocumentCreated(func(ctx context.Context, _ *nectarhooks.DocumentCreated) error {
				m, _ := nectarhooks.MessageFromContext(ctx)
				return insert(ctx, pool, m.ID)
			})
			return h, err
		}),
		newVariant("exactly-once", func(pool *pgxpool.Pool) (*nectarhooks.Handler, error) {
			h, err := nectarhooks.NewHandler(secret)
			h.OnDocumentCreated(func(ctx context.Context, _ *nectarhooks.DocumentCreated) error {
				m, _ := nectarhooks.MessageFromContext(ctx)
				return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
					if _, err := tx.Exec(ctx, `INSERT INTO effects (message_id, replica) VALUES ($1, 'bench')`, m.ID); err != nil {
						return err
					}
					return riverqueue.CompleteTx(ctx, tx)
				})
			})
			return h, err
		}),
		newVariant("exactly-once-batch", func(pool *pgxpool.Pool) (*nectarhooks.Handler, error) {
			h, err := nectarhooks.NewHandler(secret)
			h.OnDocumentCreated(func(ctx context.Context, _ *nectarhooks.DocumentCreated) error {
				m, _ := nectarhooks.MessageFromContext(ctx)
				var b pgx.Batch
				b.Queue(`INSERT INTO effects (message_id, replica) VALUES ($1, 'bench')`, m.ID)
				return riverqueue.CompleteBatch(ctx, pool, &b)
			})
			return h, err
		}),
		newVariant("bare-tx", func(pool *pgxpool.Pool) (*nectarhooks.Handler, error) {
			h, err := nectarhooks.NewHandler(secret)
			h.OnDocumentCreated(func(ctx context.Context, _ *nectarhooks.DocumentCreated) error {
				m, _ := nectarhooks.MessageFromContext(ctx)
				return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
					_, err := tx.Exec(ctx, `INSERT INTO effects (message_id, replica) VALUES ($1, 'bench')`, m.ID)
					return err
				})
			})
			return h, err
		}),
	}
	payload := nectarhookstest.Sample(nectarhooks.EventDocumentCreated)
	var seq atomic.Int64
	// drain inserts round jobs into v's queue while it is paused, then
	// times its workers from the resume until every job has completed.
	drain := func(v *variant) time.Duration {
		require.NoError(b, v.client.QueuePause(ctx, v.name, nil))
		params := make([]river.InsertManyParams, round)
		for i := range params {
			msg := nectarhooks.Message{ID: fmt.Sprintf("msg_bench_%d", seq.Add(1)), Timestamp: time.Now().UTC(),
				EventType: nectarhooks.EventDocumentCreated, Payload: payload}
			params[i] = river.InsertManyParams{Args: riverqueue.NewArgs(msg), InsertOpts: &river.InsertOpts{Queue: v.name}}
		}
		_, err := inserter.InsertMany(ctx, params)
		require.NoError(b, err)
		start := time.Now()
		require.NoError(b, v.client.QueueResume(ctx, v.name, nil))
		for n := 0; n < round; {
			select {
			case ev := <-v.done:
				if ev.Kind != river.EventKindJobCompleted {
					b.Fatalf("%s: job %d failed: %v", v.name, ev.Job.ID, ev.Job.Errors)
				}
				n++
			case <-time.After(time.Minute):
				b.Fatalf("%s: %d of %d jobs completed", v.name, n, round)
			}
		}
		return time.Since(start)
	}
	// One round each first, untimed: connections, prepared statements.
	for _, v := range variants {
		drain(v)
	}
	elapsed := make([]time.Duration, len(variants))
	rounds := 0
	b.ResetTimer()
	for done := 0; done < b.N; done += round * len(variants) {
		for i, v := range variants {
			elapsed[i] += drain(v)
		}
		rounds++
	}
	b.StopTimer()
	rate := func(i int) float64 { return float64(rounds*round) / elapsed[i].Seconds() }
	for i, v := range variants {
		b.ReportMetric(rate(i), v.name+"-jobs/s")
	}
	for i, v := range variants[1:] {
		b.ReportMetric(rate(i+1)/rate(0), v.name+"/bare")
	}
}

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
