package riverqueue_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
	"github.com/nectarhooks/nectarhooks/riverqueue"
)

// TestCompleteTx runs jobs whose callback writes one effect row and
// completes its job in the same transaction, with something done to the
// job row by "another worker" on the first run, between the fetch and
// CompleteTx: whatever happens, each message ends with one effect row and
// its job completed.
func TestCompleteTx(t *testing.T) {
	cases := []struct {
		name string
		// meanwhile is run on the job's row (autocommit) before the first
		// run's CompleteTx; empty for nothing.
		meanwhile string
		wantLost  bool // the first run's CompleteTx fails with ErrJobLost
		wantRuns  int
	}{
		{name: "job held", wantRuns: 1},
		{name: "rescued, fetched again: a later attempt runs it",
			meanwhile: `UPDATE river_job SET attempt = attempt + 1, attempted_at = now() + interval '1 millisecond'`,
			wantLost:  true, wantRuns: 2},
		{name: "rescued, waiting for its retry",
			meanwhile: `UPDATE river_job SET state = 'retryable'`,
			wantLost:  true, wantRuns: 2},
		{name: "cancelled", meanwhile: `UPDATE river_job SET state = 'cancelled', finalized_at = now()`,
			wantLost: true, wantRuns: 1},
	}
	dbURL := newDatabase(t)
	pool := newPool(t, dbURL, 10)
	_, err := pool.Exec(context.Background(), `CREATE TABLE effects (message_id text NOT NULL)`)
	require.NoError(t, err)

	ids := make([]string, len(cases))
	byID := map[string]int{}
	for i := range cases {
		ids[i] = nectarhookstest.NewMessageID()
		byID[ids[i]] = i
	}
	var mu sync.Mutex
	runs := map[string]int{}
	lost := map[string]error{}
	h, err := nectarhooks.NewHandler(nectarhookstest.NewSecret(), nectarhooks.WithLogger(quietLogger()))
	require.NoError(t, err)
	h.OnUnhandled(func(ctx context.Context, m nectarhooks.Message) error {
		mu.Lock()
		runs[m.ID]++
		run := runs[m.ID]
		mu.Unlock()
		tc := cases[byID[m.ID]]
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `INSERT INTO effects (message_id) VALUES ($1)`, m.ID); err != nil {
				return err
			}
			if run == 1 && tc.meanwhile != "" {
				if _, err := pool.Exec(ctx, tc.meanwhile+` WHERE kind = $1 AND args->>'id' = $2`, riverqueue.Kind, m.ID); err != nil {
					return err
				}
			}
			return riverqueue.CompleteTx(ctx, tx)
		})
		if run == 1 {
			mu.Lock()
			lost[m.ID] = err
			mu.Unlock()
		}
		return err
	})
	intake := newInsertClient(t, pool)
	q := riverqueue.New(intake)
	for _, id := range ids {
		require.NoError(t, q.Enqueue(context.Background(), nectarhooks.Message{ID: id,
			Timestamp: time.Now().UTC().Truncate(time.Second), EventType: "thing.invented.v9",
			Payload: []byte(`{"eventType": "thing.invented.v9", "id": "x"}`)}))
	}
	newWorkerClient(t, newPool(t, dbURL, 10), h)

	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wantState := rivertype.JobStateCompleted
			if tc.name == "cancelled" {
				wantState = rivertype.JobStateCancelled
			}
			require.Eventually(t, func() bool {
				state, _ := jobOf(t, pool, ids[i])
				mu.Lock()
				defer mu.Unlock()
				return state == wantState && runs[ids[i]] >= tc.wantRuns
			}, wait, pollEvery)
			mu.Lock()
			defer mu.Unlock()
			assert.Equal(t, tc.wantRuns, runs[ids[i]], "callback runs")
			if tc.wantLost {
				assert.ErrorIs(t, lost[ids[i]], riverqueue.ErrJobLost)
			} else {
				assert.NoError(t, lost[ids[i]])
			}
			var effects int
			require.NoError(t, pool.QueryRow(context.Background(),
				`SELECT count(*) FROM effects WHERE message_id = $1`, ids[i]).Scan(&effects))
			want := 1
			if tc.name == "cancelled" {
				want = 0 // nothing runs it again
			}
			assert.Equal(t, want, effects, "effect rows")
		})
	}
}

// Outside a Worker's callback there is no job to complete.
func TestCompleteTxNoJob(t *testing.T) {
	pool := newPool(t, newDatabase(t), 2)
	err := pgx.BeginFunc(context.Background(), pool, func(tx pgx.Tx) error {
		return riverqueue.CompleteTx(context.Background(), tx)
	})
	require.ErrorIs(t, err, riverqueue.ErrNoJob)
}
