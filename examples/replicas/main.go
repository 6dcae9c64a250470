// Command replicas is a Nectar webhook receiver meant to run as several
// replicas behind a load balancer: Svix's redeliveries of a message can
// reach any replica, so the replicas share one idempotency store, on
// PostgreSQL (pgxstore) or Redis (goredisstore), and each message's
// callback runs once across all of them.
//
// It is a Go module of its own because it imports the pgxstore and
// goredisstore modules, whose drivers the core module (and
// examples/server, which lives in it) does not depend on.
//
//	NECTAR_WEBHOOK_SECRET=whsec_... DATABASE_URL=postgres://... \
//		go run . -store postgres -addr 127.0.0.1:8081 -replica a
//
// Flags:
//
//	-addr              address to listen on (default 127.0.0.1:8080)
//	-store             memory, postgres or redis (default memory: one
//	                   process only; replicas need postgres or redis)
//	-replica           this replica's name, for logs and the runs table
//	                   (default the host name)
//	-table             pgxstore's table (default nectarhooks_messages)
//	-prefix            goredisstore's key prefix (default nectarhooks:)
//	-runs-table        table where each successful callback run is counted,
//	                   when a PostgreSQL URL is set (default
//	                   nectarhooks_runs; empty to count nothing)
//	-callback-timeout  the callbacks' deadline (default 10s); a claim's
//	                   lease is this plus nectarhooks.LeaseGrace
//	-fail-rate         the share of callback runs that fail on purpose,
//	                   0 to 1, to see Svix's retries at work (default 0)
//
// PostgreSQL is found at DATABASE_URL, else NECTARHOOKS_POSTGRES_URL;
// Redis at REDIS_ADDR, else NECTARHOOKS_REDIS_ADDR. It logs JSON lines to
// standard error, answers GET /healthz, and on SIGINT or SIGTERM finishes
// the deliveries in progress before exiting.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/goredisstore"
	"github.com/nectarhooks/nectarhooks/pgxstore"
)

// Environment variables.
const (
	secretEnv = "NECTAR_WEBHOOK_SECRET"
	// PostgreSQL and Redis: the usual names first, then the tests'.
	postgresEnv, postgresTestEnv = "DATABASE_URL", "NECTARHOOKS_POSTGRES_URL"
	redisEnv, redisTestEnv       = "REDIS_ADDR", "NECTARHOOKS_REDIS_ADDR"
)

// shutdownGrace bounds how long deliveries in progress may take to finish
// after a signal: Svix waits 15 seconds for an answer.
const shutdownGrace = 20 * time.Second

// config is the command line.
type config struct {
	addr, store, replica     string
	table, prefix, runsTable string
	callbackTimeout          time.Duration
	failRate                 float64
}

func main() {
	host, _ := os.Hostname()
	var c config
	flag.StringVar(&c.addr, "addr", "127.0.0.1:8080", "`address` to listen on")
	flag.StringVar(&c.store, "store", "memory", "idempotency store: memory, postgres or redis")
	flag.StringVar(&c.replica, "replica", host, "this replica's `name`")
	flag.StringVar(&c.table, "table", "nectarhooks_messages", "pgxstore's `table`")
	flag.StringVar(&c.prefix, "prefix", "nectarhooks:", "goredisstore's key `prefix`")
	flag.StringVar(&c.runsTable, "runs-table", "nectarhooks_runs", "`table` counting successful callback runs; empty for none")
	flag.DurationVar(&c.callbackTimeout, "callback-timeout", nectarhooks.DefaultCallbackTimeout, "the callbacks' `deadline`")
	flag.Float64Var(&c.failRate, "fail-rate", 0, "share of callback runs that fail on purpose, 0 to 1")
	flag.Parse()

	logger := slog.New(slog.NewJSONHandler(os.Stderr, nil)).With(slog.String("replica", c.replica))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, logger, c); err != nil {
		logger.Error("receiver stopped", slog.Any("error", err))
		os.Exit(1)
	}
}

// run builds the receiver and serves it until ctx is cancelled.
func run(ctx context.Context, logger *slog.Logger, c config) error {
	secret := os.Getenv(secretEnv)
	if secret == "" {
		return fmt.Errorf("%s is not set: copy the signing secret (whsec_...) from the endpoint's page in the Svix portal", secretEnv)
	}
	var pool *pgxpool.Pool
	if url := env(postgresEnv, postgresTestEnv); url != "" {
		var err error
		if pool, err = pgxpool.New(ctx, url); err != nil {
			return fmt.Errorf("PostgreSQL: %w", err)
		}
		defer pool.Close()
	}
	store, closeStore, err := openStore(ctx, c, pool)
	if err != nil {
		return err
	}
	defer closeStore()
	runs, err := newRunCounter(ctx, pool, c.runsTable, c.replica)
	if err != nil {
		return err
	}

	h, err := nectarhooks.NewHandler(secret,
		nectarhooks.WithLogger(logger),
		nectarhooks.WithIdempotency(store),
		nectarhooks.WithCallbackTimeout(c.callbackTimeout))
	if err != nil {
		return err
	}
	// The service's own work goes here. This one counts each successful
	// run, so that a test can tell that every message ran exactly once.
	work := func(ctx context.Context, what string) error {
		if c.failRate > 0 && rand.Float64() < c.failRate {
			return errors.New("failing on purpose (-fail-rate)")
		}
		m, _ := nectarhooks.MessageFromContext(ctx)
		logger.DebugContext(ctx, what, slog.String("message_id", m.ID))
		return runs.count(ctx, m.ID)
	}
	h.OnDocumentCreated(func(ctx context.Context, e *nectarhooks.DocumentCreated) error {
		return work(ctx, "document created")
	})
	h.OnConnectionUpdated(func(ctx context.Context, e *nectarhooks.ConnectionUpdated) error {
		return work(ctx, "connection updated")
	})
	h.OnUnhandled(func(ctx context.Context, m nectarhooks.Message) error {
		return work(ctx, "other event")
	})

	mux := http.NewServeMux()
	mux.Handle("POST /webhooks/nectar", h)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	ln, err := net.Listen("tcp", c.addr)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      c.callbackTimeout + 30*time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	// The tests read the address from this line.
	logger.Info("listening", slog.String("addr", ln.Addr().String()), slog.String("store", c.store))
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
	return srv.Shutdown(sctx)
}

// openStore returns the idempotency store the -store flag names.
func openStore(ctx context.Context, c config, pool *pgxpool.Pool) (nectarhooks.IdempotencyStore, func(), error) {
	switch c.store {
	case "memory":
		return nectarhooks.NewMemoryStore(0, 0), func() {}, nil
	case "postgres":
		if pool == nil {
			return nil, nil, fmt.Errorf("-store postgres: set %s (or %s)", postgresEnv, postgresTestEnv)
		}
		// New creates the table if it is missing; replicas starting at
		// once are fine.
		s, err := pgxstore.New(ctx, pool, pgxstore.WithTable(c.table))
		return s, func() {}, err
	case "redis":
		addr := env(redisEnv, redisTestEnv)
		if addr == "" {
			return nil, nil, fmt.Errorf("-store redis: set %s (or %s)", redisEnv, redisTestEnv)
		}
		// ContextTimeoutEnabled: go-redis then ends a call at the
		// deadline the Handler gives it (WithStoreTimeout) instead of
		// holding a pooled connection for its ReadTimeout on a silent link.
		client := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true})
		return goredisstore.New(client, goredisstore.WithPrefix(c.prefix)), func() { client.Close() }, nil
	}
	return nil, nil, fmt.Errorf("-store %q: want memory, postgres or redis", c.store)
}

// runCounter counts successful callback runs by message and replica in a
// PostgreSQL table, or nowhere.
type runCounter struct {
	pool    *pgxpool.Pool
	insert  string
	replica string
}

func newRunCounter(ctx context.Context, pool *pgxpool.Pool, table, replica string) (*runCounter, error) {
	if pool == nil || table == "" {
		return &runCounter{}, nil
	}
	name := pgx.Identifier{table}.Sanitize()
	_, err := pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+name+` (
		message_id text NOT NULL,
		replica    text NOT NULL,
		runs       integer NOT NULL,
		PRIMARY KEY (message_id, replica))`)
	if err != nil {
		var pgErr interface{ SQLState() string }
		// 23505, 42P07: another replica created it at the same moment.
		if !errors.As(err, &pgErr) || (pgErr.SQLState() != "23505" && pgErr.SQLState() != "42P07") {
			return nil, fmt.Errorf("creating %s: %w", name, err)
		}
	}
	return &runCounter{pool: pool, replica: replica, insert: `INSERT INTO ` + name + ` (message_id, replica, runs) VALUES ($1, $2, 1)
		ON CONFLICT (message_id, replica) DO UPDATE SET runs = ` + name + `.runs + 1`}, nil
}

// count records one successful run of message id.
func (r *runCounter) count(ctx context.Context, id string) error {
	if r.pool == nil {
		return nil
	}
	_, err := r.pool.Exec(ctx, r.insert, id, r.replica)
	return err
}

// env returns the first of the named variables that is set.
func env(names ...string) string {
	for _, n := range names {
		if v := os.Getenv(n); v != "" {
			return v
		}
	}
	return ""
}
