// Command effects is a Nectar webhook receiver whose callbacks write to
// PostgreSQL exactly once per message, however often Svix delivers it and
// whichever replica dies: each callback makes its writes and records its
// message as processed in one transaction, so that they commit together or
// not at all. Connection updates are applied in the order of their
// updated time, whatever order Svix delivers them in.
//
//	NECTAR_WEBHOOK_SECRET=whsec_... DATABASE_URL=postgres://... \
//		go run . -mode pgxstore -addr 127.0.0.1:8081 -replica a
//
// It runs in one of three modes:
//
//   - pgxstore: the replicas share a pgxstore idempotency table; each
//     callback completes its message in its transaction
//     (pgxstore.Store.CompleteTx), fenced by its claim's token.
//   - separate: as pgxstore, but the writes commit on their own and the
//     Handler's Complete follows (with -hold between them): the way
//     without CompleteTx, whose window a kill can fall into, for
//     comparison.
//   - river: each delivery is a River job (riverqueue), answered 202; the
//     workers (in every replica) record the job's marker in the callback's
//     transaction (riverqueue.CompleteTx): of a job's attempts, at most one
//     commits.
//   - river-batch: as river, but document.created.v2's write and the
//     marker go in one round trip (riverqueue.CompleteBatch), and -hold
//     falls after that commit, before River completes the job: a kill
//     there leaves a retry that finds the marker and writes nothing.
//
// The callbacks write one row per message into the effects table
// (message_id, replica), and for connection.updated.v2 also the
// connection's status into the connections table, guarded by a
// pgxstore.Order in the same transaction. Before its transaction each run
// records an attempt (message_id, replica), so that a test can count the
// messages a killed replica had started and another one finished.
//
// Flags:
//
//	-addr              address to listen on (default 127.0.0.1:8080)
//	-mode              pgxstore, separate, river or river-batch (default
//	                   pgxstore)
//	-replica           this replica's name (default the host name)
//	-callback-timeout  the callbacks' deadline (default 10s): with pgxstore
//	                   a claim's lease is this plus nectarhooks.LeaseGrace;
//	                   with river, the job timeout, and a running job is
//	                   rescued twice this after its start
//	-workers           River workers in this replica (default 20)
//	-hold              time each callback holds its transaction open
//	                   before committing, to show what a kill mid-write
//	                   does (default 0)
//
// PostgreSQL is found at DATABASE_URL, else NECTARHOOKS_POSTGRES_URL. It
// logs JSON lines to standard error, answers GET /healthz and GET /stats
// (the Observer's count of callback runs by outcome, as JSON), and on
// SIGINT or SIGTERM finishes the deliveries in progress before exiting.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/pgxstore"
	"github.com/nectarhooks/nectarhooks/riverqueue"
)

const (
	secretEnv                    = "NECTAR_WEBHOOK_SECRET"
	postgresEnv, postgresTestEnv = "DATABASE_URL", "NECTARHOOKS_POSTGRES_URL"
	shutdownGrace                = 20 * time.Second
)

type config struct {
	addr, mode, replica string
	callbackTimeout     time.Duration
	workers             int
	hold                time.Duration
}

func main() {
	host, _ := os.Hostname()
	var c config
	flag.StringVar(&c.addr, "addr", "127.0.0.1:8080", "`address` to listen on")
	flag.StringVar(&c.mode, "mode", "pgxstore", "pgxstore, separate, river or river-batch")
	flag.StringVar(&c.replica, "replica", host, "this replica's `name`")
	flag.DurationVar(&c.callbackTimeout, "callback-timeout", nectarhooks.DefaultCallbackTimeout, "the callbacks' `deadline`")
	flag.IntVar(&c.workers, "workers", 20, "River workers in this replica")
	flag.DurationVar(&c.hold, "hold", 0, "`time` each callback holds its transaction open")
	flag.Parse()

	logger := slog.New(slog.NewJSONHandler(os.Stderr, nil)).With(slog.String("replica", c.replica))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, logger, c); err != nil {
		logger.Error("receiver stopped", slog.Any("error", err))
		os.Exit(1)
	}
}

func run(ctx context.Context, logger *slog.Logger, c config) error {
	secret := os.Getenv(secretEnv)
	if secret == "" {
		return fmt.Errorf("%s is not set: copy the signing secret (whsec_...) from the endpoint's page in the Svix portal", secretEnv)
	}
	url := os.Getenv(postgresEnv)
	if url == "" {
		url = os.Getenv(postgresTestEnv)
	}
	if url == "" {
		return fmt.Errorf("set %s", postgresEnv)
	}
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return fmt.Errorf("PostgreSQL: %w", err)
	}
	defer pool.Close()
	if err := createTables(ctx, pool); err != nil {
		return err
	}
	order, err := pgxstore.NewOrder(ctx, pool, "")
	if err != nil {
		return err
	}
	stats := &outcomes{counts: map[string]int{}}
	opts := []nectarhooks.Option{
		nectarhooks.WithLogger(logger),
		nectarhooks.WithCallbackTimeout(c.callbackTimeout),
		nectarhooks.WithObserver(stats),
	}

	// complete records the message as processed in the callback's
	// transaction: the store's row, or the River job's marker.
	var complete func(ctx context.Context, tx pgx.Tx) error
	var client *river.Client[pgx.Tx]
	var workers *river.Workers
	switch c.mode {
	case "pgxstore", "separate":
		store, err := pgxstore.New(ctx, pool)
		if err != nil {
			return err
		}
		opts = append(opts, nectarhooks.WithIdempotency(store))
		complete = store.CompleteTx
		if c.mode == "separate" {
			complete = nil
		}
	case "river", "river-batch":
		if err := riverqueue.Migrate(ctx, pool); err != nil {
			return err
		}
		workers = river.NewWorkers()
		client, err = river.NewClient(riverpgxv5.New(pool), &river.Config{
			Queues:                      map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: c.workers}},
			Workers:                     workers,
			FetchCooldown:               10 * time.Millisecond,
			FetchPollInterval:           100 * time.Millisecond,
			JobTimeout:                  c.callbackTimeout,
			RescueStuckJobsAfter:        2 * c.callbackTimeout,
			CompletedJobRetentionPeriod: riverqueue.CompletedJobRetention,
			Logger:                      logger,
		})
		if err != nil {
			return err
		}
		// No idempotency store: the job is the message's claim.
		opts = append(opts, nectarhooks.WithQueue(riverqueue.New(client)))
		complete = riverqueue.CompleteTx
	default:
		return fmt.Errorf("-mode %q: want pgxstore, separate, river or river-batch", c.mode)
	}
	h, err := nectarhooks.NewHandler(secret, opts...)
	if err != nil {
		return err
	}

	// The service's work: one transaction per message, its writes and
	// the message's completion together.
	// attempt records, before the callback's writes, that this replica
	// started the message: what the tests count takeovers by.
	attempt := func(ctx context.Context) (nectarhooks.Message, error) {
		m, _ := nectarhooks.MessageFromContext(ctx)
		_, err := pool.Exec(ctx, `INSERT INTO attempts (message_id, replica) VALUES ($1, $2)`, m.ID, c.replica)
		return m, err
	}
	work := func(ctx context.Context, ev nectarhooks.Event, write func(tx pgx.Tx) error) error {
		m, err := attempt(ctx)
		if err != nil {
			return err
		}
		if complete == nil {
			// -mode separate: the Handler's Complete follows the commit.
			defer time.Sleep(c.hold)
		}
		return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			if err := order.ApplyTx(ctx, tx, ev); err != nil {
				return err // nectarhooks.ErrStale: acknowledged, nothing written
			}
			if _, err := tx.Exec(ctx, `INSERT INTO effects (message_id, replica) VALUES ($1, $2)`, m.ID, c.replica); err != nil {
				return err
			}
			if write != nil {
				if err := write(tx); err != nil {
					return err
				}
			}
			if complete == nil {
				return nil
			}
			time.Sleep(c.hold)
			return complete(ctx, tx)
		})
	}
	h.OnDocumentCreated(func(ctx context.Context, e *nectarhooks.DocumentCreated) error {
		if c.mode != "river-batch" {
			return work(ctx, e, nil)
		}
		// No reads, so no interactive transaction: the write and the
		// job's marker go in one round trip, as one implicit transaction.
		m, err := attempt(ctx)
		if err != nil {
			return err
		}
		var b pgx.Batch
		b.Queue(`INSERT INTO effects (message_id, replica) VALUES ($1, $2)`, m.ID, c.replica)
		if err := riverqueue.CompleteBatch(ctx, pool, &b); err != nil {
			return err // nectarhooks.ErrAlreadyProcessed: acknowledged
		}
		time.Sleep(c.hold) // committed; River completes the job after this
		return nil
	})
	h.OnConnectionUpdated(func(ctx context.Context, e *nectarhooks.ConnectionUpdated) error {
		return work(ctx, e, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, `INSERT INTO connections (id, status, updated) VALUES ($1, $2, $3)
				ON CONFLICT (id) DO UPDATE SET status = excluded.status, updated = excluded.updated`,
				e.ID, string(e.Status), e.Updated.Time)
			return err
		})
	})
	if client != nil {
		river.AddWorker(workers, riverqueue.NewWorker(h))
		if err := client.Start(ctx); err != nil {
			return err
		}
	}

	mux := http.NewServeMux()
	mux.Handle("POST /webhooks/nectar", h)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.Handle("GET /stats", stats)
	ln, err := net.Listen("tcp", c.addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, WriteTimeout: c.callbackTimeout + 30*time.Second}
	logger.Info("listening", slog.String("addr", ln.Addr().String()), slog.String("mode", c.mode))
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	logger.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	err = srv.Shutdown(sctx)
	if client != nil {
		err = errors.Join(err, client.Stop(sctx))
	}
	return err
}

// createTables creates the service's tables, under an advisory lock so
// that replicas starting together do not race on the catalog.
func createTables(ctx context.Context, pool *pgxpool.Pool) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(7261001)`)
		if err == nil {
			_, err = tx.Exec(ctx, `
CREATE TABLE IF NOT EXISTS effects (message_id text NOT NULL, replica text NOT NULL);
CREATE TABLE IF NOT EXISTS attempts (message_id text NOT NULL, replica text NOT NULL);
CREATE TABLE IF NOT EXISTS connections (id text PRIMARY KEY, status text NOT NULL, updated timestamptz NOT NULL)`)
		}
		return err
	})
}

// outcomes is an Observer counting callback runs by outcome, served as
// JSON.
type outcomes struct {
	mu     sync.Mutex
	counts map[string]int
}

func (o *outcomes) Start(ctx context.Context, _ nectarhooks.Delivery) context.Context { return ctx }

func (o *outcomes) End(_ context.Context, d nectarhooks.Delivery) {
	if d.Stage != nectarhooks.StageProcess {
		return
	}
	o.mu.Lock()
	o.counts[d.Outcome.String()]++
	o.mu.Unlock()
}

func (o *outcomes) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	o.mu.Lock()
	defer o.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(o.counts)
}
