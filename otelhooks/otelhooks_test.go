package otelhooks_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/goleak"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
	"github.com/nectarhooks/nectarhooks/otelhooks"
)

// rig is a Handler observed into an in-memory span exporter and a manual
// metric reader.
type rig struct {
	secret string
	signer *nectarhookstest.Signer
	spans  *tracetest.InMemoryExporter
	tp     *sdktrace.TracerProvider
	reader *sdkmetric.ManualReader
	obs    *otelhooks.Observer
	h      *nectarhooks.Handler
}

func newRig(t *testing.T, opts ...nectarhooks.Option) *rig {
	t.Helper()
	r := &rig{secret: nectarhookstest.NewSecret(), spans: tracetest.NewInMemoryExporter(), reader: sdkmetric.NewManualReader()}
	r.tp = sdktrace.NewTracerProvider(sdktrace.WithSyncer(r.spans))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(r.reader))
	t.Cleanup(func() {
		assert.NoError(t, r.tp.Shutdown(context.Background()))
		assert.NoError(t, mp.Shutdown(context.Background()))
	})
	var err error
	r.obs, err = otelhooks.New(otelhooks.WithTracerProvider(r.tp), otelhooks.WithMeterProvider(mp),
		otelhooks.WithPropagator(propagation.TraceContext{}))
	require.NoError(t, err)
	r.h, err = nectarhooks.NewHandler(r.secret, append([]nectarhooks.Option{
		nectarhooks.WithObserver(r.obs),
		nectarhooks.WithErrorHandler(func(context.Context, int, error) {}),
	}, opts...)...)
	require.NoError(t, err)
	r.signer, err = nectarhookstest.NewSigner(r.secret)
	require.NoError(t, err)
	return r
}

// metrics collects every data point, by instrument name.
func (r *rig) metrics(t *testing.T) map[string]metricdata.Aggregation {
	t.Helper()
	var rm metricdata.ResourceMetrics
	require.NoError(t, r.reader.Collect(context.Background(), &rm))
	out := map[string]metricdata.Aggregation{}
	for _, sm := range rm.ScopeMetrics {
		assert.Equal(t, otelhooks.ScopeName, sm.Scope.Name)
		for _, m := range sm.Metrics {
			out[m.Name] = m.Data
		}
	}
	return out
}

// spanByName returns the one ended span named name.
func (r *rig) spanByName(t *testing.T, name string) tracetest.SpanStub {
	t.Helper()
	var found []tracetest.SpanStub
	for _, s := range r.spans.GetSpans() {
		if s.Name == name {
			found = append(found, s)
		}
	}
	require.Len(t, found, 1, "spans named %q among %v", name, spanNames(r.spans.GetSpans()))
	return found[0]
}

func spanNames(spans tracetest.SpanStubs) []string {
	var names []string
	for _, s := range spans {
		names = append(names, s.Name)
	}
	return names
}

// attrs turns attributes into a map of their values as strings.
func attrs(kvs []attribute.KeyValue) map[string]string {
	m := map[string]string{}
	for _, kv := range kvs {
		m[string(kv.Key)] = kv.Value.String()
	}
	return m
}

// sum returns the value of the counter's point whose attributes include
// want, and how many points matched.
func sum(t *testing.T, data metricdata.Aggregation, want map[string]string) (int64, int) {
	t.Helper()
	if data == nil {
		return 0, 0
	}
	s, ok := data.(metricdata.Sum[int64])
	require.True(t, ok, "%T is not an int64 sum", data)
	var total int64
	n := 0
	for _, p := range s.DataPoints {
		if includes(attrs(p.Attributes.ToSlice()), want) {
			total += p.Value
			n++
		}
	}
	return total, n
}

// histCount returns the count of the histogram's points whose attributes
// include want.
func histCount(t *testing.T, data metricdata.Aggregation, want map[string]string) uint64 {
	t.Helper()
	if data == nil {
		return 0
	}
	h, ok := data.(metricdata.Histogram[float64])
	require.True(t, ok, "%T is not a float64 histogram", data)
	var n uint64
	for _, p := range h.DataPoints {
		if includes(attrs(p.Attributes.ToSlice()), want) {
			assert.Equal(t, otelhooks.DurationBuckets, p.Bounds)
			n += p.Count
		}
	}
	return n
}

func includes(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

var errBoom = errors.New("boom")

// TestStatusPolicy delivers one message for each outcome of the status
// policy, inside an HTTP server span as otelhttp makes it, and checks the
// spans and the metric points it produces.
func TestStatusPolicy(t *testing.T) {
	updated := nectarhooks.EventConnectionUpdated
	payload := nectarhookstest.Sample(updated)
	ok := func(context.Context) error { return nil }
	type row struct {
		name     string
		opts     []nectarhooks.Option
		callback func(context.Context) error // OnConnectionUpdated; nil for none
		// edit changes the signed request before it is served.
		edit func(r *http.Request)
		// before runs before the delivery, with its message id.
		before func(t *testing.T, s *nectarhooks.MemoryStore, id string)

		wantStatus    int
		wantOutcome   string
		wantErrorType string // "" for no error and status Unset
		wantProcess   bool   // a process span for the callback
		wantReason    string // a verification failure counted
		verified      bool
	}
	rows := []row{
		{name: "processed", callback: ok, wantStatus: 200, wantOutcome: "processed", wantProcess: true, verified: true},
		{name: "unhandled", wantStatus: 200, wantOutcome: "unhandled", wantProcess: true, verified: true},
		{name: "callback error", callback: func(context.Context) error { return errBoom },
			wantStatus: 500, wantOutcome: "failed", wantErrorType: "callback_error", wantProcess: true, verified: true},
		{name: "callback panic", callback: func(context.Context) error { panic(errBoom) },
			wantStatus: 500, wantOutcome: "failed", wantErrorType: "panic", wantProcess: true, verified: true},
		{name: "callback timeout", opts: []nectarhooks.Option{nectarhooks.WithCallbackTimeout(time.Millisecond)},
			callback:   func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() },
			wantStatus: 503, wantOutcome: "timeout", wantErrorType: "callback_timeout", wantProcess: true, verified: true},
		{name: "forged", callback: ok,
			edit: func(r *http.Request) {
				r.Header.Set("Svix-Signature", "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
			},
			wantStatus: 401, wantOutcome: "rejected", wantErrorType: "no_matching_signature", wantReason: "no_matching_signature"},
		{name: "unsigned", callback: ok,
			edit:       func(r *http.Request) { r.Header.Del("Svix-Signature") },
			wantStatus: 401, wantOutcome: "rejected", wantErrorType: "missing_headers", wantReason: "missing_headers"},
		{name: "GET", callback: ok, edit: func(r *http.Request) { r.Method = http.MethodGet },
			wantStatus: 405, wantOutcome: "rejected", wantErrorType: "method_not_allowed"},
		{name: "duplicate", callback: ok, opts: []nectarhooks.Option{},
			before: func(t *testing.T, s *nectarhooks.MemoryStore, id string) {
				_, token, err := s.Claim(context.Background(), id, time.Minute)
				require.NoError(t, err)
				require.NoError(t, s.Complete(context.Background(), id, token))
			},
			wantStatus: 200, wantOutcome: "duplicate", verified: true},
		{name: "in flight", callback: ok,
			before: func(t *testing.T, s *nectarhooks.MemoryStore, id string) {
				_, _, err := s.Claim(context.Background(), id, time.Hour)
				require.NoError(t, err)
			},
			wantStatus: 409, wantOutcome: "in_flight", wantErrorType: "in_flight", verified: true},
		{name: "queued", callback: ok, opts: []nectarhooks.Option{nectarhooks.WithQueue(queueFunc(func(context.Context, nectarhooks.Message) error { return nil }))},
			wantStatus: 202, wantOutcome: "queued", verified: true},
		{name: "queued already", callback: ok, opts: []nectarhooks.Option{nectarhooks.WithQueue(queueFunc(func(_ context.Context, msg nectarhooks.Message) error {
			return fmt.Errorf("job of %s exists: %w", msg.ID, nectarhooks.ErrAlreadyQueued)
		}))},
			wantStatus: 202, wantOutcome: "duplicate", verified: true},
		{name: "queue full", callback: ok, opts: []nectarhooks.Option{nectarhooks.WithQueue(queueFunc(func(context.Context, nectarhooks.Message) error { return nectarhooks.ErrQueueFull }))},
			wantStatus: 503, wantOutcome: "unavailable", wantErrorType: "queue_full", verified: true},
	}
	for _, tt := range rows {
		t.Run(tt.name, func(t *testing.T) {
			opts := tt.opts
			store := nectarhooks.NewMemoryStore(0, 0)
			if tt.before != nil {
				opts = append(opts, nectarhooks.WithIdempotency(store))
			}
			r := newRig(t, opts...)
			if tt.callback != nil {
				r.h.OnConnectionUpdated(func(ctx context.Context, _ *nectarhooks.ConnectionUpdated) error { return tt.callback(ctx) })
			}
			id := nectarhookstest.NewMessageID()
			if tt.before != nil {
				tt.before(t, store, id)
			}
			req := r.signer.RequestFor("/webhooks/nectar", id, time.Now(), payload)
			if tt.edit != nil {
				tt.edit(req)
			}
			// The server span otelhttp would start, and the delivery
			// inside it.
			rr := httptest.NewRecorder()
			otelhttp.NewHandler(r.h, "webhooks", otelhttp.WithTracerProvider(r.tp)).ServeHTTP(rr, req)
			require.Equal(t, tt.wantStatus, rr.Code, rr.Body.String())

			// Spans: server > receive [> process].
			var server tracetest.SpanStub
			for _, s := range r.spans.GetSpans() {
				if s.SpanKind == trace.SpanKindServer {
					server = s
				}
			}
			require.True(t, server.SpanContext.IsValid(), "no server span")
			receiveName := "receive"
			if tt.verified {
				receiveName = "receive " + string(updated)
			}
			receive := r.spanByName(t, receiveName)
			assert.Equal(t, server.SpanContext.SpanID(), receive.Parent.SpanID(), "receive is not the server span's child")
			assert.Equal(t, trace.SpanKindConsumer, receive.SpanKind)
			a := attrs(receive.Attributes)
			assert.Equal(t, "svix", a["messaging.system"])
			assert.Equal(t, "receive", a["messaging.operation.type"])
			assert.Equal(t, tt.wantOutcome, a["nectarhooks.outcome"])
			assert.Equal(t, tt.wantStatus, int(attrInt(receive.Attributes, "http.response.status_code")))
			if tt.verified {
				assert.Equal(t, id, a["messaging.message.id"])
				assert.Equal(t, string(updated), a["nectarhooks.event.type"])
			} else {
				assert.NotContains(t, a, "messaging.message.id")
				assert.NotContains(t, a, "nectarhooks.event.type")
			}
			if tt.wantErrorType == "" {
				assert.Equal(t, codes.Unset, receive.Status.Code)
				assert.NotContains(t, a, "error.type")
			} else {
				assert.Equal(t, codes.Error, receive.Status.Code)
				assert.Equal(t, tt.wantErrorType, receive.Status.Description)
				assert.Equal(t, tt.wantErrorType, a["error.type"])
			}
			spans := 2
			if tt.wantProcess {
				spans = 3
				process := r.spanByName(t, "process "+string(updated))
				assert.Equal(t, receive.SpanContext.SpanID(), process.Parent.SpanID(), "process is not the receive span's child")
				assert.Equal(t, trace.SpanKindInternal, process.SpanKind)
				pa := attrs(process.Attributes)
				assert.Equal(t, "process", pa["messaging.operation.type"])
				assert.Equal(t, id, pa["messaging.message.id"])
				assert.Equal(t, tt.wantOutcome, pa["nectarhooks.outcome"])
				if tt.wantErrorType == "" {
					assert.Equal(t, codes.Unset, process.Status.Code)
					assert.Empty(t, process.Events)
				} else {
					assert.Equal(t, codes.Error, process.Status.Code)
					require.Len(t, process.Events, 1, "the callback's error recorded")
					ev := attrs(process.Events[0].Attributes)
					assert.Equal(t, "exception", process.Events[0].Name)
					if tt.wantErrorType == "callback_timeout" {
						assert.Contains(t, ev["exception.message"], "deadline exceeded")
					} else {
						assert.Contains(t, ev["exception.message"], "boom")
					}
					if tt.wantErrorType == "panic" {
						assert.Contains(t, ev["exception.stacktrace"], "otelhooks_test", "the panic's own stack")
					}
					assert.Empty(t, receive.Events, "the callback's error recorded twice")
				}
			}
			assert.Len(t, r.spans.GetSpans(), spans, "%v", spanNames(r.spans.GetSpans()))

			// Metrics.
			m := r.metrics(t)
			want := map[string]string{"nectarhooks.outcome": tt.wantOutcome, "http.response.status_code": itoa(tt.wantStatus)}
			if tt.verified {
				want["nectarhooks.event.type"] = string(updated)
			}
			n, points := sum(t, m[otelhooks.DeliveriesName], want)
			assert.Equal(t, int64(1), n, "deliveries %v", want)
			assert.Equal(t, 1, points)
			assert.Equal(t, uint64(1), histCount(t, m[otelhooks.DeliveryDurationName], want))
			callbacks := histCount(t, m[otelhooks.CallbackDurationName], map[string]string{"nectarhooks.outcome": tt.wantOutcome})
			if tt.wantProcess && tt.wantOutcome != "unhandled" {
				assert.Equal(t, uint64(1), callbacks)
			} else {
				assert.Zero(t, callbacks)
			}
			dups, _ := sum(t, m[otelhooks.DuplicatesName], map[string]string{"nectarhooks.event.type": string(updated)})
			assert.Equal(t, int64(boolInt(tt.wantOutcome == "duplicate")), dups)
			failures, _ := sum(t, m[otelhooks.VerificationFailuresName], nil)
			if tt.wantReason != "" {
				reason, _ := sum(t, m[otelhooks.VerificationFailuresName], map[string]string{"nectarhooks.verification.reason": tt.wantReason})
				assert.Equal(t, int64(1), reason)
				assert.Equal(t, int64(1), failures)
			} else {
				assert.Zero(t, failures)
			}

			assertNothingLeaks(t, r, payload)
		})
	}
}

// assertNothingLeaks checks every attribute of every span, span event,
// link and metric point for the secret and for any value of the payload.
func assertNothingLeaks(t *testing.T, r *rig, payload []byte) {
	t.Helper()
	forbidden := []string{r.secret, strings.TrimPrefix(r.secret, "whsec_"), string(payload)}
	var doc any
	require.NoError(t, json.Unmarshal(payload, &doc))
	eventType := nectarhooks.PeekEventType(payload)
	walkStrings(doc, func(s string) {
		if len(s) >= 4 && s != string(eventType) {
			forbidden = append(forbidden, s)
		}
	})
	require.Greater(t, len(forbidden), 8, "too few payload values to look for")
	check := func(where string, kvs []attribute.KeyValue) {
		for _, kv := range kvs {
			v := kv.Value.String()
			for _, f := range forbidden {
				assert.NotContains(t, v, f, "%s attribute %s holds a secret or payload value", where, kv.Key)
			}
		}
	}
	for _, s := range r.spans.GetSpans() {
		check(s.Name, s.Attributes)
		for _, e := range s.Events {
			check(s.Name+" event "+e.Name, e.Attributes)
		}
		for _, l := range s.Links {
			check(s.Name+" link", l.Attributes)
		}
		for _, f := range forbidden {
			assert.NotContains(t, s.Name, f)
			assert.NotContains(t, s.Status.Description, f)
		}
	}
	for name, data := range r.metrics(t) {
		switch d := data.(type) {
		case metricdata.Sum[int64]:
			for _, p := range d.DataPoints {
				check(name, p.Attributes.ToSlice())
			}
		case metricdata.Histogram[float64]:
			for _, p := range d.DataPoints {
				check(name, p.Attributes.ToSlice())
			}
		case metricdata.Gauge[int64]:
			for _, p := range d.DataPoints {
				check(name, p.Attributes.ToSlice())
			}
		default:
			t.Errorf("metric %s of unexpected type %T", name, data)
		}
	}
}

func walkStrings(v any, fn func(string)) {
	switch v := v.(type) {
	case string:
		fn(v)
	case []any:
		for _, e := range v {
			walkStrings(e, fn)
		}
	case map[string]any:
		for _, e := range v {
			walkStrings(e, fn)
		}
	}
}

func attrInt(kvs []attribute.KeyValue, key string) int64 {
	for _, kv := range kvs {
		if string(kv.Key) == key {
			return kv.Value.AsInt64()
		}
	}
	return -1
}

func itoa(n int) string { return attribute.IntValue(n).String() }

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// queueFunc is a nectarhooks.Queue made of a function.
type queueFunc func(context.Context, nectarhooks.Message) error

func (f queueFunc) Enqueue(ctx context.Context, m nectarhooks.Message) error { return f(ctx, m) }

// TestAsyncLinksToReceive checks that the callback of a WithAsync Handler,
// run after the answer, has a process span in a trace of its own, linked
// to the receive span, and that the queue depth gauge reads the queue.
func TestAsyncLinksToReceive(t *testing.T) {
	defer goleak.VerifyNone(t)
	r := newRig(t, nectarhooks.WithAsync(1, 8))
	reg, err := r.obs.ObserveQueue(r.h)
	require.NoError(t, err)
	defer func() { require.NoError(t, reg.Unregister()) }()
	started, release := make(chan struct{}, 8), make(chan struct{})
	r.h.OnDocumentCreated(func(context.Context, *nectarhooks.DocumentCreated) error {
		started <- struct{}{}
		<-release
		return errBoom
	})
	payload := nectarhookstest.Sample(nectarhooks.EventDocumentCreated)
	var ids []string
	for i := range 3 {
		id := nectarhookstest.NewMessageID()
		ids = append(ids, id)
		rr := httptest.NewRecorder()
		r.h.ServeHTTP(rr, r.signer.RequestFor("/", id, time.Now(), payload))
		require.Equal(t, http.StatusAccepted, rr.Code)
		if i == 0 {
			<-started // the worker holds the first; the others wait
		}
	}

	gauge := func() int64 {
		g, ok := r.metrics(t)[otelhooks.QueueDepthName].(metricdata.Gauge[int64])
		require.True(t, ok)
		require.Len(t, g.DataPoints, 1)
		return g.DataPoints[0].Value
	}
	assert.Equal(t, int64(2), gauge())
	close(release)
	require.NoError(t, r.h.Shutdown(context.Background()))
	assert.Zero(t, gauge())

	receives := map[string]tracetest.SpanStub{}
	processes := map[string]tracetest.SpanStub{}
	for _, s := range r.spans.GetSpans() {
		id := attrs(s.Attributes)["messaging.message.id"]
		switch s.Name {
		case "receive document.created.v2":
			receives[id] = s
		case "process document.created.v2":
			processes[id] = s
		default:
			t.Errorf("unexpected span %q", s.Name)
		}
	}
	for _, id := range ids {
		recv, proc := receives[id], processes[id]
		require.True(t, proc.SpanContext.IsValid(), "no process span for %s", id)
		assert.Equal(t, "queued", attrs(recv.Attributes)["nectarhooks.outcome"])
		assert.Equal(t, trace.SpanKindConsumer, proc.SpanKind)
		assert.False(t, proc.Parent.IsValid(), "the process span is not a root")
		assert.NotEqual(t, recv.SpanContext.TraceID(), proc.SpanContext.TraceID())
		require.Len(t, proc.Links, 1)
		assert.Equal(t, recv.SpanContext.SpanID(), proc.Links[0].SpanContext.SpanID())
		assert.Equal(t, recv.SpanContext.TraceID(), proc.Links[0].SpanContext.TraceID())
		assert.Equal(t, codes.Error, proc.Status.Code)
		pa := attrs(proc.Attributes)
		assert.Equal(t, "failed", pa["nectarhooks.outcome"])
		assert.NotContains(t, pa, "http.response.status_code", "a callback after the answer has no status")
	}
	m := r.metrics(t)
	assert.Equal(t, uint64(3), histCount(t, m[otelhooks.CallbackDurationName], map[string]string{"nectarhooks.outcome": "failed"}))
	assert.Equal(t, uint64(3), histCount(t, m[otelhooks.QueueWaitName], map[string]string{"nectarhooks.event.type": "document.created.v2"}))
	assertNothingLeaks(t, r, payload)
}

// TestQueuePropagation carries the trace context through a Queue, as a
// durable queue's job metadata would, and checks that the consumer's
// process span is a child of the job's span and links to the receive
// span.
func TestQueuePropagation(t *testing.T) {
	var (
		mu   sync.Mutex
		jobs []map[string]string
		msgs []nectarhooks.Message
	)
	var obs *otelhooks.Observer
	r := newRig(t, nectarhooks.WithQueue(queueFunc(func(ctx context.Context, m nectarhooks.Message) error {
		meta := propagation.MapCarrier{}
		obs.Inject(ctx, meta)
		mu.Lock()
		defer mu.Unlock()
		jobs = append(jobs, meta)
		msgs = append(msgs, m)
		return nil
	})))
	obs = r.obs
	r.h.OnDocumentCreated(func(context.Context, *nectarhooks.DocumentCreated) error { return nil })
	payload := nectarhookstest.Sample(nectarhooks.EventDocumentCreated)
	rr := httptest.NewRecorder()
	r.h.ServeHTTP(rr, r.signer.Request("/", payload))
	require.Equal(t, http.StatusAccepted, rr.Code)
	require.Len(t, jobs, 1)
	assert.Contains(t, jobs[0], "traceparent")

	// The consumer: a job span of the queue's own, and the message.
	ctx, job := r.tp.Tracer("queue").Start(context.Background(), "job")
	err := r.h.DispatchVerified(r.obs.Extract(ctx, propagation.MapCarrier(jobs[0])), msgs[0])
	job.End()
	require.NoError(t, err)

	recv := r.spanByName(t, "receive document.created.v2")
	proc := r.spanByName(t, "process document.created.v2")
	jobSpan := r.spanByName(t, "job")
	assert.Equal(t, jobSpan.SpanContext.SpanID(), proc.Parent.SpanID())
	assert.Equal(t, trace.SpanKindConsumer, proc.SpanKind)
	require.Len(t, proc.Links, 1)
	assert.Equal(t, recv.SpanContext.SpanID(), proc.Links[0].SpanContext.SpanID())
	assert.Equal(t, "processed", attrs(proc.Attributes)["nectarhooks.outcome"])

	// Without a trace context, Extract adds nothing.
	assert.Equal(t, ctx, r.obs.Extract(ctx, propagation.MapCarrier{}))
}

func TestObserveQueueNil(t *testing.T) {
	obs, err := otelhooks.New()
	require.NoError(t, err)
	_, err = obs.ObserveQueue(nil)
	assert.Error(t, err)
}

// TestOverrunningGauge: a callback that ignores its context and hangs past
// its deadline shows in the overrunning gauge until it returns.
func TestOverrunningGauge(t *testing.T) {
	r := newRig(t, nectarhooks.WithCallbackTimeout(10*time.Millisecond))
	reg, err := r.obs.ObserveQueue(r.h)
	require.NoError(t, err)
	defer func() { require.NoError(t, reg.Unregister()) }()
	release, returned := make(chan struct{}), make(chan struct{})
	r.h.OnDocumentCreated(func(context.Context, *nectarhooks.DocumentCreated) error {
		defer close(returned)
		<-release
		return nil
	})
	gauge := func() int64 {
		g, ok := r.metrics(t)[otelhooks.OverrunningName].(metricdata.Gauge[int64])
		require.True(t, ok)
		require.Len(t, g.DataPoints, 1)
		return g.DataPoints[0].Value
	}
	assert.Zero(t, gauge())
	rr := httptest.NewRecorder()
	r.h.ServeHTTP(rr, r.signer.Request("/", nectarhookstest.Sample(nectarhooks.EventDocumentCreated)))
	require.Equal(t, http.StatusServiceUnavailable, rr.Code)
	assert.Equal(t, int64(1), gauge())
	close(release)
	<-returned
	require.Eventually(t, func() bool { return gauge() == 0 }, 10*time.Second, 5*time.Millisecond)
}

// TestObserveBacklog: the backlog gauges read what the function returns at
// each collection.
func TestObserveBacklog(t *testing.T) {
	r := newRig(t)
	var waiting atomic.Int64
	reg, err := r.obs.ObserveBacklog(func(context.Context) (int64, time.Duration, error) {
		return waiting.Load(), time.Duration(waiting.Load()) * time.Second, nil
	})
	require.NoError(t, err)
	defer func() { require.NoError(t, reg.Unregister()) }()
	for _, n := range []int64{0, 1700, 3} {
		waiting.Store(n)
		m := r.metrics(t)
		g, ok := m[otelhooks.BacklogName].(metricdata.Gauge[int64])
		require.True(t, ok)
		require.Len(t, g.DataPoints, 1)
		assert.Equal(t, n, g.DataPoints[0].Value)
		age, ok := m[otelhooks.BacklogAgeName].(metricdata.Gauge[float64])
		require.True(t, ok)
		require.Len(t, age.DataPoints, 1)
		assert.Equal(t, float64(n), age.DataPoints[0].Value)
	}
	_, err = r.obs.ObserveBacklog(nil)
	assert.Error(t, err)
}
