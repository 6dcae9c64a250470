package riverqueue

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/riverqueue/river"

	"github.com/nectarhooks/nectarhooks"
)

// DefaultInsertTimeout is how long Enqueue waits for its insert by default:
// for a connection from an exhausted pool, or a database that does not
// answer. Past it the Handler answers 503, well inside the 15 seconds Svix
// waits, and Svix delivers again later.
const DefaultInsertTimeout = 5 * time.Second

// Queue implements nectarhooks.Queue by inserting one River job per
// message: give it to nectarhooks.WithQueue. Enqueue returns once the job
// is committed, or once River found the message's job already there (a
// redelivery), so that the Handler's 202 always means "on disk". It is safe
// for concurrent use.
type Queue[TTx any] struct {
	client  *river.Client[TTx]
	opts    river.InsertOpts
	timeout time.Duration
}

// An Option configures a Queue.
type Option func(*queueOptions)

type queueOptions struct {
	queue       string
	maxAttempts int
	timeout     time.Duration
}

// WithQueueName puts the jobs in the named River queue, which the workers'
// river.Config.Queues must list. Default: River's default queue
// (river.QueueDefault).
func WithQueueName(name string) Option {
	return func(o *queueOptions) { o.queue = name }
}

// WithMaxAttempts sets how many times River runs a message's callback
// before discarding it (the last failure reaches the Handler's error
// handler). Zero or less keeps the default: river.Config.MaxAttempts of the
// inserting client, itself 25 by default, which with River's default backoff
// spreads retries over about three weeks.
func WithMaxAttempts(n int) Option {
	return func(o *queueOptions) { o.maxAttempts = max(n, 0) }
}

// WithInsertTimeout bounds each insert, from the moment the Handler calls
// Enqueue: waiting for a pooled connection included. Zero or less keeps the
// default, DefaultInsertTimeout (5 seconds).
func WithInsertTimeout(d time.Duration) Option {
	return func(o *queueOptions) { o.timeout = d }
}

// New returns a Queue that inserts jobs with client. An insert-only client
// (river.Config without Queues or Workers) will do: workers may run in
// other processes on the same database.
func New[TTx any](client *river.Client[TTx], opts ...Option) *Queue[TTx] {
	var o queueOptions
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	if o.timeout <= 0 {
		o.timeout = DefaultInsertTimeout
	}
	return &Queue[TTx]{
		client:  client,
		opts:    river.InsertOpts{Queue: o.queue, MaxAttempts: o.maxAttempts},
		timeout: o.timeout,
	}
}

// Enqueue inserts the job of msg and commits it. A redelivery of a message
// whose job exists (available, running, retryable or completed and not yet
// deleted) inserts nothing and returns nil: the Handler acknowledges it. Any
// failure returns an error, which the Handler answers with 503.
func (q *Queue[TTx]) Enqueue(ctx context.Context, msg nectarhooks.Message) error {
	ctx, cancel := context.WithTimeout(ctx, q.timeout)
	defer cancel()
	_, err := q.client.Insert(ctx, NewArgs(msg), &q.opts)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("no answer within %s: %w", q.timeout, err)
		}
		return fmt.Errorf("riverqueue: inserting message %s: %w", msg.ID, err)
	}
	return nil
}
