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

// startOptions are the options of a stage's span.
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
func startOptions(ctx context.Context, d nectarhooks.Delivery) []trace.SpanStartOption {
	opts := []trace.SpanStartOption{
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(
			semconv.MessagingSystemKey.String(messagingSystem),
			semconv.MessagingOperationName(d.Stage.String()),
			operationType(d.Stage),
		),
	}
	if d.Stage != nectarhooks.StageProcess {
		return opts
	}
	if d.Message != nil {
		opts = append(opts, trace.WithAttributes(semconv.MessagingMessageID(d.Message.ID)))
	}
	if d.Detached {
		return append(opts, trace.WithNewRoot(), trace.WithLinks(trace.LinkFromContext(ctx)))
	}
	if link, ok := ctx.Value(linkKey{}).(trace.SpanContext); ok {
		return append(opts, trace.WithLinks(trace.Link{SpanContext: link}))
	}
	opts[0] = trace.WithSpanKind(trace.SpanKindInternal)
	return opts
}

func operationType(s nectarhooks.Stage) attribute.KeyValue {
	if s == nectarhooks.StageReceive {
		return semconv.MessagingOperationTypeReceive
	}
	return semconv.MessagingOperationTypeProcess
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
	attrs := make([]attribute.KeyValue, 0, 6)
	if d.Message != nil {
		attrs = append(attrs, semconv.MessagingMessageID(d.Message.ID))
		if d.Message.EventType != "" {
			span.SetName(d.Stage.String() + " " + string(d.Message.EventType))
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
