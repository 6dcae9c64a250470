package riverqueue_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
	"github.com/nectarhooks/nectarhooks/riverqueue"
)

// TestIntakeThenWorkers is a deployment with intake and workers apart: an
// intake replica with an insert-only client takes every message, delivered
// several times at once, while no worker runs; a worker replica (its own
// pool and Handler) started afterwards runs every callback, River retrying
// the first runs that fail or panic; redeliveries after that make no job.
func TestIntakeThenWorkers(t *testing.T) {
	const messages, attemptsEach = 300, 3
	dbURL := newDatabase(t)
	secret := nectarhookstest.NewSecret()

	// The intake replica.
	intakePool := newPool(t, dbURL, 10)
	intakeClient := newInsertClient(t, intakePool)
	var intakeErrs errorLog
	intake, err := nectarhooks.NewHandler(secret,
		nectarhooks.WithQueue(riverqueue.New(intakeClient)),
		nectarhooks.WithErrorHandler(intakeErrs.record))
	require.NoError(t, err)
	srv := httptest.NewServer(intake)
	defer srv.Close()
	d := newDeliverer(t, secret)

	ids := make([]string, messages)
	bodies := map[string][]byte{}
	for i := range ids {
		ids[i] = nectarhookstest.NewMessageID()
		bodies[ids[i]] = samples[i%len(samples)]
	}
	deliverAll := func(t *testing.T) map[int]int {
		statuses := map[int]int{}
		var mu sync.Mutex
		work := make(chan string)
		var wg sync.WaitGroup
		for range 24 {
			wg.Go(func() {
				for id := range work {
					status, err := d.deliver(srv.URL, id, bodies[id])
					if err != nil {
						status = -1
					}
					mu.Lock()
					statuses[status]++
					mu.Unlock()
				}
			})
		}
		// Each message's attempts go out one after another in the queue,
		// so that they overlap on the 24 senders.
		for _, id := range ids {
			for range attemptsEach {
				work <- id
			}
		}
		close(work)
		wg.Wait()
		return statuses
	}

	statuses := deliverAll(t)
	require.Equal(t, map[int]int{http.StatusAccepted: messages * attemptsEach}, statuses, "every delivery acknowledged")
	require.Empty(t, intakeErrs.all())
	// Committed: another pool sees exactly one job per message, none worked.
	checkPool := newPool(t, dbURL, 2)
	require.Equal(t, map[rivertype.JobState]int{rivertype.JobStateAvailable: messages}, jobStates(t, checkPool))

	// The worker replica: other pool, other Handler. A third of the
	// messages fail their first run, a third panic in it.
	rec := newRecorder()
	rec.behave = func(_ context.Context, id string, run int) error {
		if run > 1 {
			return nil
		}
		switch idIndex(ids, id) % 3 {
		case 1:
			return errors.New("first run fails")
		case 2:
			panic("first run panics")
		}
		return nil
	}
	worker, err := nectarhooks.NewHandler(secret, nectarhooks.WithErrorHandler(func(context.Context, int, error) {
		t.Error("no message runs out of attempts here")
	}))
	require.NoError(t, err)
	rec.register(worker)
	newWorkerClient(t, newPool(t, dbURL, 10), worker)

	require.Eventually(t, func() bool {
		return jobStates(t, checkPool)[rivertype.JobStateCompleted] == messages
	}, wait, pollEvery, "every job completes")
	attempts, succeeded := rec.snapshot()
	require.Len(t, succeeded, messages)
	for i, id := range ids {
		assert.Equal(t, 1, succeeded[id], "message %d succeeded once", i)
		wantRuns := 1
		if i%3 != 0 {
			wantRuns = 2
		}
		assert.Equal(t, wantRuns, attempts[id], "runs of message %d", i)
		assert.Equal(t, bodies[id], rec.payload(id), "message %d's payload byte for byte", i)
	}

	// Redeliveries after completion: acknowledged, no new job, no run.
	statuses = deliverAll(t)
	require.Equal(t, map[int]int{http.StatusAccepted: messages * attemptsEach}, statuses)
	require.Equal(t, map[rivertype.JobState]int{rivertype.JobStateCompleted: messages}, jobStates(t, checkPool))
	_, after := rec.snapshot()
	assert.Equal(t, succeeded, after)
}

func idIndex(ids []string, id string) int {
	for i, x := range ids {
		if x == id {
			return i
		}
	}
	panic(fmt.Sprintf("unknown id %s", id))
}

// errorLog records what reaches an error handler.
type errorLog struct {
	mu      sync.Mutex
	reports []report
}

type report struct {
	status int
	err    error
	msg    nectarhooks.Message
	hasMsg bool
}

func (l *errorLog) record(ctx context.Context, status int, err error) {
	m, ok := nectarhooks.MessageFromContext(ctx)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reports = append(l.reports, report{status: status, err: err, msg: m, hasMsg: ok})
}

func (l *errorLog) all() []report {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]report(nil), l.reports...)
}
