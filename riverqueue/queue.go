package riverqueue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/nectarhooks/nectarhooks"
)

// DefaultInsertTimeout is how long an insert may take by default: waiting
// for a connection from an exhausted pool, or for a database that does not
// answer. Enqueue returns within twice this (see WithInsertTimeout): past
// it the Handler answers 503, inside the 15 seconds Svix waits, and Svix
// delivers again later.
const DefaultInsertTimeout = 5 * time.Second

// Queue implements nectarhooks.Queue by inserting one River job per
// message: give it to nectarhooks.WithQueue. Enqueue returns once the job
// is committed, or once River found the message's job already there (a
// redelivery; then with nectarhooks.ErrAlreadyQueued, so that it is
// counted as a duplicate), so that the Handler's 202 always means "on
// disk".
// Concurrent deliveries share inserts (WithConcurrentInserts), and a
// bounded number of them wait for one (WithMaxPending). It is safe for
// concurrent use, and needs no closing: it has no goroutine of its own.
type Queue[TTx any] struct {
	client  *river.Client[TTx]
	opts    river.InsertOpts
	timeout time.Duration
	inject  func(ctx context.Context, carrier map[string]string) // WithTraceInjector

	mu          sync.Mutex
	pending     []*insert // waiting for a batch, oldest first
	inserting   int       // batches being inserted now
	maxInserts  int       // WithConcurrentInserts
	maxPending  int       // WithMaxPending
	peakPending int       // the longest pending has been, for tests
}

// An Option configures a Queue.
type Option func(*queueOptions)

type queueOptions struct {
	queue       string
	maxAttempts int
	timeout     time.Duration
	inserts     int
	pending     int
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
// included, and each delivery's wait for an insert to take it. A delivery
// that arrives while every insert is busy waits for one of them to end (see
// WithConcurrentInserts), at most this long, and is then inserted, at most
// this long again: Enqueue returns within twice this, plus scheduling (10
// seconds by default, inside the 15 Svix waits for an answer), whatever
// the database does; keep it under 7 seconds. A delivery that found no
// insert within this returns an error matching nectarhooks.ErrQueueFull.
// Zero or less keeps the default, DefaultInsertTimeout (5 seconds).
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

// DefaultMaxPending is how many deliveries may wait for an insert with the
// default options: one batch for each of the DefaultConcurrentInserts
// inserts (see WithMaxPending).
const DefaultMaxPending = maxBatch * DefaultConcurrentInserts

// WithMaxPending bounds the deliveries that wait for an insert while every
// insert is busy; past it Enqueue returns an error matching
// nectarhooks.ErrQueueFull at once, and the Handler answers 503, which Svix
// retries later. Each waiting delivery holds its request, its body (up to
// nectarhooks.DefaultMaxBodyBytes) and a goroutine, so the bound also bounds
// the memory a burst or an unanswering database can take. Zero or less
// keeps the default: one full batch (128) for each concurrent insert
// (WithConcurrentInserts), DefaultMaxPending (512) with the default 4. That
// is what the next round of inserts takes: a delivery past it would wait
// for the round after, which, when the database does not answer, comes
// after its own wait ended (WithInsertTimeout), so it would wait only to
// fail; while the database answers, a round takes milliseconds, and 512
// waiting means a burst far beyond Svix's usual concurrency.
func WithMaxPending(n int) Option {
	return func(o *queueOptions) { o.pending = n }
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
	if o.pending <= 0 {
		o.pending = maxBatch * o.inserts
	}
	return &Queue[TTx]{
		client:     client,
		opts:       river.InsertOpts{Queue: o.queue, MaxAttempts: o.maxAttempts},
		timeout:    o.timeout,
		maxInserts: o.inserts,
		maxPending: o.pending,
		inject:     o.inject,
	}
}

// errBacklog is wrapped by the error of a delivery refused at once because
// WithMaxPending deliveries already wait for an insert.
var errBacklog = fmt.Errorf("%w: too many deliveries waiting for an insert", nectarhooks.ErrQueueFull)

// errNoSlot is wrapped by the error of a delivery that waited for an
// insert until WithInsertTimeout or its context ended.
var errNoSlot = fmt.Errorf("%w: no insert slot became free", nectarhooks.ErrQueueFull)

// KeepsAccounts makes Queue a nectarhooks.AccountQueue, which
// nectarhooks.NewAccountHandler takes: a job keeps Message.Account
// (Args.Account) and is unique by account and id.
func (q *Queue[TTx]) KeepsAccounts() {}

var _ nectarhooks.AccountQueue = (*Queue[any])(nil)

// Enqueue inserts the job of msg and commits it. A redelivery of a message
// whose job exists (available, running, retryable or completed and not yet
// deleted), or one that shared an insert with an earlier delivery of the
// same message, inserts nothing and returns an error matching
// nectarhooks.ErrAlreadyQueued, which names the job: the Handler answers it
// 202, as the first delivery, and its Observer sees OutcomeDuplicate
// (otelhooks counts it in nectarhooks.duplicates), not OutcomeQueued. Any
// failure returns an error, which the Handler answers with 503; when the
// Queue cannot take the delivery (WithMaxPending deliveries wait already, or
// none of the inserts became free within WithInsertTimeout or before ctx
// ended) the error matches nectarhooks.ErrQueueFull. Enqueue returns within
// twice WithInsertTimeout. Once its insert has begun it waits for the
// commit, also when ctx ends (an insert under way cannot be taken back, and
// the wait is bounded by WithInsertTimeout).
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
	switch {
	case q.inserting < q.maxInserts:
		q.inserting++
		q.mu.Unlock()
		q.run(ctx, []*insert{in})
		return in.err
	case len(q.pending) >= q.maxPending:
		q.mu.Unlock()
		return fmt.Errorf("riverqueue: message %s: %w (%d, WithMaxPending)", msg.ID, errBacklog, q.maxPending)
	}
	q.pending = append(q.pending, in)
	q.peakPending = max(q.peakPending, len(q.pending))
	q.mu.Unlock()
	if err := q.await(ctx, in); err != nil {
		return err
	}
	if in.batch != nil {
		// Handed the next batch: insert it, this message among them.
		q.run(ctx, in.batch)
	}
	return in.err
}

// await waits until in is settled or handed a batch, and returns nil; or,
// once the insert timeout has passed or ctx ended, takes in out of pending
// and returns why. If in left pending a moment before, for a batch, its
// outcome is on its way and await waits for it: the batch's insert is
// bounded by the insert timeout too.
func (q *Queue[TTx]) await(ctx context.Context, in *insert) error {
	t := time.NewTimer(q.timeout)
	defer t.Stop()
	var why error
	select {
	case <-in.ready:
		return nil
	case <-t.C:
		why = fmt.Errorf("riverqueue: message %s: %w within %s: %w", in.args.ID, errNoSlot, q.timeout, context.DeadlineExceeded)
	case <-ctx.Done():
		why = fmt.Errorf("riverqueue: message %s: %w before the delivery ended: %w", in.args.ID, errNoSlot, context.Cause(ctx))
	}
	q.mu.Lock()
	i := slices.Index(q.pending, in)
	if i >= 0 {
		q.pending = slices.Delete(q.pending, i, i+1)
	}
	q.mu.Unlock()
	if i < 0 {
		<-in.ready
		return nil
	}
	return why
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
	q.insertBatch(ctx, batch)
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

// insertBatch inserts the jobs of batch in one statement, commits them,
// and sets each member's err, all within the insert timeout. Two deliveries
// of one message in a batch become one row: PostgreSQL cannot resolve a
// unique conflict between two rows of one statement. When the database
// refuses the batch (rowError), the refusal may be one member's alone (a
// string jsonb cannot store, say): each member is then inserted alone, in
// the time left, so that only the members the database refuses fail, and
// not every delivery that happened to share their batch.
func (q *Queue[TTx]) insertBatch(ctx context.Context, batch []*insert) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), q.timeout)
	defer cancel()
	if len(batch) == 1 {
		batch[0].err = q.insertOne(ctx, batch[0])
		return
	}
	params := make([]river.InsertManyParams, 0, len(batch))
	seen := make(map[string]bool, len(batch))
	for _, in := range batch {
		if k := in.args.key(); !seen[k] {
			seen[k] = true
			params = append(params, river.InsertManyParams{Args: in.args, InsertOpts: &q.opts})
		}
	}
	// In the order of their unique keys, so that concurrent batches
	// (other replicas' too) lock them in one order and cannot deadlock.
	slices.SortFunc(params, func(a, b river.InsertManyParams) int {
		return strings.Compare(a.Args.(Args).key(), b.Args.(Args).key())
	})
	results, err := q.client.InsertMany(ctx, params)
	if err == nil {
		settleDuplicates(batch, results)
		return
	}
	if rowError(err) {
		for _, in := range batch {
			in.err = q.insertOne(ctx, in)
		}
		return
	}
	err = fmt.Errorf("riverqueue: inserting %d messages: %w", len(batch), q.explain(err))
	for _, in := range batch {
		in.err = err
	}
}

// insertOne inserts the job of in alone and commits it.
func (q *Queue[TTx]) insertOne(ctx context.Context, in *insert) error {
	res, err := q.client.Insert(ctx, in.args, &q.opts)
	if err != nil {
		return fmt.Errorf("riverqueue: inserting message %s: %w", in.args.ID, q.explain(err))
	}
	if res.UniqueSkippedAsDuplicate {
		return alreadyQueued(in.args.ID, res.Job)
	}
	return nil
}

// settleDuplicates sets the err of the members of a committed batch whose
// message had a job already: before the batch (River reports the row it
// found instead, UniqueSkippedAsDuplicate), or from an earlier member of
// the batch, which made one row of both. The results are matched to the
// members by message id, read from the args of the rows River skipped
// only, so that a batch without redeliveries decodes nothing.
func settleDuplicates(batch []*insert, results []*rivertype.JobInsertResult) {
	var found map[string]*rivertype.JobRow
	for _, res := range results {
		if res == nil || !res.UniqueSkippedAsDuplicate || res.Job == nil {
			continue
		}
		var args struct {
			ID      string `json:"id"`
			Account string `json:"account"`
		}
		if json.Unmarshal(res.Job.EncodedArgs, &args) != nil {
			continue
		}
		if found == nil {
			found = map[string]*rivertype.JobRow{}
		}
		found[Args{ID: args.ID, Account: args.Account}.key()] = res.Job
	}
	var first map[string]bool // ids seen, when two members share one row
	if len(batch) > len(results) {
		first = make(map[string]bool, len(batch))
	}
	for _, in := range batch {
		id, k := in.args.ID, in.args.key()
		switch job, had := found[k]; {
		case had:
			in.err = alreadyQueued(id, job)
		case first != nil && first[k]:
			in.err = alreadyQueued(id, nil)
		case first != nil:
			first[k] = true
		}
	}
}

// alreadyQueued is the error of a delivery whose message has job already;
// job is nil when it is the one a delivery in the same batch inserted.
func alreadyQueued(id string, job *rivertype.JobRow) error {
	if job == nil {
		return fmt.Errorf("riverqueue: message %s: %w (inserted by another delivery of it in the same batch)", id, nectarhooks.ErrAlreadyQueued)
	}
	return fmt.Errorf("riverqueue: message %s: %w (job %d, %s)", id, nectarhooks.ErrAlreadyQueued, job.ID, job.State)
}

// explain adds the insert timeout to the error of an insert that ran out
// of it.
func (q *Queue[TTx]) explain(err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("no answer within %s: %w", q.timeout, err)
	}
	return err
}

// rowError reports whether err is PostgreSQL refusing a statement for what
// it holds (a *pgconn.PgError: invalid data, a constraint, a deadlock), so
// that the rows inserted alone may fare otherwise. Not a timeout or a
// failed connection, nor the classes of error that concern the server and
// not the rows (08 connection exception, 53 insufficient resources, 57
// operator intervention, statement_timeout included, 58 system error):
// inserted alone, every row would fail the same, and take the time left
// doing so.
func rowError(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || len(pgErr.Code) < 2 {
		return false
	}
	switch pgErr.Code[:2] {
	case "08", "53", "57", "58":
		return false
	}
	return true
}
