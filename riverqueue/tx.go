package riverqueue

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"
)

// Errors of CompleteTx.
var (
	// ErrJobLost: the job is no longer this worker's to complete. River's
	// rescuer took it back from a worker it judged stuck (running for
	// longer than river.Config.RescueStuckJobsAfter) and it is waiting for
	// a retry or running again elsewhere as a later attempt, or it was
	// cancelled or completed meanwhile. The transaction must roll back, so
	// that the callback's writes are not made twice.
	ErrJobLost = errors.New("riverqueue: the job is no longer this attempt's to complete")
	// ErrNoJob: the context is not a callback's run by a Worker.
	ErrNoJob = errors.New("riverqueue: no job in the context (is the callback run by a riverqueue.Worker?)")
)

type jobKey struct{}

// withJob returns ctx carrying job, for CompleteTx.
func withJob(ctx context.Context, job *river.Job[Args]) context.Context {
	return context.WithValue(ctx, jobKey{}, job)
}

// CompleteTx completes the job whose message the callback with context
// ctx is running, inside tx, the transaction of the callback's own writes
// (River's JobCompleteTx): they commit together or not at all, so a
// worker killed between its writes and the job's completion neither loses
// nor repeats the effect. Call it last in the transaction, then commit and
// return Commit's error:
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
// workers' Handler then needs no idempotency store: the job row is the
// message's claim (Args makes one job per message, see the package
// documentation), and the workers save the store's two statements per
// message.
//
// River's JobCompleteTx completes a job that is running, whichever attempt
// runs it, and (in River v0.51) returns a job that is not running as it is,
// without an error. A worker that hangs past RescueStuckJobsAfter has its
// job rescued and, once fetched again, running under another worker: both
// are then "running". So CompleteTx checks what JobCompleteTx returns: the
// job must now be completed, and by this attempt (same attempt number and
// start time). Otherwise it returns an error matching ErrJobLost, and the
// transaction must roll back (pgx.BeginFunc does so for any error): of the
// attempts of one job at most one commits its writes. It returns ErrNoJob
// outside a Worker's callback, and River's own errors otherwise.
//
// What a worker killed (SIGKILL, a lost node) at each point leaves: before
// its commit, PostgreSQL rolls the transaction back when the connection
// drops, the job stays running until River's rescuer makes it retryable
// (after RescueStuckJobsAfter, one hour by default, checked every 30
// seconds), and a later attempt runs the callback on a clean slate; after
// its commit, the job is completed with its writes, and nothing runs again.
// What a killed worker cannot do is make the rescue come sooner: shorten
// RescueStuckJobsAfter (it must be more than the job timeout) to get such
// messages processed sooner.
func CompleteTx(ctx context.Context, tx pgx.Tx) error {
	job, ok := ctx.Value(jobKey{}).(*river.Job[Args])
	if !ok {
		return ErrNoJob
	}
	done, err := river.JobCompleteTx[*riverpgxv5.Driver](ctx, tx, job)
	switch {
	case errors.Is(err, rivertype.ErrNotFound):
		return fmt.Errorf("%w: job %d is gone", ErrJobLost, job.ID)
	case err != nil:
		return fmt.Errorf("riverqueue: completing job %d: %w", job.ID, err)
	case done.State != rivertype.JobStateCompleted:
		// River v0.51 returns the row as it is, without an error, when it
		// is not running: the state tells.
		return fmt.Errorf("%w: job %d is %s", ErrJobLost, job.ID, done.State)
	case !sameAttempt(done.JobRow, job.JobRow):
		return fmt.Errorf("%w: job %d runs as attempt %d now, not %d", ErrJobLost, job.ID, done.Attempt, job.Attempt)
	}
	return nil
}

// sameAttempt reports whether the row River completed is the attempt the
// worker fetched: a rescued job fetched again has a higher attempt number
// and a later attempted_at.
func sameAttempt(done, mine *rivertype.JobRow) bool {
	if done.Attempt != mine.Attempt {
		return false
	}
	if done.AttemptedAt == nil || mine.AttemptedAt == nil {
		return done.AttemptedAt == mine.AttemptedAt
	}
	return done.AttemptedAt.Equal(*mine.AttemptedAt)
}
