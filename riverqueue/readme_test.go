package riverqueue_test

// The fragments of docs/dead-letters.md that need this module, compiled
// and run.

import (
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/stretchr/testify/require"

	"github.com/nectarhooks/nectarhooks/riverqueue"
)

// docs/dead-letters.md "Dead letters": River keeps them.
func keepDeadLetters(pool *pgxpool.Pool, workers *river.Workers) (*river.Client[pgx.Tx], error) {
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		Queues:                      map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 10}},
		Workers:                     workers,
		CompletedJobRetentionPeriod: riverqueue.CompletedJobRetention,
		DiscardedJobRetentionPeriod: riverqueue.KeepDeadLetters,
		CancelledJobRetentionPeriod: riverqueue.KeepDeadLetters,
	})

	return client, err
}

// TestKeepDeadLettersFragment: River accepts the configuration.
func TestKeepDeadLettersFragment(t *testing.T) {
	pool := newPool(t, newDatabase(t), 2)
	workers := river.NewWorkers()
	river.AddWorker(workers, riverqueue.NewWorker(nil))
	client, err := keepDeadLetters(pool, workers)
	require.NoError(t, err)
	require.NotNil(t, client)
}
