package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/nectarhooks/nectarhooks"
)

// With -river, dead reads River's own table, where riverqueue's dead
// letters are: jobs of its kind discarded after their last attempt or
// cancelled (a payload that does not decode, a Permanent error). The CLI
// talks to the table in SQL rather than through River's client, which
// would add River to the one binary users install; the statements are
// those of riverqueue.ListDeadLetters and of River's own JobRetry, and
// TestDeadLettersRiver runs them against River's real schema.

// riverKind is riverqueue.Kind.
const riverKind = "nectarhooks_message"

// riverListSQL selects the dead jobs, oldest finalized first, with what a
// DeadLetter needs; filters are applied in Go, as there are few.
const riverListSQL = `SELECT id, args, attempt, coalesce(errors[array_length(errors, 1)]->>'error', ''),
	coalesce((errors[1]->>'at')::timestamptz, finalized_at), finalized_at
FROM river_job WHERE kind = $1 AND state IN ('discarded', 'cancelled')
ORDER BY finalized_at, id`

// riverRetrySQL is River's JobRetry for a job still discarded or cancelled,
// in one statement: of replays running at once exactly one finds it so,
// and the others update nothing. The job's attempts go on from where they
// were, with one more allowed when it had used them all.
const riverRetrySQL = `UPDATE river_job SET state = 'available',
	max_attempts = CASE WHEN attempt >= max_attempts THEN attempt + 1 ELSE max_attempts END,
	finalized_at = NULL, metadata = metadata - 'cancel_attempted_at', scheduled_at = now()
WHERE id = $1 AND kind = $2 AND state IN ('discarded', 'cancelled')`

type riverDead struct {
	job    int64
	letter nectarhooks.DeadLetter
}

// riverArgs is riverqueue.Args as stored.
type riverArgs struct {
	ID        string                `json:"id"`
	Account   string                `json:"account"`
	Timestamp time.Time             `json:"timestamp"`
	EventType nectarhooks.EventType `json:"event_type"`
	Payload   []byte                `json:"payload"`
}

func riverList(ctx context.Context, pool *pgxpool.Pool, f nectarhooks.DeadLetterFilter) ([]riverDead, error) {
	rows, err := pool.Query(ctx, riverListSQL, riverKind)
	if err != nil {
		return nil, fmt.Errorf("reading River's jobs (is this River's database? -river needs its river_job table): %w", err)
	}
	defer rows.Close()
	var out []riverDead
	for rows.Next() {
		r, err := scanRiverDead(rows)
		if err != nil {
			return nil, err
		}
		if f.Match(r.letter) {
			out = append(out, r)
		}
		if f.Limit > 0 && len(out) == f.Limit {
			break
		}
	}
	return out, rows.Err()
}

// riverRetry sends job back to River's workers, reporting whether this
// call did (false: another replay did, or it is no longer dead).
func riverRetry(ctx context.Context, pool *pgxpool.Pool, job int64) (bool, error) {
	tag, err := pool.Exec(ctx, riverRetrySQL, job, riverKind)
	if err != nil {
		return false, err
	}
	return tag.RowsAffected() == 1, nil
}

// scanRiverDead reads one row of riverListSQL.
func scanRiverDead(row pgx.Row) (riverDead, error) {
	var (
		r           riverDead
		args        []byte
		first, last time.Time
	)
	if err := row.Scan(&r.job, &args, &r.letter.Attempts, &r.letter.Error, &first, &last); err != nil {
		return r, err
	}
	var a riverArgs
	if err := json.Unmarshal(args, &a); err != nil {
		return r, fmt.Errorf("job %d: reading its args: %w", r.job, err)
	}
	r.letter.Message = nectarhooks.Message{ID: a.ID, Account: a.Account, Timestamp: a.Timestamp.UTC(), EventType: a.EventType, Payload: a.Payload}
	r.letter.FirstFailedAt, r.letter.LastFailedAt = first.UTC(), last.UTC()
	return r, nil
}
