package riverqueue

import (
	"context"
	"errors"
	"time"

	"github.com/riverqueue/river"

	"github.com/nectarhooks/nectarhooks"
)

// Worker implements river.Worker[Args]: it passes each job's message to
// Handler.DispatchVerified, which decodes it and runs the callback (under
// the Handler's idempotency store, if any). Register it with
// river.AddWorker on the clients that work jobs.
//
// Work returns nil when the callback succeeded or the message was
// acknowledged without one (no callback for its event type, or already
// processed according to the idempotency store), and the callback's error
// otherwise, so that River retries the job with its backoff (a panic is
// recovered into a *nectarhooks.PanicError). The error of the last attempt,
// after which River discards the job, also reaches the Handler's error
// handler with status 0 and the Message in its context. A payload that no
// longer decodes, or a callback's nectarhooks.Permanent error, cancels the
// job at once, since no retry can help, and is reported the same way.
// Discarded and cancelled jobs are the dead letters (ListDeadLetters,
// ReplayDeadLetters; keep them with KeepDeadLetters).
//
// The callback's context is River's job context: it ends at the job
// timeout (WithTimeout, else river.Config.JobTimeout, 1 minute by default)
// or at the Handler's callback timeout (nectarhooks.WithCallbackTimeout, 10
// seconds by default), whichever comes first, and when the client stops.
// Raise both for callbacks that take longer.
//
// The Handler's idempotency store calls are bounded by
// nectarhooks.WithStoreTimeout, 1 second by default, which suits intake,
// where Svix waits for the answer. A worker answers nobody: with many
// workers sharing a small pool, calls queue for a connection, and a second
// is too short (examples/production measured 270 "complete: context
// deadline exceeded" with 100 workers on pgx's default 4 connections). Give
// the workers' Handler a longer WithStoreTimeout, such as 10 seconds, and
// its store a pool sized for the workers.
type Worker struct {
	river.WorkerDefaults[Args]
	h       *nectarhooks.Handler
	timeout time.Duration
	extract func(ctx context.Context, carrier map[string]string) context.Context // WithTraceExtractor
}

// A WorkerOption configures a Worker.
type WorkerOption func(*Worker)

// WithTimeout sets River's job timeout for messages: their context is
// cancelled after d. Default: 0, the client's river.Config.JobTimeout.
func WithTimeout(d time.Duration) WorkerOption {
	return func(w *Worker) { w.timeout = d }
}

// WithTraceExtractor has extract read the trace context a Queue's
// WithTraceInjector wrote into a job (Args.Trace) into the callback's
// context, before Handler.DispatchVerified; it is not called for jobs
// without one. With otelhooks, whose process span then links to the
// delivery's receive span:
//
//	riverqueue.WithTraceExtractor(func(ctx context.Context, carrier map[string]string) context.Context {
//		return obs.Extract(ctx, propagation.MapCarrier(carrier))
//	})
//
// Default: none.
func WithTraceExtractor(extract func(ctx context.Context, carrier map[string]string) context.Context) WorkerOption {
	return func(w *Worker) { w.extract = extract }
}

// NewWorker returns a Worker running h's callbacks. h may be the intake's
// Handler (made with nectarhooks.WithQueue) or another with the same
// callbacks; DispatchVerified ignores WithQueue and checks no signature.
func NewWorker(h *nectarhooks.Handler, opts ...WorkerOption) *Worker {
	w := &Worker{h: h}
	for _, opt := range opts {
		if opt != nil {
			opt(w)
		}
	}
	return w
}

// Timeout returns River's job timeout for job (see WithTimeout).
func (w *Worker) Timeout(*river.Job[Args]) time.Duration { return w.timeout }

// Work runs the callback for job's message, as the Worker's doc describes.
func (w *Worker) Work(ctx context.Context, job *river.Job[Args]) error {
	msg := job.Args.Message()
	ctx = withJob(ctx, job) // for CompleteTx
	if w.extract != nil && len(job.Args.Trace) > 0 {
		ctx = w.extract(ctx, job.Args.Trace)
	}
	err := w.h.DispatchVerified(ctx, msg)
	if err == nil {
		return nil
	}
	// DispatchVerified reports nothing: the Handler's error handler hears of
	// failures River will not retry. The report outlives the job's context.
	report := nectarhooks.ContextWithMessage(context.WithoutCancel(ctx), msg)
	if errors.Is(err, nectarhooks.ErrInvalidPayload) || errors.Is(err, nectarhooks.ErrPermanent) {
		w.h.ReportError(report, 0, err)
		return river.JobCancel(err)
	}
	if job.Attempt >= job.MaxAttempts {
		w.h.ReportError(report, 0, err)
	}
	return err
}
