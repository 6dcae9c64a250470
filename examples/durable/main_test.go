package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
)

// wait bounds every wait for a process, so that a bug fails the test
// instead of hanging it; not a timing assertion.
const wait = 90 * time.Second

// TestCrashedIntakeLosesNothing runs the example as real processes: an
// intake acknowledges N deliveries (each sent twice) and is killed with
// SIGKILL before any worker ran; a worker started afterwards processes all
// N, each once, and exits cleanly on SIGTERM.
func TestCrashedIntakeLosesNothing(t *testing.T) {
	const n = 60
	bin := build(t)
	env := testEnv(t)

	intake := start(t, bin, env, "-mode", "intake", "-addr", "127.0.0.1:0")
	addr := intake.waitFor(t, "listening")["addr"].(string)
	target := "http://" + addr + "/webhooks/nectar"
	signer, err := nectarhookstest.NewSigner(env.secret)
	require.NoError(t, err)
	ids := make([]string, n)
	for i := range ids {
		ids[i] = nectarhookstest.NewMessageID()
	}
	statuses := deliverConcurrently(t, signer, target, ids, 2)
	require.Equal(t, map[int]int{http.StatusAccepted: 2 * n}, statuses)

	require.NoError(t, intake.cmd.Process.Signal(syscall.SIGKILL))
	intake.wait(t)

	db := env.pool(t)
	assert.Equal(t, n, count(t, db, "SELECT count(*) FROM river_job WHERE state = 'available'"), "one job per message, on disk")
	assert.Equal(t, 0, count(t, db, "SELECT count(*) FROM nectar_messages"), "nothing processed before the worker")

	worker := start(t, bin, env, "-mode", "worker")
	worker.waitFor(t, "working")
	require.Eventually(t, func() bool {
		return count(t, db, "SELECT count(*) FROM river_job WHERE state = 'completed'") == n
	}, wait, 50*time.Millisecond, "the worker completes every job")
	require.NoError(t, worker.cmd.Process.Signal(syscall.SIGTERM))
	assert.Equal(t, 0, worker.wait(t), "graceful exit on SIGTERM")

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
	bin := build(t)
	env := testEnv(t)
	p := start(t, bin, env, "-addr", "127.0.0.1:0") // -mode both by default
	addr := p.waitFor(t, "listening")["addr"].(string)
	signer, err := nectarhookstest.NewSigner(env.secret)
	require.NoError(t, err)
	ids := make([]string, n)
	for i := range ids {
		ids[i] = nectarhookstest.NewMessageID()
	}
	statuses := deliverConcurrently(t, signer, "http://"+addr+"/webhooks/nectar", ids, 3)
	require.Equal(t, map[int]int{http.StatusAccepted: 3 * n}, statuses)

	db := env.pool(t)
	require.Eventually(t, func() bool {
		return count(t, db, "SELECT count(*) FROM nectar_messages") == n
	}, wait, 50*time.Millisecond)
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	assert.Equal(t, 0, p.wait(t))
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
	bin := build(t)
	env := testEnv(t)
	procs := make([]*process, replicas)
	for i := range procs {
		procs[i] = start(t, bin, env, "-addr", "127.0.0.1:0")
	}
	targets := make([]string, replicas)
	for i, p := range procs {
		targets[i] = "http://" + p.waitFor(t, "listening")["addr"].(string) + "/webhooks/nectar"
	}

	signer, err := nectarhookstest.NewSigner(env.secret)
	require.NoError(t, err)
	ids := make([]string, n)
	for i := range ids {
		ids[i] = nectarhookstest.NewMessageID()
	}
	for _, target := range targets {
		statuses := deliverConcurrently(t, signer, target, ids, 1)
		require.Equal(t, map[int]int{http.StatusAccepted: n}, statuses, "%s serves", target)
	}

	db := env.pool(t)
	require.Eventually(t, func() bool {
		return count(t, db, "SELECT count(*) FROM river_job WHERE state = 'completed'") == n
	}, wait, 50*time.Millisecond, "the replicas complete every job")
	for _, p := range procs {
		require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	}
	for i, p := range procs {
		assert.Equal(t, 0, p.wait(t), "replica %d exits cleanly", i)
		assert.NotContains(t, p.output(), `"level":"ERROR"`, "replica %d", i)
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

// build compiles the example into a temporary directory.
func build(t *testing.T) string {
	t.Helper()
	nectarhookstest.PostgresURL(t) // skip before building when there is no server
	bin := filepath.Join(t.TempDir(), "durable")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	return bin
}

// environment is a database of the test's own and a secret.
type environment struct {
	dbURL, secret string
}

// testEnv creates a database of the test's own, dropped when it ends.
func testEnv(t *testing.T) environment {
	t.Helper()
	admin := nectarhookstest.PostgresURL(t)
	ctx := context.Background()
	b := make([]byte, 6)
	_, err := rand.Read(b)
	require.NoError(t, err)
	name := "nh_river_" + hex.EncodeToString(b)
	conn, err := pgx.Connect(ctx, admin)
	require.NoError(t, err)
	_, err = conn.Exec(ctx, "CREATE DATABASE "+name)
	conn.Close(ctx)
	require.NoError(t, err)
	t.Cleanup(func() {
		conn, err := pgx.Connect(context.Background(), admin)
		if err != nil {
			t.Errorf("dropping %s: %v", name, err)
			return
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("dropping %s: %v", name, err)
		}
	})
	u, err := url.Parse(admin)
	require.NoError(t, err)
	u.Path = "/" + name
	return environment{dbURL: u.String(), secret: nectarhookstest.NewSecret()}
}

func (e environment) pool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), e.dbURL)
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

// process is a running example, its JSON log lines read as they come.
type process struct {
	cmd   *exec.Cmd
	lines chan map[string]any
	done  chan struct{}
	mu    sync.Mutex
	log   bytes.Buffer // everything it wrote, for failure messages
}

func start(t *testing.T, bin string, env environment, args ...string) *process {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "DATABASE_URL="+env.dbURL, "NECTAR_WEBHOOK_SECRET="+env.secret)
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	p := &process{cmd: cmd, lines: make(chan map[string]any, 1024), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.mu.Lock()
			p.log.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
			var rec map[string]any
			if json.Unmarshal(sc.Bytes(), &rec) == nil {
				select {
				case p.lines <- rec:
				default: // nobody waits for it
				}
			}
		}
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			p.wait(t)
		}
		if t.Failed() {
			t.Logf("%s %s wrote:\n%s", filepath.Base(bin), strings.Join(args, " "), p.output())
		}
	})
	return p
}

// waitFor returns the first log record whose msg is msg.
func (p *process) waitFor(t *testing.T, msg string) map[string]any {
	t.Helper()
	timeout := time.After(wait)
	for {
		select {
		case rec := <-p.lines:
			if rec["msg"] == msg {
				return rec
			}
		case <-p.done:
			t.Fatalf("process ended before logging %q:\n%s", msg, p.output())
		case <-timeout:
			t.Fatalf("no %q in the log:\n%s", msg, p.output())
		}
	}
}

// wait waits for the process to end and returns its exit status (-1 when
// killed by a signal).
func (p *process) wait(t *testing.T) int {
	t.Helper()
	<-p.done // the log is read to the end first, as exec.Cmd.Wait requires
	err := p.cmd.Wait()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("waiting: %v", err)
	}
	return p.cmd.ProcessState.ExitCode()
}

func (p *process) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
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
