package chaos

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/stretchr/testify/require"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/goredisstore"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
	"github.com/nectarhooks/nectarhooks/pgxstore"
	"github.com/nectarhooks/nectarhooks/riverqueue"
)

// setupTimeout bounds the set-up and tear-down calls to the servers, which
// run while every link is healthy: generous for a busy machine, short of
// hanging the run.
const setupTimeout = time.Minute

// shared is what a mode's replicas share, as the replicas of one service
// share its database: the secret, the callbacks' effects, the metrics and
// the logs.
type shared struct {
	secret     string
	runs       *runLog
	obs        *observer
	logs       *logCounter // the Handlers'
	clientLogs *logCounter // River's or go-redis's
	// handlerOpts are given to every Handler after the soak's own, so that
	// a test of the soak can break a promise on purpose.
	handlerOpts []nectarhooks.Option
}

func newShared(extra ...nectarhooks.Option) *shared {
	return &shared{secret: nectarhookstest.NewSecret(), runs: newRunLog(), obs: newObserver(),
		logs: newLogCounter(), clientLogs: newLogCounter(), handlerOpts: extra}
}

// newHandler returns a Handler with the soak's callbacks, logger and
// observer, and opts.
func (s *shared) newHandler(t *testing.T, opts ...nectarhooks.Option) *nectarhooks.Handler {
	t.Helper()
	opts = append(append([]nectarhooks.Option{nectarhooks.WithLogger(s.logs.logger()), nectarhooks.WithObserver(s.obs)},
		opts...), s.handlerOpts...)
	h, err := nectarhooks.NewHandler(s.secret, opts...)
	require.NoError(t, err)
	s.runs.register(h)
	return h
}

// cluster is one mode's three replicas.
type cluster struct {
	urls    []string
	proxies []*nectarhookstest.FaultProxy
	river   *pgxpool.Pool // river mode: a pool straight to the database, to read river_job
	// closers shut the cluster down, run last first: each replica
	// registers its proxy, then its pool or client, then its River client,
	// then its server, so that each goes before what it uses.
	closers []func()
	once    sync.Once
}

// shutdown closes everything the cluster started, once.
func (c *cluster) shutdown() {
	c.once.Do(func() {
		for i := len(c.closers) - 1; i >= 0; i-- {
			c.closers[i]()
		}
	})
}

// addProxy starts replica's proxy, with no target: the pool or client
// dials through it (Dial), and its connections can be made to fail.
func (c *cluster) addProxy(t *testing.T) *nectarhookstest.FaultProxy {
	p := nectarhookstest.NewFaultProxy(t, "")
	c.proxies = append(c.proxies, p)
	c.closers = append(c.closers, func() { p.Close() })
	return p
}

// addServer serves h.
func (c *cluster) addServer(h *nectarhooks.Handler) {
	srv := httptest.NewServer(h)
	c.urls = append(c.urls, srv.URL)
	c.closers = append(c.closers, srv.Close)
}

// proxiedPool opens a pool on dbURL whose connections go through p.
func (c *cluster) proxiedPool(t *testing.T, dbURL string, p *nectarhookstest.FaultProxy, maxConns int32) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(dbURL)
	require.NoError(t, err)
	cfg.MaxConns = maxConns
	cfg.ConnConfig.DialFunc = p.Dial
	// A dial into a frozen link hangs until it heals: bound it, as a
	// service would, so that a replica does not wait out a long outage
	// on connections that will never come.
	cfg.ConnConfig.ConnectTimeout = 5 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	c.closers = append(c.closers, pool.Close)
	return pool
}

// startPgxstore starts three replicas whose pgxstore Stores share one table
// of the soak's own, dropped when the test ends.
func startPgxstore(t *testing.T, s *shared) *cluster {
	dbURL := nectarhookstest.PostgresURL(t)
	table := "nh_chaos_" + randomHex(t, 8)
	dropAtEnd(t, dbURL, "DROP TABLE IF EXISTS "+pgx.Identifier{table}.Sanitize())
	c := &cluster{}
	t.Cleanup(c.shutdown) // in case the test ends early; before the drop
	for range replicas {
		p := c.addProxy(t)
		pool := c.proxiedPool(t, dbURL, p, 8)
		ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
		store, err := pgxstore.New(ctx, pool, pgxstore.WithTable(table))
		cancel()
		require.NoError(t, err)
		c.addServer(s.newHandler(t, nectarhooks.WithIdempotency(store)))
	}
	return c
}

// startGoredisstore starts three replicas whose goredisstore Stores share
// one prefix of the soak's own, whose keys are deleted when the test ends.
func startGoredisstore(t *testing.T, s *shared) *cluster {
	addr := nectarhookstest.RedisAddr(t)
	prefix := "nh-chaos:" + randomHex(t, 8) + ":"
	deleteAtEnd(t, addr, prefix)
	c := &cluster{}
	t.Cleanup(c.shutdown)
	redisLogs.Store(s.clientLogs)
	t.Cleanup(func() { redisLogs.Store(nil) })
	for range replicas {
		p := c.addProxy(t)
		client := redis.NewClient(&redis.Options{
			Addr:   addr,
			Dialer: p.Dial,
			// End each command at the deadline the Handler gives it
			// (WithStoreTimeout), as goredisstore's documentation asks:
			// otherwise a frozen link holds a command, and its pooled
			// connection, for ReadTimeout after the Handler gave up.
			ContextTimeoutEnabled: true,
			PoolSize:              8,
			DialTimeout:           2 * time.Second,
			ReadTimeout:           2 * time.Second,
			WriteTimeout:          2 * time.Second,
		})
		c.closers = append(c.closers, func() { client.Close() })
		store := goredisstore.New(client, goredisstore.WithPrefix(prefix))
		c.addServer(s.newHandler(t, nectarhooks.WithIdempotency(store)))
	}
	return c
}

// River's settings for the workers. JobTimeout is the Handler's callback
// timeout, which bounds the callback anyway. RescueStuckJobsAfter is far
// below River's default (an hour): a fetch whose answer the network lost
// leaves its job "running" on the server with no worker holding it, and
// only River's rescuer, after this, makes it available again. It must
// exceed JobTimeout, or River would rescue jobs still running.
const (
	riverJobTimeout  = nectarhooks.DefaultCallbackTimeout
	riverRescueAfter = 2 * riverJobTimeout
)

// startRiver starts three replicas on a database of the soak's own with
// River's tables, dropped when the test ends. Each replica takes
// deliveries with an insert-only River client (the Queue) and works jobs
// with a River client of its own, both on its pool, through its proxy.
func startRiver(t *testing.T, s *shared) *cluster {
	dbURL := newDatabase(t)
	c := &cluster{}
	t.Cleanup(c.shutdown)
	direct, err := pgxpool.New(context.Background(), dbURL)
	require.NoError(t, err)
	c.river = direct
	c.closers = append(c.closers, direct.Close)
	riverLogger := s.clientLogs.logger()
	for range replicas {
		p := c.addProxy(t)
		// Room for the Queue's inserts (4 at once by default), the
		// workers' fetches and completions, and River's notifier, elector
		// and maintenance.
		pool := c.proxiedPool(t, dbURL, p, 16)
		insert, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Logger: riverLogger})
		require.NoError(t, err)
		h := s.newHandler(t, nectarhooks.WithQueue(riverqueue.New(insert)))
		workers := river.NewWorkers()
		river.AddWorker(workers, riverqueue.NewWorker(h))
		worker, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
			Queues:                      map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 10}},
			Workers:                     workers,
			FetchCooldown:               20 * time.Millisecond,
			FetchPollInterval:           200 * time.Millisecond,
			JobTimeout:                  riverJobTimeout,
			RescueStuckJobsAfter:        riverRescueAfter,
			CompletedJobRetentionPeriod: riverqueue.CompletedJobRetention,
			Logger:                      riverLogger,
		})
		require.NoError(t, err)
		// Not a context with a timeout: River's services run under Start's
		// context, and its end stops the client.
		require.NoError(t, worker.Start(context.Background()))
		c.closers = append(c.closers, func() {
			ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
			defer cancel()
			if err := worker.Stop(ctx); err != nil {
				t.Errorf("stopping a River client: %v", err)
			}
		})
		c.addServer(h)
	}
	return c
}

// newDatabase creates a database of the soak's own on the test server,
// runs River's migrations in it, and drops it when the test ends. It
// returns the database's URL.
func newDatabase(t *testing.T) string {
	t.Helper()
	dbURL := nectarhookstest.PostgresDatabase(t, "nh_chaos_")

	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	pool, err := pgxpool.New(ctx, dbURL)
	require.NoError(t, err)
	defer pool.Close()
	migrator, err := rivermigrate.New(riverpgxv5.New(pool), &rivermigrate.Config{Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	_, err = migrator.Migrate(ctx, rivermigrate.DirectionUp, nil)
	require.NoError(t, err)
	return dbURL
}

// dropAtEnd runs statement, on a connection of its own, when the test
// ends, after the soak's pools have closed.
func dropAtEnd(t *testing.T, dbURL, statement string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
		defer cancel()
		conn, err := pgx.Connect(ctx, dbURL)
		if err != nil {
			t.Errorf("cleanup: %v", err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, statement); err != nil {
			t.Errorf("cleanup: %s: %v", statement, err)
		}
	})
}

// deleteAtEnd deletes the keys under prefix when the test ends, with a
// client of its own.
func deleteAtEnd(t *testing.T, addr, prefix string) {
	t.Cleanup(func() {
		c := redis.NewClient(&redis.Options{Addr: addr})
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
		defer cancel()
		iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		var keys []string
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		if err := iter.Err(); err != nil {
			t.Errorf("cleanup: scanning %s*: %v", prefix, err)
			return
		}
		for len(keys) > 0 {
			n := min(len(keys), 1000)
			if err := c.Unlink(ctx, keys[:n]...).Err(); err != nil {
				t.Errorf("cleanup: deleting %s*: %v", prefix, err)
				return
			}
			keys = keys[n:]
		}
	})
}

// jobRow is what the soak reads of a job.
type jobRow struct {
	state   string
	attempt int
}

// jobs reads the soak's jobs from the database, by message id.
func (c *cluster) jobs(ctx context.Context) (map[string][]jobRow, error) {
	rows, err := c.river.Query(ctx, "SELECT args->>'id', state::text, attempt FROM river_job WHERE kind = $1", riverqueue.Kind)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string][]jobRow{}
	for rows.Next() {
		var id string
		var j jobRow
		if err := rows.Scan(&id, &j.state, &j.attempt); err != nil {
			return nil, err
		}
		out[id] = append(out[id], j)
	}
	return out, rows.Err()
}

func (j jobRow) String() string { return fmt.Sprintf("%s(attempt %d)", j.state, j.attempt) }
