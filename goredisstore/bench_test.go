package goredisstore

import (
	"context"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nectarhooks/nectarhooks"
)

// benchSenders is how many goroutines claim and complete at once, as many
// deliveries in flight as Svix and a busy service make.
const benchSenders = 16

const benchLease, benchTTL = 12 * time.Second, time.Minute

// BenchmarkClaimComplete measures what one processed message costs the
// store: a Claim and a Complete of a new id, from benchSenders goroutines.
// Beside it, in the same run (the machine is noisy: read the ratios):
//
//   - ceiling: the same two writes as bare go-redis commands, SET NX PX
//     and SET PX, with no script, token or answer to read: the most a
//     Redis store can do on this client and server;
//   - goredisstore-script-claim: the store claiming with its Lua script, as
//     it does on servers before Redis 7.0;
//   - MemoryStore: the in-process store, which replicas cannot share.
//
// Run: go test -run '^$' -bench ClaimComplete -benchmem -count 5
func BenchmarkClaimComplete(b *testing.B) {
	b.Run("goredisstore", func(b *testing.B) {
		runPairs(b, storePair(b, storeForBench(b)))
	})
	b.Run("goredisstore-script-claim", func(b *testing.B) {
		s := storeForBench(b)
		s.claimByScript.Store(true) // as on Redis before 7.0
		runPairs(b, storePair(b, s))
	})
	b.Run("ceiling=SET-NX-PX+SET-PX", func(b *testing.B) {
		runPairs(b, ceilingPair(b))
	})
	b.Run("MemoryStore", func(b *testing.B) {
		runPairs(b, storePair(b, nectarhooks.NewMemoryStore(0, benchTTL)))
	})
}

func storeForBench(b *testing.B) *Store {
	s, _ := testStore(b, WithTTL(benchTTL))
	return s
}

// storePair claims and completes an id on s.
func storePair(b *testing.B, s nectarhooks.IdempotencyStore) func(string) error {
	ctx := context.Background()
	return func(id string) error {
		claim, token, err := s.Claim(ctx, id, benchLease)
		if err != nil || claim != nectarhooks.ClaimAcquired {
			b.Errorf("claim %s: %v %v", id, claim, err)
			return err
		}
		return s.Complete(ctx, id, token)
	}
}

// ceilingPair writes an id's claim and completion with two bare commands,
// under a prefix of its own.
func ceilingPair(b *testing.B) func(string) error {
	ctx := context.Background()
	c := testClient(b)
	prefix := testPrefix(b, c)
	return func(id string) error {
		key := prefix + id
		ok, err := c.SetNX(ctx, key, "inflight:AAAAAAAAAAAAAAAAAAAAAAAAAA", benchLease).Result()
		if err != nil || !ok {
			b.Errorf("SET NX %s: %v %v", key, ok, err)
			return err
		}
		return c.Set(ctx, key, "done", benchTTL).Err()
	}
}

// runPairs calls pair with a new message id b.N times from benchSenders
// goroutines, and reports the rate in pairs per second.
func runPairs(b *testing.B, pair func(id string) error) {
	runParallel(b, "pairs/s", pair)
}

// runParallel calls op with a new message id b.N times from benchSenders
// goroutines, and reports the rate as unit.
func runParallel(b *testing.B, unit string, op func(id string) error) {
	var seq atomic.Int64
	procs := runtime.GOMAXPROCS(0)
	b.SetParallelism((benchSenders + procs - 1) / procs)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := op("msg_bench_" + strconv.FormatInt(seq.Add(1), 10)); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), unit)
}
