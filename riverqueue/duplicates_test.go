package riverqueue_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
	"github.com/nectarhooks/nectarhooks/riverqueue"
)

// outcomes is an Observer that records how each delivery (StageReceive)
// ended, by message id.
type outcomes struct {
	mu  sync.Mutex
	got map[string][]nectarhooks.Delivery
}

func (o *outcomes) Start(ctx context.Context, _ nectarhooks.Delivery) context.Context { return ctx }

func (o *outcomes) End(_ context.Context, d nectarhooks.Delivery) {
	if d.Stage != nectarhooks.StageReceive || d.Message == nil {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.got == nil {
		o.got = map[string][]nectarhooks.Delivery{}
	}
	id := d.Message.ID
	d.Message = nil // not kept past End, as Observer asks
	o.got[id] = append(o.got[id], d)
}

// of returns the outcomes of message id's deliveries, counted, and checks
// that each was answered 202 without an error.
func (o *outcomes) of(t *testing.T, id string) map[string]int {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	n := map[string]int{}
	for _, d := range o.got[id] {
		n[d.Outcome.String()]++
		assert.Equal(t, 202, d.Status, "message %s: %s", id, d.Outcome)
		assert.NoError(t, d.Err, "message %s", id)
	}
	return n
}

// TestRedeliveriesObservedAsDuplicates sends every message several times,
// at once, to a River intake that inserts one batch at a time (so that
// attempts of one message share batches as well as find jobs committed
// before), then again once workers have completed every job: each message
// is observed queued once and duplicate for every other attempt, all
// answered 202, none reaching the error handler.
func TestRedeliveriesObservedAsDuplicates(t *testing.T) {
	const messages, attemptsEach = 40, 3
	dbURL := newDatabase(t)
	secret := nectarhookstest.NewSecret()
	obs := &outcomes{}
	var errs errorLog
	intake, err := nectarhooks.NewHandler(secret,
		nectarhooks.WithQueue(riverqueue.New(newInsertClient(t, newPool(t, dbURL, 4)), riverqueue.WithConcurrentInserts(1))),
		nectarhooks.WithObserver(obs), nectarhooks.WithErrorHandler(errs.record))
	require.NoError(t, err)
	srv := httptest.NewServer(intake)
	defer srv.Close()
	d := newDeliverer(t, secret)

	ids := make([]string, messages)
	for i := range ids {
		ids[i] = nectarhookstest.NewMessageID()
	}
	deliverAll := func() {
		var wg sync.WaitGroup
		for i, id := range ids {
			for range attemptsEach {
				wg.Add(1)
				go func() {
					defer wg.Done()
					status, err := d.deliver(srv.URL, id, samples[i%len(samples)])
					assert.NoError(t, err)
					assert.Equal(t, 202, status)
				}()
			}
		}
		wg.Wait()
	}

	deliverAll()
	for i, id := range ids {
		assert.Equal(t, map[string]int{"queued": 1, "duplicate": attemptsEach - 1},
			obs.of(t, id), "message %d", i)
	}
	checkPool := newPool(t, dbURL, 2)
	require.Equal(t, map[rivertype.JobState]int{rivertype.JobStateAvailable: messages}, jobStates(t, checkPool))

	// Workers complete every job; Svix (or the portal) sends them all again.
	worker, err := nectarhooks.NewHandler(secret, nectarhooks.WithLogger(quietLogger()))
	require.NoError(t, err)
	newRecorder().register(worker)
	newWorkerClient(t, newPool(t, dbURL, 4), worker)
	require.Eventually(t, func() bool {
		return jobStates(t, checkPool)[rivertype.JobStateCompleted] == messages
	}, wait, pollEvery, "every job completes")
	deliverAll()
	for i, id := range ids {
		assert.Equal(t, map[string]int{"queued": 1, "duplicate": 2*attemptsEach - 1},
			obs.of(t, id), "message %d, after completion", i)
	}
	assert.Equal(t, map[rivertype.JobState]int{rivertype.JobStateCompleted: messages}, jobStates(t, checkPool))
	assert.Empty(t, errs.all(), "error handler calls")
}

// TestQueueDuplicatesInBatch puts, in one batch, three deliveries of a new
// message, two of a message whose job exists and one of another new
// message: the first delivery of each new message is queued, every other
// delivery returns ErrAlreadyQueued, naming the job it found when it was
// there before the batch.
func TestQueueDuplicatesInBatch(t *testing.T) {
	pool := newPool(t, newDatabase(t), 1)
	q := riverqueue.New(newInsertClient(t, pool), riverqueue.WithConcurrentInserts(1), riverqueue.WithInsertTimeout(wait/3))
	msg := func(id string) nectarhooks.Message {
		return nectarhooks.Message{ID: id, Timestamp: time.Now().UTC(), EventType: nectarhooks.EventDocumentCreated, Payload: samples[3]}
	}
	fresh, old, other := nectarhookstest.NewMessageID(), nectarhookstest.NewMessageID(), nectarhookstest.NewMessageID()
	require.NoError(t, q.Enqueue(context.Background(), msg(old)))

	// The pool's only connection held: the next delivery's insert waits
	// for it, and the six after it wait for that insert, then go in one
	// batch.
	held, err := pool.Acquire(context.Background())
	require.NoError(t, err)
	first := make(chan error, 1)
	go func() { first <- q.Enqueue(context.Background(), msg(nectarhookstest.NewMessageID())) }()
	require.Eventually(t, func() bool { return riverqueue.Inserting(q) == 1 }, wait, pollEvery)
	batch := []string{fresh, old, fresh, other, old, fresh}
	errs := make([]error, len(batch))
	var wg sync.WaitGroup
	for i, id := range batch {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = q.Enqueue(context.Background(), msg(id))
		}()
		// One at a time, so that the batch keeps this order.
		require.Eventually(t, func() bool { return riverqueue.PendingLen(q) == i+1 }, wait, pollEvery)
	}
	held.Release()
	wg.Wait()
	require.NoError(t, <-first)

	queued := map[string]int{}
	for i, err := range errs {
		if err == nil {
			queued[batch[i]]++
			continue
		}
		require.ErrorIs(t, err, nectarhooks.ErrAlreadyQueued, "delivery %d", i)
		assert.False(t, errors.Is(err, nectarhooks.ErrQueueFull), "delivery %d", i)
		if batch[i] == old {
			assert.ErrorContains(t, err, "(job ", "delivery %d names the job it found", i)
		} else {
			assert.ErrorContains(t, err, "same batch", "delivery %d", i)
		}
	}
	assert.Equal(t, map[string]int{fresh: 1, other: 1}, queued, "deliveries queued, by message")
	assert.NoError(t, errs[0], "the first delivery of a message in the batch is the one queued")
	for _, id := range []string{fresh, old, other} {
		assert.Equal(t, 1, jobs(t, pool, id))
	}
}
