package otelhooks

import (
	"context"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// linkKey is the context key under which Extract leaves the receive span's
// context for the next process span to link to.
type linkKey struct{}

// Inject writes the trace context of ctx, the context a
// nectarhooks.Queue's Enqueue receives, into carrier (a job's metadata,
// say, as a propagation.MapCarrier), so that the queue's consumer can link
// the callback's span to the delivery's receive span with Extract. It
// uses the Observer's propagator (WithPropagator).
func (o *Observer) Inject(ctx context.Context, carrier propagation.TextMapCarrier) {
	o.propagator.Inject(ctx, carrier)
}

// Extract reads the trace context Inject wrote into carrier and returns a
// copy of ctx that carries it as a link, for the consumer to pass to
// Handler.DispatchVerified: the process span is then a child of ctx's own
// span (the queue job's, say), in its trace, and links to the receive
// span. ctx is returned as it is when carrier holds no valid trace
// context.
func (o *Observer) Extract(ctx context.Context, carrier propagation.TextMapCarrier) context.Context {
	sc := trace.SpanContextFromContext(o.propagator.Extract(context.Background(), carrier))
	if !sc.IsValid() {
		return ctx
	}
	return context.WithValue(ctx, linkKey{}, sc)
}
