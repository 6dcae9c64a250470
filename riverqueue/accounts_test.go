package riverqueue_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
	"github.com/nectarhooks/nectarhooks/riverqueue"
)

// TestAccountHandlerQueue: a NewAccountHandler on River. One svix-id sent
// to two accounts at once, and again to one of them, is two jobs, each
// run once by the Worker as its account's message; the redelivery is
// turned away as already queued.
func TestAccountHandlerQueue(t *testing.T) {
	pool := newPool(t, newDatabase(t), 10)
	client, workers := newRiverClient(t, pool)
	secrets := map[string]string{"acme": nectarhookstest.NewSecret(), "globex": nectarhookstest.NewSecret()}
	h, err := nectarhooks.NewAccountHandler(func(r *http.Request) string { return r.PathValue("account") },
		func(_ context.Context, account string) ([]string, error) {
			if s, ok := secrets[account]; ok {
				return []string{s}, nil
			}
			return nil, nectarhooks.ErrUnknownAccount
		},
		nectarhooks.WithQueue(riverqueue.New(client)), nectarhooks.WithLogger(quietLogger()))
	require.NoError(t, err)
	var mu sync.Mutex
	runs := map[string]int{}
	h.OnDocumentCreated(func(ctx context.Context, _ *nectarhooks.DocumentCreated) error {
		m, _ := nectarhooks.MessageFromContext(ctx)
		mu.Lock()
		runs[m.Account]++
		mu.Unlock()
		return nil
	})
	river.AddWorker(workers, riverqueue.NewWorker(h))
	startClient(t, client)
	mux := http.NewServeMux()
	mux.Handle("POST /webhooks/{account}", h)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	id := nectarhookstest.NewMessageID()
	body := nectarhookstest.Sample(nectarhooks.EventDocumentCreated)
	var wg sync.WaitGroup
	codes := make([]int, 3)
	for i, account := range []string{"acme", "globex", "acme"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, err := newDeliverer(t, secrets[account]).deliver(srv.URL+"/webhooks/"+account, id, body)
			assert.NoError(t, err)
			codes[i] = code
		}()
	}
	wg.Wait()
	assert.Equal(t, []int{202, 202, 202}, codes)
	require.Eventually(t, func() bool {
		return jobStates(t, pool)["completed"] == 2
	}, wait, pollEvery, "two completed jobs: %v", jobStates(t, pool))
	assert.Equal(t, 2, total(jobStates(t, pool)), "one job per account")
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, map[string]int{"acme": 1, "globex": 1}, runs, "runs by account")
}

// Args keep the account, and a message without one keeps the JSON (and
// so the unique key) it had before accounts.
func TestArgsAccount(t *testing.T) {
	msg := nectarhooks.Message{ID: "msg_1", Account: "acme", Timestamp: time.Unix(1, 0).UTC(), Payload: []byte("{}")}
	assert.Equal(t, msg, riverqueue.NewArgs(msg).Message())
	encoded, err := json.Marshal(riverqueue.NewArgs(nectarhooks.Message{ID: "msg_1"}))
	require.NoError(t, err)
	assert.NotContains(t, string(encoded), `"account"`)
}
