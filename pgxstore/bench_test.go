package pgxstore

import (
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nectarhooks/nectarhooks"
)

// benchClients is how many goroutines, each with a connection, claim and
// complete at once: a receiver under load from Svix.
const benchClients = 16

// BenchmarkClaimComplete measures claim+complete pairs of new messages
// with 16 concurrent clients, for the Store and, in the same run, for a
// bare pgx loop sending the same two statements with the same arguments:
// the ceiling, the database's own cost. Compare the two sub-benchmarks'
// pairs/s (the machine's speed cancels out of the ratio):
//
//	go test -run '^$' -bench ClaimComplete -benchmem -count 3
func BenchmarkClaimComplete(b *testing.B) {
	pool := newPool(b, func(c *pgxpool.Config) { c.MaxConns = benchClients })
	s, err := New(testContext(b), pool, WithTable(testTable(b)))
	if err != nil {
		b.Fatal(err)
	}
	lease := 10*time.Second + nectarhooks.LeaseGrace // the Handler's default
	var seq atomic.Int64
	newID := func(prefix string) string {
		return prefix + strconv.FormatInt(seq.Add(1), 10)
	}

	b.Run("store", func(b *testing.B) {
		run(b, func() error {
			ctx := b.Context()
			id := newID("store_")
			claim, token, err := s.Claim(ctx, id, lease)
			if err != nil {
				return err
			}
			if claim != nectarhooks.ClaimAcquired {
				b.Errorf("Claim(%s) = %v", id, claim)
			}
			return s.Complete(ctx, id, token)
		})
	})
	b.Run("bare-pgx", func(b *testing.B) {
		run(b, func() error {
			ctx := b.Context()
			id := newID("bare_")
			mine := newToken()
			var (
				token int64
				done  bool
			)
			if err := pool.QueryRow(ctx, s.claimSQL, id, mine, microseconds(lease)).Scan(&token, &done); err != nil {
				return err
			}
			if token != mine {
				b.Errorf("claim of %s not acquired", id)
			}
			_, err := pool.Exec(ctx, s.completeSQL, id, mine, s.ttl)
			return err
		})
	})
}

// run calls pair b.N times from benchClients goroutines and reports
// pairs/s.
func run(b *testing.B, pair func() error) {
	// SetParallelism multiplies GOMAXPROCS; round up to reach benchClients.
	procs := runtime.GOMAXPROCS(0)
	b.SetParallelism((benchClients + procs - 1) / procs)
	b.ReportAllocs()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := pair(); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "pairs/s")
}
