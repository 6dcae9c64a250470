package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
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

// TestReplicasRunEachMessageOnce starts three replicas at the same moment
// on a database without any table, and sends every message to all three
// at once, as Svix's redeliveries reach whichever replica answers: each
// message's callback runs once. Then, with River's completed jobs deleted
// (as its retention does after 48 hours), a resend of every message makes
// new jobs, which pgxstore turns away without running the callbacks again.
// The replicas' metrics show it, and each shuts down cleanly on SIGTERM.
func TestReplicasRunEachMessageOnce(t *testing.T) {
	const replicas, n = 3, 40
	env := exampletest.NewEnv(t, "nh_production_")
	bin := exampletest.Build(t, "production")
	procs := make([]*exampletest.Process, replicas)
	for i := range procs {
		procs[i] = env.Start(t, bin, "-addr", "127.0.0.1:0", "-metrics-addr", "127.0.0.1:0")
	}
	targets := make([]string, replicas)
	metricsURLs := make([]string, replicas)
	for i, p := range procs {
		rec := p.WaitFor(t, "listening")
		targets[i] = "http://" + rec["addr"].(string) + "/webhooks/nectar"
		metricsURLs[i] = "http://" + rec["metrics_addr"].(string) + "/metrics"
	}
	d := newDeliverer(t, env.Secret)
	ids := make([]string, n)
	for i := range ids {
		ids[i] = nectarhookstest.NewMessageID()
	}
	db := newPool(t, env.DatabaseURL)

	// Every message to every replica at once: one job each.
	statuses := d.deliverAll(t, ids, targets)
	require.Equal(t, map[int]int{http.StatusAccepted: replicas * n}, statuses)
	require.Eventually(t, func() bool {
		return count(t, db, "SELECT count(*) FROM river_job WHERE state = 'completed'") == n
	}, exampletest.Wait, 50*time.Millisecond, "the replicas complete every job")
	assert.Equal(t, n, count(t, db, "SELECT count(*) FROM river_job"), "one job per message")
	assert.Equal(t, n, count(t, db, "SELECT count(*) FROM nectar_messages"))
	assert.Equal(t, n, count(t, db, "SELECT sum(runs) FROM nectar_messages"), "each callback once")

	// River forgets the completed jobs; a resend of each message to one
	// replica makes a job again, and pgxstore, which remembers, stops it.
	_, err := db.Exec(context.Background(), "DELETE FROM river_job")
	require.NoError(t, err)
	statuses = d.deliverAll(t, ids, targets[:1])
	require.Equal(t, map[int]int{http.StatusAccepted: n}, statuses)
	require.Eventually(t, func() bool {
		return count(t, db, "SELECT count(*) FROM river_job WHERE state = 'completed'") == n
	}, exampletest.Wait, 50*time.Millisecond, "the resends' jobs complete")
	assert.Equal(t, n, count(t, db, "SELECT sum(runs) FROM nectar_messages"), "no callback ran again")
	assert.Equal(t, n, count(t, db, "SELECT count(*) FROM nectarhooks_messages WHERE done"), "pgxstore holds every message, done")

	// Metrics, summed over the replicas' scrapes.
	var pages []string
	for _, u := range metricsURLs {
		pages = append(pages, scrape(t, u))
	}
	metric := func(name, label string) float64 {
		sum, found := sumSamples(pages, name, label)
		assert.NotZero(t, found, "no %s{%s} on /metrics", name, label)
		return sum
	}
	assert.Equal(t, float64(replicas*n+n), metric("nectarhooks_deliveries_total", ""), "deliveries")
	assert.Equal(t, float64(n), metric("nectarhooks_callback_duration_seconds_count", `nectarhooks_outcome="processed"`), "callbacks run")
	// The second wave's jobs, which pgxstore turned away, ran no callback.
	// No metric counts them (yet): nectarhooks_duplicates_total counts
	// deliveries, and the Worker's DispatchVerified records none.

	assert.Zero(t, metric("nectarhooks_queue_backlog", ""), "no backlog")
	metric("nectarhooks_queue_backlog_age_seconds", "")
	for _, p := range procs {
		require.NoError(t, p.Signal(syscall.SIGTERM))
	}
	for i, p := range procs {
		assert.Equal(t, 0, p.Wait(t), "replica %d exits cleanly", i)
		assert.NotContains(t, p.Output(), `"level":"ERROR"`, "replica %d logs no error", i)
		assert.NotContains(t, p.Output(), `"level":"WARN"`, "replica %d refused nothing", i)
	}
}

// TestMigrateFalse: with -migrate=false on a database nobody migrated, the
// replica stops at once with River's missing table in its error; after a
// migrating replica ran, it serves.
func TestMigrateFalse(t *testing.T) {
	env := exampletest.NewEnv(t, "nh_production_")
	bin := exampletest.Build(t, "production")
	p := env.Start(t, bin, "-addr", "127.0.0.1:0", "-metrics-addr", "127.0.0.1:0", "-migrate=false")
	assert.Equal(t, 1, p.Wait(t))
	assert.Contains(t, p.Output(), "river_")

	first := env.Start(t, bin, "-addr", "127.0.0.1:0", "-metrics-addr", "127.0.0.1:0")
	first.WaitFor(t, "listening")
	second := env.Start(t, bin, "-addr", "127.0.0.1:0", "-metrics-addr", "127.0.0.1:0", "-migrate=false")
	addr := second.WaitFor(t, "listening")["addr"].(string)
	d := newDeliverer(t, env.Secret)
	assert.Equal(t, map[int]int{http.StatusAccepted: 1}, d.deliverAll(t, []string{nectarhookstest.NewMessageID()}, []string{"http://" + addr + "/webhooks/nectar"}))
	for _, p := range []*exampletest.Process{first, second} {
		require.NoError(t, p.Signal(syscall.SIGTERM))
		assert.Equal(t, 0, p.Wait(t))
	}
}

func TestUsage(t *testing.T) {
	env := func(vars map[string]string) func(string) string {
		return func(k string) string { return vars[k] }
	}
	full := env(map[string]string{"DATABASE_URL": "postgres://x/y", "NECTAR_WEBHOOK_SECRET": "whsec_abc"})
	defaults := config{addr: "127.0.0.1:8080", metricsAddr: "127.0.0.1:9464", workers: 100, maxConns: 20,
		fetchCooldown: 10 * time.Millisecond, fetchPollInterval: 100 * time.Millisecond,
		callbackTimeout: 30 * time.Second, migrate: true, shutdownTimeout: 30 * time.Second,
		databaseURL: "postgres://x/y", secret: "whsec_abc"}
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
		{"defaults", nil, full, "", defaults},
		{"flags", []string{"-addr", ":80", "-metrics-addr", ":9000", "-workers", "8", "-max-conns", "0", "-fetch-cooldown", "50ms",
			"-fetch-poll-interval", "2s", "-callback-timeout", "5s", "-migrate=false", "-shutdown-timeout", "1m"}, full, "",
			with(func(c *config) {
				c.addr, c.metricsAddr, c.workers, c.maxConns, c.fetchCooldown = ":80", ":9000", 8, 0, 50*time.Millisecond
				c.fetchPollInterval, c.callbackTimeout, c.migrate, c.shutdownTimeout = 2*time.Second, 5*time.Second, false, time.Minute
			})},
		{"test variable as fallback", nil, env(map[string]string{"NECTARHOOKS_POSTGRES_URL": "postgres://t/t", "NECTAR_WEBHOOK_SECRET": "whsec_abc"}), "",
			with(func(c *config) { c.databaseURL = "postgres://t/t" })},
		{"no secret", nil, env(map[string]string{"DATABASE_URL": "postgres://x/y"}), "NECTAR_WEBHOOK_SECRET", config{}},
		{"no database", nil, env(map[string]string{"NECTAR_WEBHOOK_SECRET": "whsec_abc"}), "DATABASE_URL", config{}},
		{"no workers", []string{"-workers", "0"}, full, "-workers 0", config{}},
		{"one connection", []string{"-max-conns", "1"}, full, "-max-conns 1", config{}},
		{"cooldown under River's minimum", []string{"-fetch-cooldown", "0s"}, full, "-fetch-cooldown 0s", config{}},
		{"poll shorter than cooldown", []string{"-fetch-poll-interval", "1ms"}, full, "-fetch-poll-interval 1ms", config{}},
		{"no callback time", []string{"-callback-timeout", "0s"}, full, "-callback-timeout 0s", config{}},
		{"stray argument", []string{"serve"}, full, "unexpected arguments", config{}},
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

// deliverer sends signed deliveries as Svix does: every attempt of a
// message has the message's id and a fresh timestamp and signature.
type deliverer struct {
	signer *nectarhookstest.Signer
	client *http.Client
}

func newDeliverer(t *testing.T, secret string) *deliverer {
	t.Helper()
	signer, err := nectarhookstest.NewSigner(secret)
	require.NoError(t, err)
	tr := &http.Transport{MaxIdleConnsPerHost: 16}
	t.Cleanup(tr.CloseIdleConnections)
	return &deliverer{signer: signer, client: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

// deliverAll sends every message to every target, the attempts of one
// message at the same moment, 16 deliveries at a time, and counts the
// answers by status (-1 for no answer).
func (d *deliverer) deliverAll(t *testing.T, ids, targets []string) map[int]int {
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
				var inner sync.WaitGroup
				for _, target := range targets {
					inner.Go(func() {
						status := d.deliver(target, ids[i], body)
						mu.Lock()
						statuses[status]++
						mu.Unlock()
					})
				}
				inner.Wait()
			}
		})
	}
	for i := range ids {
		work <- i
	}
	close(work)
	wg.Wait()
	return statuses
}

func (d *deliverer) deliver(target, id string, body []byte) int {
	req, err := http.NewRequest(http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return -1
	}
	req.Header = d.signer.HeaderFor(id, time.Now(), body)
	resp, err := d.client.Do(req)
	if err != nil {
		return -1
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// scrape GETs a Prometheus /metrics page.
func scrape(t *testing.T, u string) string {
	t.Helper()
	resp, err := http.Get(u)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", b)
	return string(b)
}

// sumSamples sums, over pages, the samples of the metric named name whose
// labels contain label ("" for all), and counts them.
func sumSamples(pages []string, name, label string) (sum float64, found int) {
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `(\{[^}]*\})? (\S+)$`)
	for _, page := range pages {
		for _, m := range re.FindAllStringSubmatch(page, -1) {
			if label != "" && !strings.Contains(m[1], label) {
				continue
			}
			v, err := strconv.ParseFloat(m[2], 64)
			if err != nil {
				panic(fmt.Sprintf("sample %q: %v", m[0], err))
			}
			sum += v
			found++
		}
	}
	return sum, found
}
