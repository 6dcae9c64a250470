package otelhooks

import (
	"context"
	"errors"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/nectarhooks/nectarhooks"
)

// The options of the spans' starts, made once: a delivery allocates
// nothing for them unless its span has links.
var (
	receiveStart = []trace.SpanStartOption{
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(semconv.MessagingSystemKey.String(messagingSystem),
			semconv.MessagingOperationName("receive"), semconv.MessagingOperationTypeReceive),
	}
	processStart = []trace.SpanStartOption{
		trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithAttributes(semconv.MessagingSystemKey.String(messagingSystem),
			semconv.MessagingOperationName("process"), semconv.MessagingOperationTypeProcess),
	}
	consumerProcessStart = []trace.SpanStartOption{
		trace.WithSpanKind(trace.SpanKindConsumer),
		processStart[1],
	}
)

// startSpan starts the span of a stage:
//
//   - StageReceive: a consumer span named "receive", child of the
//     context's span (the incoming HTTP request's under otelhttp).
//   - StageProcess inside StageReceive: an internal span named "process",
//     child of the receive span.
//   - StageProcess on a WithAsync worker (Detached): a consumer span
//     starting a trace of its own, linked to the receive span that queued
//     the message.
//   - StageProcess of DispatchVerified, in a context Extract returned: a
//     consumer span, child of the caller's span (a queue job's, say),
//     linked to the receive span Inject wrote down. Without Extract, an
//     internal span, child of the caller's.
//
// endSpan renames them after the event type once it is known.
func startSpan(ctx context.Context, tracer trace.Tracer, d nectarhooks.Delivery) context.Context {
	if d.Stage != nectarhooks.StageProcess {
		ctx, _ = tracer.Start(ctx, "receive", receiveStart...)
		return ctx
	}
	var span trace.Span
	switch link, linked := ctx.Value(linkKey{}).(trace.SpanContext); {
	case d.Detached:
		opts := append(consumerProcessStart[:2:2], trace.WithNewRoot(), trace.WithLinks(trace.LinkFromContext(ctx)))
		ctx, span = tracer.Start(ctx, "process", opts...)
	case linked:
		opts := append(consumerProcessStart[:2:2], trace.WithLinks(trace.Link{SpanContext: link}))
		ctx, span = tracer.Start(ctx, "process", opts...)
	default:
		ctx, span = tracer.Start(ctx, "process", processStart...)
	}
	if d.Message != nil && span.IsRecording() {
		span.SetAttributes(semconv.MessagingMessageID(d.Message.ID))
	}
	return ctx
}

// endSpan names the span after the event type, sets the attributes the
// stage found out and its status, and ends it.
//
// The span status is Error for every outcome that is not acknowledged
// (Svix will retry, or the callback failed after the answer), with the
// error's class as description; errors of a callback are recorded as
// exception events on the process span, a panic with its stack.
func endSpan(span trace.Span, d nectarhooks.Delivery) {
	if !span.IsRecording() {
		span.End()
		return
	}
	attrs := make([]attribute.KeyValue, 0, 7)
	if d.Message != nil {
		if d.Stage == nectarhooks.StageReceive { // a process span has it from its start
			attrs = append(attrs, semconv.MessagingMessageID(d.Message.ID))
		}
		if d.Message.Account != "" {
			attrs = append(attrs, AccountKey.String(d.Message.Account))
		}
		if d.Message.EventType != "" {
			span.SetName(spanName(d.Stage, d.Message.EventType))
			attrs = append(attrs, EventTypeKey.String(string(d.Message.EventType)))
		}
	}
	attrs = append(attrs, OutcomeKey.String(d.Outcome.String()))
	if d.Status != 0 {
		attrs = append(attrs, semconv.HTTPResponseStatusCode(d.Status))
	}
	if d.Err != nil {
		et := errorType(d.Err)
		attrs = append(attrs, semconv.ErrorTypeKey.String(et))
		span.SetStatus(codes.Error, et)
		if d.Stage == nectarhooks.StageProcess || !fromCallback(d.Outcome) {
			recordError(span, d.Err)
		}
	}
	span.SetAttributes(attrs...)
	span.End()
}

// fromCallback reports whether an outcome's error came from the callback,
// and so was recorded on the process span already.
func fromCallback(o nectarhooks.Outcome) bool {
	return o == nectarhooks.OutcomeFailed || o == nectarhooks.OutcomeTimeout
}

// recordError adds an exception event for err, with the stack of a panic.
func recordError(span trace.Span, err error) {
	var p *nectarhooks.PanicError
	if errors.As(err, &p) {
		span.RecordError(err, trace.WithAttributes(semconv.ExceptionStacktrace(string(p.Stack))))
		return
	}
	span.RecordError(err)
}

// knownSpanNames holds the span names of the event types this version
// knows, by stage, made once rather than for every delivery.
var knownSpanNames = func() map[nectarhooks.EventType][2]string {
	m := map[nectarhooks.EventType][2]string{}
	for _, et := range nectarhooks.EventTypes() {
		m[et] = [2]string{"receive " + string(et), "process " + string(et)}
	}
	return m
}()

// spanName is the name of a stage's span once the event type is known:
// the operation and the event type, as the messaging conventions name
// spans after their operation and destination.
func spanName(stage nectarhooks.Stage, et nectarhooks.EventType) string {
	if names, ok := knownSpanNames[et]; ok && stage == nectarhooks.StageReceive {
		return names[0]
	} else if ok {
		return names[1]
	}
	return stage.String() + " " + string(et)
}
