package goredisstore

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A replica: a Handler with a Store of its own, on a client of its own.
type replica struct {
	name string
	h    *nectarhooks.Handler
}

// rig signs deliveries for a set of replicas and records what their
// callbacks did.
type rig struct {
	signer *nectarhookstest.Signer
	secret string

	mu      sync.Mutex
	runs    map[string][]string // message id -> replicas whose callback ran, in order
	running map[string]int      // message id -> callbacks running now
	overlap bool                // a message ran twice at once
	refused []error             // what the error handlers received
}

func newRig(t *testing.T) *rig {
	t.Helper()
	secret := nectarhookstest.NewSecret()
	signer, err := nectarhookstest.NewSigner(secret)
	require.NoError(t, err)
	return &rig{signer: signer, secret: secret, runs: map[string][]string{}, running: map[string]int{}}
}

// replica makes a Handler on store whose connection.updated.v2 callback
// calls fn, recording its runs.
func (r *rig) replica(t *testing.T, name string, store nectarhooks.IdempotencyStore, fn func(ctx context.Context, id string, run int) error, opts ...nectarhooks.Option) replica {
	t.Helper()
	opts = append([]nectarhooks.Option{
		nectarhooks.WithIdempotency(store),
		nectarhooks.WithErrorHandler(func(_ context.Context, _ int, err error) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.refused = append(r.refused, err)
		}),
	}, opts...)
	h, err := nectarhooks.NewHandler(r.secret, opts...)
	require.NoError(t, err)
	h.OnConnectionUpdated(func(ctx context.Context, _ *nectarhooks.ConnectionUpdated) error {
		msg, _ := nectarhooks.MessageFromContext(ctx)
		r.mu.Lock()
		r.runs[msg.ID] = append(r.runs[msg.ID], name)
		run := len(r.runs[msg.ID])
		r.running[msg.ID]++
		if r.running[msg.ID] > 1 {
			r.overlap = true
		}
		r.mu.Unlock()
		defer func() {
			r.mu.Lock()
			r.running[msg.ID]--
			r.mu.Unlock()
		}()
		return fn(ctx, msg.ID, run)
	})
	return replica{name: name, h: h}
}

// deliver sends one signed delivery of message id to rep and returns the
// status it answered.
func (r *rig) deliver(rep replica, id string) int {
	req := r.signer.RequestFor("/webhooks/nectar", id, time.Now(), nectarhookstest.Sample(nectarhooks.EventConnectionUpdated))
	rec := httptest.NewRecorder()
	rep.h.ServeHTTP(rec, req)
	return rec.Code
}

func (r *rig) runsOf(id string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.runs[id]...)
}

// TestStoreDown: with Redis unreachable, a delivery is answered 503 and
// its callback does not run, so that Svix retries it; the store's own
// error reaches the error handler, wrapped in ErrStoreUnavailable.
func TestStoreDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close()) // nothing listens there now

	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialerRetries: 1, DialTimeout: 5 * time.Second})
	t.Cleanup(func() { _ = c.Close() })
	store := New(c)
	r := newRig(t)
	rep := r.replica(t, "a", store, func(context.Context, string, int) error { return nil })

	for range 2 {
		assert.Equal(t, http.StatusServiceUnavailable, r.deliver(rep, "msg_down"))
	}
	assert.Empty(t, r.runsOf("msg_down"), "nothing runs")
	require.Len(t, r.refused, 2)
	for _, err := range r.refused {
		assert.ErrorIs(t, err, nectarhooks.ErrStoreUnavailable)
		var opErr *net.OpError
		assert.ErrorAs(t, err, &opErr, "the connection error is kept: %v", err)
		assert.Equal(t, http.StatusServiceUnavailable, nectarhooks.StatusCode(err))
	}

	// Each of the store's operations reports the failure.
	ctx := context.Background()
	_, _, err = store.Claim(ctx, "msg_down", time.Second)
	assert.ErrorContains(t, err, "goredisstore: claim")
	assert.ErrorContains(t, store.Complete(ctx, "msg_down", "t"), "goredisstore: complete")
	assert.ErrorContains(t, store.Release(ctx, "msg_down", "t"), "goredisstore: release")
	assert.ErrorContains(t, store.Forget(ctx, "msg_down"), "goredisstore: forget")
}

// TestCancelledContext: a Claim whose request has gone fails at once.
func TestCancelledContext(t *testing.T) {
	s, _ := testStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, _, err := s.Claim(ctx, "msg_cancelled", time.Hour)
	assert.ErrorIs(t, err, context.Canceled)
}

// TestReplicas: three replicas, each with a Store on a client of its own,
// get every message three times at once on random replicas, and the first
// run of some messages fails; deliveries that are not acknowledged are
// retried, as Svix does. Every message's callback succeeds exactly once,
// never runs twice at once, and a failed first run is run again.
func TestReplicas(t *testing.T) {
	const messages, copies = 60, 3
	r := newRig(t)
	first, _ := testStore(t)
	failFirst := func(id string) bool { return strings.HasSuffix(id, "0") || strings.HasSuffix(id, "5") }
	succeeded := func(ctx context.Context, id string, run int) error {
		if run == 1 && failFirst(id) {
			return errors.New("first run fails")
		}
		return nil
	}
	replicas := []replica{r.replica(t, "a", first, succeeded)}
	for _, name := range []string{"b", "c"} {
		replicas = append(replicas, r.replica(t, name, New(testClient(t), WithPrefix(first.prefix)), succeeded))
	}

	ids := make([]string, messages)
	for i := range ids {
		ids[i] = "msg_replicas_" + string(rune('a'+i/10)) + string(rune('0'+i%10))
	}
	var wg sync.WaitGroup
	for _, id := range ids {
		for range copies {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// Svix-like: retry on anything but 2xx, on any replica.
				for attempt := 0; ; attempt++ {
					status := r.deliver(replicas[rand.IntN(len(replicas))], id)
					if status == http.StatusOK {
						return
					}
					if !assert.Contains(t, []int{http.StatusConflict, http.StatusInternalServerError}, status, id) || attempt > 2000 {
						return
					}
					time.Sleep(time.Duration(1+rand.IntN(5)) * time.Millisecond)
				}
			}()
		}
	}
	wg.Wait()

	assert.False(t, r.overlap, "a message ran on two replicas at once")
	ctx := context.Background()
	for _, id := range ids {
		wantRuns := 1
		if failFirst(id) {
			wantRuns = 2
		}
		assert.Len(t, r.runsOf(id), wantRuns, "%s: runs %v", id, r.runsOf(id))
		claim, _, err := first.Claim(ctx, id, time.Hour)
		require.NoError(t, err)
		assert.Equal(t, done, claim, id)
	}
}

// TestHungHolderTakenOver: replica A's callback hangs, ignoring its
// context. Once A's lease has run out replica B takes the message over;
// while B runs, C is refused with 409, also after A finally fails (its
// Release carries a stale token and leaves B's claim alone). Once B has
// succeeded every replica acknowledges the message without running it.
func TestHungHolderTakenOver(t *testing.T) {
	r := newRig(t)
	first, c := testStore(t)
	releaseA, releaseB := make(chan struct{}), make(chan struct{})
	startedA, startedB := make(chan struct{}), make(chan struct{}, 1)
	a := r.replica(t, "a", first, func(context.Context, string, int) error {
		close(startedA)
		<-releaseA // hangs past its deadline, whatever its context says
		return errors.New("late failure")
	}, nectarhooks.WithCallbackTimeout(time.Second)) // lease 1 s + LeaseGrace
	// B and C keep to the default deadline, a lease of 12 s: far longer
	// than the steps below take.
	b := r.replica(t, "b", New(testClient(t), WithPrefix(first.prefix)), func(context.Context, string, int) error {
		startedB <- struct{}{}
		<-releaseB
		return nil
	})
	cRep := r.replica(t, "c", New(testClient(t), WithPrefix(first.prefix)), func(context.Context, string, int) error {
		return errors.New("C must never run")
	})
	const id = "msg_hung"

	statusA := make(chan int, 1)
	go func() { statusA <- r.deliver(a, id) }()
	<-startedA
	assert.Equal(t, http.StatusConflict, r.deliver(b, id), "A holds its lease")

	// Svix retries on B until A's lease has run out and B gets in.
	statusB := make(chan int, 1)
	retries := 0
	for taken := false; !taken; {
		go func() { statusB <- r.deliver(b, id) }()
		select {
		case <-startedB:
			taken = true
		case status := <-statusB:
			require.Equal(t, http.StatusConflict, status, "refused while A's lease holds")
			require.Less(t, retries, 1000, "B never took over")
			retries++
			time.Sleep(20 * time.Millisecond)
		}
	}
	assert.Equal(t, http.StatusConflict, r.deliver(cRep, id), "B holds the message")

	close(releaseA)
	assert.Equal(t, http.StatusServiceUnavailable, <-statusA, "A failed after its deadline")
	assert.Equal(t, http.StatusConflict, r.deliver(cRep, id), "A's late failure did not release B's claim")
	assert.True(t, strings.HasPrefix(c.Get(context.Background(), first.key(id)).Val(), inFlightPrefix))

	close(releaseB)
	assert.Equal(t, http.StatusOK, <-statusB)
	for _, rep := range []replica{a, b, cRep} {
		assert.Equal(t, http.StatusOK, r.deliver(rep, id), "%s acknowledges without running", rep.name)
	}
	assert.Equal(t, []string{"a", "b"}, r.runsOf(id))
}
