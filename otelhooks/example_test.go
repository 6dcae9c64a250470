package otelhooks_test

import (
	"context"
	"fmt"
	"net/http/httptest"

	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
	"github.com/nectarhooks/nectarhooks/otelhooks"
)

// New records to the providers given, here the SDK's with in-memory
// exporters; without options it records to the global ones.
func ExampleNew() {
	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))

	obs, err := otelhooks.New(otelhooks.WithTracerProvider(tp), otelhooks.WithMeterProvider(mp))
	if err != nil {
		panic(err)
	}
	secret := nectarhookstest.NewSecret()
	h, err := nectarhooks.NewHandler(secret, nectarhooks.WithObserver(obs))
	if err != nil {
		panic(err)
	}
	h.OnConnectionUpdated(func(context.Context, *nectarhooks.ConnectionUpdated) error { return nil })
	signer, err := nectarhookstest.NewSigner(secret)
	if err != nil {
		panic(err)
	}
	h.ServeHTTP(httptest.NewRecorder(), signer.Request("/", nectarhookstest.Sample(nectarhooks.EventConnectionUpdated)))

	for _, s := range spans.GetSpans() {
		fmt.Println("span:", s.Name, s.SpanKind)
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		panic(err)
	}
	for _, m := range rm.ScopeMetrics[0].Metrics {
		if m.Name == otelhooks.DeliveriesName {
			p := m.Data.(metricdata.Sum[int64]).DataPoints[0]
			outcome, _ := p.Attributes.Value(otelhooks.OutcomeKey)
			fmt.Println("metric:", m.Name, outcome.AsString(), p.Value)
		}
	}
	// Output:
	// span: process connection.updated.v2 internal
	// span: receive connection.updated.v2 consumer
	// metric: nectarhooks.deliveries processed 1
}

// Inject and Extract carry a delivery's trace context through a durable
// queue (WithQueue), so that the consumer's process span links to the
// receive span.
func ExampleObserver_Inject() {
	obs, err := otelhooks.New(otelhooks.WithPropagator(propagation.TraceContext{}))
	if err != nil {
		panic(err)
	}
	type job struct {
		msg  nectarhooks.Message
		meta propagation.MapCarrier // stored with the job, as River's metadata
	}
	jobs := make(chan job, 1)
	enqueue := queueFunc(func(ctx context.Context, m nectarhooks.Message) error {
		j := job{msg: m, meta: propagation.MapCarrier{}}
		obs.Inject(ctx, j.meta) // ctx carries the receive span
		jobs <- j
		return nil
	})
	h, err := nectarhooks.NewHandler(nectarhookstest.NewSecret(), nectarhooks.WithObserver(obs), nectarhooks.WithQueue(enqueue))
	if err != nil {
		panic(err)
	}

	// The consumer, with the job's own context.
	consume := func(ctx context.Context, j job) error {
		return h.DispatchVerified(obs.Extract(ctx, j.meta), j.msg)
	}
	_ = consume
}
