package riverqueue_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
	"github.com/nectarhooks/nectarhooks/riverqueue"
)

// effectsCase is one message of an effects test: what its callback does
// on each run, and what must come of it.
type effectsCase struct {
	name string
	// run is the callback's run-th run (from 1) of the message; it writes
	// the message's effect row through db, as it likes.
	run func(ctx context.Context, t *testing.T, env *effectsEnv, run int, id string) error
	// wantRuns is how many times the callback runs; wantErrs the errors
	// its runs return, by run (nil: no error; a missing run: unchecked).
	wantRuns int
	wantErrs map[int]error
	// wantEffects is the effect rows the message ends with (1 unless the
	// job is gone), and wantState its job's final state ("" for a job
	// deleted by the case, whose marker is not checked).
	wantEffects int
	wantState   rivertype.JobState
}

// effectsEnv is what a case's callback works with.
type effectsEnv struct {
	pool  *pgxpool.Pool // the test's database, directly
	db    *pgxpool.Pool // the callback's pool (through a proxy, in fault tests)
	proxy *nectarhookstest.FaultProxy
	// signals between the runs of one message, by name
	mu      sync.Mutex
	signals map[string]chan struct{}
}

// signal returns the channel named name, made on first use.
func (e *effectsEnv) signal(name string) chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	c, ok := e.signals[name]
	if !ok {
		c = make(chan struct{})
		e.signals[name] = c
	}
	return c
}

// effectTx writes the message's effect row and its marker in one
// interactive transaction (CompleteTx).
func effectTx(ctx context.Context, db *pgxpool.Pool, id string) error {
	return effectTxWith(ctx, db, id, nil, nil)
}

// effectTxWith is effectTx with beforeMark run after the effect row and
// afterMark after the marker, in the transaction (nil: nothing): the
// cases' faults and races.
func effectTxWith(ctx context.Context, db *pgxpool.Pool, id string, beforeMark, afterMark func(tx pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO effects (message_id) VALUES ($1)`, id); err != nil {
			return err
		}
		if beforeMark != nil {
			if err := beforeMark(tx); err != nil {
				return err
			}
		}
		if err := riverqueue.CompleteTx(ctx, tx); err != nil {
			return err
		}
		if afterMark != nil {
			return afterMark(tx)
		}
		return nil
	})
}

// effectBatch writes the same in one round trip (CompleteBatch).
func effectBatch(ctx context.Context, db *pgxpool.Pool, id string) error {
	var b pgx.Batch
	b.Queue(`INSERT INTO effects (message_id) VALUES ($1)`, id)
	return riverqueue.CompleteBatch(ctx, db, &b)
}

// makeAvailable hands the running job of message id back to River, as
// its rescuer does with a job whose worker it judged stuck: another
// worker fetches it and runs it as the next attempt while the first still
// runs.
func makeAvailable(ctx context.Context, pool *pgxpool.Pool, id string) error {
	_, err := pool.Exec(ctx, `UPDATE river_job SET state = 'available', scheduled_at = now()
		WHERE kind = $1 AND args->>'id' = $2`, riverqueue.Kind, id)
	return err
}

// await waits for c to close, or fails the test.
func await(t *testing.T, c chan struct{}, what string) {
	select {
	case <-c:
	case <-time.After(wait):
		t.Errorf("no %s after %s", what, wait)
	}
}

var errDied = errors.New("the worker died after its commit")

// effectsCases are the cases every way of writing effects must pass, for
// write, one of effectTx and effectBatch.
func effectsCases(kind string, write func(ctx context.Context, db *pgxpool.Pool, id string) error) []effectsCase {
	return []effectsCase{
		{name: kind + ": one attempt",
			run: func(ctx context.Context, _ *testing.T, env *effectsEnv, _ int, id string) error {
				return write(ctx, env.db, id)
			},
			wantRuns: 1, wantErrs: map[int]error{1: nil}, wantEffects: 1, wantState: rivertype.JobStateCompleted},
		{name: kind + ": committed, then failed before River completed the job",
			run: func(ctx context.Context, _ *testing.T, env *effectsEnv, run int, id string) error {
				if err := write(ctx, env.db, id); err != nil || run > 1 {
					return err
				}
				return errDied
			},
			wantRuns: 2, wantErrs: map[int]error{1: errDied, 2: nectarhooks.ErrAlreadyProcessed},
			wantEffects: 1, wantState: rivertype.JobStateCompleted},
	}
}

// TestCompleteTx runs messages whose callback writes one effect row and
// its job's marker together, with something done to the job or the
// callback's run on the first attempt: whatever happens, each message
// ends with one effect row (none when its job is deleted) and the errors
// CompleteTx and CompleteBatch document.
func TestCompleteTx(t *testing.T) {
	cases := append(effectsCases("tx", effectTx), effectsCases("batch", effectBatch)...)
	cases = append(cases,
		effectsCase{name: "tx: rescued, the later attempt commits first",
			run: func(ctx context.Context, t *testing.T, env *effectsEnv, run int, id string) error {
				if run > 1 {
					defer close(env.signal(id + " committed"))
					return effectTx(ctx, env.db, id)
				}
				return effectTxWith(ctx, env.db, id, func(pgx.Tx) error {
					if err := makeAvailable(ctx, env.pool, id); err != nil {
						return err
					}
					await(t, env.signal(id+" committed"), "commit of the second attempt")
					return nil
				}, nil)
			},
			wantRuns: 2, wantErrs: map[int]error{1: nectarhooks.ErrAlreadyProcessed, 2: nil},
			wantEffects: 1, wantState: rivertype.JobStateCompleted},
		effectsCase{name: "tx: rescued, both attempts mark at once, the earlier commits",
			run: func(ctx context.Context, t *testing.T, env *effectsEnv, run int, id string) error {
				if run > 1 {
					close(env.signal(id + " started"))
					await(t, env.signal(id+" marked"), "marker of the first attempt")
					return effectTx(ctx, env.db, id) // waits for the first's commit
				}
				return effectTxWith(ctx, env.db, id, func(pgx.Tx) error {
					if err := makeAvailable(ctx, env.pool, id); err != nil {
						return err
					}
					await(t, env.signal(id+" started"), "start of the second attempt")
					return nil
				}, func(pgx.Tx) error {
					close(env.signal(id + " marked"))
					time.Sleep(200 * time.Millisecond) // the second attempt waits on the marker's lock
					return nil
				})
			},
			wantRuns: 2, wantErrs: map[int]error{1: nil, 2: nectarhooks.ErrAlreadyProcessed},
			wantEffects: 1, wantState: rivertype.JobStateCompleted},
		effectsCase{name: "tx: job deleted while its callback ran",
			run: func(ctx context.Context, _ *testing.T, env *effectsEnv, _ int, id string) error {
				return effectTxWith(ctx, env.db, id, func(pgx.Tx) error {
					_, err := env.pool.Exec(ctx, `DELETE FROM river_job WHERE kind = $1 AND args->>'id' = $2`, riverqueue.Kind, id)
					return err
				}, nil)
			},
			// Nothing fences a job that is gone: its one run commits.
			wantRuns: 1, wantErrs: map[int]error{1: nil}, wantEffects: 1},
		effectsCase{name: "tx: marked twice in one transaction",
			run: func(ctx context.Context, _ *testing.T, env *effectsEnv, run int, id string) error {
				if run > 1 {
					return effectTx(ctx, env.db, id)
				}
				return effectTxWith(ctx, env.db, id, nil, func(tx pgx.Tx) error {
					return riverqueue.CompleteTx(ctx, tx)
				})
			},
			wantRuns: 2, wantErrs: map[int]error{1: riverqueue.ErrMarkedTwice, 2: nil},
			wantEffects: 1, wantState: rivertype.JobStateCompleted},
		effectsCase{name: "tx: rolled back and retried within one run",
			run: func(ctx context.Context, _ *testing.T, env *effectsEnv, _ int, id string) error {
				errRetry := errors.New("could not serialize access")
				err := effectTxWith(ctx, env.db, id, nil, func(pgx.Tx) error { return errRetry })
				if !errors.Is(err, errRetry) {
					return fmt.Errorf("first transaction: %w", err)
				}
				return effectTx(ctx, env.db, id)
			},
			wantRuns: 1, wantErrs: map[int]error{1: nil}, wantEffects: 1, wantState: rivertype.JobStateCompleted},
		effectsCase{name: "batch: a query's callback fails, after the commit",
			run: func(ctx context.Context, _ *testing.T, env *effectsEnv, run int, id string) error {
				if run > 1 {
					return effectBatch(ctx, env.db, id)
				}
				var b pgx.Batch
				b.Queue(`INSERT INTO effects (message_id) VALUES ($1)`, id).Exec(func(pgconn.CommandTag) error { return errDied })
				return riverqueue.CompleteBatch(ctx, env.db, &b)
			},
			wantRuns: 2, wantErrs: map[int]error{1: errDied, 2: nectarhooks.ErrAlreadyProcessed},
			wantEffects: 1, wantState: rivertype.JobStateCompleted},
		effectsCase{name: "batch: a query fails, nothing commits",
			run: func(ctx context.Context, _ *testing.T, env *effectsEnv, run int, id string) error {
				if run > 1 {
					return effectBatch(ctx, env.db, id)
				}
				var b pgx.Batch
				b.Queue(`INSERT INTO effects (message_id) VALUES ($1)`, id)
				b.Queue(`INSERT INTO effects (message_id) VALUES (NULL)`) // NOT NULL
				return riverqueue.CompleteBatch(ctx, env.db, &b)
			},
			wantRuns: 2, wantErrs: map[int]error{2: nil}, wantEffects: 1, wantState: rivertype.JobStateCompleted},
	)
	runEffectsCases(t, cases, nil, nil)
}

// TestCompleteBatchExecModes runs the batch cases with each of pgx's query
// exec modes: CompleteBatch's atomicity rests on the batch being one
// implicit transaction, which pgx gets from one Sync (extended protocol)
// or one multi-statement query (simple protocol, for PgBouncer).
func TestCompleteBatchExecModes(t *testing.T) {
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeCacheDescribe,
		pgx.QueryExecModeDescribeExec, pgx.QueryExecModeExec, pgx.QueryExecModeSimpleProtocol} {
		t.Run(mode.String(), func(t *testing.T) {
			runEffectsCases(t, effectsCases("batch", effectBatch), func(cfg *pgxpool.Config) {
				cfg.ConnConfig.DefaultQueryExecMode = mode
			}, nil)
		})
	}
}

// TestCompleteFaults puts a proxy between the callbacks and PostgreSQL and
// breaks the link around the commit: the commit's reply lost (the server
// committed, the worker cannot know), and a link that goes silent with the
// transaction open. River retries the job; the marker decides.
func TestCompleteFaults(t *testing.T) {
	// loseReply holds the server's replies from now on, and cuts the
	// link a moment later: what was sent runs, its answer never arrives.
	loseReply := func(env *effectsEnv) {
		env.proxy.FreezeReplies()
		time.AfterFunc(300*time.Millisecond, func() { env.proxy.Cut(); env.proxy.Thaw() })
	}
	cases := []struct {
		effectsCase
		mode pgx.QueryExecMode
	}{
		{effectsCase: effectsCase{name: "tx: reply to COMMIT lost",
			run: func(ctx context.Context, _ *testing.T, env *effectsEnv, run int, id string) error {
				if run > 1 {
					return effectTx(ctx, env.db, id)
				}
				return effectTxWith(ctx, env.db, id, nil, func(pgx.Tx) error {
					loseReply(env)
					return nil // BeginFunc's COMMIT runs; its reply is lost
				})
			},
			wantRuns: 2, wantErrs: map[int]error{2: nectarhooks.ErrAlreadyProcessed},
			wantEffects: 1, wantState: rivertype.JobStateCompleted}},
		// pgx's exec mode Exec sends the batch without preparing its
		// statements first, so that the reply lost is the batch's.
		{mode: pgx.QueryExecModeExec, effectsCase: effectsCase{name: "batch: reply lost",
			run: func(ctx context.Context, _ *testing.T, env *effectsEnv, run int, id string) error {
				if run == 1 {
					if err := env.db.Ping(ctx); err != nil { // a connection made before the fault
						return err
					}
					loseReply(env)
				}
				return effectBatch(ctx, env.db, id)
			},
			wantRuns: 2, wantErrs: map[int]error{2: nectarhooks.ErrAlreadyProcessed},
			wantEffects: 1, wantState: rivertype.JobStateCompleted}},
		{effectsCase: effectsCase{name: "tx: link silent before COMMIT",
			run: func(ctx context.Context, _ *testing.T, env *effectsEnv, run int, id string) error {
				if run > 1 {
					return effectTx(ctx, env.db, id)
				}
				return effectTxWith(ctx, env.db, id, nil, func(pgx.Tx) error {
					env.proxy.Freeze()
					time.AfterFunc(time.Second, func() { env.proxy.Cut(); env.proxy.Thaw() })
					return nil // BeginFunc's COMMIT hangs until the cut
				})
			},
			wantRuns: 2, wantEffects: 1, wantState: rivertype.JobStateCompleted}},
	}
	// One message at a time: the proxy's faults hit every connection.
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			runEffectsCases(t, []effectsCase{tc.effectsCase}, func(cfg *pgxpool.Config) {
				if tc.mode != 0 {
					cfg.ConnConfig.DefaultQueryExecMode = tc.mode
				}
			}, func(cfg *pgxpool.Config, proxy *nectarhookstest.FaultProxy) {
				cfg.ConnConfig.DialFunc = proxy.Dial
			})
		})
	}
}

// runEffectsCases runs cases, one message each, through River workers on
// a database of their own with the markers' table (EffectsTableSQL), and
// checks each. configure, if not nil, adjusts the callbacks' pool;
// viaProxy, if not nil, puts a FaultProxy under it.
func runEffectsCases(t *testing.T, cases []effectsCase, configure func(*pgxpool.Config),
	viaProxy func(*pgxpool.Config, *nectarhookstest.FaultProxy)) {
	ctx := context.Background()
	dbURL := newDatabase(t)
	env := &effectsEnv{pool: newPool(t, dbURL, 10), signals: map[string]chan struct{}{}}
	_, err := env.pool.Exec(ctx, riverqueue.EffectsTableSQL)
	require.NoError(t, err)
	_, err = env.pool.Exec(ctx, `CREATE TABLE effects (message_id text NOT NULL)`)
	require.NoError(t, err)
	cfg, err := pgxpool.ParseConfig(dbURL)
	require.NoError(t, err)
	cfg.MaxConns = 10
	if configure != nil {
		configure(cfg)
	}
	if viaProxy != nil {
		env.proxy = nectarhookstest.NewFaultProxy(t, "")
		viaProxy(cfg, env.proxy)
	}
	env.db, err = pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(env.db.Close)

	ids := make([]string, len(cases))
	byID := map[string]int{}
	for i := range cases {
		ids[i] = nectarhookstest.NewMessageID()
		byID[ids[i]] = i
	}
	var mu sync.Mutex
	runs := map[string]int{}
	errs := map[string]map[int]error{}
	h, err := nectarhooks.NewHandler(nectarhookstest.NewSecret(), nectarhooks.WithLogger(quietLogger()),
		nectarhooks.WithCallbackTimeout(5*time.Second))
	require.NoError(t, err)
	h.OnUnhandled(func(ctx context.Context, m nectarhooks.Message) error {
		mu.Lock()
		runs[m.ID]++
		run := runs[m.ID]
		mu.Unlock()
		err := cases[byID[m.ID]].run(ctx, t, env, run, m.ID)
		mu.Lock()
		if errs[m.ID] == nil {
			errs[m.ID] = map[int]error{}
		}
		errs[m.ID][run] = err
		mu.Unlock()
		return err
	})
	q := riverqueue.New(newInsertClient(t, env.pool))
	for _, id := range ids {
		require.NoError(t, q.Enqueue(ctx, nectarhooks.Message{ID: id,
			Timestamp: time.Now().UTC().Truncate(time.Second), EventType: "thing.invented.v9",
			Payload: []byte(`{"eventType": "thing.invented.v9", "id": "x"}`)}))
	}
	newWorkerClient(t, newPool(t, dbURL, 10), h)

	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id := ids[i]
			require.Eventually(t, func() bool {
				var state string
				err := env.pool.QueryRow(ctx, `SELECT coalesce((SELECT state::text FROM river_job WHERE kind = $1 AND args->>'id' = $2), '')`,
					riverqueue.Kind, id).Scan(&state)
				mu.Lock()
				defer mu.Unlock()
				return err == nil && rivertype.JobState(state) == tc.wantState && runs[id] >= tc.wantRuns
			}, wait, pollEvery)
			time.Sleep(100 * time.Millisecond) // a run too many would show now
			mu.Lock()
			defer mu.Unlock()
			assert.Equal(t, tc.wantRuns, runs[id], "callback runs")
			for run, want := range tc.wantErrs {
				if want == nil {
					assert.NoError(t, errs[id][run], "run %d", run)
				} else {
					assert.ErrorIs(t, errs[id][run], want, "run %d", run)
				}
			}
			var effects, markers int
			require.NoError(t, env.pool.QueryRow(ctx, `SELECT count(*) FROM effects WHERE message_id = $1`, id).Scan(&effects))
			require.NoError(t, env.pool.QueryRow(ctx, `SELECT count(*) FROM nectarhooks_job_effects m JOIN river_job j ON j.id = m.job_id
				WHERE j.kind = $1 AND j.args->>'id' = $2`, riverqueue.Kind, id).Scan(&markers))
			assert.Equal(t, tc.wantEffects, effects, "effect rows")
			if tc.wantState != "" {
				assert.Equal(t, tc.wantEffects, markers, "markers")
			}
		})
	}
}

// Outside a Worker's callback there is no job to mark.
func TestCompleteTxNoJob(t *testing.T) {
	pool := newPool(t, newDatabase(t), 2)
	err := pgx.BeginFunc(context.Background(), pool, func(tx pgx.Tx) error {
		return riverqueue.CompleteTx(context.Background(), tx)
	})
	require.ErrorIs(t, err, riverqueue.ErrNoJob)
	require.ErrorIs(t, riverqueue.CompleteBatch(context.Background(), pool, nil), riverqueue.ErrNoJob)
}

// Without the markers' table (River migrated by other means than Migrate,
// EffectsTableSQL forgotten), CompleteTx and CompleteBatch say what to do,
// and the job is retried rather than completed without its effects.
func TestCompleteNoEffectsTable(t *testing.T) {
	ctx := context.Background()
	dbURL := newDatabase(t)
	pool := newPool(t, dbURL, 10)
	_, err := pool.Exec(ctx, `CREATE TABLE effects (message_id text NOT NULL)`)
	require.NoError(t, err)
	got := make(chan error, 2)
	h, err := nectarhooks.NewHandler(nectarhookstest.NewSecret(), nectarhooks.WithLogger(quietLogger()))
	require.NoError(t, err)
	h.OnUnhandled(func(ctx context.Context, m nectarhooks.Message) error {
		var err error
		switch len(got) {
		case 0:
			err = effectTx(ctx, pool, m.ID)
		case 1:
			err = effectBatch(ctx, pool, m.ID)
		default:
			return errDied
		}
		got <- err
		return err
	})
	q := riverqueue.New(newInsertClient(t, pool))
	require.NoError(t, q.Enqueue(ctx, nectarhooks.Message{ID: nectarhookstest.NewMessageID(),
		Timestamp: time.Now().UTC(), EventType: "thing.invented.v9", Payload: []byte(`{}`)}))
	newWorkerClient(t, newPool(t, dbURL, 10), h)
	for _, way := range []string{"CompleteTx", "CompleteBatch"} {
		select {
		case err := <-got:
			require.ErrorIs(t, err, riverqueue.ErrNoEffectsTable, way)
			assert.Contains(t, err.Error(), "riverqueue.Migrate", way)
		case <-time.After(wait):
			t.Fatalf("%s: the callback never ran", way)
		}
	}
	var effects int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM effects`).Scan(&effects))
	assert.Zero(t, effects, "effects committed without a marker")
}

// TestMarkersGoWithTheirJobs checks the triggers of EffectsTableSQL: a
// job's marker is deleted with the job (as River's cleaner deletes
// completed jobs) and every marker with a TRUNCATE of river_job, so that
// ids handed out again after a sequence reset find none; and the SQL runs
// again on a migrated database without harm.
func TestMarkersGoWithTheirJobs(t *testing.T) {
	ctx := context.Background()
	pool := newPool(t, newEmptyDatabase(t), 4)
	require.NoError(t, riverqueue.Migrate(ctx, pool, riverqueue.WithMigrateLogger(nil)))
	client := newInsertClient(t, pool)
	var ids []int64
	for range 3 {
		res, err := client.Insert(ctx, riverqueue.NewArgs(nectarhooks.Message{ID: nectarhookstest.NewMessageID(),
			Timestamp: time.Now().UTC(), EventType: "thing.invented.v9", Payload: []byte(`{}`)}), nil)
		require.NoError(t, err)
		ids = append(ids, res.Job.ID)
		_, err = pool.Exec(ctx, `INSERT INTO nectarhooks_job_effects (job_id, attempt) VALUES ($1, 1)`, res.Job.ID)
		require.NoError(t, err)
	}
	markers := func() []int64 {
		rows, err := pool.Query(ctx, `SELECT job_id FROM nectarhooks_job_effects ORDER BY job_id`)
		require.NoError(t, err)
		got, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		require.NoError(t, err)
		return got
	}
	steps := []struct {
		name string
		sql  string
		args []any
		want []int64
	}{
		{"one job deleted", `DELETE FROM river_job WHERE id = $1`, []any{ids[0]}, ids[1:]},
		{"the SQL run again", riverqueue.EffectsTableSQL, nil, ids[1:]},
		{"river_job truncated", `TRUNCATE river_job`, nil, []int64{}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			_, err := pool.Exec(ctx, st.sql, st.args...)
			require.NoError(t, err)
			assert.Equal(t, st.want, markers())
		})
	}
}
