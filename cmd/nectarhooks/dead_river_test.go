package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
	"github.com/nectarhooks/nectarhooks/riverqueue"
)

// riverDatabase creates a database with River's schema, dropped at the end.
func riverDatabase(t *testing.T) string {
	t.Helper()
	dbURL := nectarhookstest.PostgresDatabase(t, "nh_cli_")
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, dbURL)
	require.NoError(t, err)
	defer pool.Close()
	migrator, err := rivermigrate.New(riverpgxv5.New(pool), nil)
	require.NoError(t, err)
	_, err = migrator.Migrate(ctx, rivermigrate.DirectionUp, nil)
	require.NoError(t, err)
	return dbURL
}

type retryAtOnce struct{}

func (retryAtOnce) NextRetry(*rivertype.JobRow) time.Time { return time.Now() }

// TestDeadLettersRiver runs dead -river against River's real schema: jobs
// discarded after a short retry policy and one cancelled by a Permanent
// error are each listed once, byte for byte, with their attempts; after
// the fix two concurrent "dead replay -river -all" hand each back to
// River's workers exactly once, each message runs once more, and the list
// is empty.
func TestDeadLettersRiver(t *testing.T) {
	const failing, maxAttempts = 4, 2
	dsn := riverDatabase(t)
	pool, err := pgxpool.New(context.Background(), dsn)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	workers := river.NewWorkers()
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		Queues:                      map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 4}},
		Workers:                     workers,
		RetryPolicy:                 retryAtOnce{},
		FetchCooldown:               10 * time.Millisecond,
		FetchPollInterval:           50 * time.Millisecond,
		DiscardedJobRetentionPeriod: riverqueue.KeepDeadLetters,
		CancelledJobRetentionPeriod: riverqueue.KeepDeadLetters,
	})
	require.NoError(t, err)
	secret := nectarhookstest.NewSecret()
	h, err := nectarhooks.NewHandler(secret,
		nectarhooks.WithQueue(riverqueue.New(client, riverqueue.WithMaxAttempts(maxAttempts))),
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
	require.NoError(t, client.Start(context.Background()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		require.NoError(t, client.Stop(ctx))
	})

	signer, err := nectarhookstest.NewSigner(secret)
	require.NoError(t, err)
	payloads := map[string][]byte{}
	for i := range failing + 1 {
		id, doc := fmt.Sprintf("msg_cliriver%d", i), fmt.Sprintf("doc-%d", i)
		if i == failing {
			doc = "doc-refused"
		}
		payloads[id] = fmt.Appendf(nil, "{\"eventType\":\"document.created.v2\",  \"id\":%q}", doc)
		require.NoError(t, h.Dispatch(t.Context(), payloads[id], signer.HeaderFor(id, time.Now(), payloads[id])))
	}
	vars := map[string]string{"DATABASE_URL": dsn}
	list := func() map[string]deadJSON {
		res := runCLI(t, invocation{vars: vars}, "dead", "show", "-river", "-json")
		require.Equal(t, exitOK, res.code, res.stderr)
		out := map[string]deadJSON{}
		for line := range strings.Lines(res.stdout) {
			var d deadJSON
			require.NoError(t, json.Unmarshal([]byte(line), &d), line)
			require.NotContains(t, out, d.ID, "listed twice")
			out[d.ID] = d
		}
		return out
	}
	require.Eventually(t, func() bool { return len(list()) == failing+1 }, time.Minute, 50*time.Millisecond)
	for id, d := range list() {
		raw, err := base64.StdEncoding.DecodeString(d.PayloadBase64)
		require.NoError(t, err)
		assert.Equal(t, payloads[id], raw, "payload of %s", id)
		want := maxAttempts
		if id == fmt.Sprintf("msg_cliriver%d", failing) {
			want = 1
		}
		assert.Equal(t, want, d.Attempts, id)
		assert.NotEmpty(t, d.Error)
	}

	fixed.Store(true)
	mu.Lock()
	before := map[string]int{}
	for id, n := range runs {
		before[id] = n
	}
	mu.Unlock()
	var wg sync.WaitGroup
	results := make([]cliResult, 2)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = runCLI(t, invocation{vars: vars}, "dead", "replay", "-river", "-all", "-json")
		}()
	}
	wg.Wait()
	queued := 0
	for _, r := range results {
		require.Equal(t, exitOK, r.code, r.stdout+r.stderr)
		queued += strings.Count(r.stdout, `"replay":"queued"`)
	}
	assert.Equal(t, failing+1, queued, "%s\n%s", results[0].stdout, results[1].stdout)
	require.Eventually(t, func() bool {
		var n int
		require.NoError(t, pool.QueryRow(context.Background(),
			"SELECT count(*) FROM river_job WHERE state = 'completed'").Scan(&n))
		return n == failing+1
	}, time.Minute, 50*time.Millisecond)
	mu.Lock()
	for id := range payloads {
		assert.Equal(t, before[id]+1, runs[id], "runs of %s after the replays", id)
	}
	mu.Unlock()
	assert.Empty(t, list())
}
