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
// On start it applies River's migrations (as `river migrate-up` would) and
// creates the table its callbacks write, nectar_messages; -migrate=false
// skips both where deployments migrate on their own, and on all replicas
// but one when several start at once. Every mode needs the secret: the
// workers' Handler is made the same way, though it checks no signature.
// The callbacks record
// each message they process in that table, keyed on the svix-id, counting
// the runs. On SIGINT or SIGTERM the server stops taking deliveries, then
// River finishes the jobs in progress, within -shutdown-timeout.
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
	"github.com/riverqueue/river/rivermigrate"

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

// config is what flags and environment set.
type config struct {
	mode            string        // intake, worker or both
	addr            string        // where intake listens
	workers         int           // jobs worked at once by this process
	migrate         bool          // apply River's migrations and create nectar_messages on start
	shutdownTimeout time.Duration // for the server, then for River's running jobs
	databaseURL     string
	secret          string
}

func (c config) intake() bool { return c.mode == "intake" || c.mode == "both" }
func (c config) works() bool  { return c.mode == "worker" || c.mode == "both" }

func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("durable", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.mode, "mode", "both", "`intake`, worker or both")
	fs.StringVar(&c.addr, "addr", "127.0.0.1:8080", "`address` intake listens on (port 0: any free port)")
	fs.IntVar(&c.workers, "workers", 10, "jobs this process works at once (worker, both)")
	fs.BoolVar(&c.migrate, "migrate", true, "apply River's migrations and create the nectar_messages table on start")
	fs.DurationVar(&c.shutdownTimeout, "shutdown-timeout", 30*time.Second, "how long shutdown waits for deliveries, then jobs, in progress")
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
		logger.Info("working", slog.Int("workers", cfg.workers))
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
	if srv != nil {
		sctx, cancel := context.WithTimeout(context.Background(), cfg.shutdownTimeout)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			logger.Error("stopping the server", slog.Any("error", err))
		}
	}
	stopClient(client, cfg, logger)
	return serveErr
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

// migrate applies River's migrations, as `river migrate-up` does, and
// creates the table the callbacks write.
func migrate(ctx context.Context, pool *pgxpool.Pool, logger *slog.Logger) error {
	migrator, err := rivermigrate.New(riverpgxv5.New(pool), &rivermigrate.Config{Logger: logger})
	if err != nil {
		return fmt.Errorf("river migrations: %w", err)
	}
	if _, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("river migrations: %w", err)
	}
	if _, err := pool.Exec(ctx, createMessages); err != nil {
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
