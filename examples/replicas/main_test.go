package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	mathrand "math/rand/v2"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/internal/exampletest"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
)

// receiver is one running process of the command.
type receiver struct {
	name string
	p    *exampletest.Process
	url  string
	dead atomic.Bool
}

// startReceiver starts one process of bin with args and waits for its
// "listening" log line.
func startReceiver(t *testing.T, bin, name string, env []string, args ...string) *receiver {
	t.Helper()
	p := exampletest.Start(t, bin, env, append([]string{"-addr", "127.0.0.1:0", "-replica", name}, args...)...)
	return &receiver{name: name, p: p, url: "http://" + p.WaitFor(t, "listening")["addr"].(string) + "/webhooks/nectar"}
}

func randomSuffix() string {
	b := make([]byte, 5)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// TestReplicasProcesses runs three receiver processes on one shared store,
// sends them a few thousand deliveries (each message twice at once, to
// random replicas, retried after any answer but 2xx as Svix does, with
// some callback runs failing on purpose), kills one process with SIGKILL
// in the middle, and keeps retrying against the survivors. In the end every
// message's callback ran successfully exactly once, counted in PostgreSQL
// by the callbacks themselves, with one exception no store can close: a
// message whose callback had done its work on the killed replica when the
// process died, before the store recorded it as processed, runs again on
// a survivor once the claim's lease ends. Those are counted and bounded by
// the number of deliveries in flight. (MemoryStore cannot be shared by
// processes: see TestReplicasMemoryStoreDoesNotShare.)
func TestReplicasProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three processes and sends thousands of deliveries")
	}
	pgURL := nectarhookstest.PostgresURL(t)
	bin := exampletest.Build(t, "receiver")
	tests := []struct {
		store string
		args  func(suffix string) []string
		ready func(t *testing.T)
	}{
		{"postgres", func(s string) []string { return []string{"-table", "nh_msgs_" + s} }, func(*testing.T) {}},
		{"redis", func(s string) []string { return []string{"-prefix", "nhtest:" + s + ":"} },
			func(t *testing.T) { nectarhookstest.RedisAddr(t) }},
	}
	for _, tt := range tests {
		t.Run(tt.store, func(t *testing.T) {
			tt.ready(t)
			suffix := randomSuffix()
			runsTable := "nh_runs_" + suffix
			pool := testPool(t, pgURL)
			t.Cleanup(func() {
				ctx := context.Background()
				pool.Exec(ctx, "DROP TABLE IF EXISTS "+pgx.Identifier{runsTable}.Sanitize())
				pool.Exec(ctx, "DROP TABLE IF EXISTS "+pgx.Identifier{"nh_msgs_" + suffix}.Sanitize())
				if tt.store == "redis" {
					cleanRedis(t, "nhtest:"+suffix+":")
				}
			})
			secret := nectarhookstest.NewSecret()
			env := []string{secretEnv + "=" + secret, postgresEnv + "=" + pgURL,
				redisEnv + "=" + os.Getenv(redisTestEnv)}
			if os.Getenv(redisTestEnv) == "" {
				env[2] = redisEnv + "=" + nectarhookstest.DefaultRedisAddr
			}
			args := append([]string{"-store", tt.store, "-runs-table", runsTable,
				// a short lease, so that the killed replica's claims
				// are taken over soon
				"-callback-timeout", "1s", "-fail-rate", "0.03"}, tt.args(suffix)...)
			var replicas []*receiver
			for _, name := range []string{"a", "b", "c"} {
				replicas = append(replicas, startReceiver(t, bin, name, env, args...))
			}

			const messages, copies, senders = 1500, 2, 24
			sent := runLoad(t, secret, replicas, messages, copies, senders, func() {
				// In the middle of the run: kill replica a outright.
				replicas[0].dead.Store(true)
				require.NoError(t, replicas[0].p.Signal(os.Kill))
			})

			counts := runCounts(t, pool, runsTable)
			var missing, twice, window []string
			for _, id := range sent {
				byReplica := counts[id]
				survivors := byReplica["b"] + byReplica["c"]
				switch killed := byReplica["a"]; {
				case survivors+killed == 0:
					missing = append(missing, id)
				case survivors > 1 || killed > 1:
					twice = append(twice, fmt.Sprintf("%s %v", id, byReplica))
				case survivors == 1 && killed == 1:
					// The killed replica's callback had recorded its run
					// but the process died before the store's Complete:
					// the claim expired and a survivor ran it again.
					window = append(window, fmt.Sprintf("%s %v", id, byReplica))
				}
			}
			assert.Empty(t, missing, "messages whose callback never succeeded")
			assert.Empty(t, twice, "messages whose callback succeeded more than once, other than by the killed replica")
			assert.Len(t, counts, len(sent), "the runs table holds the messages sent and no others")
			// Only deliveries in flight at the kill can be caught between
			// their callback's work and Complete: at most one per sender.
			assert.LessOrEqual(t, len(window), senders, "messages run again after the kill caught them between callback and Complete: %v", window)
			t.Logf("%d messages, %d deliveries each, one replica killed: %d ran again because the kill caught them between the callback's work and Complete",
				len(sent), copies, len(window))
		})
	}
}

// runLoad sends messages messages, each copies times at once, from senders
// goroutines, to random live replicas, retrying each delivery until it is
// answered 2xx; halfway it calls kill. It returns the message ids.
func runLoad(t *testing.T, secret string, replicas []*receiver, messages, copies, senders int, kill func()) []string {
	t.Helper()
	signer, err := nectarhookstest.NewSigner(secret)
	require.NoError(t, err)
	payload := nectarhookstest.Sample(nectarhooks.EventDocumentCreated)
	transport := &http.Transport{MaxIdleConnsPerHost: senders}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport, Timeout: 30 * time.Second}

	ids := make([]string, messages)
	jobs := make(chan string, messages*copies)
	for i := range ids {
		ids[i] = nectarhookstest.NewMessageID()
		for range copies {
			jobs <- ids[i]
		}
	}
	close(jobs)
	var done atomic.Int64
	var killOnce sync.Once
	deadline := time.Now().Add(3 * time.Minute)
	var wg sync.WaitGroup
	for range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range jobs {
				for attempt := 0; ; attempt++ {
					if time.Now().After(deadline) {
						t.Errorf("%s: not accepted before the deadline", id)
						return
					}
					r := replicas[mathrand.IntN(len(replicas))]
					if r.dead.Load() {
						continue
					}
					if status := deliver(client, signer, r.url, id, payload); status >= 200 && status < 300 {
						break
					}
					time.Sleep(time.Duration(5+mathrand.IntN(20*min(attempt+1, 10))) * time.Millisecond)
				}
				if done.Add(1) == int64(messages*copies/2) {
					killOnce.Do(kill)
				}
			}
		}()
	}
	wg.Wait()
	return ids
}

// deliver posts one signed delivery and returns the status, or 0 when the
// request failed (as it does against a killed process).
func deliver(client *http.Client, signer *nectarhookstest.Signer, url, id string, payload []byte) int {
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(string(payload)))
	if err != nil {
		return 0
	}
	for k, v := range signer.HeaderFor(id, time.Now(), payload) {
		req.Header[k] = v
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// runCounts reads the runs table: successful runs by message and replica.
func runCounts(t *testing.T, pool *pgxpool.Pool, table string) map[string]map[string]int {
	t.Helper()
	rows, err := pool.Query(context.Background(), "SELECT message_id, replica, runs FROM "+pgx.Identifier{table}.Sanitize())
	require.NoError(t, err)
	defer rows.Close()
	counts := map[string]map[string]int{}
	for rows.Next() {
		var id, replica string
		var runs int
		require.NoError(t, rows.Scan(&id, &replica, &runs))
		if counts[id] == nil {
			counts[id] = map[string]int{}
		}
		counts[id][replica] += runs
	}
	require.NoError(t, rows.Err())
	return counts
}

func testPool(t *testing.T, url string) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(url)
	require.NoError(t, err)
	cfg.MaxConns = 2
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return pool
}

func cleanRedis(t *testing.T, prefix string) {
	client := redis.NewClient(&redis.Options{Addr: nectarhookstest.RedisAddr(t)})
	defer client.Close()
	ctx := context.Background()
	iter := client.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	for iter.Next(ctx) {
		client.Del(ctx, iter.Val())
	}
}

// TestReplicasMemoryStoreDoesNotShare shows why replicas need a shared
// store: two processes with -store memory each run a message delivered to
// both.
func TestReplicasMemoryStoreDoesNotShare(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	pgURL := nectarhookstest.PostgresURL(t)
	runsTable := "nh_runs_" + randomSuffix()
	pool := testPool(t, pgURL)
	t.Cleanup(func() { pool.Exec(context.Background(), "DROP TABLE IF EXISTS "+pgx.Identifier{runsTable}.Sanitize()) })
	secret := nectarhookstest.NewSecret()
	env := []string{secretEnv + "=" + secret, postgresEnv + "=" + pgURL}
	bin := exampletest.Build(t, "receiver")
	a := startReceiver(t, bin, "a", env, "-store", "memory", "-runs-table", runsTable)
	b := startReceiver(t, bin, "b", env, "-store", "memory", "-runs-table", runsTable)
	signer, err := nectarhookstest.NewSigner(secret)
	require.NoError(t, err)
	payload := nectarhookstest.Sample(nectarhooks.EventDocumentCreated)
	client := &http.Client{Timeout: 30 * time.Second}
	defer client.CloseIdleConnections()
	const messages = 20
	for range messages {
		id := nectarhookstest.NewMessageID()
		for _, r := range []*receiver{a, a, b, b} {
			require.Equal(t, http.StatusOK, deliver(client, signer, r.url, id, payload))
		}
	}
	counts := runCounts(t, pool, runsTable)
	require.Len(t, counts, messages)
	for id, byReplica := range counts {
		assert.Equal(t, map[string]int{"a": 1, "b": 1}, byReplica,
			"%s: each process's memory store ran it once, so it ran once per process", id)
	}
}
