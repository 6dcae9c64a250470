package pgxstore

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestHandlerStoreDown: when the database cannot be reached, a Handler
// answers 503 (Svix retries) and runs no callback.
func TestHandlerStoreDown(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// down makes the store's database unreachable.
		down func(t *testing.T, pool *pgxpool.Pool, proxy *nectarhookstest.FaultProxy)
	}{
		{"pool closed", func(_ *testing.T, pool *pgxpool.Pool, _ *nectarhookstest.FaultProxy) { pool.Close() }},
		{"server gone", func(t *testing.T, _ *pgxpool.Pool, proxy *nectarhookstest.FaultProxy) {
			require.NoError(t, proxy.Close())
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			proxy := nectarhookstest.NewFaultProxy(t, "")
			pool := newPool(t, func(c *pgxpool.Config) {
				c.ConnConfig.DialFunc = proxy.Dial
				c.ConnConfig.ConnectTimeout = 10 * time.Second
			})
			store, err := New(testContext(t), pool, WithTable(testTable(t)))
			require.NoError(t, err)

			secret := nectarhookstest.NewSecret()
			signer, err := nectarhookstest.NewSigner(secret)
			require.NoError(t, err)
			h, err := nectarhooks.NewHandler(secret, nectarhooks.WithIdempotency(store),
				nectarhooks.WithLogger(discardLogger()))
			require.NoError(t, err)
			var runs atomic.Int32
			h.OnConnectionUpdated(func(context.Context, *nectarhooks.ConnectionUpdated) error {
				runs.Add(1)
				return nil
			})
			payload := nectarhookstest.Sample(nectarhooks.EventConnectionUpdated)

			// Up: the delivery runs.
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, signer.Request("/", payload))
			require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
			require.EqualValues(t, 1, runs.Load())

			tt.down(t, pool, proxy)
			for range 3 {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, signer.Request("/", payload))
				assert.Equal(t, http.StatusServiceUnavailable, rec.Code, rec.Body.String())
			}
			err = h.Dispatch(testContext(t), payload, signer.Header(payload))
			require.ErrorIs(t, err, nectarhooks.ErrStoreUnavailable)
			assert.Equal(t, http.StatusServiceUnavailable, nectarhooks.StatusCode(err))
			assert.EqualValues(t, 1, runs.Load(), "callbacks run while the store was down")
		})
	}
}

// TestHandlerReplicas: three Handlers, each with a Store and a pool of its
// own on one table, get every message three times, concurrently, on
// random replicas, and retry as Svix does after 409 and 5xx; a third of
// the first runs fail. Every message's callback succeeds exactly once.
func TestHandlerReplicas(t *testing.T) {
	t.Parallel()
	const (
		replicas   = 3
		messages   = 40
		deliveries = 3
	)
	table := testTable(t)
	secret := nectarhookstest.NewSecret()
	signer, err := nectarhookstest.NewSigner(secret)
	require.NoError(t, err)

	var (
		mu        sync.Mutex
		runs      = map[string]int{}
		successes = map[string]int{}
	)
	handlers := make([]*nectarhooks.Handler, replicas)
	for i := range handlers {
		store, err := New(testContext(t), newPool(t, nil), WithTable(table))
		require.NoError(t, err)
		h, err := nectarhooks.NewHandler(secret, nectarhooks.WithIdempotency(store),
			nectarhooks.WithLogger(discardLogger()))
		require.NoError(t, err)
		h.OnDocumentCreated(func(ctx context.Context, _ *nectarhooks.DocumentCreated) error {
			msg, _ := nectarhooks.MessageFromContext(ctx)
			mu.Lock()
			defer mu.Unlock()
			runs[msg.ID]++
			if runs[msg.ID] == 1 && len(runs)%3 == 0 {
				return errors.New("first run fails")
			}
			successes[msg.ID]++
			return nil
		})
		handlers[i] = h
	}

	payload := nectarhookstest.Sample(nectarhooks.EventDocumentCreated)
	ids := make([]string, messages)
	for i := range ids {
		ids[i] = nectarhookstest.NewMessageID()
	}
	var wg sync.WaitGroup
	for _, id := range ids {
		for range deliveries {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for attempt := 0; ; attempt++ {
					if !assert.Less(t, attempt, 200, "message %s never acknowledged", id) {
						return
					}
					rec := httptest.NewRecorder()
					handlers[rand.IntN(replicas)].ServeHTTP(rec, signer.RequestFor("/", id, time.Now(), payload))
					if rec.Code == http.StatusOK {
						return
					}
					if !assert.Contains(t, []int{http.StatusConflict, http.StatusInternalServerError}, rec.Code, rec.Body.String()) {
						return
					}
					time.Sleep(time.Duration(10+rand.IntN(40)) * time.Millisecond)
				}
			}()
		}
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, successes, messages)
	failed := 0
	for _, id := range ids {
		assert.Equal(t, 1, successes[id], "successful runs of %s", id)
		failed += runs[id] - successes[id]
	}
	assert.Equal(t, messages/3, failed, "first runs that failed, each retried")
}

// discardLogger keeps the Handlers' expected error logs (callbacks failing
// on purpose, the store going away) out of the test output.
func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// TestHandlerHungHolder: replica A's callback hangs, ignoring its context;
// once A's lease is over, replica B takes the message over. A's late
// failure does not release B's claim (C still gets 409 while B runs), and
// once B has succeeded redeliveries are acknowledged without a run.
func TestHandlerHungHolder(t *testing.T) {
	t.Parallel()
	table := testTable(t)
	secret := nectarhookstest.NewSecret()
	signer, err := nectarhookstest.NewSigner(secret)
	require.NoError(t, err)

	type replica struct {
		h       *nectarhooks.Handler
		started chan struct{} // a callback run began
		finish  chan error    // what the running callback returns
	}
	newReplica := func(callbackTimeout time.Duration) *replica {
		store, err := New(testContext(t), newPool(t, nil), WithTable(table))
		require.NoError(t, err)
		h, err := nectarhooks.NewHandler(secret, nectarhooks.WithIdempotency(store),
			nectarhooks.WithCallbackTimeout(callbackTimeout), nectarhooks.WithLogger(discardLogger()))
		require.NoError(t, err)
		r := &replica{h: h, started: make(chan struct{}, 10), finish: make(chan error)}
		h.OnConnectionCreated(func(context.Context, *nectarhooks.ConnectionCreated) error {
			r.started <- struct{}{}
			return <-r.finish // ignores its context
		})
		return r
	}
	// A's lease: 1 s + LeaseGrace, long enough for B's first try to come
	// within it on a busy machine. B's outlasts the test.
	a, b, c := newReplica(time.Second), newReplica(time.Minute), newReplica(time.Minute)

	payload := nectarhookstest.Sample(nectarhooks.EventConnectionCreated)
	id := nectarhookstest.NewMessageID()
	deliver := func(r *replica) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		r.h.ServeHTTP(rec, signer.RequestFor("/", id, time.Now(), payload))
		return rec
	}
	// serve delivers in the background; the answer comes on the channel.
	serve := func(r *replica) <-chan *httptest.ResponseRecorder {
		answer := make(chan *httptest.ResponseRecorder, 1)
		go func() { answer <- deliver(r) }()
		return answer
	}

	answerA := serve(a)
	<-a.started
	assert.Equal(t, http.StatusConflict, deliver(b).Code, "B while A's lease holds")

	time.Sleep(time.Second + nectarhooks.LeaseGrace + 500*time.Millisecond) // by the database's clock too
	answerB := serve(b)
	<-b.started // B took the message over

	a.finish <- errors.New("A fails late")
	assert.Equal(t, http.StatusServiceUnavailable, (<-answerA).Code, "A's overrun")
	assert.Equal(t, http.StatusConflict, deliver(c).Code, "C while B runs, after A's late failure")

	b.finish <- nil
	assert.Equal(t, http.StatusOK, (<-answerB).Code)
	for _, r := range []*replica{a, b, c} {
		assert.Equal(t, http.StatusOK, deliver(r).Code, "redelivery after B's success")
	}
	assert.Empty(t, a.started, "runs on A after the first")
	assert.Empty(t, b.started, "runs on B after the first")
	assert.Empty(t, c.started, "runs on C")
}
