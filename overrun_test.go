package nectarhooks_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/nectarhooks/nectarhooks"
)

// A callback that ignores its context does not hold the answer: at its
// deadline (and a short grace) the delivery is answered 503 while the
// callback still runs; its claim stays taken until it returns, and is
// settled then.
func TestHungCallbackAnswered503(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	store := nectarhooks.NewMemoryStore(0, 0)
	release := make(chan struct{}) // the test ends the hang, not the callback
	r := newAsRig(t, func(_ context.Context, _ string, run int) error {
		if run == 1 {
			<-release // ignores its context
		}
		return nil
	}, nectarhooks.WithCallbackTimeout(300*time.Millisecond), nectarhooks.WithIdempotency(store))
	srv := httptest.NewServer(r.h)
	defer srv.Close()
	var once sync.Once
	end := func() { once.Do(func() { close(release) }) }
	defer end() // before srv.Close, which waits for the handler, if it hangs
	client := &http.Client{Timeout: 30 * time.Second}
	defer client.CloseIdleConnections()
	post := func() (int, string) {
		req, err := http.NewRequest(http.MethodPost, srv.URL, bytes.NewReader(asPayload()))
		require.NoError(t, err)
		req.Header = r.signer.HeaderFor("msg_hung", time.Now(), asPayload())
		resp, err := client.Do(req)
		require.NoError(t, err, "no answer while the callback hangs")
		defer resp.Body.Close()
		text, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(text)
	}

	status, text := post()
	assert.Equal(t, http.StatusServiceUnavailable, status)
	assert.Equal(t, "callback deadline exceeded\n", text)
	f := within(t, r.failures)
	assert.Equal(t, http.StatusServiceUnavailable, f.status)
	assert.ErrorIs(t, f.err, nectarhooks.ErrCallbackTimeout)
	assert.ErrorIs(t, f.err, context.DeadlineExceeded)
	var ce *nectarhooks.CallbackError
	require.ErrorAs(t, f.err, &ce)
	assert.Equal(t, "msg_hung", ce.MessageID)

	// Still running, its claim still taken: a redelivery now is 409.
	status, _ = post()
	assert.Equal(t, http.StatusConflict, status)
	within(t, r.failures)

	// It returns nil: its claim is completed, so the next redelivery is
	// acknowledged without running it again.
	end()
	require.Equal(t, "msg_hung", within(t, r.finished))
	require.Eventually(t, func() bool {
		claim, token, err := store.Claim(context.Background(), "msg_hung", time.Minute)
		if claim == nectarhooks.ClaimAcquired {
			_ = store.Release(context.Background(), "msg_hung", token)
		}
		return err == nil && claim == nectarhooks.ClaimDone
	}, 10*time.Second, 5*time.Millisecond, "the claim was not completed when the callback returned")
	status, text = post()
	assert.Equal(t, http.StatusOK, status)
	assert.Equal(t, "acknowledged: message already processed\n", text)
	assert.Equal(t, 1, r.runsOf("msg_hung"))
	r.noFailures(t)
}

// A hung callback on an async worker does not take the worker: the next
// message is processed once the hung one's deadline has passed.
func TestHungCallbackFreesAsyncWorker(t *testing.T) {
	release := make(chan struct{})
	r := newAsRig(t, func(_ context.Context, id string, _ int) error {
		if id == "msg_hung" {
			<-release
		}
		return nil
	}, nectarhooks.WithAsync(1, 4), nectarhooks.WithCallbackTimeout(100*time.Millisecond),
		nectarhooks.WithIdempotency(nectarhooks.NewMemoryStore(0, 0)))
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	defer func() { require.NoError(t, r.h.Shutdown(context.Background())) }()
	defer close(release)

	require.Equal(t, http.StatusAccepted, r.deliver("msg_hung").Code)
	require.Equal(t, http.StatusAccepted, r.deliver("msg_next").Code)
	f := within(t, r.failures)
	assert.Equal(t, 0, f.status)
	assert.Equal(t, "msg_hung", f.msg.ID)
	assert.ErrorIs(t, f.err, nectarhooks.ErrCallbackTimeout)
	// The single worker moved on although msg_hung's callback still runs.
	require.Equal(t, "msg_next", within(t, r.finished))
	assert.Equal(t, 1, r.runsOf("msg_next"))
}

// runtime.Goexit in a callback, as t.FailNow does, neither leaves the
// delivery unanswered nor its claim taken: it is a failure (500), and the
// redelivery runs.
func TestCallbackGoexit(t *testing.T) {
	for _, tc := range []struct {
		name  string
		async bool
	}{{"ServeHTTP", false}, {"async worker", true}} {
		t.Run(tc.name, func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			opts := []nectarhooks.Option{nectarhooks.WithIdempotency(nectarhooks.NewMemoryStore(0, 0))}
			if tc.async {
				opts = append(opts, nectarhooks.WithAsync(1, 4))
			}
			r := newAsRig(t, func(_ context.Context, _ string, run int) error {
				if run == 1 {
					runtime.Goexit()
				}
				return nil
			}, opts...)

			rec := r.deliver("msg_goexit")
			want, wantStatus := http.StatusInternalServerError, http.StatusInternalServerError
			if tc.async {
				want, wantStatus = http.StatusAccepted, 0
			}
			assert.Equal(t, want, rec.Code, rec.Body.String())
			f := within(t, r.failures)
			assert.Equal(t, wantStatus, f.status)
			var ce *nectarhooks.CallbackError
			require.ErrorAs(t, f.err, &ce)
			assert.Equal(t, "msg_goexit", ce.MessageID)
			assert.Contains(t, f.err.Error(), "runtime.Goexit")
			within(t, r.finished)

			// Released, not stuck: the redelivery runs the callback.
			rec = r.deliver("msg_goexit")
			if tc.async {
				require.Equal(t, http.StatusAccepted, rec.Code, rec.Body.String())
				require.NoError(t, r.h.Shutdown(context.Background()))
			} else {
				require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
			}
			assert.Equal(t, 2, r.runsOf("msg_goexit"))
			r.noFailures(t)
		})
	}
}

// A panic of the service's code that the library runs off the request's
// goroutine (the error handler, the idempotency store, on an async worker)
// is recovered and logged: it must not end the process, losing every
// message answered 202 and still queued.
func TestAsyncWorkerSurvivesPanics(t *testing.T) {
	errFail := errors.New("callback failed")
	for _, tc := range []struct {
		name    string
		onError func(context.Context, int, error)
		store   nectarhooks.IdempotencyStore
	}{
		{
			name:    "error handler",
			onError: func(context.Context, int, error) { panic("error handler bug") },
		},
		{
			name:    "idempotency store",
			onError: func(context.Context, int, error) {},
			store:   panickyStore{nectarhooks.NewMemoryStore(0, 0)},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			opts := []nectarhooks.Option{nectarhooks.WithAsync(1, 4), nectarhooks.WithErrorHandler(tc.onError)}
			if tc.store != nil {
				opts = append(opts, nectarhooks.WithIdempotency(tc.store))
			}
			r := newAsRig(t, func(_ context.Context, id string, _ int) error {
				if id == "msg_1" {
					return errFail
				}
				return nil
			}, opts...)
			require.Equal(t, http.StatusAccepted, r.deliver("msg_1").Code)
			require.Equal(t, http.StatusAccepted, r.deliver("msg_2").Code)
			require.NoError(t, r.h.Shutdown(context.Background()))
			// The worker lived on to run the second message.
			assert.Equal(t, 1, r.runsOf("msg_1"))
			assert.Equal(t, 1, r.runsOf("msg_2"))
			errs, stacks := r.log.counts("msg_1")
			assert.Equal(t, 1, errs, "the panic is logged once")
			assert.Equal(t, 1, stacks, "with its stack")
		})
	}
}

// panickyStore panics when it is asked to complete or release a claim,
// which an async worker does.
type panickyStore struct{ *nectarhooks.MemoryStore }

func (panickyStore) Complete(context.Context, string, string) error { panic("store bug") }
func (panickyStore) Release(context.Context, string, string) error  { panic("store bug") }

// within receives from ch, failing the test when nothing arrives in a
// generous time: what it waits for is due within a second or so.
func within[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(30 * time.Second):
		require.FailNow(t, "nothing arrived in 30 s")
		panic("unreachable")
	}
}
