package nectarhooks

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// An Observer sees every delivery a Handler takes, successful or not, so
// that metrics and traces can be built on the Handler without reaching into
// it: see the otelhooks module for OpenTelemetry. Set one with
// WithObserver.
//
// A delivery is observed in up to two stages, each opened with Start and
// closed with End on the same goroutine:
//
//   - StageReceive, for each request ServeHTTP or Dispatch takes: from
//     before the body is read until the answer is written (or Dispatch
//     returns);
//   - StageProcess, for each run of a callback: nested inside StageReceive
//     when the callback runs before the answer, on a worker after it with
//     WithAsync, and on its own for DispatchVerified, as a consumer of
//     WithQueue calls it.
//
// A delivery that is refused before its callback could be chosen (not
// verified, not decoded, a duplicate, in flight, not queued) has a
// StageReceive and no StageProcess; one whose event type has no callback
// has a StageProcess that ends OutcomeUnhandled.
//
// An Observer relates to WithErrorHandler as a meter to an alarm: the error
// handler (or, without one, the log) is called for failures only, with
// the error and the status; the Observer is called for every delivery, in
// addition, after the error handler, with the same status and error and
// the timings. Setting one changes nothing of what the other receives.
//
// Its methods run on the request's or the worker's goroutine, for every
// delivery, concurrently: they must be quick and safe for concurrent use,
// and must not keep the Delivery's Message or its Payload (untrusted bytes
// that may hold personal data) beyond End.
type Observer interface {
	// Start is called when a stage begins, with what is known then: the
	// Stage, and for StageProcess the Message, Detached and Queue. The
	// context it returns replaces ctx for the rest of the stage: the
	// callback's context derives from it, a Queue's Enqueue receives it,
	// and End is called with it. Return ctx itself to add nothing.
	Start(ctx context.Context, d Delivery) context.Context
	// End is called once the stage is over, with the context Start
	// returned and everything the stage found out.
	End(ctx context.Context, d Delivery)
}

// WithObserver sets o to be told of every delivery a Handler takes (see
// Observer). It affects Handlers only; Verifier.Middleware does not call
// it. Default: none, and nothing is timed: a Handler without an Observer
// pays neither a clock reading nor an allocation for it.
func WithObserver(o Observer) Option {
	return func(opts *options) error {
		opts.observer = o
		return nil
	}
}

// Stage tells which part of a delivery an Observer is told about.
type Stage uint8

const (
	// StageReceive is one request from Svix, up to its answer.
	StageReceive Stage = iota + 1
	// StageProcess is one run of the callback for a verified message.
	StageProcess
)

// String returns "receive" or "process", as OpenTelemetry's messaging
// conventions name the two operations.
func (s Stage) String() string {
	switch s {
	case StageReceive:
		return "receive"
	case StageProcess:
		return "process"
	}
	return fmt.Sprintf("Stage(%d)", uint8(s))
}

// Outcome is how a stage of a delivery ended, in the terms of the
// Handler's status policy. Its String is short and stable, for use as a
// metric attribute.
type Outcome uint8

const (
	// OutcomeProcessed: the callback returned nil (200; for StageProcess,
	// also after a 202).
	OutcomeProcessed Outcome = iota + 1
	// OutcomeQueued: taken by the queue of WithAsync or WithQueue (202).
	OutcomeQueued
	// OutcomeDuplicate: the idempotency store had the message as processed
	// already (200), or the Queue of WithQueue had it already
	// (ErrAlreadyQueued, 202); acknowledged without running the callback
	// or queuing the message again.
	OutcomeDuplicate
	// OutcomeUnhandled: no callback for the event type; acknowledged (200).
	OutcomeUnhandled
	// OutcomeRejected: refused as the sender's mistake or a forgery: not a
	// POST, too large, unreadable, failed verification, invalid payload
	// (405, 413, 400, 401).
	OutcomeRejected
	// OutcomeInFlight: an earlier delivery of the message is still being
	// processed (409).
	OutcomeInFlight
	// OutcomeFailed: the callback returned an error or panicked (500, or 0
	// after the answer).
	OutcomeFailed
	// OutcomeTimeout: the callback failed after its deadline (503, or 0
	// after the answer).
	OutcomeTimeout
	// OutcomeUnavailable: the queue was full, the Handler shutting down or
	// the idempotency store unavailable (503).
	OutcomeUnavailable
	// OutcomeDeadLettered: given up on and recorded as a dead letter
	// (ErrDeadLettered): answered with "webhook-delivery: abort-message"
	// (500 for a Permanent error, 400 for a payload that does not decode),
	// or failed after a WithAsync answer (0). Each dead letter a delivery
	// or a callback's run writes ends exactly one stage with it; a queued
	// message whose claim could not be renewed is recorded without a
	// stage, as it never ran.
	OutcomeDeadLettered
	// OutcomeStale: the callback returned ErrStale, from an ordering
	// guard: a newer version of the event's entity was applied already,
	// so this one was not; acknowledged (200) and recorded as processed.
	OutcomeStale
)

var outcomeNames = [...]string{
	OutcomeProcessed:    "processed",
	OutcomeQueued:       "queued",
	OutcomeDuplicate:    "duplicate",
	OutcomeUnhandled:    "unhandled",
	OutcomeRejected:     "rejected",
	OutcomeInFlight:     "in_flight",
	OutcomeFailed:       "failed",
	OutcomeTimeout:      "timeout",
	OutcomeUnavailable:  "unavailable",
	OutcomeDeadLettered: "dead_lettered",
	OutcomeStale:        "stale",
}

// String returns the outcome's name: "processed", "queued", "duplicate",
// "unhandled", "rejected", "in_flight", "failed", "timeout",
// "unavailable", "dead_lettered" or "stale".
func (o Outcome) String() string {
	if int(o) < len(outcomeNames) && outcomeNames[o] != "" {
		return outcomeNames[o]
	}
	return fmt.Sprintf("Outcome(%d)", uint8(o))
}

// Acknowledged reports whether the outcome tells Svix the delivery
// arrived (2xx), so that it is not retried.
func (o Outcome) Acknowledged() bool {
	return o >= OutcomeProcessed && o <= OutcomeUnhandled || o == OutcomeStale
}

// Delivery is what an Observer is told about one stage of a delivery. At
// Start only Stage and, for StageProcess, Message, Detached and Queue are
// set.
type Delivery struct {
	// Stage is the stage this is about.
	Stage Stage
	// Detached is set for a StageProcess that runs on a WithAsync worker,
	// after the answer: its context still carries what Start added to the
	// StageReceive that queued the message (which has ended by then), so
	// a trace should link to that rather than nest in it. A StageProcess
	// of DispatchVerified is not Detached but stands alone: its context is
	// the caller's, and there is no StageReceive.
	Detached bool
	// Message is the verified message, or nil when the delivery was not
	// verified (then Err says why). Its ID and EventType are safe to
	// record; its Payload is untrusted input that may hold personal data:
	// read it only, and do not keep it or record it.
	Message *Message
	// Outcome is how the stage ended; zero at Start.
	Outcome Outcome
	// Status is the HTTP status answered: for StageReceive the answer of
	// ServeHTTP (or the one Dispatch's error maps to), for StageProcess the
	// answer that waited for the callback (or that DispatchVerified's
	// error maps to), and 0 for a callback that ran after the answer, as
	// WithErrorHandler has it.
	Status int
	// Err is the cause of an Outcome that is not acknowledged, as the
	// error handler receives it; nil otherwise.
	Err error
	// Read is the time spent reading the request body (StageReceive of
	// ServeHTTP; Dispatch is handed the body).
	Read time.Duration
	// Verify is the time spent checking the signature (StageReceive).
	Verify time.Duration
	// Decode is the time spent decoding the payload (StageReceive).
	Decode time.Duration
	// Queue is the time a message waited in the WithAsync queue, from its
	// claim at intake until a worker took it (StageProcess, Detached).
	Queue time.Duration
	// Callback is the time the callback ran, settling its idempotency
	// claim included, or, for one that had not returned some time past its
	// deadline and was left running, the time until it was given up on
	// (StageProcess).
	Callback time.Duration
	// Total is the time from Start to End.
	Total time.Duration
}

// QueueDepth returns the number of messages waiting in the queue of
// WithAsync for a worker, for a metric or a health check; always 0 for a
// Handler without WithAsync.
func (h *Handler) QueueDepth() int {
	if h.async == nil {
		return 0
	}
	return len(h.async.jobs)
}

// observation is one stage being observed. It lives on the stack of the
// function running the stage, and is all zero, costing only nil checks,
// when there is no Observer.
type observation struct {
	obs   Observer        // nil when not observing
	ctx   context.Context // what Start returned, or the stage's own context
	start time.Time
	mark  time.Time // the end of the last lap
	d     Delivery
}

// observe opens a stage: it calls the Observer's Start, if any, with d.
func (h *Handler) observe(ctx context.Context, d Delivery) observation {
	o := h.opts.observer
	if o == nil {
		return observation{ctx: ctx}
	}
	now := time.Now()
	return observation{obs: o, ctx: o.Start(ctx, d), start: now, mark: now, d: d}
}

// lap sets *dst to the time since the last lap, when observing. dst is a
// field of ob.d.
func (ob *observation) lap(dst *time.Duration) {
	if ob.obs == nil {
		return
	}
	now := time.Now()
	*dst = now.Sub(ob.mark)
	ob.mark = now
}

// verified records the verified message, when observing.
func (ob *observation) verified(msg *Message) {
	if ob.obs != nil {
		ob.d.Message = msg
	}
}

// end closes the stage with its status and error (nil or an
// acknowledgement of process's for a 2xx).
func (ob *observation) end(status int, err error) {
	if ob.obs == nil {
		return
	}
	ob.d.Total = time.Since(ob.start)
	ob.d.Status = status
	ob.d.Outcome, ob.d.Err = outcome(status, err)
	ob.obs.End(ob.ctx, ob.d)
}

// request returns r with the stage's context, when observing, so that the
// error handler sees what Start added (a span, say).
func (ob *observation) request(r *http.Request) *http.Request {
	if ob.obs == nil {
		return r
	}
	return r.WithContext(ob.ctx)
}

// outcome classifies a stage's end, and returns the error to report:
// nil for acknowledged outcomes.
func outcome(status int, err error) (Outcome, error) {
	switch {
	case err == nil && status == http.StatusAccepted:
		return OutcomeQueued, nil
	case err == nil:
		return OutcomeProcessed, nil
	case err == errDuplicate, err == ErrAlreadyQueued:
		return OutcomeDuplicate, nil
	case err == errUnhandled:
		return OutcomeUnhandled, nil
	case err == errStale:
		return OutcomeStale, nil
	}
	if errors.Is(err, ErrDeadLettered) {
		return OutcomeDeadLettered, err
	}
	if status == 0 {
		status = StatusCode(err)
	}
	switch {
	case status == http.StatusConflict:
		return OutcomeInFlight, err
	case status < 500:
		return OutcomeRejected, err
	case status == http.StatusInternalServerError:
		return OutcomeFailed, err
	case errors.Is(err, ErrCallbackTimeout):
		return OutcomeTimeout, err
	}
	return OutcomeUnavailable, err
}

// observedCall runs the callback for msg and settles its claim token
// (runCallback), inside a StageProcess observation when there is an
// Observer. detached is set on a WithAsync worker, after the answer;
// queued is then when the message was claimed and queued at intake.
func (h *Handler) observedCall(ctx context.Context, msg *Message, ev Event, token string, detached bool, queued time.Time) error {
	if h.opts.observer == nil {
		return h.afterCall(ctx, msg, h.runCallback(ctx, msg, ev, token, detached), detached)
	}
	d := Delivery{Stage: StageProcess, Detached: detached, Message: msg}
	if detached {
		d.Queue = time.Since(queued)
	}
	ob := h.observe(ctx, d)
	err := h.runCallback(ob.ctx, msg, ev, token, detached)
	ob.lap(&ob.d.Callback)
	err = h.afterCall(ob.ctx, msg, err, detached)
	status := 0 // after the answer, as the error handler has it
	if !detached {
		status = deliveryStatus(false, err, msg)
	}
	ob.end(status, err)
	return err
}
