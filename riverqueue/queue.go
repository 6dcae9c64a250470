package riverqueue

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
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
// redelivery), so that the Handler's 202 always means "on disk".
// Concurrent deliveries share inserts (WithConcurrentInserts). It is safe
// for concurrent use, and needs no closing: it has no goroutine of its own.
type Queue[TTx any] struct {
	client  *river.Client[TTx]
	opts    river.InsertOpts
	timeout time.Duration
	inject  func(ctx context.Context, carrier map[string]string) // WithTraceInjector

	mu         sync.Mutex
	pending    []*insert // waiting for a batch
	inserting  int       // batches being inserted now
	maxInserts int       // WithConcurrentInserts
}

// An Option configures a Queue.
type Option func(*queueOptions)

type queueOptions struct {
	queue       string
	maxAttempts int
	timeout     time.Duration
	inserts     int
	inject      func(ctx context.Context, carrier map[string]string)
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

// WithInsertTimeout bounds each insert, waiting for a pooled connection
// included. A delivery that arrives while every insert is busy waits for
// one of them to end first (see WithConcurrentInserts), so its Enqueue may
// take up to about twice this. Zero or less keeps the default,
// DefaultInsertTimeout (5 seconds).
func WithInsertTimeout(d time.Duration) Option {
	return func(o *queueOptions) { o.timeout = d }
}

// DefaultConcurrentInserts is how many inserts a Queue runs at once by
// default (see WithConcurrentInserts).
const DefaultConcurrentInserts = 4

// maxBatch bounds the jobs of one insert.
const maxBatch = 128

// WithConcurrentInserts sets how many inserts a Queue runs at once, each
// holding a pooled connection. Deliveries that arrive while all of them are
// busy wait and are then inserted together, in one statement and one
// commit (River's InsertMany, up to 128 jobs): under load a delivery costs
// the database a fraction of a transaction, and a quiet Queue inserts each
// delivery at once, alone. Zero or less keeps the default,
// DefaultConcurrentInserts (4); 1 serializes the inserts.
func WithConcurrentInserts(n int) Option {
	return func(o *queueOptions) { o.inserts = n }
}

// WithTraceInjector has inject write the trace context of each delivery
// into its job (Args.Trace), so that the Worker's WithTraceExtractor can
// link the callback's trace to the delivery's. inject receives the context
// Enqueue receives, which carries what the Handler's Observer added (a
// span); with otelhooks:
//
//	riverqueue.WithTraceInjector(func(ctx context.Context, carrier map[string]string) {
//		obs.Inject(ctx, propagation.MapCarrier(carrier))
//	})
//
// Default: none, and jobs carry no trace context.
func WithTraceInjector(inject func(ctx context.Context, carrier map[string]string)) Option {
	return func(o *queueOptions) { o.inject = inject }
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
	if o.inserts <= 0 {
		o.inserts = DefaultConcurrentInserts
	}
	return &Queue[TTx]{
		client:     client,
		opts:       river.InsertOpts{Queue: o.queue, MaxAttempts: o.maxAttempts},
		timeout:    o.timeout,
		maxInserts: o.inserts,
		inject:     o.inject,
	}
}

// Enqueue inserts the job of msg and commits it. A redelivery of a message
// whose job exists (available, running, retryable or completed and not yet
// deleted) inserts nothing and returns nil: the Handler acknowledges it. Any
// failure returns an error, which the Handler answers with 503. Enqueue
// waits for the commit, also when ctx ends (an insert under way cannot be
// taken back, and the wait is bounded by WithInsertTimeout).
func (q *Queue[TTx]) Enqueue(ctx context.Context, msg nectarhooks.Message) error {
	in := &insert{args: NewArgs(msg), ready: make(chan struct{})}
	if q.inject != nil {
		// Written now, from this delivery's context: the insert may run in
		// another delivery's batch.
		carrier := map[string]string{}
		if q.inject(ctx, carrier); len(carrier) > 0 {
			in.args.Trace = carrier
		}
	}
	q.mu.Lock()
	if q.inserting < q.maxInserts {
		q.inserting++
		q.mu.Unlock()
		q.run(ctx, []*insert{in})
	} else {
		q.pending = append(q.pending, in)
		q.mu.Unlock()
		<-in.ready
		if in.batch != nil {
			// Handed the next batch: insert it, this message among them.
			q.run(ctx, in.batch)
		}
	}
	return in.err
}

// insert is one Enqueue call's message and outcome.
type insert struct {
	args  Args
	ready chan struct{} // closed once: when err is set, or when batch is handed over
	batch []*insert     // the next batch, for the caller that is to insert it
	err   error
}

// run inserts batch, settles its members, then hands the deliveries that
// arrived meanwhile to the first of them as the next batch: no caller
// inserts more than one batch, and the inserts under way stay within
// maxInserts without a goroutine of the Queue's own.
func (q *Queue[TTx]) run(ctx context.Context, batch []*insert) {
	err := q.insertBatch(ctx, batch)
	q.mu.Lock()
	var next []*insert
	if n := min(len(q.pending), maxBatch); n > 0 {
		next = q.pending[:n:n]
		q.pending = append([]*insert(nil), q.pending[n:]...)
	} else {
		q.inserting--
	}
	q.mu.Unlock()
	for i, in := range batch {
		in.err = err
		// A batch's first member ran it: it waits on nothing (its ready
		// is unused, or was closed to hand it the batch).
		if i > 0 {
			close(in.ready)
		}
	}
	if next != nil {
		next[0].batch = next
		close(next[0].ready)
	}
}

// insertBatch inserts the jobs of batch in one statement and commits them.
// Two deliveries of one message in a batch become one row: PostgreSQL
// cannot resolve a unique conflict between two rows of one statement.
func (q *Queue[TTx]) insertBatch(ctx context.Context, batch []*insert) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), q.timeout)
	defer cancel()
	var err error
	if len(batch) == 1 {
		_, err = q.client.Insert(ctx, batch[0].args, &q.opts)
	} else {
		params := make([]river.InsertManyParams, 0, len(batch))
		seen := make(map[string]bool, len(batch))
		for _, in := range batch {
			if !seen[in.args.ID] {
				seen[in.args.ID] = true
				params = append(params, river.InsertManyParams{Args: in.args, InsertOpts: &q.opts})
			}
		}
		// In the order of their unique keys, so that concurrent batches
		// (other replicas' too) lock them in one order and cannot deadlock.
		slices.SortFunc(params, func(a, b river.InsertManyParams) int {
			return strings.Compare(a.Args.(Args).ID, b.Args.(Args).ID)
		})
		_, err = q.client.InsertMany(ctx, params)
	}
	if err == nil {
		return nil
	}
	if errors.Is(err, context.DeadlineExceeded) {
		err = fmt.Errorf("no answer within %s: %w", q.timeout, err)
	}
	if len(batch) == 1 {
		return fmt.Errorf("riverqueue: inserting message %s: %w", batch[0].args.ID, err)
	}
	return fmt.Errorf("riverqueue: inserting %d messages: %w", len(batch), err)
}
