package riverqueue

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/nectarhooks/nectarhooks"
)

// Exactly-once effects on River. A worker's callback writes its effects
// and, in the same transaction, a marker row for its job (CompleteTx,
// CompleteBatch). The marker's primary key is the job's id, so of all the
// attempts of one job (a retry after a crash, a rescued attempt still
// running next to its successor) at most one commits: the others' markers
// collide with it, their transactions roll back, and they return
// nectarhooks.ErrAlreadyProcessed, which the Handler acknowledges and the
// Worker reports to River as done. River completes the job as it does
// every job, in its completer's batches: the transaction does not touch
// River's job row, which is what keeps the path cheap (JobCompleteTx,
// one UPDATE of the wide job row per job inside the transaction, drained
// at 0.4x bare workers, where the marker drains at 0.7x with CompleteTx
// and 0.9x with CompleteBatch; see docs/effects.md). The marker lives as long as its job: a trigger on
// river_job deletes it with the job when River's cleaner removes the job.

// effectsTable is the markers' table; EffectsTableSQL creates it.
const effectsTable = "nectarhooks_job_effects"

// EffectsTableSQL is the SQL that creates the table of the markers
// CompleteTx and CompleteBatch write, one row per job whose callback
// committed its effects, and the two statement triggers on River's
// river_job that delete a job's marker with the job (River's cleaner
// deletes completed jobs after CompletedJobRetentionPeriod) and empty the
// table when river_job is truncated, so that job ids a sequence reset
// hands out again find no marker. Migrate runs it after River's
// migrations; deployments that migrate with tools of their own run it
// after River's. It can run again (IF NOT EXISTS, OR REPLACE, DROP ... IF
// EXISTS), needs PostgreSQL 11 or later, and puts the table next to
// river_job, where the search_path finds it.
//
// Triggers, not a foreign key: a foreign key's check on every insert
// locks the job's row and costs about a tenth of the rate of the workers
// (docs/effects.md). A marker written for a job deleted while its
// callback ran stays behind; nothing reads it. A migration that drops
// river_job (River's migrate-down to version 0) drops the triggers with
// it and leaves the table: drop nectarhooks_job_effects too.
const EffectsTableSQL = `CREATE TABLE IF NOT EXISTS ` + effectsTable + ` (
	job_id bigint PRIMARY KEY,
	attempt integer NOT NULL,
	committed_at timestamptz NOT NULL DEFAULT now()
);
CREATE OR REPLACE FUNCTION ` + effectsTable + `_forget() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	DELETE FROM ` + effectsTable + ` e USING gone WHERE e.job_id = gone.id;
	RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION ` + effectsTable + `_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	TRUNCATE ` + effectsTable + `;
	RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS ` + effectsTable + `_forget ON river_job;
CREATE TRIGGER ` + effectsTable + `_forget AFTER DELETE ON river_job
	REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION ` + effectsTable + `_forget();
DROP TRIGGER IF EXISTS ` + effectsTable + `_truncate ON river_job;
CREATE TRIGGER ` + effectsTable + `_truncate AFTER TRUNCATE ON river_job
	FOR EACH STATEMENT EXECUTE FUNCTION ` + effectsTable + `_truncate();`

// insertMarker records that the job's effects committed, by which
// attempt.
const insertMarker = `INSERT INTO ` + effectsTable + ` (job_id, attempt) VALUES ($1, $2)`

// Errors of CompleteTx and CompleteBatch.
var (
	// ErrNoJob: the context is not a callback's run by a Worker.
	ErrNoJob = errors.New("riverqueue: no job in the context (is the callback run by a riverqueue.Worker?)")
	// ErrMarkedTwice: CompleteTx was called twice with the same
	// transaction. The second marker would collide with the first, and
	// the collision would read as an earlier attempt's commit while the
	// transaction, and with it the message's only effects, rolls back.
	ErrMarkedTwice = errors.New("riverqueue: CompleteTx called twice in one transaction")
	// ErrNoEffectsTable: the markers' table does not exist; run Migrate,
	// or EffectsTableSQL in the deployment's own migrations.
	ErrNoEffectsTable = errors.New("riverqueue: no table " + effectsTable + " (run riverqueue.Migrate, or EffectsTableSQL in your migrations)")
)

type jobKey struct{}

// jobRun is the job a Worker's callback runs, and the transaction its
// last CompleteTx marked.
type jobRun struct {
	job    *river.Job[Args]
	mu     sync.Mutex
	lastTx pgx.Tx
}

// withJob returns ctx carrying job, for CompleteTx and CompleteBatch.
func withJob(ctx context.Context, job *river.Job[Args]) context.Context {
	return context.WithValue(ctx, jobKey{}, &jobRun{job: job})
}

// jobRunFrom returns the run of the callback with context ctx.
func jobRunFrom(ctx context.Context) (*jobRun, error) {
	run, ok := ctx.Value(jobKey{}).(*jobRun)
	if !ok {
		return nil, ErrNoJob
	}
	return run, nil
}

// CompleteTx records, inside tx, the transaction of the callback's own
// writes, that the job whose message the callback with context ctx is
// running has committed its effects: a row in the markers' table (see
// EffectsTableSQL) keyed by the job's id. The writes and the marker commit
// together or not at all, so a worker killed between its writes and the
// job's completion neither loses nor repeats the effect. Call it last in
// the transaction, then commit and return Commit's error:
//
//	h.OnConnectionUpdated(func(ctx context.Context, e *nectarhooks.ConnectionUpdated) error {
//		return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
//			if _, err := tx.Exec(ctx, `UPDATE connections SET status = $1 WHERE id = $2`, e.Status, e.ID); err != nil {
//				return err
//			}
//			return riverqueue.CompleteTx(ctx, tx)
//		})
//	})
//
// tx must be on the database of the River client that works the job. The
// workers' Handler then needs no idempotency store: the job is the
// message's claim (Args makes one job per message, see the package
// documentation), and the marker its record of completion. Callbacks whose
// writes need no reads of their own are faster with CompleteBatch, which
// sends them and the marker in one round trip.
//
// When an earlier attempt of the job committed its effects (its worker
// died before River completed the job, or River's rescuer took back a job
// whose worker it judged stuck, and that worker committed after all), the
// marker collides with that attempt's: CompleteTx waits for the other
// transaction, if it is still open, and then returns an error matching
// nectarhooks.ErrAlreadyProcessed. The transaction must roll back
// (pgx.BeginFunc does so for any error); the callback returns the error,
// and the Handler acknowledges the message as a duplicate, so River
// completes the job. Of the attempts of one job at most one commits its
// writes.
//
// A transaction that fails (a serialization failure, say) may be retried
// within the same run, with a new transaction and a new call. It returns
// ErrNoJob outside a Worker's callback, ErrMarkedTwice when called twice
// with the same transaction, ErrNoEffectsTable when the markers' table is
// missing, and PostgreSQL's errors otherwise.
//
// What a worker killed (SIGKILL, a lost node) at each point leaves: before
// its commit, PostgreSQL rolls the transaction back when the connection
// drops, the job stays running until River's rescuer makes it retryable
// (after RescueStuckJobsAfter, one hour by default, checked every 30
// seconds), and a later attempt runs the callback on a clean slate; after
// its commit and before River completed the job, the same, except that
// the later attempt finds the marker and is acknowledged without writing
// anything. A killed worker cannot make the rescue come sooner: shorten
// RescueStuckJobsAfter (it must be more than the job timeout) to get such
// messages processed sooner.
//
// The marker lives as long as the job's row (see EffectsTableSQL), which
// River's cleaner deletes after CompletedJobRetentionPeriod (see
// CompletedJobRetention): a job retried by hand (River's JobRetry) while
// its marker is there is acknowledged without running its writes again.
func CompleteTx(ctx context.Context, tx pgx.Tx) error {
	run, err := jobRunFrom(ctx)
	if err != nil {
		return err
	}
	run.mu.Lock()
	twice := run.lastTx == tx
	run.lastTx = tx
	run.mu.Unlock()
	if twice {
		return fmt.Errorf("%w (job %d)", ErrMarkedTwice, run.job.ID)
	}
	_, err = tx.Exec(ctx, insertMarker, run.job.ID, run.job.Attempt)
	return markerError(run.job, err)
}

// CompleteBatch sends b, the callback's writes, and the marker CompleteTx
// writes, to pool's PostgreSQL in one round trip, as one implicit
// transaction: they commit together or not at all, with the guarantees
// CompleteTx describes. It suits callbacks whose writes need no reads of
// their own, such as an upsert of the event's entity, and saves the
// transaction's BEGIN, COMMIT and round trips: River workers whose
// callback writes one row this way drained at 0.87x to 1.06x the rate of
// bare workers that write it without any guarantee (docs/effects.md).
//
//	h.OnConnectionUpdated(func(ctx context.Context, e *nectarhooks.ConnectionUpdated) error {
//		var b pgx.Batch
//		b.Queue(`UPDATE connections SET status = $1 WHERE id = $2`, e.Status, e.ID)
//		return riverqueue.CompleteBatch(ctx, pool, &b)
//	})
//
// b must not hold transaction statements (BEGIN, COMMIT, SAVEPOINT): a
// COMMIT in it would commit the writes before the marker. b is not
// changed; the marker is sent after its queries. A query's callbacks
// (pgx.QueuedQuery's Exec, Query and QueryRow) run as pgx reads the
// results, after PostgreSQL committed: an error they return is returned,
// and rolls nothing back (River retries the job, whose next attempt finds
// the marker). nil b sends the marker alone.
//
// It returns the errors CompleteTx returns; an error of one of b's
// queries, wrapped, rolls everything back too.
func CompleteBatch(ctx context.Context, pool *pgxpool.Pool, b *pgx.Batch) error {
	run, err := jobRunFrom(ctx)
	if err != nil {
		return err
	}
	job := run.job
	all := &pgx.Batch{}
	if b != nil {
		all.QueuedQueries = make([]*pgx.QueuedQuery, 0, len(b.QueuedQueries)+1)
		all.QueuedQueries = append(all.QueuedQueries, b.QueuedQueries...)
	}
	all.Queue(insertMarker, job.ID, job.Attempt)
	return markerError(job, pool.SendBatch(ctx, all).Close())
}

// markerError turns the marker's failures into the errors CompleteTx
// documents.
func markerError(job *river.Job[Args], err error) error {
	if err == nil {
		return nil
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case pgErr.Code == "23505" && pgErr.TableName == effectsTable: // unique_violation
			return fmt.Errorf("%w: job %d's effects were committed by an earlier attempt; attempt %d's rolled back",
				nectarhooks.ErrAlreadyProcessed, job.ID, job.Attempt)
		case pgErr.Code == "42P01" && strings.Contains(pgErr.Message, effectsTable): // undefined_table
			return fmt.Errorf("%w: %w", ErrNoEffectsTable, err)
		}
	}
	return fmt.Errorf("riverqueue: job %d's effects: %w", job.ID, err)
}
