// Command production is the Nectar webhook receiver most production
// services need, meant to run as several replicas behind a load balancer,
// all on one PostgreSQL database:
//
//   - Intake that loses nothing it acknowledged: each verified delivery
//     becomes a River job (riverqueue, through nectarhooks.WithQueue) before
//     Svix gets its 202, so a replica that crashes right after answering
//     loses nothing.
//   - Workers that run each message's callback once across the replicas:
//     River runs the jobs (riverqueue.Worker), and the Handler's idempotency
//     store, pgxstore in the same database (nectarhooks.WithIdempotency),
//     makes the callback of a message run once however many jobs and runs
//     of them there are.
//   - OpenTelemetry metrics (otelhooks), exported for Prometheus on
//     -metrics-addr, GET /metrics, away from the webhook route: deliveries
//     and callbacks by event type and outcome, and the River backlog
//     (nectarhooks_queue_backlog, nectarhooks_queue_backlog_age_seconds), which
//     says whether the workers keep up: a 202 is not work done.
//   - River's migrations at start (riverqueue.Migrate, under an advisory
//     lock, so replicas may start together on a fresh database), and a
//     graceful shutdown in the order that leaves nothing half done.
//
// Every replica takes deliveries and works jobs. For intake and workers in
// processes of their own, see examples/durable.
//
// # Where duplicates stop
//
// Svix delivers a message (one svix-id) at least once, to whichever replica
// answers, and River runs a job at least once. Two things make the callback
// run once:
//
//  1. At intake, River's unique jobs: riverqueue.Args keys its job on the
//     svix-id, so a redelivery finds the job there (or completed, for
//     riverqueue.CompletedJobRetention, 48 hours) and is answered 202
//     without a second one.
//  2. At the worker, pgxstore: the Worker runs the Handler's
//     DispatchVerified, which claims the message in the store before the
//     callback and marks it done after (kept for
//     nectarhooks.DefaultIdempotencyTTL, 48 hours); a second job of a
//     processed message is acknowledged without running the callback. River
//     makes one when a worker died after the job's callback but before River
//     recorded the job, and a resend makes one once River has deleted the
//     completed job.
//
// What the store cannot cover is a replica that dies after the callback
// and before the store records it: the next run finds the claim's lease
// ended and runs the callback again, so work that must not happen twice
// should also be idempotent on the svix-id (an upsert keyed on it, say).
//
// Does the intake's WithIdempotency mark messages done at intake? No. A
// Handler made WithQueue hands each verified delivery to the Queue and
// answers: it neither claims nor completes the message in the idempotency
// store, whose claim begins when a worker's DispatchVerified runs the
// callback. Intake's deduplication is River's unique job per message id;
// the store's is the callback's. This example gives one Handler both
// options: its ServeHTTP serves intake, and the Worker runs its callbacks.
//
// # Running it
//
//	export NECTAR_WEBHOOK_SECRET=whsec_... DATABASE_URL=postgres://localhost/app
//	go run . -addr 127.0.0.1:8081 -metrics-addr 127.0.0.1:9465 &
//	go run . -addr 127.0.0.1:8082 -metrics-addr 127.0.0.1:9466 &
//	curl -s 127.0.0.1:9465/metrics | grep nectarhooks_
//
// DATABASE_URL falls back to NECTARHOOKS_POSTGRES_URL, the tests' variable.
// Flags:
//
//	-addr                 webhook endpoint, POST /webhooks/nectar, and GET /healthz
//	                      (default 127.0.0.1:8080; port 0 picks a free one)
//	-metrics-addr         Prometheus metrics, GET /metrics (default 127.0.0.1:9464)
//	-workers              jobs this replica works at once (default 100)
//	-max-conns            the replica's PostgreSQL connections (default 20;
//	                      0 keeps DATABASE_URL's pool_max_conns)
//	-fetch-cooldown       least time between River's fetches (default 10ms)
//	-fetch-poll-interval  longest time between them when no insert
//	                      notification comes (default 100ms)
//	-callback-timeout     each callback's deadline (default 30s)
//	-migrate              apply River's migrations and create the example's
//	                      table at start, under a lock (default true; false
//	                      where a separate step migrates, `river migrate-up`)
//	-shutdown-timeout     bound of each shutdown step (default 30s)
//
// A replica works at most -workers ÷ -fetch-cooldown jobs a second (River
// fetches at most once per cooldown, as many jobs as it has free workers):
// with River's default cooldown, 100 ms, 10 workers would cap it at 100
// jobs/s, far below what intake takes; the defaults here raise the ceiling
// to 10,000, so that the callbacks and the database are the limit. Watch
// nectarhooks_queue_backlog under load, or have the load generator wait
// for it to drain:
//
//	nectarhooks load -url http://127.0.0.1:8081/webhooks/nectar -url http://127.0.0.1:8082/webhooks/nectar \
//		-secret "$NECTAR_WEBHOOK_SECRET" -rate 500 -duration 20s -c 64 -dup 0.1 \
//		-wait-url http://127.0.0.1:9465/metrics -wait-metric nectarhooks_queue_backlog
//
// Every replica reports the same backlog, the database's: aggregate it
// with max, not sum. The workers share the replica's connections with
// intake, so the pool is sized for them (-max-conns): pgxpool's default,
// 4 connections on a small machine, leaves 100 workers waiting for one.
//
// The callbacks here stand for a service's work: each records its message
// in the table nectar_messages, keyed on the svix-id and counting the
// runs, which the tests read to check that every message ran once.
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
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/otelhooks"
	"github.com/nectarhooks/nectarhooks/pgxstore"
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
		fmt.Fprintln(stderr, "production:", err)
		return 2
	}
	logger := slog.New(slog.NewJSONHandler(stderr, nil))
	if err := run(ctx, cfg, logger); err != nil {
		logger.Error("production: stopped", slog.Any("error", err))
		return 1
	}
	return 0
}

// Defaults that keep up: see the package doc.
const (
	defaultWorkers           = 100
	defaultFetchCooldown     = 10 * time.Millisecond
	defaultFetchPollInterval = 100 * time.Millisecond
	// Each job takes several statements (River's fetch and completion,
	// the store's claim and completion, the callback's own work), and
	// intake inserts share the pool: pgxpool's default of 4 connections
	// (or the CPUs) makes 100 workers wait for one, past the store's
	// deadline under load. Three replicas of 20 stay under PostgreSQL's
	// default max_connections (100).
	defaultMaxConns = 20
	// The store is called by the workers only, after Svix has its answer:
	// no 15 s window to fit, and a Complete that times out lets the
	// message's callback run again.
	storeTimeout = 10 * time.Second
)

// config is what flags and environment set.
type config struct {
	addr, metricsAddr string
	workers           int
	maxConns          int
	fetchCooldown     time.Duration
	fetchPollInterval time.Duration
	callbackTimeout   time.Duration
	migrate           bool
	shutdownTimeout   time.Duration
	databaseURL       string
	secret            string
}

func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("production", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.addr, "addr", "127.0.0.1:8080", "`address` of the webhook endpoint, POST /webhooks/nectar (port 0: any free port)")
	fs.StringVar(&c.metricsAddr, "metrics-addr", "127.0.0.1:9464", "`address` serving Prometheus metrics on GET /metrics (port 0: any free port)")
	fs.IntVar(&c.workers, "workers", defaultWorkers, "jobs this replica works at once; throughput ≤ workers ÷ fetch-cooldown")
	fs.IntVar(&c.maxConns, "max-conns", defaultMaxConns, "the replica's PostgreSQL connections; 0 keeps DATABASE_URL's pool_max_conns, else pgxpool's default (4 or the CPUs)")
	fs.DurationVar(&c.fetchCooldown, "fetch-cooldown", defaultFetchCooldown, "least `time` between River's fetches of jobs")
	fs.DurationVar(&c.fetchPollInterval, "fetch-poll-interval", defaultFetchPollInterval, "longest `time` between River's fetches when no insert notification comes")
	fs.DurationVar(&c.callbackTimeout, "callback-timeout", 30*time.Second, "each callback's `deadline`")
	fs.BoolVar(&c.migrate, "migrate", true, "apply River's migrations and create nectar_messages at start, under a lock; false where a separate step migrates")
	fs.DurationVar(&c.shutdownTimeout, "shutdown-timeout", 30*time.Second, "bound of each shutdown step")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	switch {
	case fs.NArg() > 0:
		return c, fmt.Errorf("unexpected arguments: %q", fs.Args())
	case c.workers <= 0:
		return c, fmt.Errorf("-workers %d: want a positive number", c.workers)
	case c.maxConns < 0 || c.maxConns == 1 || c.maxConns > 10000:
		return c, fmt.Errorf("-max-conns %d: want 2 to 10000 (0 for DATABASE_URL's)", c.maxConns)
	case c.fetchCooldown < time.Millisecond:
		return c, fmt.Errorf("-fetch-cooldown %s: want 1ms or more", c.fetchCooldown)
	case c.fetchPollInterval < c.fetchCooldown:
		return c, fmt.Errorf("-fetch-poll-interval %s: want at least -fetch-cooldown (%s)", c.fetchPollInterval, c.fetchCooldown)
	case c.callbackTimeout <= 0:
		return c, fmt.Errorf("-callback-timeout %s: want a positive duration", c.callbackTimeout)
	}
	c.secret = getenv("NECTAR_WEBHOOK_SECRET")
	if c.secret == "" {
		return c, errors.New("set NECTAR_WEBHOOK_SECRET to the endpoint's signing secret (whsec_..., on its page in the Svix portal)")
	}
	c.databaseURL = getenv("DATABASE_URL")
	if c.databaseURL == "" {
		c.databaseURL = getenv("NECTARHOOKS_POSTGRES_URL")
	}
	if c.databaseURL == "" {
		return c, errors.New("set DATABASE_URL to a PostgreSQL URL")
	}
	return c, nil
}

// run serves and works until ctx ends, then shuts down.
func run(ctx context.Context, cfg config, logger *slog.Logger) error {
	poolConfig, err := pgxpool.ParseConfig(cfg.databaseURL)
	if err != nil {
		return fmt.Errorf("DATABASE_URL: %w", err)
	}
	if cfg.maxConns > 0 {
		poolConfig.MaxConns = int32(cfg.maxConns)
	}
	pool, err := pgxpool.NewWithConfig(ctx, poolConfig)
	if err != nil {
		return fmt.Errorf("database: %w", err)
	}
	// Closed last (see shutdown): River, the store and the backlog gauge
	// use it until then.
	defer pool.Close()
	if cfg.migrate {
		if err := migrate(ctx, pool, logger); err != nil {
			return err
		}
	}
	// New creates its table when missing, under a lock of its own, so
	// replicas may start together.
	store, err := pgxstore.New(ctx, pool)
	if err != nil {
		return fmt.Errorf("idempotency store: %w", err)
	}

	m, err := newMetrics(pool)
	if err != nil {
		return err
	}
	defer m.shutdown(logger)

	workers := river.NewWorkers()
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		Logger:            logger,
		Queues:            map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: cfg.workers}},
		Workers:           workers,
		FetchCooldown:     cfg.fetchCooldown,
		FetchPollInterval: cfg.fetchPollInterval,
		// Completed jobs make a later redelivery of the same svix-id a
		// no-op at intake: keep them longer than Svix retries (28 h).
		CompletedJobRetentionPeriod: riverqueue.CompletedJobRetention,
	})
	if err != nil {
		return fmt.Errorf("river: %w", err)
	}

	h, err := nectarhooks.NewHandler(cfg.secret,
		nectarhooks.WithLogger(logger),
		nectarhooks.WithObserver(m.obs),
		// Intake: insert a River job, then answer 202. No claim in the
		// store here (see the package doc).
		nectarhooks.WithQueue(riverqueue.New(client)),
		// Worker: the callback runs once per message across replicas.
		nectarhooks.WithIdempotency(store),
		nectarhooks.WithStoreTimeout(storeTimeout),
		// Callbacks run after the answer: no need to fit Svix's 15
		// seconds. River's job timeout (1 minute by default) bounds them
		// too.
		nectarhooks.WithCallbackTimeout(cfg.callbackTimeout),
		nectarhooks.WithErrorHandler(func(ctx context.Context, status int, err error) {
			msg, _ := nectarhooks.MessageFromContext(ctx)
			if status != 0 {
				// Refused at intake (503 when the database is down): Svix
				// delivers it again.
				logger.WarnContext(ctx, "delivery refused", slog.Int("status", status),
					slog.String("message_id", msg.ID), slog.Any("error", err))
				return
			}
			// River gave up on the job (discarded, still in river_job):
			// alert, fix, then retry it with river.Client.JobRetry.
			logger.ErrorContext(ctx, "message failed its last attempt", slog.String("message_id", msg.ID),
				slog.String("event_type", string(msg.EventType)), slog.Any("error", err))
		}),
	)
	if err != nil {
		return err
	}
	registerCallbacks(h, pool)
	if err := m.observe(h); err != nil {
		return err
	}

	river.AddWorker(workers, riverqueue.NewWorker(h))
	// River stops when shutdown asks it to, not when ctx ends: Stop lets
	// the jobs in progress finish.
	if err := client.Start(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("river: %w", err)
	}
	s := &servers{}
	defer s.shutdown(h, client, cfg, logger)

	webhooksLn, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return err
	}
	metricsLn, err := net.Listen("tcp", cfg.metricsAddr)
	if err != nil {
		webhooksLn.Close()
		return err
	}
	s.webhooks = &http.Server{
		Handler:           webhookRoutes(h),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		// An answer waits for the job's insert, at most twice
		// riverqueue.DefaultInsertTimeout (10 seconds).
		WriteTimeout: 20 * time.Second,
		IdleTimeout:  2 * time.Minute,
	}
	s.metrics = &http.Server{Handler: metricsRoutes(m.reg), ReadHeaderTimeout: 5 * time.Second}
	served := make(chan error, 2)
	go func() { served <- s.webhooks.Serve(webhooksLn) }()
	go func() { served <- s.metrics.Serve(metricsLn) }()
	// The tests read the addresses from this line.
	logger.Info("listening", slog.String("addr", webhooksLn.Addr().String()),
		slog.String("metrics_addr", metricsLn.Addr().String()), slog.Int("workers", cfg.workers))

	select {
	case <-ctx.Done():
		return nil
	case err := <-served:
		return err
	}
}

// servers are the HTTP servers shutdown stops.
type servers struct {
	webhooks, metrics *http.Server
}

// shutdown stops, in this order, each step using what a later one closes:
//
//  1. the webhook server: no new deliveries, and those in progress finish
//     their insert and get their answer;
//  2. the Handler (Handler.Shutdown): nothing to drain with WithQueue, but
//     in its place it drains WithAsync's queue, and it comes after the
//     server's Shutdown;
//  3. River (client.Stop): the jobs in progress finish and are recorded,
//     in river_job and in the idempotency store;
//  4. the metrics server, which served until the end for a last scrape;
//  5. the metrics (deferred in run), then the pool (deferred in run, first
//     of all, so closed last).
//
// A pool closed before River has stopped fails the jobs in progress, and
// River's recording of those done, with "closed pool" errors; River runs
// them again later, and the store turns away those whose callback ran.
func (s *servers) shutdown(h *nectarhooks.Handler, client *river.Client[pgx.Tx], cfg config, logger *slog.Logger) {
	logger.Info("shutting down")
	step := func(name string, stop func(context.Context) error) {
		ctx, cancel := context.WithTimeout(context.Background(), cfg.shutdownTimeout)
		defer cancel()
		if err := stop(ctx); err != nil {
			logger.Error("stopping "+name, slog.Any("error", err))
		}
	}
	if s.webhooks != nil {
		step("the webhook server", s.webhooks.Shutdown)
	}
	step("the Handler", h.Shutdown)
	step("River; unfinished jobs run again later", func(ctx context.Context) error {
		if err := client.Stop(ctx); err != nil {
			return errors.Join(err, client.StopAndCancel(context.Background()))
		}
		return nil
	})
	if s.metrics != nil {
		step("the metrics server", s.metrics.Shutdown)
	}
}

func webhookRoutes(h http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("POST /webhooks/nectar", h)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	return mux
}

// metricsRoutes serves reg's metrics on GET /metrics.
func metricsRoutes(reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return mux
}

// metrics are the OpenTelemetry metrics, exported to a Prometheus registry
// of their own, as examples/observed does.
type metrics struct {
	reg    *prometheus.Registry
	meters *sdkmetric.MeterProvider
	obs    *otelhooks.Observer
	pool   *pgxpool.Pool
	regs   []interface{ Unregister() error }
}

func newMetrics(pool *pgxpool.Pool) (*metrics, error) {
	reg := prometheus.NewRegistry()
	exporter, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return nil, fmt.Errorf("prometheus exporter: %w", err)
	}
	meters := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter))
	obs, err := otelhooks.New(otelhooks.WithMeterProvider(meters))
	if err != nil {
		return nil, err
	}
	return &metrics{reg: reg, meters: meters, obs: obs, pool: pool}, nil
}

// observe adds the gauges: h's callbacks overrunning their deadline
// (ObserveQueue; its nectarhooks_queue_depth, WithAsync's queue, stays 0
// here), and River's backlog, read from the database at each scrape.
func (m *metrics) observe(h *nectarhooks.Handler) error {
	queue, err := m.obs.ObserveQueue(h)
	if err != nil {
		return err
	}
	m.regs = append(m.regs, queue)
	backlog, err := m.obs.ObserveBacklog(func(ctx context.Context) (int64, time.Duration, error) {
		b, err := riverqueue.ReadBacklog(ctx, m.pool, "")
		return b.Available, b.OldestAge, err
	})
	if err != nil {
		return err
	}
	m.regs = append(m.regs, backlog)
	return nil
}

func (m *metrics) shutdown(logger *slog.Logger) {
	var errs []error
	for _, r := range m.regs {
		errs = append(errs, r.Unregister())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	errs = append(errs, m.meters.Shutdown(ctx))
	if err := errors.Join(errs...); err != nil {
		logger.Error("stopping the metrics", slog.Any("error", err))
	}
}

// migrate applies River's migrations with riverqueue.Migrate, under its
// advisory lock, and then creates the example's table under the same key,
// as a transaction-level lock: CREATE TABLE IF NOT EXISTS run by two
// sessions at once can still fail with a duplicate key in PostgreSQL's
// catalog. A service's own migrations can go there the same way.
func migrate(ctx context.Context, pool *pgxpool.Pool, logger *slog.Logger) error {
	if err := riverqueue.Migrate(ctx, pool, riverqueue.WithMigrateLogger(logger)); err != nil {
		return err
	}
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
// nectar_messages, counting the runs, which pgxstore keeps at 1.
func registerCallbacks(h *nectarhooks.Handler, pool *pgxpool.Pool) {
	record := func(ctx context.Context) error {
		msg, _ := nectarhooks.MessageFromContext(ctx)
		_, err := pool.Exec(ctx, `INSERT INTO nectar_messages (message_id, event_type) VALUES ($1, $2)
			ON CONFLICT (message_id) DO UPDATE SET runs = nectar_messages.runs + 1, processed_at = now()`,
			msg.ID, string(msg.EventType))
		return err
	}
	h.OnConnectionCreated(func(ctx context.Context, _ *nectarhooks.ConnectionCreated) error { return record(ctx) })
	h.OnConnectionUpdated(func(ctx context.Context, _ *nectarhooks.ConnectionUpdated) error { return record(ctx) })
	h.OnConnectionValidated(func(ctx context.Context, _ *nectarhooks.ConnectionValidated) error { return record(ctx) })
	h.OnDocumentCreated(func(ctx context.Context, _ *nectarhooks.DocumentCreated) error { return record(ctx) })
	h.OnDocumentUpdated(func(ctx context.Context, _ *nectarhooks.DocumentUpdated) error { return record(ctx) })
	h.OnUnhandled(func(ctx context.Context, _ nectarhooks.Message) error { return record(ctx) })
}
