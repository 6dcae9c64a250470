package nectarhooks_test

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/nectarhooks/nectarhooks"
)

// asLeaseStore is a MemoryStore that counts acquired claims and Releases
// by id, and the Claims asked after a first Release, and can be made to
// fail its Releases, as an unreachable store would. Its Complete of
// holdID waits for hold to close, as a slow store would.
type asLeaseStore struct {
	*nectarhooks.MemoryStore
	mu           sync.Mutex
	acquired     map[string]int
	releases     map[string]int
	afterRelease map[string]int
	failRelease  bool
	holdID       string
	hold         chan struct{}
}

func newAsLeaseStore() *asLeaseStore {
	return &asLeaseStore{MemoryStore: nectarhooks.NewMemoryStore(0, 0),
		acquired: map[string]int{}, releases: map[string]int{}, afterRelease: map[string]int{}}
}

func (s *asLeaseStore) Complete(ctx context.Context, id, token string) error {
	if id == s.holdID {
		<-s.hold
	}
	return s.MemoryStore.Complete(ctx, id, token)
}

func (s *asLeaseStore) Claim(ctx context.Context, id string, lease time.Duration) (nectarhooks.Claim, string, error) {
	c, token, err := s.MemoryStore.Claim(ctx, id, lease)
	s.mu.Lock()
	defer s.mu.Unlock()
	if c == nectarhooks.ClaimAcquired {
		s.acquired[id]++
	}
	if s.releases[id] > 0 {
		s.afterRelease[id]++
	}
	return c, token, err
}

func (s *asLeaseStore) Release(ctx context.Context, id, token string) error {
	s.mu.Lock()
	s.releases[id]++
	fail := s.failRelease
	s.mu.Unlock()
	if fail {
		return errors.New("store unreachable")
	}
	return s.MemoryStore.Release(ctx, id, token)
}

func (s *asLeaseStore) counts(id string) (acquired, releases, afterRelease int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.acquired[id], s.releases[id], s.afterRelease[id]
}

// TestAsyncLease checks how WithAsync keeps a queued message's claim valid
// when the message waits in the queue longer than the lease taken at
// intake: the worker claims it anew, and leaves it to another delivery
// that took it over meanwhile. The waits are real (a second or two): the
// lease is counted on the store's clock.
func TestAsyncLease(t *testing.T) {
	tests := []struct {
		name string
		// callback deadline of the async Handler; its lease is this plus
		// LeaseGrace
		timeout time.Duration
		// a replica sharing the store takes the message over once the
		// intake lease has run out; with replicaHolds it is still running
		// it when the async worker claims anew
		replica, replicaHolds bool
		storeDown             bool // Release fails when the worker claims anew
		wantAsyncRuns         int
		wantAcquired          int // claims of the waiting message acquired, by every delivery
		wantFailure           error
	}{
		{name: "waited past half the grace: claimed anew and run once", timeout: time.Minute, wantAsyncRuns: 1, wantAcquired: 2},
		{name: "lease ran out and a replica processed it: not run again", timeout: 50 * time.Millisecond, replica: true, wantAcquired: 2},
		{name: "lease ran out and a replica is running it: not run here", timeout: 50 * time.Millisecond, replica: true, replicaHolds: true, wantAcquired: 2},
		{name: "store unreachable when claimed anew: reported, not run", timeout: time.Minute, storeDown: true, wantAcquired: 1, wantFailure: nectarhooks.ErrStoreUnavailable},
	}
	// The cases wait in parallel; goroutines are checked once all ended.
	before := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, before) })
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			const waiting = "msg_waiting"
			store := newAsLeaseStore()
			gate := make(chan struct{})
			// msg_blocker holds the only worker: its callback returns at
			// once, and the store's Complete of it waits for gate (a
			// callback cannot hold a worker past its deadline: it is left
			// running, and the worker moves on).
			store.holdID, store.hold = "msg_blocker", gate
			r := newAsRig(t, func(context.Context, string, int) error { return nil },
				nectarhooks.WithAsync(1, 4), nectarhooks.WithIdempotency(store), nectarhooks.WithCallbackTimeout(tt.timeout),
				// The slow Complete is to hold the worker, not to be given up on.
				nectarhooks.WithStoreTimeout(time.Minute))
			replicaGate := make(chan struct{})
			replica := newAsRig(t, func(context.Context, string, int) error {
				if tt.replicaHolds {
					<-replicaGate
				}
				return nil
			}, nectarhooks.WithIdempotency(store))

			require.Equal(t, http.StatusAccepted, r.deliver("msg_blocker").Code)
			require.Equal(t, "msg_blocker", <-r.started)
			require.Equal(t, http.StatusAccepted, r.deliver(waiting).Code)
			queued := time.Now() // after the claim, however slow the machine
			assert.Equal(t, http.StatusConflict, r.deliver(waiting).Code, "claimed while it waits")
			require.ErrorIs(t, (<-r.failures).err, nectarhooks.ErrInFlight)

			replicaDone := make(chan int, 1)
			if tt.replica {
				// Svix-like retries to the replica until the intake lease
				// runs out and the replica claims the message.
				go func() {
					for {
						rec := replica.deliver(waiting)
						if rec.Code != http.StatusConflict {
							replicaDone <- rec.Code
							return
						}
						<-replica.failures
						time.Sleep(50 * time.Millisecond)
					}
				}()
				if tt.replicaHolds {
					require.Equal(t, waiting, <-replica.started)
				} else {
					require.Equal(t, http.StatusOK, <-replicaDone)
				}
			} else {
				time.Sleep(nectarhooks.LeaseGrace/2 + 200*time.Millisecond - time.Since(queued))
			}
			if tt.storeDown {
				store.mu.Lock()
				store.failRelease = true
				store.mu.Unlock()
			}
			close(gate) // the worker takes the waiting message
			if tt.replicaHolds {
				// Let the replica finish once the worker has tried to
				// claim the message anew.
				for deadline := time.Now().Add(15 * time.Second); ; {
					if _, _, asked := store.counts(waiting); asked > 0 {
						break
					}
					if time.Now().After(deadline) {
						t.Error("the worker never claimed the waiting message anew")
						break
					}
					time.Sleep(10 * time.Millisecond)
				}
				close(replicaGate)
				require.Equal(t, http.StatusOK, <-replicaDone)
			}
			require.NoError(t, r.h.Shutdown(context.Background()))

			assert.Equal(t, tt.wantAsyncRuns, r.runsOf(waiting), "runs on the async Handler")
			replicaRuns := 0
			if tt.replica {
				replicaRuns = 1
			}
			assert.Equal(t, replicaRuns, replica.runsOf(waiting), "runs on the replica")
			acquired, releases, _ := store.counts(waiting)
			assert.Equal(t, tt.wantAcquired, acquired, "claims of the waiting message acquired")
			assert.Equal(t, 1, releases, "the worker released the intake claim before claiming anew")
			if tt.wantFailure != nil {
				f := <-r.failures
				assert.Equal(t, 0, f.status, "after the answer")
				assert.ErrorIs(t, f.err, tt.wantFailure)
				assert.Equal(t, waiting, f.msg.ID)
				store.mu.Lock()
				store.failRelease = false
				store.mu.Unlock()
			} else {
				assert.Equal(t, http.StatusOK, replica.deliver(waiting).Code, "processed once, acknowledged after")
				assert.Equal(t, replicaRuns, replica.runsOf(waiting), "and not run again")
			}
			r.noFailures(t)
		})
	}
}
