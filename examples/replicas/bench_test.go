package main

import (
	"context"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/goredisstore"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
	"github.com/nectarhooks/nectarhooks/pgxstore"
)

// benchSenders is how many deliveries are in flight at once, and how many
// connections the PostgreSQL pools have.
const benchSenders = 24

// BenchmarkDeliveries measures deliveries per second over loopback HTTP
// from benchSenders concurrent senders, each delivery a new message, to a
// Handler with each idempotency store, and beside them the ceiling of the
// PostgreSQL store: a bare pgx loop running pgxstore's own claim and
// complete statements at the same concurrency on a pool of the same size.
// It logs the ratios: pgxstore against the ceiling, goredisstore against
// MemoryStore. The machine is shared and noisy; compare ratios from one
// run, not rates across runs.
//
//	go test -run '^$' -bench Deliveries -benchtime 5s
func BenchmarkDeliveries(b *testing.B) {
	pgURL := nectarhookstest.PostgresURL(b)
	redisAddr := nectarhookstest.RedisAddr(b)
	suffix := randomSuffix()
	table := "nh_bench_" + suffix
	prefix := "nhbench:" + suffix + ":"
	ctx := context.Background()
	pool := benchPool(b, pgURL)
	client := redis.NewClient(&redis.Options{Addr: redisAddr, PoolSize: benchSenders})
	b.Cleanup(func() {
		pool.Exec(ctx, "DROP TABLE IF EXISTS "+pgx.Identifier{table}.Sanitize())
		client.Close()
	})
	pgStore, err := pgxstore.New(ctx, pool, pgxstore.WithTable(table))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		iter := client.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			client.Del(ctx, iter.Val())
		}
	})

	rates := map[string]float64{}
	var mu sync.Mutex
	record := func(name string, b *testing.B, start time.Time) {
		rate := float64(b.N) / time.Since(start).Seconds()
		b.ReportMetric(rate, "deliveries/s")
		mu.Lock()
		rates[name] = rate // the last run of a sub-benchmark is the one reported
		mu.Unlock()
	}
	stores := []struct {
		name  string
		store nectarhooks.IdempotencyStore
	}{
		{"memory", nectarhooks.NewMemoryStore(0, 0)},
		{"goredisstore", goredisstore.New(client, goredisstore.WithPrefix(prefix))},
		{"pgxstore", pgStore},
	}
	for _, s := range stores {
		b.Run(s.name, func(b *testing.B) {
			benchHandler(b, s.store, func(start time.Time) { record(s.name, b, start) })
		})
	}
	b.Run("pgx-ceiling", func(b *testing.B) {
		benchCeiling(b, pool, table, func(start time.Time) { record("pgx-ceiling", b, start) })
	})
	b.Run("redis-round-trips", func(b *testing.B) {
		benchRedisRoundTrips(b, client, prefix, func(start time.Time) { record("redis-round-trips", b, start) })
	})
	b.Logf("pgxstore / pgx ceiling = %.2f; goredisstore / memory = %.2f; goredisstore / its two round trips = %.2f (%v)",
		rates["pgxstore"]/rates["pgx-ceiling"], rates["goredisstore"]/rates["memory"],
		rates["goredisstore"]/rates["redis-round-trips"], rates)
}

// benchRedisRoundTrips runs b.N pairs of the two commands a delivery costs
// goredisstore at least (SET NX PX GET to claim, then a SET to complete,
// where the store runs a script), benchSenders at once: what Redis itself
// allows here, for comparison.
func benchRedisRoundTrips(b *testing.B, client *redis.Client, prefix string, done func(time.Time)) {
	ctx := context.Background()
	b.SetParallelism(int(math.Ceil(float64(benchSenders) / float64(max(1, runtime.GOMAXPROCS(0))))))
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			key := prefix + nectarhookstest.NewMessageID()
			err := client.Do(ctx, "set", key, "claimed", "nx", "px", 12000, "get").Err()
			if err != nil && err != redis.Nil {
				b.Error(err)
				return
			}
			if err := client.Set(ctx, key, "done", time.Hour).Err(); err != nil {
				b.Error(err)
				return
			}
		}
	})
	done(start)
}

// benchHandler delivers b.N new messages to a Handler with store over
// loopback HTTP, benchSenders at once.
func benchHandler(b *testing.B, store nectarhooks.IdempotencyStore, done func(time.Time)) {
	secret := nectarhookstest.NewSecret()
	h, err := nectarhooks.NewHandler(secret, nectarhooks.WithIdempotency(store),
		nectarhooks.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		b.Fatal(err)
	}
	h.OnDocumentCreated(func(context.Context, *nectarhooks.DocumentCreated) error { return nil })
	srv := httptest.NewServer(h)
	defer srv.Close()
	signer, err := nectarhookstest.NewSigner(secret)
	if err != nil {
		b.Fatal(err)
	}
	payload := nectarhookstest.Sample(nectarhooks.EventDocumentCreated)
	transport := &http.Transport{MaxIdleConnsPerHost: benchSenders}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport}

	b.SetParallelism(int(math.Ceil(float64(benchSenders) / float64(max(1, runtime.GOMAXPROCS(0))))))
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader(string(payload)))
			for k, v := range signer.HeaderFor(nectarhookstest.NewMessageID(), time.Now(), payload) {
				req.Header[k] = v
			}
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Errorf("answered %d", resp.StatusCode)
				return
			}
		}
	})
	done(start)
}

// The statements pgxstore runs for a Claim and a Complete (pgxstore/store.go,
// newStore), run bare here as the ceiling. Keep them in step with it.
const (
	ceilingClaimSQL = `INSERT INTO %s AS m (id, token, done, expires_at)
VALUES ($1, $2, false, now() + $3 * interval '1 microsecond')
ON CONFLICT (id) DO UPDATE SET
	token      = CASE WHEN m.expires_at <= now() THEN excluded.token ELSE m.token END,
	done       = CASE WHEN m.expires_at <= now() THEN false ELSE m.done END,
	expires_at = CASE WHEN m.expires_at <= now() THEN excluded.expires_at ELSE m.expires_at END
RETURNING token, done`
	ceilingCompleteSQL = `INSERT INTO %s AS m (id, token, done, expires_at)
VALUES ($1, $2, true, now() + $3 * interval '1 microsecond')
ON CONFLICT (id) DO UPDATE SET token = excluded.token, done = true, expires_at = excluded.expires_at
WHERE (m.token = excluded.token AND NOT m.done) OR m.expires_at <= now()`
)

// benchCeiling runs b.N claim and complete pairs of new ids on pool,
// benchSenders at once, with no HTTP and no Handler.
func benchCeiling(b *testing.B, pool *pgxpool.Pool, table string, done func(time.Time)) {
	name := pgx.Identifier{table}.Sanitize()
	claimSQL := strings.Replace(ceilingClaimSQL, "%s", name, 1)
	completeSQL := strings.Replace(ceilingCompleteSQL, "%s", name, 1)
	lease := (nectarhooks.DefaultCallbackTimeout + nectarhooks.LeaseGrace).Microseconds()
	ttl := nectarhooks.DefaultIdempotencyTTL.Microseconds()
	ctx := context.Background()
	b.SetParallelism(int(math.Ceil(float64(benchSenders) / float64(max(1, runtime.GOMAXPROCS(0))))))
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			id := nectarhookstest.NewMessageID()
			token := rand.Int64N(math.MaxInt64) + 1
			var got int64
			var isDone bool
			if err := pool.QueryRow(ctx, claimSQL, id, token, lease).Scan(&got, &isDone); err != nil {
				b.Error(err)
				return
			}
			if _, err := pool.Exec(ctx, completeSQL, id, token, ttl); err != nil {
				b.Error(err)
				return
			}
		}
	})
	done(start)
}

func benchPool(b *testing.B, url string) *pgxpool.Pool {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		b.Fatal(err)
	}
	cfg.MaxConns = benchSenders
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	return pool
}
