package riverqueue_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
	"github.com/nectarhooks/nectarhooks/riverqueue"
)

// TestWorker runs one job per case through a worker client and checks what
// River and the Handler's error handler end up with.
func TestWorker(t *testing.T) {
	const jobTimeout = 500 * time.Millisecond
	errFails := errors.New("callback fails")

	type outcome int
	const (
		succeed outcome = iota
		fail
		panics
		blockUntilDone
	)
	cases := []struct {
		name        string
		payload     []byte
		maxAttempts int
		runs        []outcome // the outcome of each run, in order; the last repeats

		wantState    rivertype.JobState
		wantRuns     int
		wantReported error // matched with errors.Is by the one report; nil: no report
		wantPanic    bool  // the report is a *nectarhooks.PanicError
	}{
		{name: "succeeds", runs: []outcome{succeed},
			wantState: rivertype.JobStateCompleted, wantRuns: 1},
		{name: "fails, then succeeds on River's retry", runs: []outcome{fail, succeed},
			wantState: rivertype.JobStateCompleted, wantRuns: 2},
		{name: "panics, then succeeds on River's retry", runs: []outcome{panics, succeed},
			wantState: rivertype.JobStateCompleted, wantRuns: 2},
		{name: "fails every attempt: discarded and reported once", maxAttempts: 3, runs: []outcome{fail},
			wantState: rivertype.JobStateDiscarded, wantRuns: 3, wantReported: errFails},
		{name: "panics every attempt: discarded and reported once", maxAttempts: 2, runs: []outcome{panics},
			wantState: rivertype.JobStateDiscarded, wantRuns: 2, wantPanic: true},
		{name: "overruns River's job timeout: context cancelled", maxAttempts: 1, runs: []outcome{blockUntilDone},
			wantState: rivertype.JobStateDiscarded, wantRuns: 1, wantReported: context.DeadlineExceeded},
		{name: "payload no longer decodes: cancelled without a run", payload: []byte(`{"eventType": "document.created.v2", "id": 7}`),
			wantState: rivertype.JobStateCancelled, wantRuns: 0, wantReported: nectarhooks.ErrInvalidPayload},
		{name: "event type without a callback: completed without a run", payload: []byte(`{"eventType": "thing.invented.v9", "id": "x"}`),
			wantState: rivertype.JobStateCompleted, wantRuns: 0},
	}

	dbURL := newDatabase(t)
	ids := make([]string, len(cases))
	byID := map[string]int{}
	for i := range cases {
		ids[i] = nectarhookstest.NewMessageID()
		byID[ids[i]] = i
	}
	rec := newRecorder()
	rec.behave = func(ctx context.Context, id string, run int) error {
		runs := cases[byID[id]].runs
		switch runs[min(run, len(runs))-1] {
		case fail:
			return errFails
		case panics:
			panic("callback panics")
		case blockUntilDone:
			<-ctx.Done()
			return ctx.Err()
		}
		return nil
	}
	var reports errorLog
	// The Handler's own callback timeout is far away: a cancellation can
	// only come from River's job timeout.
	h, err := nectarhooks.NewHandler(nectarhookstest.NewSecret(),
		nectarhooks.WithCallbackTimeout(time.Hour), nectarhooks.WithErrorHandler(reports.record),
		nectarhooks.WithLogger(quietLogger()))
	require.NoError(t, err)
	rec.register(h)

	pool := newPool(t, dbURL, 10)
	intake := newInsertClient(t, pool)
	for i, tc := range cases {
		payload := tc.payload
		if payload == nil {
			payload = samples[i%len(samples)]
		}
		q := riverqueue.New(intake, riverqueue.WithMaxAttempts(tc.maxAttempts))
		msg := nectarhooks.Message{ID: ids[i], Timestamp: time.Now().UTC().Truncate(time.Second),
			EventType: nectarhooks.PeekEventType(payload), Payload: payload}
		require.NoError(t, q.Enqueue(context.Background(), msg))
	}
	newWorkerClient(t, newPool(t, dbURL, 10), h, riverqueue.WithTimeout(jobTimeout))

	finished := func(s rivertype.JobState) bool {
		return s == rivertype.JobStateCompleted || s == rivertype.JobStateDiscarded || s == rivertype.JobStateCancelled
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var state rivertype.JobState
			require.Eventually(t, func() bool {
				state, _ = jobOf(t, pool, ids[i])
				return finished(state)
			}, wait, pollEvery)
			assert.Equal(t, tc.wantState, state)
			attempts, _ := rec.snapshot()
			assert.Equal(t, tc.wantRuns, attempts[ids[i]], "callback runs")

			var mine []report
			for _, r := range reports.all() {
				if r.msg.ID == ids[i] {
					mine = append(mine, r)
				}
			}
			if tc.wantReported == nil && !tc.wantPanic {
				assert.Empty(t, mine)
				return
			}
			require.Len(t, mine, 1, "one report, after the last attempt")
			assert.Equal(t, 0, mine[0].status, "status 0: answered long ago")
			assert.True(t, mine[0].hasMsg)
			assert.Equal(t, nectarhooks.PeekEventType(mustPayload(tc.payload, i)), mine[0].msg.EventType)
			if tc.wantReported != nil {
				assert.ErrorIs(t, mine[0].err, tc.wantReported)
			}
			if tc.wantPanic {
				var p *nectarhooks.PanicError
				assert.ErrorAs(t, mine[0].err, &p)
			}
		})
	}
	// Reports only for the messages that asked for one.
	var nreports int
	for _, tc := range cases {
		if tc.wantReported != nil || tc.wantPanic {
			nreports++
		}
	}
	assert.Equal(t, nreports, len(reports.all()), "reports in all")
}

func mustPayload(p []byte, i int) []byte {
	if p == nil {
		return samples[i%len(samples)]
	}
	return p
}

// jobOf returns the state and attempt count of message id's job.
func jobOf(tb testing.TB, pool *pgxpool.Pool, id string) (rivertype.JobState, int) {
	tb.Helper()
	var state string
	var attempt int
	err := pool.QueryRow(context.Background(),
		"SELECT state::text, attempt FROM river_job WHERE kind = $1 AND args->>'id' = $2", riverqueue.Kind, id).
		Scan(&state, &attempt)
	require.NoError(tb, err)
	return rivertype.JobState(state), attempt
}

// TestWorkerIdempotency gives the worker's Handler an idempotency store that
// has a message as processed already (another path ran it, or River runs a
// job again after a crash): the job completes without running the
// callback, while a message the store does not know runs.
func TestWorkerIdempotency(t *testing.T) {
	ctx := context.Background()
	store := nectarhooks.NewMemoryStore(0, 0)
	done, fresh := nectarhookstest.NewMessageID(), nectarhookstest.NewMessageID()
	claim, token, err := store.Claim(ctx, done, time.Minute)
	require.NoError(t, err)
	require.Equal(t, nectarhooks.ClaimAcquired, claim)
	require.NoError(t, store.Complete(ctx, done, token))

	var reports errorLog
	h, err := nectarhooks.NewHandler(nectarhookstest.NewSecret(), nectarhooks.WithIdempotency(store),
		nectarhooks.WithErrorHandler(reports.record), nectarhooks.WithLogger(quietLogger()))
	require.NoError(t, err)
	rec := newRecorder()
	rec.register(h)

	pool := newPool(t, newDatabase(t), 4)
	q := riverqueue.New(newInsertClient(t, pool))
	for _, id := range []string{done, fresh} {
		require.NoError(t, q.Enqueue(ctx, nectarhooks.Message{ID: id, Timestamp: time.Now().UTC(),
			EventType: nectarhooks.EventDocumentCreated, Payload: samples[3]}))
	}
	newWorkerClient(t, newPool(t, pool.Config().ConnString(), 4), h)

	for _, id := range []string{done, fresh} {
		require.Eventually(t, func() bool {
			state, _ := jobOf(t, pool, id)
			return state == rivertype.JobStateCompleted
		}, wait, pollEvery, "message %s completes", id)
	}
	attempts, _ := rec.snapshot()
	assert.Equal(t, map[string]int{fresh: 1}, attempts, "only the message the store did not know runs")
	assert.Empty(t, reports.all())
	claim, _, err = store.Claim(ctx, fresh, time.Minute)
	require.NoError(t, err)
	assert.Equal(t, nectarhooks.ClaimDone, claim, "the worker recorded the new message as processed")
}
