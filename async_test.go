package nectarhooks_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
)

// asFailure is one call of the error handler.
type asFailure struct {
	status int
	err    error
	msg    nectarhooks.Message
	hasMsg bool
}

// asRig is a Handler whose document.created.v2 callback does what behave
// says, recording every run. Callbacks that block wait for gate to close.
type asRig struct {
	h      *nectarhooks.Handler
	signer *nectarhookstest.Signer
	log    *asLog

	gate     chan struct{}
	started  chan string    // the id of every run, as it starts
	finished chan string    // the id of every run, as it returns
	failures chan asFailure // every call of the error handler
	behave   func(ctx context.Context, id string, run int) error

	mu   sync.Mutex
	runs map[string]int
}

const asChanSize = 256

func newAsRig(t *testing.T, behave func(ctx context.Context, id string, run int) error, opts ...nectarhooks.Option) *asRig {
	t.Helper()
	secret := nectarhookstest.NewSecret()
	signer, err := nectarhookstest.NewSigner(secret)
	require.NoError(t, err)
	r := &asRig{
		signer:   signer,
		log:      &asLog{},
		gate:     make(chan struct{}),
		started:  make(chan string, asChanSize),
		finished: make(chan string, asChanSize),
		failures: make(chan asFailure, asChanSize),
		behave:   behave,
		runs:     map[string]int{},
	}
	opts = append([]nectarhooks.Option{
		nectarhooks.WithLogger(slog.New(r.log)),
		nectarhooks.WithErrorHandler(func(ctx context.Context, status int, err error) {
			m, ok := nectarhooks.MessageFromContext(ctx)
			r.failures <- asFailure{status: status, err: err, msg: m, hasMsg: ok}
		}),
	}, opts...)
	r.h, err = nectarhooks.NewHandler(secret, opts...)
	require.NoError(t, err)
	r.h.OnDocumentCreated(func(ctx context.Context, _ *nectarhooks.DocumentCreated) error {
		m, ok := nectarhooks.MessageFromContext(ctx)
		if !ok {
			panic("callback context without its Message")
		}
		r.mu.Lock()
		r.runs[m.ID]++
		run := r.runs[m.ID]
		r.mu.Unlock()
		r.started <- m.ID
		defer func() { r.finished <- m.ID }()
		return r.behave(ctx, m.ID, run)
	})
	return r
}

func (r *asRig) runsOf(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.runs[id]
}

func (r *asRig) totalRuns() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, c := range r.runs {
		n += c
	}
	return n
}

// deliver sends a signed document.created.v2 delivery with id to ServeHTTP.
func (r *asRig) deliver(id string) *httptest.ResponseRecorder {
	return r.serve(r.signer.RequestFor("/webhooks", id, time.Now(), asPayload()))
}

func (r *asRig) serve(req *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	r.h.ServeHTTP(rec, req)
	return rec
}

// noFailures checks the error handler has not been called.
func (r *asRig) noFailures(t *testing.T) {
	t.Helper()
	select {
	case f := <-r.failures:
		t.Errorf("unexpected error handler call: %d %v", f.status, f.err)
	default:
	}
}

func asPayload() []byte { return nectarhookstest.Sample(nectarhooks.EventDocumentCreated) }

func asBlock(gate chan struct{}) func(context.Context, string, int) error {
	return func(context.Context, string, int) error {
		<-gate
		return nil
	}
}

func asOK(context.Context, string, int) error { return nil }

// asLog records error-level log records, by message id.
type asLog struct {
	mu     sync.Mutex
	errors map[string]int
	stacks map[string]int
}

func (l *asLog) Enabled(context.Context, slog.Level) bool { return true }
func (l *asLog) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *asLog) WithGroup(string) slog.Handler            { return l }
func (l *asLog) Handle(_ context.Context, rec slog.Record) error {
	if rec.Level < slog.LevelError {
		return nil
	}
	var id string
	stack := false
	rec.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "message_id":
			id = a.Value.String()
		case "stack":
			stack = a.Value.String() != ""
		}
		return true
	})
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.errors == nil {
		l.errors, l.stacks = map[string]int{}, map[string]int{}
	}
	l.errors[id]++
	if stack {
		l.stacks[id]++
	}
	return nil
}

func (l *asLog) counts(id string) (errs, stacks int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.errors[id], l.stacks[id]
}

// TestAsyncAnswersBeforeCallback checks that WithAsync answers 202 while
// the callback has not finished (it is blocked until the test lets it go),
// and that the callback then runs once with the Message in its context.
func TestAsyncAnswersBeforeCallback(t *testing.T) {
	tests := []struct {
		name    string
		deliver func(r *asRig, id string) int
		want    int
	}{
		{"ServeHTTP", func(r *asRig, id string) int { return r.deliver(id).Code }, http.StatusAccepted},
		{"Dispatch", func(r *asRig, id string) int {
			err := r.h.Dispatch(context.Background(), asPayload(), r.signer.HeaderFor(id, time.Now(), asPayload()))
			if err != nil {
				return nectarhooks.StatusCode(err)
			}
			return http.StatusAccepted
		}, http.StatusAccepted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			gate := make(chan struct{})
			r := newAsRig(t, asBlock(gate), nectarhooks.WithAsync(2, 4), nectarhooks.WithIdempotency(nectarhooks.NewMemoryStore(0, 0)))

			require.Equal(t, tt.want, tt.deliver(r, "msg_a"))
			require.Equal(t, "msg_a", <-r.started, "the callback runs after the answer")
			assert.Empty(t, r.finished, "the answer did not wait for the callback")

			// A second delivery while the first is being processed.
			assert.Equal(t, http.StatusConflict, tt.deliver(r, "msg_a"))

			close(gate)
			require.Equal(t, "msg_a", <-r.finished)
			require.NoError(t, r.h.Shutdown(context.Background()))
			assert.Equal(t, 1, r.runsOf("msg_a"))
			if tt.name == "ServeHTTP" {
				f := <-r.failures
				assert.Equal(t, http.StatusConflict, f.status)
				assert.ErrorIs(t, f.err, nectarhooks.ErrInFlight)
			}
			r.noFailures(t)
		})
	}
}

// TestAsyncRedeliveryAfterProcessing checks that WithAsync and
// WithIdempotency together acknowledge a message processed earlier with 200
// and do not queue it again.
func TestAsyncRedeliveryAfterProcessing(t *testing.T) {
	tests := []struct {
		name     string
		store    bool
		wantCode int
		wantRuns int
	}{
		{"with idempotency: acknowledged, not run again", true, http.StatusOK, 1},
		{"without: queued and run again", false, http.StatusAccepted, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			opts := []nectarhooks.Option{nectarhooks.WithAsync(1, 4)}
			var store *asSignalStore
			if tt.store {
				store = newAsSignalStore()
				opts = append(opts, nectarhooks.WithIdempotency(store))
			}
			r := newAsRig(t, asOK, opts...)
			require.Equal(t, http.StatusAccepted, r.deliver("msg_b").Code)
			require.Equal(t, "msg_b", <-r.finished)
			if store != nil {
				// Processed means recorded, which follows the callback.
				require.Equal(t, "msg_b", <-store.completed)
			}
			assert.Equal(t, tt.wantCode, r.deliver("msg_b").Code)
			require.NoError(t, r.h.Shutdown(context.Background()))
			assert.Equal(t, tt.wantRuns, r.runsOf("msg_b"))
			r.noFailures(t)
		})
	}
}

// asSignalStore is a MemoryStore that tells when it has recorded a message
// as processed.
type asSignalStore struct {
	*nectarhooks.MemoryStore
	completed chan string
}

func newAsSignalStore() *asSignalStore {
	return &asSignalStore{MemoryStore: nectarhooks.NewMemoryStore(0, 0), completed: make(chan string, asChanSize)}
}

func (s *asSignalStore) Complete(ctx context.Context, id, token string) error {
	err := s.MemoryStore.Complete(ctx, id, token)
	s.completed <- id
	return err
}

// TestAsyncRefusals checks that WithAsync still refuses, before anything is
// queued, what a synchronous Handler refuses.
func TestAsyncRefusals(t *testing.T) {
	tests := []struct {
		name    string
		request func(r *asRig) *http.Request
		want    int
		wantErr error
	}{
		{"bad signature", func(r *asRig) *http.Request {
			now := time.Now()
			req := r.signer.RequestFor("/webhooks", "msg_x", now, asPayload())
			req.Header.Set("Svix-Signature", r.signer.Sign("msg_x", now, []byte("{}")))
			return req
		}, http.StatusUnauthorized, nectarhooks.ErrNoMatchingSignature},
		{"tampered body", func(r *asRig) *http.Request {
			req := r.signer.RequestFor("/webhooks", "msg_x", time.Now(), asPayload())
			// The same length, so that only the signature can tell.
			tampered := bytes.Replace(asPayload(), []byte("Demo Company"), []byte("Evil Company"), 1)
			req.Body = io.NopCloser(bytes.NewReader(tampered))
			return req
		}, http.StatusUnauthorized, nectarhooks.ErrNoMatchingSignature},
		{"stale", func(r *asRig) *http.Request {
			return r.signer.RequestFor("/webhooks", "msg_x", time.Now().Add(-time.Hour), asPayload())
		}, http.StatusUnauthorized, nectarhooks.ErrMessageTooOld},
		{"missing headers", func(r *asRig) *http.Request {
			return httptest.NewRequest(http.MethodPost, "/webhooks", bytes.NewReader(asPayload()))
		}, http.StatusUnauthorized, nectarhooks.ErrMissingHeaders},
		{"bad JSON, correctly signed", func(r *asRig) *http.Request {
			return r.signer.RequestFor("/webhooks", "msg_x", time.Now(), []byte(`{"eventType": "document.created.v2", `))
		}, http.StatusBadRequest, nectarhooks.ErrInvalidPayload},
		{"not a POST", func(r *asRig) *http.Request {
			return httptest.NewRequest(http.MethodGet, "/webhooks", nil)
		}, http.StatusMethodNotAllowed, nectarhooks.ErrMethodNotAllowed},
		{"too large", func(r *asRig) *http.Request {
			return r.signer.RequestFor("/webhooks", "msg_x", time.Now(), append(asPayload(), bytes.Repeat([]byte(" "), 4096)...))
		}, http.StatusRequestEntityTooLarge, nectarhooks.ErrBodyTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			store := nectarhooks.NewMemoryStore(0, 0)
			r := newAsRig(t, asOK, nectarhooks.WithAsync(1, 1), nectarhooks.WithMaxBodyBytes(4096),
				nectarhooks.WithIdempotency(store))
			// Twice: a refusal must neither queue nor claim anything, or
			// the second would meet a full queue or a 409.
			for range 2 {
				assert.Equal(t, tt.want, r.serve(tt.request(r)).Code)
				f := <-r.failures
				assert.Equal(t, tt.want, f.status)
				assert.ErrorIs(t, f.err, tt.wantErr)
			}
			require.NoError(t, r.h.Shutdown(context.Background()))
			assert.Zero(t, r.totalRuns(), "no callback ran")
			assert.Zero(t, store.Len(), "nothing was claimed")
			r.noFailures(t)
		})
	}
}

// TestAsyncQueueFull fills a queue of one behind one busy worker: the next
// delivery is answered 503 with ErrQueueFull, and with WithIdempotency its
// id is released, so that the retry is queued and runs.
func TestAsyncQueueFull(t *testing.T) {
	tests := []struct {
		name  string
		store bool
	}{
		{"without idempotency", false},
		{"with idempotency", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			gate := make(chan struct{})
			opts := []nectarhooks.Option{nectarhooks.WithAsync(1, 1)}
			if tt.store {
				opts = append(opts, nectarhooks.WithIdempotency(nectarhooks.NewMemoryStore(0, 0)))
			}
			r := newAsRig(t, asBlock(gate), opts...)

			require.Equal(t, http.StatusAccepted, r.deliver("msg_1").Code)
			require.Equal(t, "msg_1", <-r.started, "the worker holds msg_1")
			require.Equal(t, http.StatusAccepted, r.deliver("msg_2").Code, "msg_2 waits in the queue")
			for range 2 { // the same id twice: a 409 here would mean its claim was kept
				rec := r.deliver("msg_3")
				assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
				f := <-r.failures
				assert.Equal(t, http.StatusServiceUnavailable, f.status)
				assert.ErrorIs(t, f.err, nectarhooks.ErrQueueFull)
				assert.Equal(t, "msg_3", f.msg.ID)
			}

			close(gate)
			require.Equal(t, "msg_1", <-r.finished)
			require.Equal(t, "msg_2", <-r.finished, "the queue is empty again")
			require.Equal(t, http.StatusAccepted, r.deliver("msg_3").Code, "Svix's retry")
			require.NoError(t, r.h.Shutdown(context.Background()))

			for _, id := range []string{"msg_1", "msg_2", "msg_3"} {
				assert.Equal(t, 1, r.runsOf(id), id)
			}
			r.noFailures(t)
		})
	}
}

// TestAsyncShutdown checks that Shutdown stops intake at once, gives up
// waiting when its context ends, and otherwise returns once every queued
// message has been processed.
func TestAsyncShutdown(t *testing.T) {
	const queued = 6
	ids := []string{"msg_q1", "msg_q2", "msg_q3", "msg_q4", "msg_q5", "msg_q6"}
	tests := []struct {
		name     string
		deadline bool // try a Shutdown that ends before the queue drains
	}{
		{"drains", false},
		{"deadline, then drains", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			gate := make(chan struct{})
			r := newAsRig(t, asBlock(gate), nectarhooks.WithAsync(2, 8),
				nectarhooks.WithIdempotency(nectarhooks.NewMemoryStore(0, 0)))
			for _, id := range ids {
				require.Equal(t, http.StatusAccepted, r.deliver(id).Code)
			}

			if tt.deadline {
				// The workers are held at the gate, so the queue cannot
				// drain before this context ends.
				ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
				err := r.h.Shutdown(ctx)
				cancel()
				require.ErrorIs(t, err, context.DeadlineExceeded)
			} else {
				done := make(chan error, 1)
				go func() { done <- r.h.Shutdown(context.Background()) }()
				// Shutdown cannot return while the workers are held at
				// the gate, but it stops intake at once.
				asUntilRefused(t, r)
				assert.Empty(t, done, "Shutdown returned before the queue drained")
				close(gate)
				require.NoError(t, <-done)
			}

			// Intake has stopped: new messages, and queued ones again.
			for _, id := range []string{"msg_late", ids[len(ids)-1]} {
				assert.Equal(t, http.StatusServiceUnavailable, r.deliver(id).Code, id)
				f := <-r.failures
				assert.ErrorIs(t, f.err, nectarhooks.ErrShuttingDown)
				assert.Equal(t, http.StatusServiceUnavailable, nectarhooks.StatusCode(f.err))
			}
			err := r.h.Dispatch(context.Background(), asPayload(), r.signer.HeaderFor("msg_late2", time.Now(), asPayload()))
			assert.ErrorIs(t, err, nectarhooks.ErrShuttingDown)

			if tt.deadline {
				close(gate)
			}
			require.NoError(t, r.h.Shutdown(context.Background()), "drained")
			require.NoError(t, r.h.Shutdown(context.Background()), "a second Shutdown is harmless")
			for _, id := range ids {
				assert.Equal(t, 1, r.runsOf(id), "queued %s ran once", id)
			}
			assert.Equal(t, queued, r.totalRuns(), "refused deliveries never ran")
			r.noFailures(t)
		})
	}
}

// asUntilRefused waits, by probing, until a Shutdown running on another
// goroutine has stopped intake. The probe is a duplicate of a queued
// message: refused 409 while intake runs (it is claimed), 503 once it has
// stopped, and never run either way.
func asUntilRefused(t *testing.T, r *asRig) {
	t.Helper()
	for i := 0; ; i++ {
		require.Less(t, i, 100_000, "Shutdown never stopped intake")
		rec := r.deliver("msg_q1")
		f := <-r.failures
		if rec.Code == http.StatusServiceUnavailable {
			require.ErrorIs(t, f.err, nectarhooks.ErrShuttingDown)
			return
		}
		require.Equal(t, http.StatusConflict, rec.Code)
		require.ErrorIs(t, f.err, nectarhooks.ErrInFlight)
	}
}

// TestAsyncCallbackFailures checks that a callback failing after the 202
// reaches the error handler with status 0 and the Message in its context,
// is logged once, leaves the worker alive, and with WithIdempotency
// releases the id so that a resend runs.
func TestAsyncCallbackFailures(t *testing.T) {
	errDownstream := errors.New("downstream said no")
	tests := []struct {
		name      string
		fail      func(ctx context.Context) error
		timeout   time.Duration
		wantErr   error // matched with errors.Is, when set
		wantPanic any   // the PanicError's value, when set
	}{
		{name: "error", fail: func(context.Context) error { return errDownstream }, wantErr: errDownstream},
		{name: "panic", fail: func(context.Context) error { panic("callback bug") }, wantPanic: "callback bug"},
		{
			// net/http's way to abort a response; on a worker goroutine
			// nothing else would recover it and the process would die.
			name: "panic with http.ErrAbortHandler", fail: func(context.Context) error { panic(http.ErrAbortHandler) },
			wantPanic: http.ErrAbortHandler,
		},
		{
			name: "overrun", timeout: 5 * time.Millisecond,
			fail:    func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() },
			wantErr: nectarhooks.ErrCallbackTimeout,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			opts := []nectarhooks.Option{nectarhooks.WithAsync(1, 4), nectarhooks.WithIdempotency(nectarhooks.NewMemoryStore(0, 0))}
			if tt.timeout > 0 {
				opts = append(opts, nectarhooks.WithCallbackTimeout(tt.timeout))
			}
			r := newAsRig(t, func(ctx context.Context, id string, run int) error {
				if run == 1 {
					return tt.fail(ctx)
				}
				return nil
			}, opts...)

			require.Equal(t, http.StatusAccepted, r.deliver("msg_f").Code)
			f := <-r.failures
			assert.Equal(t, 0, f.status, "the answer had been sent")
			require.True(t, f.hasMsg, "the Message is in the error handler's context")
			assert.Equal(t, "msg_f", f.msg.ID)
			assert.Equal(t, nectarhooks.EventDocumentCreated, f.msg.EventType)
			assert.Equal(t, asPayload(), f.msg.Payload)
			var ce *nectarhooks.CallbackError
			require.ErrorAs(t, f.err, &ce)
			assert.Equal(t, "msg_f", ce.MessageID)
			assert.Equal(t, nectarhooks.EventDocumentCreated, ce.EventType)
			if tt.wantErr != nil {
				assert.ErrorIs(t, f.err, tt.wantErr)
			}
			if tt.wantPanic != nil {
				var pe *nectarhooks.PanicError
				require.ErrorAs(t, f.err, &pe)
				assert.Equal(t, tt.wantPanic, pe.Value)
				assert.NotEmpty(t, pe.Stack)
				if perr, ok := tt.wantPanic.(error); ok {
					assert.ErrorIs(t, f.err, perr, "a panic with an error unwraps to it")
				}
			}
			require.Equal(t, "msg_f", <-r.finished)

			// The id was released before the error handler ran: the
			// resend is queued, and the worker that saw the failure runs it.
			require.Equal(t, http.StatusAccepted, r.deliver("msg_f").Code)
			require.NoError(t, r.h.Shutdown(context.Background()))
			assert.Equal(t, 2, r.runsOf("msg_f"))
			r.noFailures(t)

			// The error handler replaces the log: nothing is said twice.
			errs, _ := r.log.counts("msg_f")
			assert.Zero(t, errs, "logged although the error handler had it")
		})
	}
}

// asQueue is a durable queue as a test sees one: a slice.
type asQueue struct {
	mu   sync.Mutex
	msgs []nectarhooks.Message
	err  error
}

func (q *asQueue) Enqueue(_ context.Context, msg nectarhooks.Message) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.err != nil {
		return q.err
	}
	q.msgs = append(q.msgs, msg)
	return nil
}

func (q *asQueue) take() []nectarhooks.Message {
	q.mu.Lock()
	defer q.mu.Unlock()
	m := q.msgs
	q.msgs = nil
	return m
}

// TestQueueOption checks WithQueue: a verified delivery is answered 202
// once the Queue has it, without running the callback; the consumer's
// DispatchVerified runs it, under the idempotency store, long after the
// signature's tolerance; a Queue that fails gives 503.
func TestQueueOption(t *testing.T) {
	errDB := errors.New("database is down")
	tests := []struct {
		name       string
		queueErr   error
		want       int
		wantQueued int
	}{
		{"accepted", nil, http.StatusAccepted, 1},
		{"queue full", errors.Join(nectarhooks.ErrQueueFull, errDB), http.StatusServiceUnavailable, 0},
		{"queue failed", errDB, http.StatusServiceUnavailable, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			q := &asQueue{err: tt.queueErr}
			r := newAsRig(t, asOK, nectarhooks.WithQueue(q), nectarhooks.WithIdempotency(nectarhooks.NewMemoryStore(0, 0)))

			// A forged delivery never reaches the queue.
			forged := r.signer.RequestFor("/webhooks", "msg_forged", time.Now(), asPayload())
			forged.Header.Set("Svix-Signature", "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
			require.Equal(t, http.StatusUnauthorized, r.serve(forged).Code)
			<-r.failures

			sent := time.Now()
			require.Equal(t, tt.want, r.serve(r.signer.RequestFor("/webhooks", "msg_q", sent, asPayload())).Code)
			assert.Zero(t, r.totalRuns(), "nothing runs at intake")
			msgs := q.take()
			require.Len(t, msgs, tt.wantQueued)
			if tt.wantQueued == 0 {
				f := <-r.failures
				assert.Equal(t, http.StatusServiceUnavailable, f.status)
				assert.ErrorIs(t, f.err, nectarhooks.ErrQueueFull)
				assert.ErrorIs(t, f.err, errDB, "the queue's own error is kept")
				return
			}
			msg := msgs[0]
			assert.Equal(t, "msg_q", msg.ID)
			assert.Equal(t, nectarhooks.EventDocumentCreated, msg.EventType)
			assert.Equal(t, asPayload(), msg.Payload)
			assert.Equal(t, sent.Unix(), msg.Timestamp.Unix())

			// The consumer, a day later: past the tolerance, which
			// DispatchVerified does not check.
			require.NoError(t, r.h.DispatchVerified(context.Background(), msg))
			assert.Equal(t, 1, r.runsOf("msg_q"))
			// The queue redelivers (at-least-once): the store skips it.
			require.NoError(t, r.h.DispatchVerified(context.Background(), msg))
			assert.Equal(t, 1, r.runsOf("msg_q"))
			// Svix redelivers: queued again, since with WithQueue the
			// Handler does not consult the store at intake; the consumer
			// skips it.
			require.Equal(t, http.StatusAccepted, r.deliver("msg_q").Code)
			require.NoError(t, r.h.DispatchVerified(context.Background(), q.take()[0]))
			assert.Equal(t, 1, r.runsOf("msg_q"))
			require.NoError(t, r.h.Shutdown(context.Background()), "nothing to drain")
			r.noFailures(t)
		})
	}
}

// TestQueueAlreadyQueued checks a Queue that turns a redelivery away with
// ErrAlreadyQueued: the delivery is answered 202 as the first was, with a
// line saying why, Dispatch returns nil, and neither the error handler nor
// (without one) the log hears of it as a failure; other errors of the
// Queue are still failures.
func TestQueueAlreadyQueued(t *testing.T) {
	tests := []struct {
		name       string
		queueErr   error
		withErrors bool // an error handler is set; otherwise failures reach the log
		wantStatus int
		wantBody   string
	}{
		{"sentinel", nectarhooks.ErrAlreadyQueued, true, http.StatusAccepted, "accepted: already queued\n"},
		{"wrapped, with the queue's details", fmt.Errorf("job 7 (completed): %w", nectarhooks.ErrAlreadyQueued), true,
			http.StatusAccepted, "accepted: already queued\n"},
		{"without an error handler", nectarhooks.ErrAlreadyQueued, false, http.StatusAccepted, "accepted: already queued\n"},
		{"another failure", errors.New("duplicate key value violates unique constraint"), true,
			http.StatusServiceUnavailable, "queue full; retry later\n"},
		{"another failure, without an error handler", errors.New("duplicate key value violates unique constraint"), false,
			http.StatusServiceUnavailable, "queue full; retry later\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			secret := nectarhookstest.NewSecret()
			signer, err := nectarhookstest.NewSigner(secret)
			require.NoError(t, err)
			log := &asLog{}
			var failures []asFailure // ServeHTTP reports before it returns
			opts := []nectarhooks.Option{nectarhooks.WithQueue(&asQueue{err: tt.queueErr}), nectarhooks.WithLogger(slog.New(log))}
			if tt.withErrors {
				opts = append(opts, nectarhooks.WithErrorHandler(func(_ context.Context, status int, err error) {
					failures = append(failures, asFailure{status: status, err: err})
				}))
			}
			h, err := nectarhooks.NewHandler(secret, opts...)
			require.NoError(t, err)
			runs := 0
			h.OnDocumentCreated(func(context.Context, *nectarhooks.DocumentCreated) error { runs++; return nil })

			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, signer.RequestFor("/webhooks", "msg_again", time.Now(), asPayload()))
			assert.Equal(t, tt.wantStatus, rec.Code)
			assert.Equal(t, tt.wantBody, rec.Body.String())
			header := signer.HeaderFor("msg_again", time.Now(), asPayload())
			dispatched := h.Dispatch(context.Background(), asPayload(), header)
			assert.Zero(t, runs, "nothing runs at intake")

			logged, _ := log.counts("msg_again")
			if tt.wantStatus < 300 {
				assert.NoError(t, dispatched, "Dispatch")
				assert.Empty(t, failures, "error handler calls")
				assert.Zero(t, logged, "errors logged")
				return
			}
			assert.Equal(t, tt.wantStatus, nectarhooks.StatusCode(dispatched))
			assert.False(t, errors.Is(dispatched, nectarhooks.ErrAlreadyQueued))
			if tt.withErrors {
				require.Len(t, failures, 1, "ServeHTTP's failure reported, Dispatch's returned")
				assert.Equal(t, tt.wantStatus, failures[0].status)
			} else {
				assert.Equal(t, 1, logged, "ServeHTTP's failure logged")
			}
		})
	}
}

// TestAsyncOptions checks the option values NewHandler refuses, and that a
// refused configuration starts no goroutines.
func TestAsyncOptions(t *testing.T) {
	secret := nectarhookstest.NewSecret()
	tests := []struct {
		name    string
		opts    []nectarhooks.Option
		wantErr string // empty for a valid configuration
	}{
		{"no workers", []nectarhooks.Option{nectarhooks.WithAsync(0, 1)}, "WithAsync(0, 1)"},
		{"no queue", []nectarhooks.Option{nectarhooks.WithAsync(1, 0)}, "WithAsync(1, 0)"},
		{"negative", []nectarhooks.Option{nectarhooks.WithAsync(-1, -5)}, "WithAsync(-1, -5)"},
		{"nil queue", []nectarhooks.Option{nectarhooks.WithQueue(nil)}, "WithQueue(nil)"},
		{"nil idempotency store", []nectarhooks.Option{nectarhooks.WithIdempotency(nil)}, "WithIdempotency(nil)"},
		{"async and queue", []nectarhooks.Option{nectarhooks.WithAsync(1, 1), nectarhooks.WithQueue(&asQueue{})}, "cannot be combined"},
		{"queue and async", []nectarhooks.Option{nectarhooks.WithQueue(&asQueue{}), nectarhooks.WithAsync(1, 1)}, "cannot be combined"},
		{"async", []nectarhooks.Option{nectarhooks.WithAsync(1, 1)}, ""},
		{"queue", []nectarhooks.Option{nectarhooks.WithQueue(&asQueue{})}, ""},
		{"neither", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			h, err := nectarhooks.NewHandler(secret, tt.opts...)
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Nil(t, h)
				assert.Contains(t, err.Error(), "invalid option")
				assert.Contains(t, err.Error(), tt.wantErr)
				return
			}
			require.NoError(t, err)
			// Shutdown stops the workers of WithAsync, and is a no-op
			// for the others.
			require.NoError(t, h.Shutdown(context.Background()))
		})
	}
}

// Without an error handler, a callback that fails after the 202 is logged
// at error level, with the message id and, for a panic, the stack: it must
// not vanish.
func TestAsyncFailureLoggedWithoutErrorHandler(t *testing.T) {
	for _, tc := range []struct {
		name      string
		fail      func() error
		wantStack bool
	}{
		{"error", func() error { return errors.New("downstream down") }, false},
		{"panic", func() error { panic("callback bug") }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			var buf bytes.Buffer
			var mu sync.Mutex
			logger := slog.New(slog.NewTextHandler(&lockedWriter{mu: &mu, w: &buf}, nil))
			secret := nectarhookstest.NewSecret()
			h, err := nectarhooks.NewHandler(secret, nectarhooks.WithAsync(1, 1), nectarhooks.WithLogger(logger))
			require.NoError(t, err)
			h.OnDocumentCreated(func(context.Context, *nectarhooks.DocumentCreated) error { return tc.fail() })
			signer, err := nectarhookstest.NewSigner(secret)
			require.NoError(t, err)

			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, signer.RequestFor("/hook", "msg_async_log", time.Now(), nectarhookstest.Sample(nectarhooks.EventDocumentCreated)))
			require.Equal(t, http.StatusAccepted, rec.Code)
			require.NoError(t, h.Shutdown(context.Background()))

			mu.Lock()
			logs := buf.String()
			mu.Unlock()
			assert.Contains(t, logs, "level=ERROR")
			assert.Contains(t, logs, "callback failed after the delivery was acknowledged")
			assert.Contains(t, logs, "message_id=msg_async_log")
			assert.Contains(t, logs, "status=0")
			assert.Equal(t, tc.wantStack, strings.Contains(logs, "async_test.go"), "the panic's stack, and only for a panic")
		})
	}
}

// lockedWriter serialises writes from the worker and reads from the test.
type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
