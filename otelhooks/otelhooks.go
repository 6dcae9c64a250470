// Package otelhooks gives a nectarhooks.Handler OpenTelemetry traces and
// metrics: a span for each delivery, with a child span for its callback,
// and counters and histograms of deliveries by event type and outcome.
//
// It is a nectarhooks.Observer, set with nectarhooks.WithObserver:
//
//	obs, err := otelhooks.New() // the global TracerProvider and MeterProvider
//	if err != nil {
//		log.Fatal(err)
//	}
//	h, err := nectarhooks.NewHandler(secret, nectarhooks.WithObserver(obs))
//
// Mounted under otelhttp, each delivery's span is a child of the incoming
// request's span. The package uses the OpenTelemetry API only: the
// application chooses the SDK and exporters.
package otelhooks

import (
	"context"
	"errors"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/nectarhooks/nectarhooks"
)

// ScopeName is the instrumentation scope of the Tracer and Meter the
// Observer gets from its providers: this package's import path.
const ScopeName = "github.com/nectarhooks/nectarhooks/otelhooks"

// An Option configures New.
type Option func(*config)

type config struct {
	tracerProvider trace.TracerProvider
	meterProvider  metric.MeterProvider
	propagator     propagation.TextMapPropagator
}

// WithTracerProvider sets where spans go. Default: otel.GetTracerProvider()
// when New is called.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(c *config) { c.tracerProvider = tp }
}

// WithMeterProvider sets where metrics go. Default: otel.GetMeterProvider()
// when New is called.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(c *config) { c.meterProvider = mp }
}

// WithPropagator sets how Inject and Extract write and read a trace
// context. Default: otel.GetTextMapPropagator() when New is called.
func WithPropagator(p propagation.TextMapPropagator) Option {
	return func(c *config) { c.propagator = p }
}

// Observer records deliveries as spans and metrics. It implements
// nectarhooks.Observer; make one with New and pass it to
// nectarhooks.WithObserver. It is safe for concurrent use, and one Observer
// may serve several Handlers.
type Observer struct {
	tracer     trace.Tracer
	propagator propagation.TextMapPropagator
	metrics    *instruments
	trouble    *trouble // dead letters and failing deliveries (trouble.go)
}

// New returns an Observer recording to the providers the options give, by
// default the global ones. It fails only when an instrument cannot be
// created.
func New(opts ...Option) (*Observer, error) {
	c := config{}
	for _, opt := range opts {
		opt(&c)
	}
	if c.tracerProvider == nil {
		c.tracerProvider = otel.GetTracerProvider()
	}
	if c.meterProvider == nil {
		c.meterProvider = otel.GetMeterProvider()
	}
	if c.propagator == nil {
		c.propagator = otel.GetTextMapPropagator()
	}
	m, err := newInstruments(c.meterProvider.Meter(ScopeName))
	if err != nil {
		return nil, err
	}
	t, err := newTrouble(m.meter)
	if err != nil {
		return nil, err
	}
	return &Observer{
		tracer:     c.tracerProvider.Tracer(ScopeName),
		propagator: c.propagator,
		metrics:    m,
		trouble:    t,
	}, nil
}

// Start opens the stage's span; see docs/observability.md
// for their names and attributes.
func (o *Observer) Start(ctx context.Context, d nectarhooks.Delivery) context.Context {
	return startSpan(ctx, o.tracer, d)
}

// End records the stage's metrics and closes its span.
func (o *Observer) End(ctx context.Context, d nectarhooks.Delivery) {
	o.metrics.record(ctx, d)
	o.trouble.record(ctx, d, o.metrics)
	endSpan(trace.SpanFromContext(ctx), d)
}

// ObserveQueue reports h's WithAsync queue depth (Handler.QueueDepth) as
// the nectarhooks.queue.depth gauge, and its callbacks running past their
// deadline (Handler.Overrunning) as nectarhooks.callbacks.overrunning, each
// time metrics are collected, until the returned Registration is
// unregistered. The gauges have no attributes, so they report one Handler
// per MeterProvider: call it once. For a Handler without WithAsync the
// queue depth reads 0.
func (o *Observer) ObserveQueue(h *nectarhooks.Handler) (metric.Registration, error) {
	if h == nil {
		return nil, errors.New("otelhooks: ObserveQueue(nil)")
	}
	return o.metrics.meter.RegisterCallback(func(_ context.Context, obs metric.Observer) error {
		obs.ObserveInt64(o.metrics.queueDepth, int64(h.QueueDepth()))
		obs.ObserveInt64(o.metrics.overrunning, int64(h.Overrunning()))
		return nil
	}, o.metrics.queueDepth, o.metrics.overrunning)
}

// ObserveBacklog reports what read returns, each time metrics are
// collected, as the nectarhooks.queue.backlog gauge (messages a durable
// queue holds for its workers) and nectarhooks.queue.backlog.age (seconds
// the oldest has waited), until the returned Registration is unregistered.
// With WithQueue a 202 means accepted, not processed: these gauges say
// whether the workers keep up. For River, read with riverqueue.ReadBacklog:
//
//	obs.ObserveBacklog(func(ctx context.Context) (int64, time.Duration, error) {
//		b, err := riverqueue.ReadBacklog(ctx, pool, "")
//		return b.Available, b.OldestAge, err
//	})
//
// An error of read skips that collection's values and is returned to the
// MeterProvider, which reports it (otel.Handle). The gauges have no
// attributes: call it once per MeterProvider.
func (o *Observer) ObserveBacklog(read func(ctx context.Context) (waiting int64, oldest time.Duration, err error)) (metric.Registration, error) {
	if read == nil {
		return nil, errors.New("otelhooks: ObserveBacklog(nil)")
	}
	return observeCountAge(o.metrics.meter, o.metrics.backlog, o.metrics.backlogAge, read)
}

// observeCountAge registers read as the callback of a pair of gauges: how
// many messages wait (count) and how long the oldest has, in seconds
// (age). ObserveBacklog and ObserveDeadLetters share it; an error of read
// skips that collection's values.
func observeCountAge(m metric.Meter, count metric.Int64ObservableGauge, age metric.Float64ObservableGauge,
	read func(ctx context.Context) (int64, time.Duration, error)) (metric.Registration, error) {
	return m.RegisterCallback(func(ctx context.Context, obs metric.Observer) error {
		waiting, oldest, err := read(ctx)
		if err != nil {
			return err
		}
		obs.ObserveInt64(count, waiting)
		obs.ObserveFloat64(age, oldest.Seconds())
		return nil
	}, count, age)
}

var _ nectarhooks.Observer = (*Observer)(nil)
