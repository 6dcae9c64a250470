package riverqueue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/nectarhooks/nectarhooks"
)

// With River, the dead letters are River's own rows: a message's job is
// discarded once its last attempt failed, and cancelled when its payload
// does not decode or its callback returned a nectarhooks.Permanent error.
// Nothing is copied elsewhere; the job keeps the payload byte for byte
// (Args.Payload), its attempts and each attempt's error. River's cleaner
// deletes such jobs after DiscardedJobRetentionPeriod (7 days by default)
// and CancelledJobRetentionPeriod (24 hours): set both to KeepDeadLetters
// so that they stay until a replay succeeds.

// KeepDeadLetters is the value of river.Config's DiscardedJobRetentionPeriod
// and CancelledJobRetentionPeriod that keeps discarded and cancelled jobs,
// the dead letters, until they are replayed: River's cleaner does not delete
// them.
const KeepDeadLetters time.Duration = -1

// deadStates are the states of a job River gave up on.
var deadStates = []rivertype.JobState{rivertype.JobStateDiscarded, rivertype.JobStateCancelled}

// ListDeadLetters returns the messages River gave up on (jobs of Kind
// discarded or cancelled) that f selects, oldest last failure first: the
// message from the job's Args, the job's attempts, its last error, and the
// times of its first and last failure.
func ListDeadLetters[TTx any](ctx context.Context, client *river.Client[TTx], f nectarhooks.DeadLetterFilter) ([]nectarhooks.DeadLetter, error) {
	jobs, err := deadJobs(ctx, client, f)
	if err != nil {
		return nil, err
	}
	out := make([]nectarhooks.DeadLetter, len(jobs))
	for i, j := range jobs {
		out[i] = j.letter
	}
	return out, nil
}

type deadJob struct {
	id     int64
	letter nectarhooks.DeadLetter
}

// deadJobs pages through the dead jobs, in River's order of finalization.
func deadJobs[TTx any](ctx context.Context, client *river.Client[TTx], f nectarhooks.DeadLetterFilter) ([]deadJob, error) {
	params := river.NewJobListParams().States(deadStates...).Kinds(Kind).
		OrderBy(river.JobListOrderByFinalizedAt, river.SortOrderAsc).First(1000)
	if f.ID != "" {
		params = params.Where("args->>'id' = @id", river.NamedArgs{"id": f.ID})
	}
	var out []deadJob
	for {
		res, err := client.JobList(ctx, params)
		if err != nil {
			return nil, fmt.Errorf("riverqueue: listing dead letters: %w", err)
		}
		for _, row := range res.Jobs {
			d, err := letterOf(row)
			if err != nil {
				return nil, err
			}
			if f.Match(d) {
				out = append(out, deadJob{id: row.ID, letter: d})
			}
			if f.Limit > 0 && len(out) == f.Limit {
				return out, nil
			}
		}
		if len(res.Jobs) == 0 || res.LastCursor == nil {
			return out, nil
		}
		params = params.After(res.LastCursor)
	}
}

// letterOf reads a dead job as a DeadLetter.
func letterOf(row *rivertype.JobRow) (nectarhooks.DeadLetter, error) {
	var a Args
	if err := json.Unmarshal(row.EncodedArgs, &a); err != nil {
		return nectarhooks.DeadLetter{}, fmt.Errorf("riverqueue: job %d: reading its args: %w", row.ID, err)
	}
	d := nectarhooks.DeadLetter{Message: a.Message(), Attempts: row.Attempt}
	if n := len(row.Errors); n > 0 {
		d.Error = row.Errors[n-1].Error
		d.FirstFailedAt, d.LastFailedAt = row.Errors[0].At.UTC(), row.Errors[n-1].At.UTC()
	}
	if row.FinalizedAt != nil {
		d.LastFailedAt = row.FinalizedAt.UTC()
		if d.FirstFailedAt.IsZero() {
			d.FirstFailedAt = d.LastFailedAt
		}
	}
	return d, nil
}

// ReplayDeadLetters sends the dead jobs f selects back to River's workers
// (Client.JobRetryTx), which run them through the Handler as they ran
// before, under its idempotency store: a job that succeeds is completed
// and leaves the dead letters, one that fails again is retried by River's
// policy and discarded again, its attempts counted on. Each job is retried
// in a transaction that first locks its row and checks it is still
// discarded or cancelled, so that of replays running at once exactly one
// retries it; the others skip it. It returns how many jobs it retried.
// pool is the client's database.
func ReplayDeadLetters(ctx context.Context, pool *pgxpool.Pool, client *river.Client[pgx.Tx], f nectarhooks.DeadLetterFilter) (int, error) {
	jobs, err := deadJobs(ctx, client, f)
	if err != nil {
		return 0, err
	}
	retried := 0
	for _, j := range jobs {
		took := false
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			var state string
			err := tx.QueryRow(ctx, "SELECT state FROM river_job WHERE id = $1 FOR UPDATE", j.id).Scan(&state)
			if errors.Is(err, pgx.ErrNoRows) || (err == nil && !slices.Contains(deadStates, rivertype.JobState(state))) {
				return nil // another replay took it, or it is gone
			}
			if err != nil {
				return err
			}
			if _, err := client.JobRetryTx(ctx, tx, j.id); err != nil {
				return err
			}
			took = true
			return nil
		})
		if err != nil {
			return retried, fmt.Errorf("riverqueue: replaying message %s (job %d): %w", j.letter.Message.ID, j.id, err)
		}
		if took {
			retried++
		}
	}
	return retried, nil
}
