package nectarhooks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// ErrQueueFull is the error, answered with 503, of a verified delivery the
// queue could not take (WithAsync, WithQueue): Svix retries it, so nothing
// is lost at intake.
var ErrQueueFull = errors.New("nectarhooks: queue full")

// ErrShuttingDown is the error, answered with 503, of a delivery that
// arrived after Handler.Shutdown began.
var ErrShuttingDown = errors.New("nectarhooks: handler is shutting down")

// ErrAlreadyQueued is what a Queue's Enqueue returns (matched with
// errors.Is) for a message it holds already, by its ID: a redelivery of a
// message an earlier delivery queued, whether it still waits, runs or was
// processed. The Handler answers 202, as it did the first delivery, since
// the message is safe in the queue; it does not call the error handler, and
// its Observer sees OutcomeDuplicate (otelhooks counts it in
// nectarhooks.duplicates), not OutcomeQueued, so that redeliveries are not
// counted as work taken.
var ErrAlreadyQueued = errors.New("nectarhooks: message already queued")

// Queue takes verified messages to be processed later, in place of the
// in-memory queue of WithAsync: a database table, NATS or SQS, so that a
// message survives a crash between the 202 answer and its callback. Its
// consumer passes each message to Handler.DispatchVerified, which decodes
// it and runs the callback (and the idempotency store, if any).
//
// Svix delivers a message again whenever it is not answered 2xx in time,
// and a portal user may resend it: a Queue that keeps one entry per
// message ID (a unique key, a deduplication ID) should say so when it
// turns a redelivery away, with ErrAlreadyQueued, so that it is counted as
// the duplicate it is.
type Queue interface {
	// Enqueue stores msg and returns nil (answered 202), or returns an
	// error matching ErrAlreadyQueued when it holds msg already (answered
	// 202 too, and counted as a duplicate), one matching ErrQueueFull when
	// it cannot take more (503), or any other error when it failed (503).
	Enqueue(ctx context.Context, msg Message) error
}

// WithQueue makes a Handler answer 202 once a delivery is verified,
// decoded and taken by q (or found there already: see ErrAlreadyQueued),
// and leaves the callbacks to q's consumer (see Queue). It cannot be
// combined with WithAsync. Default: none, callbacks run before the answer.
func WithQueue(q Queue) Option {
	return func(o *options) error {
		if q == nil {
			return fmt.Errorf("%w: WithQueue(nil)", errInvalidOption)
		}
		o.queue = q
		return nil
	}
}

type asyncConfig struct{ workers, size int }

// WithAsync makes a Handler answer 202 as soon as a delivery is verified,
// decoded and queued in memory, and run the callbacks on workers
// goroutines, so that slow work does not hold Svix's 15-second window.
// Requests that fail verification or decoding are still answered 401 or
// 400; when queueSize messages are waiting, a delivery is answered 503 and
// Svix retries it. A callback that fails after the answer cannot be retried
// by Svix: it reaches the error handler with status 0 and the Message in
// its context, to be stored or alerted on. Messages still queued when the
// process dies are lost, although Svix was told they arrived: use
// WithQueue with a durable queue where that matters, and call
// Handler.Shutdown on the way out to drain the queue.
//
// With WithIdempotency a message is claimed when queued, so that a
// redelivery is answered 200 once it was processed and 409 while it waits
// or runs. The claim's lease (WithCallbackTimeout plus LeaseGrace) runs
// from intake, and a message can wait in the queue longer than that: a
// worker that takes a message which waited for more than half of
// LeaseGrace releases the claim and claims it anew, so that the callback
// runs under a lease of its own. If meanwhile the lease ran out and another
// delivery (on this replica or another) claimed or processed the message,
// the worker leaves it to that one and does not run it. If the store
// cannot be reached then, the message is not run: it reaches the error
// handler with status 0 and an error matching ErrStoreUnavailable.
//
// workers and queueSize must be positive. Default: none, callbacks run
// before the answer.
func WithAsync(workers, queueSize int) Option {
	return func(o *options) error {
		if workers <= 0 || queueSize <= 0 {
			return fmt.Errorf("%w: WithAsync(%d, %d): want positive sizes", errInvalidOption, workers, queueSize)
		}
		o.async = &asyncConfig{workers: workers, size: queueSize}
		return nil
	}
}

// asyncQueue is the in-memory queue and worker pool of WithAsync.
type asyncQueue struct {
	h    *Handler
	jobs chan asyncJob
	mu   sync.RWMutex // held to read closed and send, or to close
	done bool
	wg   sync.WaitGroup
}

type asyncJob struct {
	ctx     context.Context
	msg     *Message
	ev      Event
	token   string    // the idempotency claim's
	claimed time.Time // when the claim was asked for, at or before its lease began
}

// reclaimAfter is how long a claimed message may wait in the queue before
// its worker claims it anew (see WithAsync): the rest of its lease then
// still covers the callback's deadline and its settling.
const reclaimAfter = LeaseGrace / 2

func newAsyncQueue(h *Handler, c asyncConfig) *asyncQueue {
	q := &asyncQueue{h: h, jobs: make(chan asyncJob, c.size)}
	q.wg.Add(c.workers)
	for range c.workers {
		go q.work()
	}
	return q
}

// enqueue claims and queues one message, or says why it cannot.
func (q *asyncQueue) enqueue(ctx context.Context, msg *Message, ev Event) error {
	q.mu.RLock()
	defer q.mu.RUnlock()
	if q.done {
		return ErrShuttingDown
	}
	claimed := time.Now() // before the claim: the lease may start any time after
	token, err := q.h.claim(ctx, msg)
	if err != nil {
		return err
	}
	// The callback runs after the request is answered: keep the context's
	// values (the Message, tracing) but not its cancellation.
	select {
	case q.jobs <- asyncJob{ctx: context.WithoutCancel(ctx), msg: msg, ev: ev, token: token, claimed: claimed}:
		return nil
	default:
		q.h.settle(ctx, msg, token, ErrQueueFull)
		return ErrQueueFull
	}
}

func (q *asyncQueue) work() {
	defer q.wg.Done()
	for j := range q.jobs {
		q.run(j)
	}
}

// run processes one queued message, under a renewed claim if it waited
// long, and reports a failure.
func (q *asyncQueue) run(j asyncJob) {
	// The error handler, the idempotency store and the logger are the
	// service's code: a panic of theirs on this goroutine would end the
	// process, and every message answered 202 and still queued with it.
	defer q.h.opts.recoverOffRequest(j.ctx, "on an async worker")
	if q.h.opts.idempotency != nil && time.Since(j.claimed) > reclaimAfter {
		token, err := q.reclaim(j)
		switch {
		case errors.Is(err, errDuplicate), errors.Is(err, ErrInFlight):
			q.h.opts.log().LogAttrs(j.ctx, slog.LevelDebug, "nectarhooks: queued message taken over by another delivery while it waited; not run here",
				slog.String("message_id", j.msg.ID), slog.String("event_type", string(j.msg.EventType)))
			return
		case err != nil:
			// Not run, and nobody retries it: a dead letter, if kept.
			q.h.opts.report(j.ctx, 0, q.h.giveUp(j.ctx, j.msg, err, true))
			return
		}
		j.token = token
	}
	// runCallback settles the claim, when the callback returns.
	err := q.h.observedCall(j.ctx, j.msg, j.ev, j.token, true, j.claimed)
	if _, ack := acknowledged(err, j.msg); err != nil && !ack {
		q.h.opts.report(j.ctx, 0, err)
	}
}

// reclaim trades the claim a job took at intake for a new one, with a
// whole lease. The claim cannot be renewed in place: the store would
// answer ClaimInFlight for the job's own claim. Between the Release and the
// Claim another delivery may take the message, and is then the one that
// runs it.
func (q *asyncQueue) reclaim(j asyncJob) (string, error) {
	if _, _, err := q.h.callStore(j.ctx, opRelease, j.msg, j.token); err != nil {
		// Claiming now would find the job's own claim in flight and
		// leave the message to nobody.
		return "", fmt.Errorf("%w: %w", ErrStoreUnavailable, err)
	}
	return q.h.claim(j.ctx, j.msg)
}

// shutdown stops intake and waits for the queue to drain.
func (q *asyncQueue) shutdown(ctx context.Context) error {
	q.mu.Lock()
	if !q.done {
		q.done = true
		close(q.jobs)
	}
	q.mu.Unlock()
	drained := make(chan struct{})
	go func() {
		q.wg.Wait()
		close(drained)
	}()
	select {
	case <-drained:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Shutdown stops a Handler made WithAsync from taking deliveries (later ones
// are answered 503, and Svix retries them) and waits until the queued ones
// have been processed or ctx ends, whichever is first. Call it after
// http.Server.Shutdown has returned. Callbacks left running past their
// deadline (see WithCallbackTimeout) are not waited for. For other
// Handlers it returns nil at once.
func (h *Handler) Shutdown(ctx context.Context) error {
	if h.async == nil {
		return nil
	}
	return h.async.shutdown(ctx)
}
