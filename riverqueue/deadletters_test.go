package riverqueue_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
	"github.com/nectarhooks/nectarhooks/riverqueue"
)

// TestDeadLettersFromRiver: with a short retry policy, messages whose
// callback fails until fixed are discarded after their last attempt, and a
// Permanent error cancels its job at once; each is listed once with its
// payload byte for byte and its attempts. After the fix, two replays at
// once retry each job exactly once, each message runs once more, and no
// dead letter is left.
func TestDeadLettersFromRiver(t *testing.T) {
	const failing, maxAttempts = 5, 3
	pool := newPool(t, newDatabase(t), 10)
	workers := river.NewWorkers()
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		Queues:                      map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 4}},
		Workers:                     workers,
		RetryPolicy:                 retryNow{},
		FetchCooldown:               10 * time.Millisecond,
		FetchPollInterval:           50 * time.Millisecond,
		DiscardedJobRetentionPeriod: riverqueue.KeepDeadLetters,
		CancelledJobRetentionPeriod: riverqueue.KeepDeadLetters,
		Logger:                      quietLogger(),
	})
	require.NoError(t, err)

	secret := nectarhookstest.NewSecret()
	h, err := nectarhooks.NewHandler(secret,
		nectarhooks.WithQueue(riverqueue.New(client, riverqueue.WithMaxAttempts(maxAttempts))),
		nectarhooks.WithIdempotency(nectarhooks.NewMemoryStore(0, 0)),
		nectarhooks.WithErrorHandler(func(context.Context, int, error) {}))
	require.NoError(t, err)
	var fixed atomic.Bool
	var mu sync.Mutex
	runs := map[string]int{}
	h.OnDocumentCreated(func(ctx context.Context, e *nectarhooks.DocumentCreated) error {
		m, _ := nectarhooks.MessageFromContext(ctx)
		mu.Lock()
		runs[m.ID]++
		mu.Unlock()
		switch {
		case fixed.Load():
			return nil
		case e.ID == "doc-refused":
			return nectarhooks.Permanent(errors.New("refused for good"))
		}
		return errors.New("bug 1234")
	})
	river.AddWorker(workers, riverqueue.NewWorker(h))
	startClient(t, client)

	signer, err := nectarhookstest.NewSigner(secret)
	require.NoError(t, err)
	payloads := map[string][]byte{}
	for i := range failing + 1 {
		id := fmt.Sprintf("msg_river%d", i)
		doc := fmt.Sprintf("doc-%d", i)
		if i == failing {
			doc = "doc-refused"
		}
		payloads[id] = fmt.Appendf(nil, "{ \"eventType\":\"document.created.v2\", \"id\" : %q, \"x\":\"\u00e9\" }", doc)
		require.NoError(t, h.Dispatch(t.Context(), payloads[id], signer.HeaderFor(id, time.Now(), payloads[id])))
	}

	var letters []nectarhooks.DeadLetter
	require.Eventually(t, func() bool {
		letters, err = riverqueue.ListDeadLetters(t.Context(), client, nectarhooks.DeadLetterFilter{})
		require.NoError(t, err)
		return len(letters) == failing+1
	}, wait, pollEvery)
	seen := map[string]bool{}
	for _, d := range letters {
		require.False(t, seen[d.Message.ID], "%s listed twice", d.Message.ID)
		seen[d.Message.ID] = true
		assert.Equal(t, payloads[d.Message.ID], d.Message.Payload, "payload of %s", d.Message.ID)
		assert.Equal(t, nectarhooks.EventDocumentCreated, d.Message.EventType)
		assert.False(t, d.LastFailedAt.Before(d.FirstFailedAt))
		if d.Message.ID == fmt.Sprintf("msg_river%d", failing) {
			assert.Equal(t, 1, d.Attempts, "a Permanent error is not retried")
			assert.Contains(t, d.Error, "refused for good")
		} else {
			assert.Equal(t, maxAttempts, d.Attempts)
			assert.Contains(t, d.Error, "bug 1234")
		}
	}
	one, err := riverqueue.ListDeadLetters(t.Context(), client, nectarhooks.DeadLetterFilter{ID: "msg_river1"})
	require.NoError(t, err)
	require.Len(t, one, 1)
	assert.Equal(t, "msg_river1", one[0].Message.ID)

	fixed.Store(true)
	mu.Lock()
	before := map[string]int{}
	for id, n := range runs {
		before[id] = n
	}
	mu.Unlock()
	var retried atomic.Int32
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := riverqueue.ReplayDeadLetters(context.Background(), pool, client, nectarhooks.DeadLetterFilter{})
			assert.NoError(t, err)
			retried.Add(int32(n))
		}()
	}
	wg.Wait()
	assert.Equal(t, int32(failing+1), retried.Load(), "jobs retried by the two replays")
	require.Eventually(t, func() bool {
		return jobStates(t, pool)["completed"] == failing+1
	}, wait, pollEvery)
	mu.Lock()
	for id := range payloads {
		assert.Equal(t, before[id]+1, runs[id], "runs of %s after the replays", id)
	}
	mu.Unlock()
	letters, err = riverqueue.ListDeadLetters(t.Context(), client, nectarhooks.DeadLetterFilter{})
	require.NoError(t, err)
	assert.Empty(t, letters)
}
