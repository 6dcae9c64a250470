package riverqueue_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
	"github.com/nectarhooks/nectarhooks/riverqueue"
)

// TestReadBacklog: messages taken by intake with no worker running are the
// backlog, in their own queue, and age while they wait.
func TestReadBacklog(t *testing.T) {
	pool := newPool(t, newDatabase(t), 4)
	ctx := context.Background()

	empty, err := riverqueue.ReadBacklog(ctx, pool, "")
	require.NoError(t, err)
	assert.Equal(t, riverqueue.Backlog{}, empty, "no job yet")

	client := newInsertClient(t, pool)
	inDefault, inOther := riverqueue.New(client), riverqueue.New(client, riverqueue.WithQueueName("other"))
	for range 3 {
		require.NoError(t, inDefault.Enqueue(ctx, message()))
	}
	require.NoError(t, inOther.Enqueue(ctx, message()))
	time.Sleep(50 * time.Millisecond)

	b, err := riverqueue.ReadBacklog(ctx, pool, "")
	require.NoError(t, err)
	assert.Equal(t, int64(3), b.Available)
	assert.GreaterOrEqual(t, b.OldestAge, 50*time.Millisecond, "waiting since intake")
	b, err = riverqueue.ReadBacklog(ctx, pool, "other")
	require.NoError(t, err)
	assert.Equal(t, int64(1), b.Available)

	canceled, cancel := context.WithCancel(ctx)
	cancel()
	_, err = riverqueue.ReadBacklog(canceled, pool, "")
	require.Error(t, err, "the database's error, wrapped")
	assert.Contains(t, err.Error(), "riverqueue: reading the backlog")
}

// message is a test message: a sample payload under a new id.
func message() nectarhooks.Message {
	return nectarhooks.Message{
		ID:        nectarhookstest.NewMessageID(),
		Timestamp: time.Now().UTC(),
		EventType: nectarhooks.EventDocumentCreated,
		Payload:   nectarhookstest.Sample(nectarhooks.EventDocumentCreated),
	}
}
