package riverqueue_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
	"github.com/nectarhooks/nectarhooks/riverqueue"
)

// TestThreeReplicas runs three replicas of one service, each taking
// deliveries and working jobs, on one database. Every message is delivered
// three times at once, each attempt to a different replica, while the
// workers run: every message's callback succeeds exactly once.
func TestThreeReplicas(t *testing.T) {
	const messages, replicas = 200, 3
	dbURL := newDatabase(t)
	secret := nectarhookstest.NewSecret()

	ids := make([]string, messages)
	index := map[string]int{}
	for i := range ids {
		ids[i] = nectarhookstest.NewMessageID()
		index[ids[i]] = i
	}
	// The callbacks' effects are shared, as a service's database is; every
	// fourth message fails its first run, wherever it runs.
	rec := newRecorder()
	rec.behave = func(_ context.Context, id string, run int) error {
		if run == 1 && index[id]%4 == 0 {
			return errors.New("first run fails")
		}
		return nil
	}
	urls := make([]string, replicas)
	for r := range replicas {
		pool := newPool(t, dbURL, 8)
		// One client both inserts and works, wired as docs/durable.md shows.
		client, workers := newRiverClient(t, pool)
		h, err := nectarhooks.NewHandler(secret, nectarhooks.WithQueue(riverqueue.New(client)),
			nectarhooks.WithErrorHandler(func(_ context.Context, status int, err error) {
				t.Errorf("replica %d: %d %v", r, status, err)
			}))
		require.NoError(t, err)
		river.AddWorker(workers, riverqueue.NewWorker(h))
		startClient(t, client)
		rec.register(h)
		srv := httptest.NewServer(h)
		t.Cleanup(srv.Close)
		urls[r] = srv.URL
	}

	d := newDeliverer(t, secret)
	var wg sync.WaitGroup
	var mu sync.Mutex
	statuses := map[int]int{}
	for i, id := range ids {
		for attempt := range replicas {
			wg.Go(func() {
				status, err := d.deliver(urls[(i+attempt)%replicas], id, samples[i%len(samples)])
				if err != nil {
					status = -1
				}
				mu.Lock()
				statuses[status]++
				mu.Unlock()
			})
		}
		if i%20 == 19 {
			wg.Wait() // batches of 60 deliveries in flight
		}
	}
	wg.Wait()
	require.Equal(t, map[int]int{http.StatusAccepted: messages * replicas}, statuses)

	check := newPool(t, dbURL, 2)
	require.Eventually(t, func() bool {
		return jobStates(t, check)[rivertype.JobStateCompleted] == messages
	}, wait, pollEvery, "every job completes")
	require.Equal(t, map[rivertype.JobState]int{rivertype.JobStateCompleted: messages}, jobStates(t, check),
		"one job per message")
	attempts, succeeded := rec.snapshot()
	for i, id := range ids {
		assert.Equal(t, 1, succeeded[id], "message %d succeeded exactly once", i)
		want := 1
		if i%4 == 0 {
			want = 2
		}
		assert.Equal(t, want, attempts[id], "runs of message %d", i)
	}
}
