package nectarhooks_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
)

// obsKey marks the contexts an obsRecorder's Start returns, so that tests
// can tell where they went.
type obsKey struct{}

// obsEvent is one call of an Observer method.
type obsEvent struct {
	end   bool // End, or else Start
	d     nectarhooks.Delivery
	msg   nectarhooks.Message // a copy of *d.Message, if any
	depth int                 // obsKey value of ctx: how many Starts enclose the call
}

// obsRecorder is an Observer that records every call.
type obsRecorder struct {
	mu     sync.Mutex
	events []obsEvent
	ended  chan nectarhooks.Delivery // every End, when not nil
}

func (o *obsRecorder) record(ctx context.Context, end bool, d nectarhooks.Delivery) {
	depth, _ := ctx.Value(obsKey{}).(int)
	e := obsEvent{end: end, d: d, depth: depth}
	if d.Message != nil {
		e.msg = *d.Message
	}
	o.mu.Lock()
	o.events = append(o.events, e)
	o.mu.Unlock()
	if end && o.ended != nil {
		o.ended <- d
	}
}

func (o *obsRecorder) Start(ctx context.Context, d nectarhooks.Delivery) context.Context {
	o.record(ctx, false, d)
	depth, _ := ctx.Value(obsKey{}).(int)
	return context.WithValue(ctx, obsKey{}, depth+1)
}

func (o *obsRecorder) End(ctx context.Context, d nectarhooks.Delivery) { o.record(ctx, true, d) }

func (o *obsRecorder) all() []obsEvent {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]obsEvent(nil), o.events...)
}

// ends returns the End calls of stage.
func (o *obsRecorder) ends(stage nectarhooks.Stage) []obsEvent {
	var out []obsEvent
	for _, e := range o.all() {
		if e.end && e.d.Stage == stage {
			out = append(out, e)
		}
	}
	return out
}

// obsFailingStore is an IdempotencyStore whose Claim always fails, as one
// whose server is down.
type obsFailingStore struct{ nectarhooks.IdempotencyStore }

func (obsFailingStore) Claim(context.Context, string, time.Duration) (nectarhooks.Claim, string, error) {
	return 0, "", errors.New("connection refused")
}

// obsQueue is a Queue that takes messages, or refuses them all.
type obsQueue struct {
	refuse bool
	have   bool // holds every message already
	ctxs   []context.Context
}

func (q *obsQueue) Enqueue(ctx context.Context, msg nectarhooks.Message) error {
	if q.refuse {
		return nectarhooks.ErrQueueFull
	}
	if q.have {
		return fmt.Errorf("message %s: %w", msg.ID, nectarhooks.ErrAlreadyQueued)
	}
	q.ctxs = append(q.ctxs, ctx)
	return nil
}

var errObsBoom = errors.New("boom")

// TestObserverOutcomes runs one delivery for each outcome of the status
// policy and checks what the Observer is told, stage by stage.
func TestObserverOutcomes(t *testing.T) {
	const id = "msg_observed"
	updated := nectarhooks.EventConnectionUpdated
	type row struct {
		name string
		opts func(t *testing.T) []nectarhooks.Option
		// callback is OnConnectionUpdated's; nil registers none.
		callback func(ctx context.Context) error
		request  func(t *testing.T, f *dispFixture) *http.Request
		// prepare runs on the store before the delivery.
		prepare func(t *testing.T, s *nectarhooks.MemoryStore) // with a MemoryStore, prepared

		wantStatus  int
		wantOutcome nectarhooks.Outcome
		wantErr     error // matched with errors.Is; nil wants no error
		verified    bool
		wantProcess bool // a StageProcess nested in the StageReceive
	}
	signed := func(t *testing.T, f *dispFixture) *http.Request { return f.request(t, id, dispSample(t, updated)) }
	ok := func(context.Context) error { return nil }
	rows := []row{
		{name: "processed", callback: ok, request: signed,
			wantStatus: 200, wantOutcome: nectarhooks.OutcomeProcessed, verified: true, wantProcess: true},
		{name: "no callback is unhandled", request: signed,
			wantStatus: 200, wantOutcome: nectarhooks.OutcomeUnhandled, verified: true, wantProcess: true},
		{name: "callback error is failed", callback: func(context.Context) error { return errObsBoom }, request: signed,
			wantStatus: 500, wantOutcome: nectarhooks.OutcomeFailed, wantErr: errObsBoom, verified: true, wantProcess: true},
		{name: "callback panic is failed", callback: func(context.Context) error { panic(errObsBoom) }, request: signed,
			wantStatus: 500, wantOutcome: nectarhooks.OutcomeFailed, wantErr: errObsBoom, verified: true, wantProcess: true},
		{name: "callback overrun is timeout",
			opts: func(*testing.T) []nectarhooks.Option {
				return []nectarhooks.Option{nectarhooks.WithCallbackTimeout(time.Millisecond)}
			},
			callback: func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }, request: signed,
			wantStatus: 503, wantOutcome: nectarhooks.OutcomeTimeout, wantErr: nectarhooks.ErrCallbackTimeout, verified: true, wantProcess: true},
		{name: "forgery is rejected", callback: ok,
			request: func(t *testing.T, f *dispFixture) *http.Request {
				r := f.request(t, id, dispSample(t, updated))
				r.Header.Set("Svix-Signature", "v1,"+"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
				return r
			},
			wantStatus: 401, wantOutcome: nectarhooks.OutcomeRejected, wantErr: nectarhooks.ErrNoMatchingSignature},
		{name: "GET is rejected", callback: ok,
			request: func(t *testing.T, f *dispFixture) *http.Request {
				r := signed(t, f)
				r.Method = http.MethodGet
				return r
			},
			wantStatus: 405, wantOutcome: nectarhooks.OutcomeRejected, wantErr: nectarhooks.ErrMethodNotAllowed},
		{name: "invalid payload is rejected, verified", callback: ok,
			request: func(t *testing.T, f *dispFixture) *http.Request {
				return f.request(t, id, []byte(`{"eventType":"connection.updated.v2","old":[]}`))
			},
			wantStatus: 400, wantOutcome: nectarhooks.OutcomeRejected, wantErr: nectarhooks.ErrInvalidPayload, verified: true},
		{name: "processed already is duplicate", callback: ok, request: signed,
			prepare: func(t *testing.T, s *nectarhooks.MemoryStore) {
				_, token, err := s.Claim(context.Background(), id, time.Minute)
				require.NoError(t, err)
				require.NoError(t, s.Complete(context.Background(), id, token))
			},
			wantStatus: 200, wantOutcome: nectarhooks.OutcomeDuplicate, verified: true},
		{name: "being processed is in flight", callback: ok, request: signed,
			prepare: func(t *testing.T, s *nectarhooks.MemoryStore) {
				_, _, err := s.Claim(context.Background(), id, time.Hour)
				require.NoError(t, err)
			},
			wantStatus: 409, wantOutcome: nectarhooks.OutcomeInFlight, wantErr: nectarhooks.ErrInFlight, verified: true},
		{name: "store down is unavailable", callback: ok, request: signed,
			opts: func(*testing.T) []nectarhooks.Option {
				return []nectarhooks.Option{nectarhooks.WithIdempotency(obsFailingStore{})}
			},
			wantStatus: 503, wantOutcome: nectarhooks.OutcomeUnavailable, wantErr: nectarhooks.ErrStoreUnavailable, verified: true},
		{name: "queued", callback: ok, request: signed,
			opts: func(*testing.T) []nectarhooks.Option {
				return []nectarhooks.Option{nectarhooks.WithQueue(&obsQueue{})}
			},
			wantStatus: 202, wantOutcome: nectarhooks.OutcomeQueued, verified: true},
		{name: "queued already is duplicate", callback: ok, request: signed,
			opts: func(*testing.T) []nectarhooks.Option {
				return []nectarhooks.Option{nectarhooks.WithQueue(&obsQueue{have: true})}
			},
			wantStatus: 202, wantOutcome: nectarhooks.OutcomeDuplicate, verified: true},
		{name: "queue full is unavailable", callback: ok, request: signed,
			opts: func(*testing.T) []nectarhooks.Option {
				return []nectarhooks.Option{nectarhooks.WithQueue(&obsQueue{refuse: true})}
			},
			wantStatus: 503, wantOutcome: nectarhooks.OutcomeUnavailable, wantErr: nectarhooks.ErrQueueFull, verified: true},
	}
	for _, r := range rows {
		for _, via := range []string{"ServeHTTP", "Dispatch"} {
			t.Run(r.name+"/"+via, func(t *testing.T) {
				f := newDispFixture(t)
				obs := &obsRecorder{}
				var errs dispErrRecorder
				errDepth := -1 // obsKey in the error handler's context
				opts := []nectarhooks.Option{
					nectarhooks.WithClock(nectarhookstest.FixedClock(dispT0)),
					nectarhooks.WithObserver(obs),
					nectarhooks.WithErrorHandler(func(ctx context.Context, status int, err error) {
						errDepth, _ = ctx.Value(obsKey{}).(int)
						errs.handle(ctx, status, err)
					}),
				}
				if r.opts != nil {
					opts = append(opts, r.opts(t)...)
				}
				if r.prepare != nil {
					store := nectarhooks.NewMemoryStore(0, 0)
					r.prepare(t, store)
					opts = append(opts, nectarhooks.WithIdempotency(store))
				}
				h, err := nectarhooks.NewHandler(f.secret, opts...)
				require.NoError(t, err)
				var callbackDepth int
				if r.callback != nil {
					h.OnConnectionUpdated(func(ctx context.Context, _ *nectarhooks.ConnectionUpdated) error {
						callbackDepth, _ = ctx.Value(obsKey{}).(int)
						return r.callback(ctx)
					})
				}

				req := r.request(t, f)
				if via == "ServeHTTP" {
					rr := httptest.NewRecorder()
					h.ServeHTTP(rr, req)
					require.Equal(t, r.wantStatus, rr.Code, rr.Body.String())
				} else {
					if req.Method != http.MethodPost {
						t.Skip("Dispatch has no method to refuse")
					}
					body, err := io.ReadAll(req.Body)
					require.NoError(t, err)
					err = h.Dispatch(context.Background(), body, req.Header)
					if r.wantStatus < 300 {
						require.NoError(t, err)
					} else {
						require.Equal(t, r.wantStatus, nectarhooks.StatusCode(err), "%v", err)
					}
				}

				events := obs.all()
				wantEvents := 2
				if r.wantProcess {
					wantEvents = 4
				}
				require.Len(t, events, wantEvents, "Start and End calls: %+v", events)
				// Starts and Ends nest: receive, [process, process,] receive.
				assert.False(t, events[0].end)
				assert.Equal(t, nectarhooks.StageReceive, events[0].d.Stage)
				assert.Zero(t, events[0].d.Outcome, "an outcome at Start")
				assert.Nil(t, events[0].d.Message, "a Message at the receiving Start")
				last := events[len(events)-1]
				require.True(t, last.end)
				require.Equal(t, nectarhooks.StageReceive, last.d.Stage)
				assert.Equal(t, 1, last.depth, "End did not get the context Start returned")

				d := last.d
				assert.Equal(t, r.wantOutcome, d.Outcome, "outcome %s", d.Outcome)
				assert.Equal(t, r.wantOutcome.Acknowledged(), r.wantStatus < 300)
				assert.Equal(t, r.wantStatus, d.Status)
				if r.wantErr == nil {
					assert.NoError(t, d.Err)
					assert.Empty(t, errs.all(), "the error handler called for an acknowledged delivery")
				} else {
					assert.ErrorIs(t, d.Err, r.wantErr)
					assert.Equal(t, d.Status, nectarhooks.StatusCode(d.Err))
					if via == "ServeHTTP" {
						// The error handler had the same error, in the
						// context Start returned.
						calls := errs.all()
						require.Len(t, calls, 1)
						assert.Equal(t, d.Err, calls[0].err)
						assert.Equal(t, 1, errDepth)
					}
				}
				if r.verified {
					require.NotNil(t, d.Message)
					assert.Equal(t, id, last.msg.ID)
					assert.Equal(t, updated, last.msg.EventType)
					assert.Positive(t, d.Verify, "verification untimed")
				} else {
					assert.Nil(t, d.Message)
				}
				assert.GreaterOrEqual(t, d.Total, d.Read+d.Verify+d.Decode)
				assert.Zero(t, d.Queue)
				assert.Zero(t, d.Callback, "StageReceive times no callback")

				if r.wantProcess {
					start, end := events[1], events[2]
					assert.False(t, start.end)
					assert.Equal(t, nectarhooks.StageProcess, start.d.Stage)
					assert.Equal(t, id, start.msg.ID, "the Message at the processing Start")
					assert.False(t, start.d.Detached)
					assert.Equal(t, 1, start.depth, "StageProcess not inside StageReceive's context")
					require.True(t, end.end)
					assert.Equal(t, 2, end.depth)
					assert.Equal(t, r.wantOutcome, end.d.Outcome)
					assert.Equal(t, d.Status, end.d.Status)
					assert.Equal(t, d.Err, end.d.Err)
					assert.Positive(t, end.d.Callback)
					assert.GreaterOrEqual(t, end.d.Total, end.d.Callback)
					if r.callback != nil {
						assert.Equal(t, 2, callbackDepth, "the callback's context does not derive from StageProcess's")
					}
				}
			})
		}
	}
}

// TestObserverAsync follows a message through WithAsync: the request's
// StageReceive ends queued, then a worker's StageProcess, Detached, ends
// with status 0 in the context the receiving Start returned.
func TestObserverAsync(t *testing.T) {
	defer goleak.VerifyNone(t)
	tests := []struct {
		name        string
		callback    func(context.Context) error
		wantOutcome nectarhooks.Outcome
		wantErr     error
	}{
		{"processed", func(context.Context) error { return nil }, nectarhooks.OutcomeProcessed, nil},
		{"failed", func(context.Context) error { return errObsBoom }, nectarhooks.OutcomeFailed, errObsBoom},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newDispFixture(t)
			obs := &obsRecorder{ended: make(chan nectarhooks.Delivery, 4)}
			var errs dispErrRecorder
			h, err := nectarhooks.NewHandler(f.secret,
				nectarhooks.WithClock(nectarhookstest.FixedClock(dispT0)),
				nectarhooks.WithObserver(obs),
				nectarhooks.WithErrorHandler(errs.handle),
				nectarhooks.WithAsync(1, 4))
			require.NoError(t, err)
			defer func() { require.NoError(t, h.Shutdown(context.Background())) }()
			var depth int
			h.OnDocumentCreated(func(ctx context.Context, _ *nectarhooks.DocumentCreated) error {
				depth, _ = ctx.Value(obsKey{}).(int)
				return tt.callback(ctx)
			})

			rr := httptest.NewRecorder()
			h.ServeHTTP(rr, f.request(t, "msg_async", dispSample(t, nectarhooks.EventDocumentCreated)))
			require.Equal(t, http.StatusAccepted, rr.Code)
			for range 2 {
				select {
				case <-obs.ended:
				case <-time.After(time.Minute):
					t.Fatal("no End from the worker")
				}
			}
			require.NoError(t, h.Shutdown(context.Background()))

			receive := obs.ends(nectarhooks.StageReceive)
			require.Len(t, receive, 1)
			assert.Equal(t, nectarhooks.OutcomeQueued, receive[0].d.Outcome)
			assert.Equal(t, http.StatusAccepted, receive[0].d.Status)

			process := obs.ends(nectarhooks.StageProcess)
			require.Len(t, process, 1)
			d := process[0].d
			assert.True(t, d.Detached)
			assert.Equal(t, tt.wantOutcome, d.Outcome)
			assert.Zero(t, d.Status, "a callback after the answer has status 0")
			assert.Equal(t, "msg_async", process[0].msg.ID)
			assert.GreaterOrEqual(t, d.Queue, time.Duration(0))
			assert.GreaterOrEqual(t, d.Total, d.Callback)
			// The worker's context has what the receiving Start added, and
			// its own Start's on top.
			assert.Equal(t, 2, process[0].depth)
			assert.Equal(t, 2, depth)
			if tt.wantErr != nil {
				assert.ErrorIs(t, d.Err, tt.wantErr)
				calls := errs.all()
				require.Len(t, calls, 1)
				assert.Zero(t, calls[0].status)
				assert.Equal(t, calls[0].err, d.Err)
			} else {
				assert.NoError(t, d.Err)
			}
		})
	}
}

// TestObserverQueueContext checks that a Queue's Enqueue receives the
// context the receiving Start returned, so that a queue can carry what
// the Observer put there (a trace context) to its consumer.
func TestObserverQueueContext(t *testing.T) {
	f := newDispFixture(t)
	q := &obsQueue{}
	h, err := nectarhooks.NewHandler(f.secret,
		nectarhooks.WithClock(nectarhookstest.FixedClock(dispT0)),
		nectarhooks.WithObserver(&obsRecorder{}),
		nectarhooks.WithQueue(q))
	require.NoError(t, err)
	rr := httptest.NewRecorder()
	h.ServeHTTP(rr, f.request(t, "msg_queued", dispSample(t, nectarhooks.EventDocumentCreated)))
	require.Equal(t, http.StatusAccepted, rr.Code)
	require.Len(t, q.ctxs, 1)
	assert.Equal(t, 1, q.ctxs[0].Value(obsKey{}))
	m, ok := nectarhooks.MessageFromContext(q.ctxs[0])
	require.True(t, ok)
	assert.Equal(t, "msg_queued", m.ID)
}

// TestObserverDispatchVerified checks that DispatchVerified, as a queue's
// consumer calls it, is one StageProcess in the caller's context.
func TestObserverDispatchVerified(t *testing.T) {
	tests := []struct {
		name        string
		callback    func(context.Context) error
		wantOutcome nectarhooks.Outcome
		wantStatus  int
	}{
		{"processed", func(context.Context) error { return nil }, nectarhooks.OutcomeProcessed, 200},
		{"failed", func(context.Context) error { return errObsBoom }, nectarhooks.OutcomeFailed, 500},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			obs := &obsRecorder{}
			h, err := nectarhooks.NewHandler(nectarhookstest.NewSecret(), nectarhooks.WithObserver(obs))
			require.NoError(t, err)
			h.OnDocumentCreated(func(ctx context.Context, _ *nectarhooks.DocumentCreated) error { return tt.callback(ctx) })
			msg := nectarhooks.Message{ID: "msg_replayed", Timestamp: dispT0, Payload: dispSample(t, nectarhooks.EventDocumentCreated)}
			err = h.DispatchVerified(context.Background(), msg)
			assert.Equal(t, tt.wantStatus, nectarhooks.StatusCode(err))

			events := obs.all()
			require.Len(t, events, 2)
			assert.Equal(t, nectarhooks.StageProcess, events[0].d.Stage)
			assert.Equal(t, "msg_replayed", events[0].msg.ID)
			assert.Zero(t, events[0].depth)
			d := events[1].d
			assert.False(t, d.Detached)
			assert.Equal(t, tt.wantOutcome, d.Outcome)
			assert.Equal(t, tt.wantStatus, d.Status)
			assert.Equal(t, nectarhooks.EventDocumentCreated, events[1].msg.EventType)
		})
	}
}

// nopObserver adds nothing to a delivery.
type nopObserver struct{}

func (nopObserver) Start(ctx context.Context, _ nectarhooks.Delivery) context.Context { return ctx }
func (nopObserver) End(context.Context, nectarhooks.Delivery)                         {}

// TestObserverAllocations checks that observing costs no allocation of its
// own: a Handler with an Observer that adds nothing allocates as much per
// delivery as one without (whose cost BenchmarkPipeline compares with
// earlier versions).
func TestObserverAllocations(t *testing.T) {
	if nectarhooks.RaceEnabled {
		t.Skip("allocation counts only hold without the race detector")
	}
	f := newDispFixture(t)
	body := dispSample(t, nectarhooks.EventConnectionUpdated)
	header := f.header(t, "msg_allocs", dispT0, body)
	allocs := func(opts ...nectarhooks.Option) float64 {
		h, err := nectarhooks.NewHandler(f.secret, append(opts, nectarhooks.WithClock(nectarhookstest.FixedClock(dispT0)))...)
		require.NoError(t, err)
		h.OnConnectionUpdated(func(context.Context, *nectarhooks.ConnectionUpdated) error { return nil })
		return testing.AllocsPerRun(200, func() {
			if err := h.Dispatch(context.Background(), body, header); err != nil {
				panic(err)
			}
		})
	}
	plain, observed := allocs(), allocs(nectarhooks.WithObserver(nopObserver{}))
	assert.Equal(t, plain, observed, "allocations per delivery without an Observer and with one")
}

// TestQueueDepth checks the accessor behind a queue-depth gauge.
func TestQueueDepth(t *testing.T) {
	defer goleak.VerifyNone(t)
	f := newDispFixture(t)
	plain, err := nectarhooks.NewHandler(f.secret)
	require.NoError(t, err)
	assert.Zero(t, plain.QueueDepth())

	h, err := nectarhooks.NewHandler(f.secret, nectarhooks.WithClock(nectarhookstest.FixedClock(dispT0)), nectarhooks.WithAsync(1, 8))
	require.NoError(t, err)
	started, release := make(chan struct{}, 8), make(chan struct{})
	h.OnDocumentCreated(func(context.Context, *nectarhooks.DocumentCreated) error {
		started <- struct{}{}
		<-release
		return nil
	})
	deliver := func(id string) {
		rr := httptest.NewRecorder()
		h.ServeHTTP(rr, f.request(t, id, dispSample(t, nectarhooks.EventDocumentCreated)))
		require.Equal(t, http.StatusAccepted, rr.Code)
	}
	deliver("msg_0")
	<-started // the worker holds msg_0: the queue is empty
	assert.Zero(t, h.QueueDepth())
	for _, id := range []string{"msg_1", "msg_2", "msg_3"} {
		deliver(id)
	}
	assert.Equal(t, 3, h.QueueDepth())
	close(release)
	require.NoError(t, h.Shutdown(context.Background()))
	assert.Zero(t, h.QueueDepth())
}

func TestStageAndOutcomeNames(t *testing.T) {
	tests := []struct {
		got, want string
	}{
		{nectarhooks.StageReceive.String(), "receive"},
		{nectarhooks.StageProcess.String(), "process"},
		{nectarhooks.Stage(9).String(), "Stage(9)"},
		{nectarhooks.OutcomeProcessed.String(), "processed"},
		{nectarhooks.OutcomeQueued.String(), "queued"},
		{nectarhooks.OutcomeDuplicate.String(), "duplicate"},
		{nectarhooks.OutcomeUnhandled.String(), "unhandled"},
		{nectarhooks.OutcomeRejected.String(), "rejected"},
		{nectarhooks.OutcomeInFlight.String(), "in_flight"},
		{nectarhooks.OutcomeFailed.String(), "failed"},
		{nectarhooks.OutcomeTimeout.String(), "timeout"},
		{nectarhooks.OutcomeUnavailable.String(), "unavailable"},
		{nectarhooks.Outcome(0).String(), "Outcome(0)"},
		{nectarhooks.Outcome(200).String(), "Outcome(200)"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) { assert.Equal(t, tt.want, tt.got) })
	}
}

// TestObserverSeesStatusPolicy runs every row of the status policy's test
// with an Observer: it sees each delivery once, with the status answered
// and the error the error handler received.
func TestObserverSeesStatusPolicy(t *testing.T) {
	for _, row := range dispStatusRows() {
		t.Run(row.name, func(t *testing.T) {
			f := newDispFixture(t)
			obs := &obsRecorder{}
			var errs dispErrRecorder
			logger, _ := newDispLogger()
			opts := append([]nectarhooks.Option{
				nectarhooks.WithClock(nectarhookstest.FixedClock(dispT0)),
				nectarhooks.WithErrorHandler(errs.handle),
				nectarhooks.WithLogger(logger),
				nectarhooks.WithObserver(obs),
			}, row.opts...)
			h, err := nectarhooks.NewHandler(f.secret, opts...)
			require.NoError(t, err)
			if row.setup != nil {
				row.setup(h, &dispCapture{})
			}
			rr := httptest.NewRecorder()
			h.ServeHTTP(rr, row.request(t, f))
			require.Equal(t, row.wantStatus, rr.Code)

			ends := obs.ends(nectarhooks.StageReceive)
			require.Len(t, ends, 1)
			d := ends[0].d
			assert.Equal(t, rr.Code, d.Status)
			assert.Equal(t, rr.Code < 300, d.Outcome.Acknowledged(), "outcome %s", d.Outcome)
			if calls := errs.all(); len(calls) == 1 {
				assert.Equal(t, calls[0].err, d.Err)
			} else {
				assert.NoError(t, d.Err)
			}
			ran := 0
			for _, e := range obs.ends(nectarhooks.StageProcess) {
				if e.d.Outcome != nectarhooks.OutcomeUnhandled {
					ran++
				}
			}
			assert.Equal(t, row.wantCalls, ran, "StageProcess that ran a callback")
		})
	}
}
