package riverqueue

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
)

// Backlog is the work a River queue holds for its workers: what intake has
// accepted (the Handler answered 202) and no worker has taken yet. A 202 is
// not work done; a backlog that grows under load means the workers do not
// keep up, however fast intake is.
type Backlog struct {
	// Available is the number of message jobs ready to run and waiting for
	// a worker (River's "available" state).
	Available int64
	// OldestAge is how long the oldest of them has been ready to run: 0
	// when none waits. It rises when the workers fall behind or stop,
	// before Available need say so.
	OldestAge time.Duration
}

// Querier runs one query: a *pgxpool.Pool, a *pgx.Conn or a pgx.Tx.
type Querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// backlogSQL counts the available jobs of Kind in one queue and the age of
// the oldest, on the database's clock, through River's fetching index
// (state, queue, priority, scheduled_at, id).
const backlogSQL = `SELECT count(*), coalesce(extract(epoch FROM now() - min(scheduled_at)), 0)::float8
FROM river_job WHERE state = 'available' AND queue = $1 AND kind = $2`

// ReadBacklog reads the Backlog of messages in River's queue named queue
// ("" for River's default queue, as WithQueueName), through q, in one
// query. River's tables must be in q's search_path (its default schema).
// Give it to otelhooks' Observer.ObserveBacklog to export it as metrics:
//
//	obs.ObserveBacklog(func(ctx context.Context) (int64, time.Duration, error) {
//		b, err := riverqueue.ReadBacklog(ctx, pool, "")
//		return b.Available, b.OldestAge, err
//	})
func ReadBacklog(ctx context.Context, q Querier, queue string) (Backlog, error) {
	if queue == "" {
		queue = river.QueueDefault
	}
	var (
		b   Backlog
		age float64
	)
	if err := q.QueryRow(ctx, backlogSQL, queue, Kind).Scan(&b.Available, &age); err != nil {
		return Backlog{}, fmt.Errorf("riverqueue: reading the backlog of queue %q: %w", queue, err)
	}
	b.OldestAge = time.Duration(age * float64(time.Second))
	return b, nil
}
