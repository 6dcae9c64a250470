package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	mathrand "math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
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

// replica is one running process of the command.
type replica struct {
	name string
	p    *exampletest.Process
	url  string // the webhook endpoint
	base string // http://addr
	dead atomic.Bool
}

// newDatabase creates a database of the test's own, dropped when the test
// ends, and returns its URL.
func newDatabase(t testing.TB) string {
	t.Helper()
	return nectarhookstest.PostgresDatabase(t, "nh_effects_")
}

// startReplicas starts three replicas, a, b and c, on env's database.
func startReplicas(t *testing.T, bin string, env exampletest.Env, args ...string) []*replica {
	t.Helper()
	var rs []*replica
	for _, name := range []string{"a", "b", "c"} {
		p := env.Start(t, bin, append([]string{"-addr", "127.0.0.1:0", "-replica", name}, args...)...)
		rs = append(rs, &replica{name: name, p: p})
	}
	for _, r := range rs {
		addr := r.p.WaitFor(t, "listening")["addr"].(string)
		r.base = "http://" + addr
		r.url = r.base + "/webhooks/nectar"
	}
	return rs
}

// delivery is one message to send: its id and payload.
type delivery struct {
	id      string
	payload []byte
}

// sender sends deliveries as Svix does: to any live replica, retried with
// a short jittered backoff after anything but 2xx (a refused connection
// from a killed replica included), until one is acknowledged.
type sender struct {
	signer *nectarhookstest.Signer
	client *http.Client
	rs     []*replica
}

func newSender(t *testing.T, secret string, rs []*replica) *sender {
	signer, err := nectarhookstest.NewSigner(secret)
	require.NoError(t, err)
	transport := &http.Transport{MaxIdleConnsPerHost: 64}
	t.Cleanup(transport.CloseIdleConnections)
	return &sender{signer: signer, client: &http.Client{Transport: transport, Timeout: 30 * time.Second}, rs: rs}
}

// send delivers d until a replica acknowledges it, and returns the
// attempts it took; 0 when deadline passed first.
func (s *sender) send(d delivery, deadline time.Time) int {
	for attempt := 1; time.Now().Before(deadline); attempt++ {
		r := s.rs[mathrand.IntN(len(s.rs))]
		if r.dead.Load() {
			attempt--
			continue
		}
		if status := s.post(r.url, d); status >= 200 && status < 300 {
			return attempt
		}
		time.Sleep(time.Duration(5+mathrand.IntN(20*min(attempt, 10))) * time.Millisecond)
	}
	return 0
}

func (s *sender) post(url string, d delivery) int {
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(string(d.payload)))
	if err != nil {
		return 0
	}
	for k, v := range s.signer.HeaderFor(d.id, time.Now(), d.payload) {
		req.Header[k] = v
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// sendAll sends every delivery from workers goroutines, and calls halfway
// once half of them were acknowledged.
func (s *sender) sendAll(t *testing.T, ds []delivery, workers int, halfway func()) {
	t.Helper()
	jobs := make(chan delivery, len(ds))
	for _, d := range ds {
		jobs <- d
	}
	close(jobs)
	deadline := time.Now().Add(4 * time.Minute)
	var acked atomic.Int64
	var once sync.Once
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for d := range jobs {
				if s.send(d, deadline) == 0 {
					t.Errorf("%s: not acknowledged before the deadline", d.id)
					return
				}
				if acked.Add(1) == int64(len(ds)/2) && halfway != nil {
					once.Do(halfway)
				}
			}
		}()
	}
	wg.Wait()
}

func count(t *testing.T, pool *pgxpool.Pool, query string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, pool.QueryRow(context.Background(), query, args...).Scan(&n))
	return n
}

// TestExactlyOnceEffects runs three replicas of each mode, sends each of
// 600 messages twice at once through them with Svix-like retries, kills
// replica a with SIGKILL halfway, and checks the effects table: one row per
// message, none missing, none twice. It counts the messages the kill
// caught in flight: takeovers, whose callback had started on a (an
// attempt recorded) and whose effect was written by b or c, and with River
// the jobs run again after their commit (the marker's case). A mode whose
// runs caught none would prove nothing, so the test fails then.
func TestExactlyOnceEffects(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three processes per run and sends thousands of deliveries")
	}
	nectarhookstest.PostgresURL(t)
	bin := exampletest.Build(t, "effects")
	modes := []struct {
		mode string
		runs int
		args []string
	}{
		// A claim's lease: 1 s + nectarhooks.LeaseGrace.
		{"pgxstore", 5, []string{"-mode", "pgxstore", "-callback-timeout", "1s", "-hold", "20ms"}},
		// River rescues a job running for 2 × 2 s; its rescuer looks
		// every 30 s.
		{"river", 3, []string{"-mode", "river", "-callback-timeout", "2s", "-hold", "20ms", "-workers", "10"}},
		{"river-batch", 3, []string{"-mode", "river-batch", "-callback-timeout", "2s", "-hold", "20ms", "-workers", "10"}},
	}
	for _, m := range modes {
		t.Run(m.mode, func(t *testing.T) {
			total := 0
			for run := range m.runs {
				t.Run(fmt.Sprint(run), func(t *testing.T) {
					total += exactlyOnceRun(t, bin, m.mode, m.args)
				})
			}
			t.Logf("%s: %d runs, %d messages caught in flight by the kills in all", m.mode, m.runs, total)
			assert.Positive(t, total, "no kill caught a callback in flight: the test proved nothing")
		})
	}
}

// exactlyOnceRun is one run of TestExactlyOnceEffects; it returns the
// messages the kill caught in flight: the takeovers, and with River the
// jobs run again after their commit.
func exactlyOnceRun(t *testing.T, bin, mode string, args []string) int {
	const messages, copies, senders = 600, 2, 24
	env := exampletest.NewEnv(t, "nh_effects_")
	rs := startReplicas(t, bin, env, args...)
	pool, err := pgxpool.New(context.Background(), env.DatabaseURL)
	require.NoError(t, err)
	t.Cleanup(pool.Close)

	payload := nectarhookstest.Sample(nectarhooks.EventDocumentCreated)
	var ds []delivery
	for range messages {
		id := nectarhookstest.NewMessageID()
		for range copies {
			ds = append(ds, delivery{id, payload})
		}
	}
	mathrand.Shuffle(len(ds), func(i, j int) { ds[i], ds[j] = ds[j], ds[i] })
	s := newSender(t, env.Secret, rs)
	s.sendAll(t, ds, senders, func() {
		rs[0].dead.Store(true)
		require.NoError(t, rs[0].p.Signal(syscall.SIGKILL))
	})
	if strings.HasPrefix(mode, "river") {
		// Acknowledged is queued: wait for the workers, and for River to
		// rescue the jobs the kill left running.
		require.Eventually(t, func() bool {
			return count(t, pool, `SELECT count(*) FROM river_job WHERE state <> 'completed'`) == 0
		}, 3*time.Minute, 200*time.Millisecond, "jobs left unfinished")
	}

	rows := count(t, pool, `SELECT count(*) FROM effects`)
	distinct := count(t, pool, `SELECT count(DISTINCT message_id) FROM effects`)
	twice := count(t, pool, `SELECT count(*) FROM (SELECT message_id FROM effects GROUP BY message_id HAVING count(*) > 1) d`)
	takeovers := count(t, pool, `SELECT count(DISTINCT a.message_id) FROM attempts a JOIN effects e USING (message_id)
		WHERE a.replica = 'a' AND e.replica <> 'a'`)
	byA := count(t, pool, `SELECT count(*) FROM effects WHERE replica = 'a'`)
	rerun := 0
	if strings.HasPrefix(mode, "river") {
		// Attempts after the one that committed: each found the marker
		// and was acknowledged without writing. A kill past the commit
		// and before River completed the job makes one.
		rerun = count(t, pool, `SELECT count(*) FROM nectarhooks_job_effects m JOIN river_job j ON j.id = m.job_id WHERE j.attempt > m.attempt`)
		t.Logf("%s: %d jobs ran again after their effects committed, and wrote nothing", mode, rerun)
	}
	assert.Equal(t, messages, distinct, "messages with an effect (missing: %d)", messages-distinct)
	assert.Equal(t, messages, rows, "effect rows")
	assert.Zero(t, twice, "messages written twice")
	t.Logf("%s: %d messages × %d deliveries, replica a killed halfway: %d effect rows, %d duplicates, %d missing; a wrote %d, %d takeovers (started on a, written by b or c)",
		mode, messages, copies, rows, twice, messages-distinct, byA, takeovers)
	return takeovers + rerun
}

// TestEventOrder sends 5 status updates of each of 200 connections through
// three replicas, each update's first attempt failing for a third of them
// (so that Svix's retry of it comes after newer updates), and checks that
// every connection ends with the status of its newest update, that each
// message was either applied (an effect row) or counted stale by the
// Observer, and that the stale ones were many.
func TestEventOrder(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three processes and sends a thousand deliveries")
	}
	nectarhookstest.PostgresURL(t)
	bin := exampletest.Build(t, "effects")
	for _, mode := range []string{"pgxstore", "river"} {
		t.Run(mode, func(t *testing.T) {
			const connections, updates = 200, 5
			env := exampletest.NewEnv(t, "nh_effects_")
			rs := startReplicas(t, bin, env, "-mode", mode, "-callback-timeout", "2s")
			pool, err := pgxpool.New(context.Background(), env.DatabaseURL)
			require.NoError(t, err)
			t.Cleanup(pool.Close)

			t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
			var first, retried []delivery
			newest := map[string]string{}
			for c := range connections {
				id := fmt.Sprintf("conn-%03d", c)
				for u := range updates {
					status := fmt.Sprintf("STATUS_%d", u)
					updated := t0.Add(time.Duration(c*updates+u) * time.Microsecond)
					d := delivery{nectarhookstest.NewMessageID(), connectionUpdate(t, id, status, updated)}
					// A third of the first attempts fail: Svix retries them
					// later, after the newer updates went through.
					if mathrand.IntN(3) == 0 {
						retried = append(retried, d)
					} else {
						first = append(first, d)
					}
				}
				newest[id] = fmt.Sprintf("STATUS_%d", updates-1)
			}
			s := newSender(t, env.Secret, rs)
			s.sendAll(t, first, 24, nil)
			mathrand.Shuffle(len(retried), func(i, j int) { retried[i], retried[j] = retried[j], retried[i] })
			s.sendAll(t, retried, 24, nil)
			messages := len(first) + len(retried)

			stale := 0
			require.Eventually(t, func() bool {
				stale = 0
				for _, r := range rs {
					stale += stats(t, r)["stale"]
				}
				return count(t, pool, `SELECT count(*) FROM effects`)+stale == messages
			}, 3*time.Minute, 200*time.Millisecond, "every message applied or counted stale")

			rows, err := pool.Query(context.Background(), `SELECT id, status FROM connections`)
			require.NoError(t, err)
			got := map[string]string{}
			for rows.Next() {
				var id, status string
				require.NoError(t, rows.Scan(&id, &status))
				got[id] = status
			}
			require.NoError(t, rows.Err())
			assert.Equal(t, newest, got, "every connection's status is its newest update's")
			assert.Zero(t, count(t, pool, `SELECT count(*) FROM (SELECT message_id FROM effects GROUP BY message_id HAVING count(*) > 1) d`), "applied twice")
			assert.Positive(t, stale, "the retries of older updates were stale")
			t.Logf("%s: %d connections × %d updates, %d first attempts failed and were retried after newer ones: %d applied, %d stale (Observer)",
				mode, connections, updates, len(retried), messages-stale, stale)
		})
	}
}

// stats reads a replica's Observer counts.
func stats(t *testing.T, r *replica) map[string]int {
	t.Helper()
	resp, err := http.Get(r.base + "/stats")
	require.NoError(t, err)
	defer resp.Body.Close()
	var m map[string]int
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&m))
	return m
}

// connectionUpdate is Nectar's connection.updated.v2 sample for connection
// id with status and updated.
func connectionUpdate(t *testing.T, id, status string, updated time.Time) []byte {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(nectarhookstest.Sample(nectarhooks.EventConnectionUpdated), &m))
	m["id"], m["status"], m["updated"] = id, status, nectarhooks.Time{Time: updated}
	b, err := json.Marshal(m)
	require.NoError(t, err)
	return b
}
