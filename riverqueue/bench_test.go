package riverqueue_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/stretchr/testify/require"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
	"github.com/nectarhooks/nectarhooks/riverqueue"
)

// senders is how many deliveries are in flight at once in the intake
// benchmarks, as from Svix's concurrent attempts.
const senders = 24

// poolSize is the connection pool of every River client benchmarked.
const poolSize = 16

// BenchmarkIntake measures deliveries per second over loopback HTTP with
// senders concurrent senders, side by side: WithAsync's memory queue,
// riverqueue's intake (verify, decode, insert a unique job, commit, 202),
// and the ceiling: River's own Insert of the same Args at the same
// concurrency, with no HTTP and no Handler. Compare deliveries/s between
// the sub-benchmarks of one run: the machine's speed cancels out.
//
//	go test -run '^$' -bench Intake -benchtime 3000x -count 3 ./riverqueue
func BenchmarkIntake(b *testing.B) {
	dbURL := newDatabase(b)
	pool := newPool(b, dbURL, poolSize)
	client := newInsertClient(b, pool)
	secret := nectarhookstest.NewSecret()
	body := samples[4]
	prefix := "msg_" + randomHex(b, 4) + "_"
	var seq atomic.Int64
	nextID := func() string { return fmt.Sprintf("%s%d", prefix, seq.Add(1)) }

	b.Run("async-memory", func(b *testing.B) {
		h, err := nectarhooks.NewHandler(secret, nectarhooks.WithAsync(4, 1<<16))
		require.NoError(b, err)
		// The callback of body's event type (samples[4], document.updated):
		// a delivery without one is acknowledged 200 at once, unqueued.
		h.OnDocumentUpdated(func(context.Context, *nectarhooks.DocumentUpdated) error { return nil })
		benchHTTP(b, h, secret, body, nextID)
		require.NoError(b, h.Shutdown(context.Background()))
	})
	b.Run("riverqueue", func(b *testing.B) {
		h, err := nectarhooks.NewHandler(secret, nectarhooks.WithQueue(riverqueue.New(client)))
		require.NoError(b, err)
		benchHTTP(b, h, secret, body, nextID)
	})
	b.Run("ceiling-river-insert", func(b *testing.B) {
		msg := nectarhooks.Message{Timestamp: time.Now().UTC(), EventType: nectarhooks.EventConnectionUpdated, Payload: body}
		parallel(b, func() {
			msg := msg
			msg.ID = nextID()
			if _, err := client.Insert(context.Background(), riverqueue.NewArgs(msg), nil); err != nil {
				b.Error(err)
			}
		})
	})
}

// benchHTTP sends b.N signed deliveries to h over loopback HTTP, each a new
// message, and fails on any answer but 202.
func benchHTTP(b *testing.B, h http.Handler, secret string, body []byte, nextID func() string) {
	srv := httptest.NewServer(h)
	defer srv.Close()
	d := newDeliverer(b, secret)
	parallel(b, func() {
		status, err := d.deliver(srv.URL, nextID(), body)
		if err != nil || status != http.StatusAccepted {
			b.Errorf("answer %d, %v", status, err)
		}
	})
}

// parallel runs op b.N times on senders goroutines and reports the rate.
func parallel(b *testing.B, op func()) {
	b.SetParallelism((senders + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			op()
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "deliveries/s")
}

// BenchmarkIntakeInterleaved runs the intakes of BenchmarkIntake, and
// riverqueue with one insert per delivery (WithConcurrentInserts(senders)), in
// alternating rounds of 240 deliveries each, senders at a time, so that a
// machine whose load drifts (other jobs, a shared CI host) slows all three
// alike, and reports each one's deliveries/s and riverqueue's shares of
// the ceiling.
//
//	go test -run '^$' -bench IntakeInterleaved -benchtime 9600x ./riverqueue
func BenchmarkIntakeInterleaved(b *testing.B) {
	const round = 240
	dbURL := newDatabase(b)
	pool := newPool(b, dbURL, poolSize)
	client := newInsertClient(b, pool)
	secret := nectarhookstest.NewSecret()
	body := samples[4]
	prefix := "msg_" + randomHex(b, 4) + "_"
	var seq atomic.Int64
	nextID := func() string { return fmt.Sprintf("%s%d", prefix, seq.Add(1)) }
	d := newDeliverer(b, secret)

	async, err := nectarhooks.NewHandler(secret, nectarhooks.WithAsync(4, 1<<16))
	require.NoError(b, err)
	async.OnDocumentUpdated(func(context.Context, *nectarhooks.DocumentUpdated) error { return nil }) // body's event type
	defer async.Shutdown(context.Background())
	intake, err := nectarhooks.NewHandler(secret, nectarhooks.WithQueue(riverqueue.New(client)))
	require.NoError(b, err)
	// As many inserts at once as senders: each delivery inserted alone.
	unbatched, err := nectarhooks.NewHandler(secret, nectarhooks.WithQueue(riverqueue.New(client, riverqueue.WithConcurrentInserts(senders))))
	require.NoError(b, err)
	asyncSrv, intakeSrv, unbatchedSrv := httptest.NewServer(async), httptest.NewServer(intake), httptest.NewServer(unbatched)
	defer asyncSrv.Close()
	defer intakeSrv.Close()
	defer unbatchedSrv.Close()
	send := func(url string) func() {
		return func() {
			status, err := d.deliver(url, nextID(), body)
			if err != nil || status != http.StatusAccepted {
				b.Errorf("answer %d, %v", status, err)
			}
		}
	}
	msg := nectarhooks.Message{Timestamp: time.Now().UTC(), EventType: nectarhooks.EventConnectionUpdated, Payload: body}
	variants := []struct {
		name string
		op   func()
	}{
		{"async-memory", send(asyncSrv.URL)},
		{"riverqueue", send(intakeSrv.URL)},
		{"riverqueue-unbatched", send(unbatchedSrv.URL)},
		{"ceiling", func() {
			msg := msg
			msg.ID = nextID()
			if _, err := client.Insert(context.Background(), riverqueue.NewArgs(msg), nil); err != nil {
				b.Error(err)
			}
		}},
	}
	elapsed := make([]time.Duration, len(variants))
	b.ResetTimer()
	for done := 0; done < b.N; done += round * len(variants) {
		for v, variant := range variants {
			elapsed[v] += rounds(round, variant.op)
		}
	}
	b.StopTimer()
	rounds := (b.N + round*len(variants) - 1) / (round * len(variants))
	rate := func(v int) float64 { return float64(rounds*round) / elapsed[v].Seconds() }
	for v, variant := range variants {
		b.ReportMetric(rate(v), variant.name+"/s")
	}
	b.ReportMetric(rate(1)/rate(3), "riverqueue/ceiling")
	b.ReportMetric(rate(2)/rate(3), "unbatched/ceiling")
}

// rounds runs op n times on senders goroutines and returns how long that
// took.
func rounds(n int, op func()) time.Duration {
	var left atomic.Int64
	left.Store(int64(n))
	var wg sync.WaitGroup
	start := time.Now()
	for range senders {
		wg.Go(func() {
			for left.Add(-1) >= 0 {
				op()
			}
		})
	}
	wg.Wait()
	return time.Since(start)
}

// BenchmarkEndToEndLatency measures the time from the 2xx answer to the
// start of the callback, through PostgreSQL and a worker client in the same
// process, with 4 senders each waiting for its message's callback before
// sending the next. It reports the 50th and 99th percentiles in
// milliseconds, for River's fetch defaults (LISTEN/NOTIFY wakes the
// producer; a fetch at most every FetchCooldown, 100 ms, and a poll every
// FetchPollInterval, 1 s) and for a faster setting.
func BenchmarkEndToEndLatency(b *testing.B) {
	settings := []struct {
		name              string
		cooldown, pollInt time.Duration
	}{
		{"river-defaults", 0, 0},
		{"cooldown-10ms-poll-100ms", 10 * time.Millisecond, 100 * time.Millisecond},
	}
	dbURL := newDatabase(b)
	for _, s := range settings {
		b.Run(s.name, func(b *testing.B) {
			pool := newPool(b, dbURL, poolSize)
			started := sync.Map{} // message id: chan time.Time
			secret := nectarhookstest.NewSecret()
			workers := river.NewWorkers()
			client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
				Queues:            map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 10}},
				Workers:           workers,
				FetchCooldown:     s.cooldown,
				FetchPollInterval: s.pollInt,
				Logger:            quietLogger(),
			})
			require.NoError(b, err)
			h, err := nectarhooks.NewHandler(secret, nectarhooks.WithQueue(riverqueue.New(client)))
			require.NoError(b, err)
			h.OnUnhandled(func(ctx context.Context, _ nectarhooks.Message) error {
				now := time.Now()
				m, _ := nectarhooks.MessageFromContext(ctx)
				if c, ok := started.Load(m.ID); ok {
					c.(chan time.Time) <- now
				}
				return nil
			})
			river.AddWorker(workers, riverqueue.NewWorker(h))
			startClient(b, client)
			srv := httptest.NewServer(h)
			defer srv.Close()
			d := newDeliverer(b, secret)
			prefix := "msg_" + randomHex(b, 4) + "_"
			var seq atomic.Int64

			var mu sync.Mutex
			var latencies []time.Duration
			b.SetParallelism(max(1, 4/runtime.GOMAXPROCS(0)))
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					id := fmt.Sprintf("%s%d", prefix, seq.Add(1))
					c := make(chan time.Time, 1)
					started.Store(id, c)
					status, err := d.deliver(srv.URL, id, samples[4])
					answered := time.Now()
					if err != nil || status != http.StatusAccepted {
						b.Errorf("answer %d, %v", status, err)
						return
					}
					select {
					case at := <-c:
						// A callback may start before the answer reaches the
						// sender: count that as no wait at all.
						mu.Lock()
						latencies = append(latencies, max(at.Sub(answered), 0))
						mu.Unlock()
					case <-time.After(wait):
						b.Errorf("message %s: no callback", id)
						return
					}
					started.Delete(id)
				}
			})
			b.StopTimer()
			slices.Sort(latencies)
			if len(latencies) > 0 {
				b.ReportMetric(ms(latencies[len(latencies)/2]), "p50-ms")
				b.ReportMetric(ms(latencies[len(latencies)*99/100]), "p99-ms")
			}
		})
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

var _ pgx.Tx // the driver's transaction type, as the clients above use

// BenchmarkCleanerDelete measures what the markers' trigger (see
// EffectsTableSQL) adds to River's cleaner: deleting 1,000 completed jobs
// in one statement, as the cleaner does, from a database with the
// markers' table, triggers and one marker per job, against the same
// delete from a database with River's tables only, in alternating rounds.
//
//	go test -run '^$' -bench CleanerDelete -benchtime 20x ./riverqueue
func BenchmarkCleanerDelete(b *testing.B) {
	const batch = 1000
	ctx := context.Background()
	type variant struct {
		name    string
		pool    *pgxpool.Pool
		markers bool
		elapsed time.Duration
	}
	marked := newPool(b, newDatabase(b), 4)
	_, err := marked.Exec(ctx, riverqueue.EffectsTableSQL)
	require.NoError(b, err)
	variants := []*variant{
		{name: "with-markers", pool: marked, markers: true},
		{name: "river-only", pool: newPool(b, newDatabase(b), 4)},
	}
	args := make([]river.InsertManyParams, batch)
	for i := range args {
		args[i] = river.InsertManyParams{Args: riverqueue.NewArgs(nectarhooks.Message{ID: fmt.Sprintf("msg_clean_%d", i),
			Timestamp: time.Now().UTC(), EventType: nectarhooks.EventDocumentCreated,
			Payload: nectarhookstest.Sample(nectarhooks.EventDocumentCreated)})}
	}
	// round fills v's database with batch completed jobs (and their
	// markers), then times their deletion.
	round := func(v *variant) {
		client := newInsertClient(b, v.pool)
		res, err := client.InsertMany(ctx, args)
		require.NoError(b, err)
		ids := make([]int64, len(res))
		for i, r := range res {
			ids[i] = r.Job.ID
		}
		_, err = v.pool.Exec(ctx, `UPDATE river_job SET state = 'completed', finalized_at = now() WHERE id = ANY($1)`, ids)
		require.NoError(b, err)
		if v.markers {
			_, err = v.pool.Exec(ctx, `INSERT INTO nectarhooks_job_effects (job_id, attempt) SELECT unnest($1::bigint[]), 1`, ids)
			require.NoError(b, err)
		}
		start := time.Now()
		_, err = v.pool.Exec(ctx, `DELETE FROM river_job WHERE id = ANY($1)`, ids)
		v.elapsed += time.Since(start)
		require.NoError(b, err)
	}
	for _, v := range variants {
		round(v) // untimed: plans, caches
		v.elapsed = 0
	}
	b.ResetTimer()
	for range b.N {
		for _, v := range variants {
			round(v)
		}
	}
	b.StopTimer()
	for _, v := range variants {
		b.ReportMetric(float64(v.elapsed.Microseconds())/1000/float64(b.N), v.name+"-ms/1000jobs")
	}
	b.ReportMetric(float64(variants[0].elapsed)/float64(variants[1].elapsed), "with-markers/river-only")
	var left int
	require.NoError(b, marked.QueryRow(ctx, `SELECT count(*) FROM nectarhooks_job_effects`).Scan(&left))
	require.Zero(b, left, "markers left behind")
}
