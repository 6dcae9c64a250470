// Command durable is a Nectar webhook receiver that loses nothing it has
// acknowledged: each verified delivery becomes a River job in PostgreSQL
// before Svix gets its 202, and workers run the callbacks from there,
// retrying failures with River's backoff. Intake and workers share this
// binary; -mode chooses what a process does:
//
//	-mode both    take deliveries and work jobs (one process, or every replica)
//	-mode intake  take deliveries only, with an insert-only River client
//	-mode worker  work jobs only; no HTTP server
//
// It reads the endpoint's signing secret from NECTAR_WEBHOOK_SECRET and the
// database from DATABASE_URL (else NECTARHOOKS_POSTGRES_URL), for example:
//
//	export NECTAR_WEBHOOK_SECRET=whsec_... DATABASE_URL=postgres://localhost/app
//	go run . -mode intake -addr 127.0.0.1:8080 &
//	go run . -mode worker
//
// On start it applies River's migrations with riverqueue.Migrate, under a
// PostgreSQL advisory lock, so that any number of replicas may start at
// once on a fresh database: one migrates, the others wait for it and find
// nothing to do. Under the same lock it creates the table its callbacks
// write, nectar_messages. -migrate=false skips both, for deployments that
// migrate in a step of their own before the replicas start (`river
// migrate-up`, say). Every mode needs the secret: the workers' Handler is
// made the same way, though it checks no signature. The callbacks record
// each message they process in that table, keyed on the svix-id, counting
// the runs.
//
// # Keeping up
//
// A River queue fetches jobs at most once per fetch cooldown, and each
// fetch takes at most as many jobs as it has free workers, so a process
// works at most -workers ÷ -fetch-cooldown jobs a second: River's defaults
// (100 ms) with 10 workers cap it at 100 jobs/s, while intake takes
// thousands of deliveries a second, and the backlog grows by the
// difference. The defaults here, 100 workers and 10 ms, raise the ceiling
// to 10,000 jobs/s, beyond what the callbacks and the database do on a
// small machine, so the database is the limit. A 202 is not work done:
// watch river_job's available jobs under load. On a 2-core machine,
// `nectarhooks load -rate 500 -duration 20s` left none with these defaults,
// and 8,000 with 10 workers and River's. -fetch-poll-interval (100 ms)
// bounds how long a job inserted by another process waits when River's
// LISTEN/NOTIFY wake-up is missed. Workers are goroutines, cheap while
// idle; those running callbacks share the pool's connections (pgxpool's
// default is 4 or the number of CPUs, whichever is more; raise it with
// pool_max_conns in DATABASE_URL).
//
// # Shutdown
//
// On SIGINT or SIGTERM the HTTP server stops taking deliveries and waits
// for those in progress, then the Handler is shut down, then River
// finishes the jobs in progress, within -shutdown-timeout each, and the
// pool is closed last: each step uses what the next one closes.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/riverqueue"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(main1(ctx, os.Args[1:], os.Getenv, os.Stderr))
}

// main1 is main without the process around it: it returns the exit status,
// 2 for a usage error.
func main1(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) int {
	cfg, err := parseConfig(args, getenv, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "durable:", err)
		return 2
	}
	logger := slog.New(slog.NewJSONHandler(stderr, nil))
	if err := run(ctx, cfg, logger); err != nil {
		logger.Error("durable: stopped", slog.Any("error", err))
		return 1
	}
	return 0
}

// Defaults that keep up: see "Keeping up" in the package doc.
const (
	defaultWorkers           = 100
	defaultFetchCooldown     = 10 * time.Millisecond
	defaultFetchPollInterval = 100 * time.Millisecond
)

// config is what flags and environment set.
type config struct {
	mode              string        // intake, worker or both
	addr              string        // where intake listens
	workers           int           // jobs worked at once by this process
	fetchCooldown     time.Duration // River's least time between fetches
	fetchPollInterval time.Duration // River's longest time between fetches
	migrate           bool          // apply River's migrations and create nectar_messages on start
	shutdownTimeout   time.Duration // for each step of the shutdown
	databaseURL       string
	secret            string
}

func (c config) intake() bool { return c.mode == "intake" || c.mode == "both" }
func (c config) works() bool  { return c.mode == "worker" || c.mode == "both" }

func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("durable", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.mode, "mode", "both", "`intake`, worker or both")
	fs.StringVar(&c.addr, "addr", "127.0.0.1:8080", "`address` intake listens on (port 0: any free port)")
	// River works at most workers ÷ fetch-cooldown jobs a second per
	// process (see "Keeping up" in the package doc): 10,000 by default.
	fs.IntVar(&c.workers, "workers", defaultWorkers, "jobs this process works at once (worker, both)")
	fs.DurationVar(&c.fetchCooldown, "fetch-cooldown", defaultFetchCooldown, "least `time` between River's fetches of jobs; throughput ≤ workers ÷ this")
	fs.DurationVar(&c.fetchPollInterval, "fetch-poll-interval", defaultFetchPollInterval, "longest `time` between River's fetches when no insert notification comes")
	fs.BoolVar(&c.migrate, "migrate", true, "apply River's migrations and create the nectar_messages table on start, under a lock; false where a separate step migrates")
	fs.DurationVar(&c.shutdownTimeout, "shutdown-timeout", 30*time.Second, "bound of each shutdown step: deliveries in progress, the Handler, then jobs in progress")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	switch {
	case fs.NArg() > 0:
		return c, fmt.Errorf("unexpected arguments: %q", fs.Args())
	case c.mode != "intake" && c.mode != "worker" && c.mode != "both":
		return c, fmt.Errorf("-mode %q: want intake, worker or both", c.mode)
	case c.workers <= 0:
		return c, fmt.Errorf("-workers %d: want a positive number", c.workers)
	case c.fetchCooldown < time.Millisecond:
		return c, fmt.Errorf("-fetch-cooldown %s: want 1ms or more", c.fetchCooldown)
	case c.fetchPollInterval < c.fetchCooldown:
		return c, fmt.Errorf("-fetch-poll-interval %s: want at least -fetch-cooldown (%s)", c.fetchPollInterval, c.fetchCooldown)
	}
	c.databaseURL = getenv("DATABASE_URL")
	if c.databaseURL == "" {
		c.databaseURL = getenv("NECTARHOOKS_POSTGRES_URL")
	}
	if c.databaseURL == "" {
		return c, errors.New("set DATABASE_URL to a PostgreSQL URL")
	}
	c.secret = getenv("NECTAR_WEBHOOK_SECRET")
	return c, nil
}

// run serves and works as cfg says until ctx ends, then shuts down.
func run(ctx context.Context, cfg config, logger *slog.Logger) error {
	pool, err := pgxpool.New(ctx, cfg.databaseURL)
	if err != nil {
		return fmt.Errorf("database: %w", err)
	}
	// Closed last, after River has stopped: River's client and the jobs it
	// runs use the pool until then.
	defer pool.Close()
	if cfg.migrate {
		if err := migrate(ctx, pool, logger); err != nil {
			return err
		}
	}

	// An intake-only process gets an insert-only client: no Queues, no
	// Workers, so it never fetches jobs.
	workers := river.NewWorkers()
	riverConfig := &river.Config{
		Logger: logger,
		// Completed jobs are what makes a later redelivery of the same
		// svix-id a no-op: keep them longer than Svix retries (28 h).
		CompletedJobRetentionPeriod: riverqueue.CompletedJobRetention,
	}
	if cfg.works() {
		riverConfig.Queues = map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: cfg.workers}}
		riverConfig.Workers = workers
		riverConfig.FetchCooldown = cfg.fetchCooldown
		riverConfig.FetchPollInterval = cfg.fetchPollInterval
	}
	client, err := river.NewClient(riverpgxv5.New(pool), riverConfig)
	if err != nil {
		return fmt.Errorf("river: %w", err)
	}

	opts := []nectarhooks.Option{
		nectarhooks.WithLogger(logger),
		// Work runs after the answer: no need to fit Svix's 15 seconds.
		nectarhooks.WithCallbackTimeout(50 * time.Second),
		nectarhooks.WithErrorHandler(func(ctx context.Context, status int, err error) {
			m, _ := nectarhooks.MessageFromContext(ctx)
			if status != 0 {
				// Refused at intake (or 503 when the database is down):
				// Svix retries it.
				logger.WarnContext(ctx, "delivery refused", slog.Int("status", status),
					slog.String("message_id", m.ID), slog.Any("error", err))
				return
			}
			// River gave up on the job (it stays in river_job, discarded):
			// alert, fix, then retry it with river.Client.JobRetry.
			logger.ErrorContext(ctx, "message failed its last attempt", slog.String("message_id", m.ID),
				slog.String("event_type", string(m.EventType)), slog.Any("error", err))
		}),
	}
	if cfg.intake() {
		opts = append(opts, nectarhooks.WithQueue(riverqueue.New(client)))
	}
	h, err := nectarhooks.NewHandler(cfg.secret, opts...)
	if err != nil {
		return err
	}
	registerCallbacks(h, pool)

	if cfg.works() {
		river.AddWorker(workers, riverqueue.NewWorker(h))
		// River stops when asked to below, not when ctx ends: Stop lets
		// the jobs in progress finish.
		if err := client.Start(context.WithoutCancel(ctx)); err != nil {
			return fmt.Errorf("river: %w", err)
		}
		logger.Info("working", slog.Int("workers", cfg.workers),
			slog.Duration("fetch_cooldown", cfg.fetchCooldown), slog.Duration("fetch_poll_interval", cfg.fetchPollInterval))
	}

	var srv *http.Server
	served := make(chan error, 1)
	if cfg.intake() {
		ln, err := net.Listen("tcp", cfg.addr)
		if err != nil {
			stopClient(client, cfg, logger)
			return err
		}
		srv = newServer(h)
		go func() { served <- srv.Serve(ln) }()
		logger.Info("listening", slog.String("addr", ln.Addr().String()))
	}

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-served:
	}
	logger.Info("shutting down")
	shutdown(srv, h, client, cfg, logger)
	return serveErr
}

// shutdown stops, in this order, each step using what the next one closes:
//
//  1. the HTTP server: no new deliveries, and those in progress finish
//     their insert and get their answer;
//  2. the Handler (Handler.Shutdown): nothing to drain with WithQueue, but
//     it is the step that drains WithAsync's queue, in its place here;
//  3. River (client.Stop): the jobs in progress finish and are recorded;
//  4. the pool, deferred in run.
//
// Any other order breaks something still running: Handler.Shutdown is
// meant for after the server's (a WithAsync Handler refuses deliveries
// from then on), and a pool closed before River has stopped fails the
// jobs in progress, and River's recording of those done, with "closed
// pool" errors in the log; they run again later. Closed before the
// server's Shutdown, it fails the last deliveries' inserts (503s).
func shutdown(srv *http.Server, h *nectarhooks.Handler, client *river.Client[pgx.Tx], cfg config, logger *slog.Logger) {
	if srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), cfg.shutdownTimeout)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			logger.Error("stopping the server", slog.Any("error", err))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.shutdownTimeout)
	defer cancel()
	if err := h.Shutdown(ctx); err != nil {
		logger.Error("stopping the Handler", slog.Any("error", err))
	}
	stopClient(client, cfg, logger)
}

// stopClient stops a working client, letting its running jobs finish
// within the shutdown timeout; those still running then are cancelled and
// River runs them again later.
func stopClient(client *river.Client[pgx.Tx], cfg config, logger *slog.Logger) {
	if !cfg.works() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.shutdownTimeout)
	defer cancel()
	if err := client.Stop(ctx); err != nil {
		logger.Error("stopping River; unfinished jobs run again later", slog.Any("error", err))
		if err := client.StopAndCancel(context.Background()); err != nil {
			logger.Error("cancelling River's jobs", slog.Any("error", err))
		}
	}
}

func newServer(h http.Handler) *http.Server {
	mux := http.NewServeMux()
	mux.Handle("POST /webhooks/nectar", h)
	return &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      20 * time.Second,
	}
}

// migrate applies River's migrations with riverqueue.Migrate, which holds
// a PostgreSQL advisory lock meanwhile, so that replicas starting together
// do not race, and creates the table the callbacks write, under the same
// lock for the same reason: CREATE TABLE IF NOT EXISTS run by two sessions
// at once can still fail with a duplicate key in PostgreSQL's catalog.
func migrate(ctx context.Context, pool *pgxpool.Pool, logger *slog.Logger) error {
	if err := riverqueue.Migrate(ctx, pool, riverqueue.WithMigrateLogger(logger)); err != nil {
		return err
	}
	// A transaction-level lock on the same key: released at commit.
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", riverqueue.MigrateLockKey); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, createMessages)
		return err
	})
	if err != nil {
		return fmt.Errorf("creating nectar_messages: %w", err)
	}
	return nil
}

// createMessages makes the table of processed messages: the example's
// stand-in for a service's real work.
const createMessages = `CREATE TABLE IF NOT EXISTS nectar_messages (
	message_id   text PRIMARY KEY,
	event_type   text NOT NULL,
	runs         integer NOT NULL DEFAULT 1,
	processed_at timestamptz NOT NULL DEFAULT now()
)`

// registerCallbacks makes every event record its message in
// nectar_messages. Keyed on the svix-id, the write is idempotent (River
// runs a job at least once), and it counts the runs, which should stay 1.
func registerCallbacks(h *nectarhooks.Handler, pool *pgxpool.Pool) {
	record := func(ctx context.Context) error {
		m, _ := nectarhooks.MessageFromContext(ctx)
		_, err := pool.Exec(ctx, `INSERT INTO nectar_messages (message_id, event_type) VALUES ($1, $2)
			ON CONFLICT (message_id) DO UPDATE SET runs = nectar_messages.runs + 1, processed_at = now()`,
			m.ID, string(m.EventType))
		return err
	}
	h.OnConnectionCreated(func(ctx context.Context, _ *nectarhooks.ConnectionCreated) error { return record(ctx) })
	h.OnConnectionUpdated(func(ctx context.Context, _ *nectarhooks.ConnectionUpdated) error { return record(ctx) })
	h.OnConnectionValidated(func(ctx context.Context, _ *nectarhooks.ConnectionValidated) error { return record(ctx) })
	h.OnDocumentCreated(func(ctx context.Context, _ *nectarhooks.DocumentCreated) error { return record(ctx) })
	h.OnDocumentUpdated(func(ctx context.Context, _ *nectarhooks.DocumentUpdated) error { return record(ctx) })
	h.OnUnhandled(func(ctx context.Context, _ nectarhooks.Message) error { return record(ctx) })
}
