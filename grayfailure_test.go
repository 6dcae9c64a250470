package nectarhooks_test

import (
	"context"
	"errors"
	"math"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
)

// svixWait is how long Svix waits for an answer: the promise every test
// here checks, whatever the store does.
const svixWait = 15 * time.Second

// stallStore is a MemoryStore whose chosen methods stall, ignoring their
// context, until the test lets them go: a store behind a black-holed
// network, whose client does not give up at the context's deadline.
type stallStore struct {
	*nectarhooks.MemoryStore
	stall   map[string]bool // "claim", "complete", "release"
	release chan struct{}   // closed to let the stalled calls through
	// calls entered and returned, to wait for the stalled ones (a
	// WaitGroup would not do: a call's goroutine may start after the
	// test has begun to wait)
	entered, returned atomic.Int64
}

// settled waits until the stall store has been called and every call
// has returned.
func (s *stallStore) settled(t *testing.T) {
	t.Helper()
	require.Eventually(t, func() bool {
		n := s.entered.Load()
		return n > 0 && s.returned.Load() == n
	}, 10*time.Second, time.Millisecond, "the stalled store calls return once let through")
}

func newStallStore(methods ...string) *stallStore {
	s := &stallStore{MemoryStore: nectarhooks.NewMemoryStore(0, 0), stall: map[string]bool{}, release: make(chan struct{})}
	for _, m := range methods {
		s.stall[m] = true
	}
	return s
}

func (s *stallStore) wait(method string) {
	if s.stall[method] {
		<-s.release
	}
}

func (s *stallStore) Claim(ctx context.Context, id string, lease time.Duration) (nectarhooks.Claim, string, error) {
	s.entered.Add(1)
	defer s.returned.Add(1)
	s.wait("claim")
	return s.MemoryStore.Claim(ctx, id, lease)
}

func (s *stallStore) Complete(ctx context.Context, id, token string) error {
	s.entered.Add(1)
	defer s.returned.Add(1)
	s.wait("complete")
	return s.MemoryStore.Complete(ctx, id, token)
}

func (s *stallStore) Release(ctx context.Context, id, token string) error {
	s.entered.Add(1)
	defer s.returned.Add(1)
	s.wait("release")
	return s.MemoryStore.Release(ctx, id, token)
}

// TestStoreThatDoesNotAnswer: a store that stalls is given up on at the
// store deadline, and the delivery is answered in time: 503 for a Claim
// (nothing ran), the callback's own outcome for a Complete or Release.
// A claim the store grants after its delivery gave up is released, so
// that the retry runs the message.
func TestStoreThatDoesNotAnswer(t *testing.T) {
	const storeTimeout = 200 * time.Millisecond
	tests := []struct {
		name     string
		stall    string
		fail     bool // the callback fails
		want     int
		wantRuns int
		// the state once the store answers again: a retry's status
		wantAfter int
	}{
		{name: "Claim stalls: 503, nothing runs", stall: "claim", want: http.StatusServiceUnavailable, wantRuns: 0, wantAfter: http.StatusOK},
		{name: "Complete stalls: the callback's 200", stall: "complete", want: http.StatusOK, wantRuns: 1, wantAfter: http.StatusOK},
		{name: "Release stalls: the callback's 500", stall: "release", fail: true, want: http.StatusInternalServerError, wantRuns: 1, wantAfter: http.StatusInternalServerError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := newStallStore(tt.stall)
			r := newAsRig(t, func(context.Context, string, int) error {
				if tt.fail {
					return errCallbackFailed
				}
				return nil
			}, nectarhooks.WithIdempotency(store), nectarhooks.WithStoreTimeout(storeTimeout))

			start := time.Now()
			rec := r.deliver("msg_stalled")
			took := time.Since(start)
			assert.Equal(t, tt.want, rec.Code, rec.Body.String())
			assert.Less(t, took, svixWait, "answered inside Svix's wait")
			assert.GreaterOrEqual(t, took, storeTimeout, "the store was waited for until its deadline")
			assert.Equal(t, tt.wantRuns, r.runsOf("msg_stalled"))
			if tt.want >= 500 {
				f := <-r.failures
				assert.Equal(t, tt.want, f.status)
				if tt.stall == "claim" {
					assert.ErrorIs(t, f.err, nectarhooks.ErrStoreUnavailable)
					assert.Contains(t, f.err.Error(), "no answer within 200ms")
				}
			}

			// The store answers again: the stalled call finishes in the
			// background and cleans up after itself.
			close(store.release)
			store.settled(t)
			require.Eventually(t, func() bool {
				rec := r.deliver("msg_stalled")
				if rec.Code >= 500 && !tt.fail {
					<-r.failures
				}
				if tt.fail && rec.Code == http.StatusInternalServerError {
					<-r.failures
				}
				return rec.Code == tt.wantAfter
			}, 5*time.Second, 10*time.Millisecond, "a retry once the store is back")
			switch tt.stall {
			case "claim":
				assert.Equal(t, 1, r.runsOf("msg_stalled"), "the late claim was released; the retry ran it once")
			case "complete":
				assert.Equal(t, 1, r.runsOf("msg_stalled"), "the late Complete recorded it; the retry is a duplicate")
			}
		})
	}
}

// TestStoreStallsDuringAsyncIntake: with WithAsync the claim at intake is
// bounded too.
func TestStoreStallsDuringAsyncIntake(t *testing.T) {
	store := newStallStore("claim")
	defer func() { close(store.release); store.settled(t) }()
	r := newAsRig(t, func(context.Context, string, int) error { return nil },
		nectarhooks.WithAsync(1, 4), nectarhooks.WithIdempotency(store), nectarhooks.WithStoreTimeout(100*time.Millisecond))
	start := time.Now()
	rec := r.deliver("msg_intake")
	assert.Equal(t, http.StatusServiceUnavailable, rec.Code, rec.Body.String())
	assert.Less(t, time.Since(start), svixWait)
	assert.ErrorIs(t, (<-r.failures).err, nectarhooks.ErrStoreUnavailable)
	require.NoError(t, r.h.Shutdown(context.Background()))
}

// TestDurationOptionsBounds: "no timeout" spelled math.MaxInt64 is refused
// at construction rather than overflowing leases and timers; the largest
// accepted value works.
func TestDurationOptionsBounds(t *testing.T) {
	for _, tc := range []struct {
		name string
		opt  func(time.Duration) nectarhooks.Option
	}{
		{"WithCallbackTimeout", nectarhooks.WithCallbackTimeout},
		{"WithStoreTimeout", nectarhooks.WithStoreTimeout},
	} {
		for _, d := range []struct {
			d  time.Duration
			ok bool
		}{
			{math.MinInt64, false}, {-1, false}, {0, false}, {1, true},
			{24 * time.Hour, true}, {24*time.Hour + 1, false}, {math.MaxInt64, false},
		} {
			t.Run(tc.name+"/"+d.d.String(), func(t *testing.T) {
				_, err := nectarhooks.NewHandler(nectarhookstest.NewSecret(), tc.opt(d.d), nectarhooks.WithIdempotency(nectarhooks.NewMemoryStore(0, 0)))
				if !d.ok {
					require.Error(t, err)
					assert.Contains(t, err.Error(), tc.name)
					return
				}
				require.NoError(t, err)
			})
		}
	}
}

// TestLongestCallbackTimeout: at the largest callback deadline a claim's
// lease and the answer timer still work: concurrent deliveries of one
// message run it once, the others answered 409.
func TestLongestCallbackTimeout(t *testing.T) {
	gate := make(chan struct{})
	r := newAsRig(t, func(context.Context, string, int) error { <-gate; return nil },
		nectarhooks.WithIdempotency(nectarhooks.NewMemoryStore(0, 0)), nectarhooks.WithCallbackTimeout(24*time.Hour))
	first := make(chan int)
	go func() { first <- r.deliver("msg_long").Code }()
	require.Equal(t, "msg_long", <-r.started)
	for range 2 {
		assert.Equal(t, http.StatusConflict, r.deliver("msg_long").Code)
		assert.ErrorIs(t, (<-r.failures).err, nectarhooks.ErrInFlight)
	}
	close(gate)
	assert.Equal(t, http.StatusOK, <-first)
	assert.Equal(t, 1, r.runsOf("msg_long"))
}

// TestOverrunningCallbacksAreCapped: callbacks that ignore their context
// and hang are left running past their deadline up to WithMaxOverrunning;
// then deliveries are answered 503 at once, without running anything,
// until some return.
func TestOverrunningCallbacksAreCapped(t *testing.T) {
	const max = 2
	hang := make(chan struct{})
	var hanging atomic.Int64
	r := newAsRig(t, func(_ context.Context, id string, _ int) error {
		if strings.HasPrefix(id, "msg_hang") {
			hanging.Add(1)
			defer hanging.Add(-1)
			<-hang // ignores its context
		}
		return nil
	}, nectarhooks.WithCallbackTimeout(20*time.Millisecond), nectarhooks.WithMaxOverrunning(max))

	for i := range max {
		rec := r.deliver("msg_hang" + string(rune('a'+i)))
		assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
		assert.ErrorIs(t, (<-r.failures).err, nectarhooks.ErrCallbackTimeout)
	}
	assert.Equal(t, max, r.h.Overrunning())
	rec := r.deliver("msg_hangc")
	assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
	assert.Contains(t, rec.Body.String(), "overrunning")
	assert.ErrorIs(t, (<-r.failures).err, nectarhooks.ErrOverrunning)
	assert.Equal(t, 0, r.runsOf("msg_hangc"), "not run at the cap")
	assert.Equal(t, int64(max), hanging.Load())

	close(hang)
	require.Eventually(t, func() bool { return r.h.Overrunning() == 0 }, 10*time.Second, 5*time.Millisecond)
	assert.Equal(t, http.StatusOK, r.deliver("msg_hangc").Code, "below the cap again")
}

// TestAsyncWorkersHoldAtTheOverrunCap: WithAsync(1, n) with callbacks that
// hang leaves no more than the cap running past their deadline; the worker
// then waits for its callback, and the queue fills instead of memory.
func TestAsyncWorkersHoldAtTheOverrunCap(t *testing.T) {
	const max = 3
	hang := make(chan struct{})
	var running, most atomic.Int64
	r := newAsRig(t, func(context.Context, string, int) error {
		n := running.Add(1)
		defer running.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		<-hang
		return nil
	}, nectarhooks.WithAsync(1, 100), nectarhooks.WithCallbackTimeout(10*time.Millisecond), nectarhooks.WithMaxOverrunning(max))
	for i := range 10 {
		require.Equal(t, http.StatusAccepted, r.deliver("msg_"+string(rune('a'+i))).Code)
	}
	// The worker leaves max callbacks and then holds the next one.
	require.Eventually(t, func() bool { return running.Load() == max+1 }, 10*time.Second, 5*time.Millisecond)
	time.Sleep(200 * time.Millisecond) // time for a wrong worker to start more
	assert.Equal(t, int64(max+1), running.Load(), "max overrunning and the one the worker holds")
	assert.Equal(t, max, r.h.Overrunning())
	close(hang)
	require.NoError(t, r.h.Shutdown(context.Background()))
	assert.Equal(t, int64(max+1), most.Load())
	require.Eventually(t, func() bool { return r.h.Overrunning() == 0 }, 10*time.Second, 5*time.Millisecond)
}

// errCallbackFailed is a callback's own failure.
var errCallbackFailed = errors.New("callback failed")
