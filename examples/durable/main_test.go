package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/internal/exampletest"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
)

// TestCrashedIntakeLosesNothing runs the example as real processes: an
// intake acknowledges N deliveries (each sent twice) and is killed with
// SIGKILL before any worker ran; a worker started afterwards processes all
// N, each once, and exits cleanly on SIGTERM.
func TestCrashedIntakeLosesNothing(t *testing.T) {
	const n = 60
	env := exampletest.NewEnv(t, "nh_river_")
	bin := exampletest.Build(t, "durable")

	intake := env.Start(t, bin, "-mode", "intake", "-addr", "127.0.0.1:0")
	addr := intake.WaitFor(t, "listening")["addr"].(string)
	target := "http://" + addr + "/webhooks/nectar"
	signer, err := nectarhookstest.NewSigner(env.Secret)
	require.NoError(t, err)
	ids := make([]string, n)
	for i := range ids {
		ids[i] = nectarhookstest.NewMessageID()
	}
	statuses := deliverConcurrently(t, signer, target, ids, 2)
	require.Equal(t, map[int]int{http.StatusAccepted: 2 * n}, statuses)

	require.NoError(t, intake.Signal(syscall.SIGKILL))
	intake.Wait(t)

	db := newPool(t, env.DatabaseURL)
	assert.Equal(t, n, count(t, db, "SELECT count(*) FROM river_job WHERE state = 'available'"), "one job per message, on disk")
	assert.Equal(t, 0, count(t, db, "SELECT count(*) FROM nectar_messages"), "nothing processed before the worker")

	worker := env.Start(t, bin, "-mode", "worker")
	worker.WaitFor(t, "working")
	require.Eventually(t, func() bool {
		return count(t, db, "SELECT count(*) FROM river_job WHERE state = 'completed'") == n
	}, exampletest.Wait, 50*time.Millisecond, "the worker completes every job")
	require.NoError(t, worker.Signal(syscall.SIGTERM))
	assert.Equal(t, 0, worker.Wait(t), "graceful exit on SIGTERM")

	runs := map[string]int{}
	rows, err := db.Query(context.Background(), "SELECT message_id, runs FROM nectar_messages")
	require.NoError(t, err)
	for rows.Next() {
		var id string
		var r int
		require.NoError(t, rows.Scan(&id, &r))
		runs[id] = r
	}
	require.NoError(t, rows.Err())
	require.Len(t, runs, n)
	for i, id := range ids {
		assert.Equal(t, 1, runs[id], "message %d processed once", i)
	}
}

// TestBothModes runs one process that takes deliveries and works them,
// then shuts it down with SIGTERM.
func TestBothModes(t *testing.T) {
	const n = 20
	env := exampletest.NewEnv(t, "nh_river_")
	bin := exampletest.Build(t, "durable")
	p := env.Start(t, bin, "-addr", "127.0.0.1:0") // -mode both by default
	addr := p.WaitFor(t, "listening")["addr"].(string)
	signer, err := nectarhookstest.NewSigner(env.Secret)
	require.NoError(t, err)
	ids := make([]string, n)
	for i := range ids {
		ids[i] = nectarhookstest.NewMessageID()
	}
	statuses := deliverConcurrently(t, signer, "http://"+addr+"/webhooks/nectar", ids, 3)
	require.Equal(t, map[int]int{http.StatusAccepted: 3 * n}, statuses)

	db := newPool(t, env.DatabaseURL)
	require.Eventually(t, func() bool {
		return count(t, db, "SELECT count(*) FROM nectar_messages") == n
	}, exampletest.Wait, 50*time.Millisecond)
	require.NoError(t, p.Signal(syscall.SIGTERM))
	assert.Equal(t, 0, p.Wait(t))
	assert.Equal(t, n, count(t, db, "SELECT sum(runs) FROM nectar_messages"), "each message once")
	assert.Equal(t, n, count(t, db, "SELECT count(*) FROM river_job"))
}

// TestReplicasStartTogether starts three processes at the same moment on a
// database without River's tables, each migrating on start (the default):
// all come up and serve, and every message sent to them, each to all
// three, is processed once. On SIGTERM each shuts down in order, logging
// no error (a pool closed too early would).
func TestReplicasStartTogether(t *testing.T) {
	const replicas, n = 3, 30
	env := exampletest.NewEnv(t, "nh_river_")
	bin := exampletest.Build(t, "durable")
	procs := make([]*exampletest.Process, replicas)
	for i := range procs {
		procs[i] = env.Start(t, bin, "-addr", "127.0.0.1:0")
	}
	targets := make([]string, replicas)
	for i, p := range procs {
		targets[i] = "http://" + p.WaitFor(t, "listening")["addr"].(string) + "/webhooks/nectar"
	}

	signer, err := nectarhookstest.NewSigner(env.Secret)
	require.NoError(t, err)
	ids := make([]string, n)
	for i := range ids {
		ids[i] = nectarhookstest.NewMessageID()
	}
	for _, target := range targets {
		statuses := deliverConcurrently(t, signer, target, ids, 1)
		require.Equal(t, map[int]int{http.StatusAccepted: n}, statuses, "%s serves", target)
	}

	db := newPool(t, env.DatabaseURL)
	require.Eventually(t, func() bool {
		return count(t, db, "SELECT count(*) FROM river_job WHERE state = 'completed'") == n
	}, exampletest.Wait, 50*time.Millisecond, "the replicas complete every job")
	for _, p := range procs {
		require.NoError(t, p.Signal(syscall.SIGTERM))
	}
	for i, p := range procs {
		assert.Equal(t, 0, p.Wait(t), "replica %d exits cleanly", i)
		assert.NotContains(t, p.Output(), `"level":"ERROR"`, "replica %d", i)
	}
	assert.Equal(t, n, count(t, db, "SELECT count(*) FROM nectar_messages"))
	assert.Equal(t, n, count(t, db, "SELECT sum(runs) FROM nectar_messages"), "each message once")
	assert.Equal(t, n, count(t, db, "SELECT count(*) FROM river_job"), "one job per message")
}

func TestUsage(t *testing.T) {
	env := func(vars map[string]string) func(string) string {
		return func(k string) string { return vars[k] }
	}
	withDB := env(map[string]string{"DATABASE_URL": "postgres://x/y"})
	defaults := config{mode: "both", addr: "127.0.0.1:8080", workers: 100, fetchCooldown: 10 * time.Millisecond,
		fetchPollInterval: 100 * time.Millisecond, migrate: true, shutdownTimeout: 30 * time.Second, databaseURL: "postgres://x/y"}
	with := func(change func(*config)) config {
		c := defaults
		change(&c)
		return c
	}
	cases := []struct {
		name    string
		args    []string
		getenv  func(string) string
		wantErr string
		want    config
	}{
		{"defaults", nil, withDB, "", defaults},
		{"intake, no migrations", []string{"-mode", "intake", "-migrate=false"}, withDB, "",
			with(func(c *config) { c.mode, c.migrate = "intake", false })},
		{"fetch settings", []string{"-workers", "20", "-fetch-cooldown", "5ms", "-fetch-poll-interval", "1s"}, withDB, "",
			with(func(c *config) { c.workers, c.fetchCooldown, c.fetchPollInterval = 20, 5*time.Millisecond, time.Second })},
		{"test variable as fallback", []string{"-mode", "worker"}, env(map[string]string{"NECTARHOOKS_POSTGRES_URL": "postgres://t/t"}), "",
			with(func(c *config) { c.mode, c.databaseURL = "worker", "postgres://t/t" })},
		{"unknown mode", []string{"-mode", "both-ish"}, withDB, `-mode "both-ish"`, config{}},
		{"no workers", []string{"-workers", "0"}, withDB, "-workers 0", config{}},
		{"cooldown under River's minimum", []string{"-fetch-cooldown", "500us"}, withDB, "-fetch-cooldown 500µs", config{}},
		{"poll shorter than cooldown", []string{"-fetch-poll-interval", "5ms"}, withDB, "-fetch-poll-interval 5ms", config{}},
		{"no database", nil, env(nil), "DATABASE_URL", config{}},
		{"stray argument", []string{"worker"}, withDB, "unexpected arguments", config{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseConfig(tc.args, tc.getenv, io.Discard)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				var stderr bytes.Buffer
				assert.Equal(t, 2, main1(context.Background(), tc.args, tc.getenv, &stderr))
				assert.Contains(t, stderr.String(), tc.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

// newPool opens a pool on dbURL, closed when the test ends.
func newPool(t *testing.T, dbURL string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), dbURL)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return pool
}

func count(t *testing.T, pool *pgxpool.Pool, query string) int {
	t.Helper()
	var n *int64
	require.NoError(t, pool.QueryRow(context.Background(), query).Scan(&n))
	if n == nil {
		return 0
	}
	return int(*n)
}

// deliverConcurrently sends every message attempts times, all at once
// (16 at a time), and counts the answers by status.
func deliverConcurrently(t *testing.T, signer *nectarhookstest.Signer, target string, ids []string, attempts int) map[int]int {
	t.Helper()
	types := nectarhooks.EventTypes()
	var mu sync.Mutex
	statuses := map[int]int{}
	work := make(chan int)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for i := range work {
				body := nectarhookstest.Sample(types[i%len(types)])
				req, err := signer.NewRequest(context.Background(), target, body)
				status := -1
				if err == nil {
					req.Header = signer.HeaderFor(ids[i], time.Now(), body)
					var resp *http.Response
					if resp, err = http.DefaultClient.Do(req); err == nil {
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						status = resp.StatusCode
					}
				}
				mu.Lock()
				statuses[status]++
				mu.Unlock()
			}
		})
	}
	for i := range ids {
		for range attempts {
			work <- i
		}
	}
	close(work)
	wg.Wait()
	return statuses
}
