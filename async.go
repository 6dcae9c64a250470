package nectarhooks

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// ErrQueueFull is the error, answered with 503, of a verified delivery the
// queue could not take (WithAsync, WithQueue): Svix retries it, so nothing
// is lost at intake.
var ErrQueueFull = errors.New("nectarhooks: queue full")

// ErrShuttingDown is the error, answered with 503, of a delivery that
// arrived after Handler.Shutdown began.
var ErrShuttingDown = errors.New("nectarhooks: handler is shutting down")

// Queue takes verified messages to be processed later, in place of the
// in-memory queue of WithAsync: a database table, NATS or SQS, so that a
// message survives a crash between the 202 answer and its callback. Its
// consumer passes each message to Handler.DispatchVerified, which decodes
// it and runs the callback (and the idempotency store, if any).
type Queue interface {
	// Enqueue stores msg or returns an error, then answered with 503;
	// return one matching ErrQueueFull when the queue cannot take more.
	Enqueue(ctx context.Context, msg Message) error
}

// WithQueue makes a Handler answer 202 once a delivery is verified,
// decoded and taken by q, and leaves the callbacks to q's consumer (see
// Queue). It cannot be combined with WithAsync. Default: none, callbacks
// run before the answer.
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
// Handler.Shutdown on the way out to drain the queue. With WithIdempotency
// a message is claimed when queued. workers and queueSize must be
// positive. Default: none, callbacks run before the answer.
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
	ctx   context.Context
	msg   *Message
	ev    Event
	token string // the idempotency claim's
}

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
	token, err := q.h.claim(ctx, msg)
	if err != nil {
		return err
	}
	// The callback runs after the request is answered: keep the context's
	// values (the Message, tracing) but not its cancellation.
	select {
	case q.jobs <- asyncJob{ctx: context.WithoutCancel(ctx), msg: msg, ev: ev, token: token}:
		return nil
	default:
		q.h.settle(ctx, msg, token, ErrQueueFull)
		return ErrQueueFull
	}
}

func (q *asyncQueue) work() {
	defer q.wg.Done()
	for j := range q.jobs {
		err := q.h.call(j.ctx, j.msg, j.ev)
		q.h.settle(j.ctx, j.msg, j.token, err)
		if _, ack := acknowledged(err, j.msg); err != nil && !ack {
			q.h.opts.report(j.ctx, 0, err)
		}
	}
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
// http.Server.Shutdown has returned. For other Handlers it returns nil at
// once.
func (h *Handler) Shutdown(ctx context.Context) error {
	if h.async == nil {
		return nil
	}
	return h.async.shutdown(ctx)
}
