package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
)

// loadRun runs "nectarhooks load -json" with the secret and returns the
// exit status and the decoded report.
func loadRun(t *testing.T, secret string, args ...string) (int, loadReport, cliResult) {
	t.Helper()
	res := runCLI(t, invocation{vars: map[string]string{secretEnv: secret}}, append([]string{"load", "-json"}, args...)...)
	var r loadReport
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &r), "stdout: %s\nstderr: %s", res.stdout, res.stderr)
	return res.code, r, res
}

// requireConsistent checks that a report's numbers add up: every delivery
// is in the status counts once, every one is of a kind that was counted,
// every message is acknowledged or not, and every genuine delivery that
// was answered has a latency.
func requireConsistent(t *testing.T, r loadReport) {
	t.Helper()
	var byStatus int64
	for _, n := range r.Status {
		byStatus += n
	}
	assert.Equal(t, r.Deliveries, byStatus, "every delivery has one status")
	assert.Equal(t, r.Deliveries, int64(r.Messages)+r.Resent+r.Retries+r.Forged.Sent+r.Stale.Sent,
		"deliveries = first attempts + resends + retries + forged + stale")
	assert.Equal(t, r.Messages, r.Acknowledged+r.Unacknowledged+r.Aborted)
	assert.Len(t, r.AbortedIDs, min(r.Aborted, maxListedIDs))
	assert.Len(t, r.UnacknowledgedIDs, min(r.Unacknowledged, maxListedIDs))
	var refused int64
	for _, rf := range r.Refusals {
		refused += rf.Count
	}
	var answered2xx int64
	for k, n := range r.Status {
		if len(k) == 3 && k[0] == '2' {
			answered2xx += n
		}
	}
	var failed int64
	for _, f := range r.Failures {
		failed += f.Count
	}
	assert.Equal(t, r.Deliveries, answered2xx+refused+failed+r.Status["timeout"]+r.Status["interrupted"],
		"every delivery is accepted, refused, timed out or failed")
	genuine := int64(r.Messages) + r.Resent + r.Retries
	assert.LessOrEqual(t, r.Latency.Count, genuine)
	if r.Latency.Count > 0 {
		assert.True(t, r.Latency.P50 <= r.Latency.P90 && r.Latency.P90 <= r.Latency.P99 &&
			r.Latency.P99 <= r.Latency.P999 && r.Latency.P999 <= r.Latency.Max, "percentiles in order: %+v", r.Latency)
		assert.Greater(t, r.Latency.P50, 0.0)
	}
	assert.Equal(t, r.Unacknowledged == 0 && r.Forged.Accepted == 0 && r.Stale.Accepted == 0 && !r.Interrupted, r.Pass)
}

// callbackIDs returns how many times the callback ran for each message id.
func callbackIDs(rcv *receiver) map[string]int {
	_, events := rcv.seen()
	ids := make(map[string]int)
	for _, e := range events {
		ids[e.id]++
	}
	return ids
}

// TestLoadAgainstHandler runs load against the library's Handler with an
// idempotency store, over loopback, and checks that everything is
// accounted for: each message acknowledged, its callback run exactly
// once however often it was delivered, forgeries and stale deliveries
// refused.
func TestLoadAgainstHandler(t *testing.T) {
	tests := []struct {
		name         string
		args         []string
		messages     int // 0: from -duration, at least one
		resent       int64
		forged       int64
		stale        int64
		concurrently bool
	}{
		{name: "closed loop", args: []string{"-n", "200", "-c", "4"}, messages: 200},
		{name: "one sender", args: []string{"-n", "30", "-c", "1", "document.created.v2"}, messages: 30},
		{name: "resends, half concurrent", args: []string{"-n", "200", "-c", "8", "-dup", "0.2"}, messages: 200, resent: 40},
		{name: "every message resent", args: []string{"-n", "50", "-c", "8", "-dup", "1", "connection.updated.v2"}, messages: 50, resent: 50},
		{name: "forged and stale mixed in", args: []string{"-n", "200", "-c", "4", "-tamper", "0.1", "-stale", "0.05"}, messages: 200, forged: 20, stale: 10},
		{name: "open loop", args: []string{"-n", "100", "-c", "4", "-rate", "500"}, messages: 100},
		{name: "open loop for a duration", args: []string{"-duration", "300ms", "-c", "4", "-rate", "200", "-dup", "0.5", "-tamper", "0.5"}},
		{name: "all of it, with retries", args: []string{"-n", "300", "-c", "16", "-dup", "0.3", "-tamper", "0.05", "-stale", "0.05", "-retry", "-retry-scale", "0.00001"}, messages: 300, resent: 90, forged: 15, stale: 15},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			secret := nectarhookstest.NewSecret()
			rcv := newReceiver(t, secret, nectarhooks.WithIdempotency(nectarhooks.NewMemoryStore(0, 0)))
			code, r, res := loadRun(t, secret, append([]string{"-url", rcv.url}, tt.args...)...)
			assert.Equal(t, exitOK, code, "stderr: %s", res.stderr)
			requireConsistent(t, r)
			if tt.messages > 0 {
				assert.Equal(t, tt.messages, r.Messages)
			} else {
				assert.Positive(t, r.Messages)
			}
			assert.Equal(t, r.Messages, r.Acknowledged, "every message acknowledged")
			assert.Zero(t, r.Unacknowledged)
			if tt.messages > 0 {
				assert.Equal(t, tt.resent, r.Resent)
				assert.Equal(t, tt.forged, r.Forged.Sent)
				assert.Equal(t, tt.stale, r.Stale.Sent)
			}
			assert.Zero(t, r.Forged.Accepted)
			assert.Zero(t, r.Stale.Accepted)
			assert.True(t, r.Pass)

			// The receiver's side: one callback per message, whatever
			// the resends; no callback for a forgery.
			ids := callbackIDs(rcv)
			assert.Len(t, ids, r.Messages, "a callback for each message and nothing else")
			for id, n := range ids {
				assert.Equal(t, 1, n, "callback of %s ran %d times", id, n)
			}
			reqs, _ := rcv.seen()
			assert.Len(t, reqs, int(r.Deliveries), "the receiver got every delivery counted")

			// Refusals are accounted for by kind: forged and stale
			// ones are 401, genuine ones only 409 (a resend racing the
			// first attempt).
			for _, rf := range r.Refusals {
				switch rf.What {
				case "forged", "stale":
					assert.Equal(t, "401", rf.Status, "%+v", rf)
				default:
					assert.Equal(t, "409", rf.Status, "%+v", rf)
				}
			}
		})
	}
}

// firstAttemptFails is a receiver whose callback fails the first delivery
// of each message and succeeds afterwards, as a service with a flaky
// dependency does.
type firstAttemptFails struct {
	mu   sync.Mutex
	seen map[string]int
}

func (f *firstAttemptFails) callback(ctx context.Context) error {
	msg, _ := nectarhooks.MessageFromContext(ctx)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seen[msg.ID]++
	if f.seen[msg.ID] == 1 {
		return errors.New("the first attempt fails")
	}
	return nil
}

func newFlakyReceiver(t *testing.T, secret string) (*firstAttemptFails, string) {
	t.Helper()
	f := &firstAttemptFails{seen: make(map[string]int)}
	h, err := nectarhooks.NewHandler(secret, nectarhooks.WithLogger(nil), nectarhooks.WithIdempotency(nectarhooks.NewMemoryStore(0, 0)))
	require.NoError(t, err)
	h.OnConnectionCreated(func(ctx context.Context, _ *nectarhooks.ConnectionCreated) error { return f.callback(ctx) })
	h.OnConnectionUpdated(func(ctx context.Context, _ *nectarhooks.ConnectionUpdated) error { return f.callback(ctx) })
	h.OnConnectionValidated(func(ctx context.Context, _ *nectarhooks.ConnectionValidated) error { return f.callback(ctx) })
	h.OnDocumentCreated(func(ctx context.Context, _ *nectarhooks.DocumentCreated) error { return f.callback(ctx) })
	h.OnDocumentUpdated(func(ctx context.Context, _ *nectarhooks.DocumentUpdated) error { return f.callback(ctx) })
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return f, srv.URL
}

// TestLoadRetry checks that with -retry a message whose first attempt
// fails is delivered again, with the same svix-id, until acknowledged;
// and that without it the messages are reported lost, with exit 1.
func TestLoadRetry(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantAck  int
		retries  int64
	}{
		{"without -retry every message is lost", []string{"-n", "40", "-c", "4"}, exitRefused, 0, 0},
		{"with -retry every message is acknowledged", []string{"-n", "40", "-c", "4", "-retry", "-retry-scale", "0.00001"}, exitOK, 40, 40},
		{"with -retry in an open loop", []string{"-n", "40", "-c", "4", "-rate", "400", "-retry", "-retry-scale", "0.00001"}, exitOK, 40, 40},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			secret := nectarhookstest.NewSecret()
			flaky, url := newFlakyReceiver(t, secret)
			code, r, res := loadRun(t, secret, append([]string{"-url", url}, tt.args...)...)
			assert.Equal(t, tt.wantCode, code, "stderr: %s", res.stderr)
			requireConsistent(t, r)
			assert.Equal(t, 40, r.Messages)
			assert.Equal(t, tt.wantAck, r.Acknowledged)
			assert.Equal(t, tt.retries, r.Retries, "one retry per message: the second attempt succeeds")
			assert.Equal(t, int64(40), r.Status["500"], "each first attempt failed with 500")
			if tt.wantAck == 0 {
				assert.Len(t, r.UnacknowledgedIDs, maxListedIDs)
				assert.False(t, r.Pass)
			}
			flaky.mu.Lock()
			defer flaky.mu.Unlock()
			assert.Len(t, flaky.seen, 40)
			for id, n := range flaky.seen {
				assert.Equal(t, 1+int(tt.retries/40), n, "attempts of %s", id)
			}
		})
	}
}

// TestLoadRetryGivesUpAfterEightAttempts checks Svix's limit: a message
// that always fails is attempted eight times, then counted lost.
func TestLoadRetryGivesUpAfterEightAttempts(t *testing.T) {
	secret := nectarhookstest.NewSecret()
	var mu sync.Mutex
	attempts := make(map[string]int)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		attempts[r.Header.Get("svix-id")]++
		mu.Unlock()
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
	}))
	t.Cleanup(srv.Close)
	code, r, _ := loadRun(t, secret, "-url", srv.URL, "-n", "5", "-c", "2", "-retry", "-retry-scale", "0.000001")
	assert.Equal(t, exitRefused, code)
	requireConsistent(t, r)
	assert.Equal(t, 5, r.Unacknowledged)
	assert.Equal(t, int64(5*7), r.Retries)
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, attempts, 5)
	for id, n := range attempts {
		assert.Equal(t, svixAttempts, n, "attempts of %s", id)
	}
	require.Len(t, r.Refusals, 1)
	assert.Equal(t, refusalReport{What: "genuine", Status: "503", Reason: "down for maintenance", Count: 40}, r.Refusals[0])
}

// TestLoadCatchesAReceiverThatAcceptsEverything checks the verdict on a
// receiver that does not verify: forged and stale deliveries accepted
// fail the run.
func TestLoadCatchesAReceiverThatAcceptsEverything(t *testing.T) {
	tests := []struct {
		name          string
		args          []string
		forged, stale int64
	}{
		{"forged", []string{"-tamper", "0.5"}, 10, 0},
		{"stale", []string{"-stale", "0.25"}, 0, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				io.WriteString(w, "ok")
			}))
			t.Cleanup(srv.Close)
			code, r, _ := loadRun(t, nectarhookstest.NewSecret(), append([]string{"-url", srv.URL, "-n", "20"}, tt.args...)...)
			assert.Equal(t, exitRefused, code)
			requireConsistent(t, r)
			assert.Equal(t, 20, r.Acknowledged)
			assert.Equal(t, sentAccepted{tt.forged, tt.forged}, r.Forged)
			assert.Equal(t, sentAccepted{tt.stale, tt.stale}, r.Stale)
			assert.False(t, r.Pass)
		})
	}
}

// TestLoadTimeout checks that a delivery not answered within -timeout
// counts as failed, as Svix counts it, and its latency is recorded.
func TestLoadTimeout(t *testing.T) {
	secret := nectarhookstest.NewSecret()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body) // so that the server notices the client going away
		if strings.Contains(r.Header.Get("svix-id"), "slow") {
			select {
			case <-r.Context().Done():
			case <-time.After(30 * time.Second):
			}
			return
		}
		io.WriteString(w, "ok")
	}))
	t.Cleanup(srv.Close)
	var mu sync.Mutex
	n := 0
	e := &env{stdout: new(bytes.Buffer), stderr: new(bytes.Buffer), getenv: func(string) string { return secret }, now: time.Now,
		newID: func() string {
			mu.Lock()
			defer mu.Unlock()
			n++
			if n%4 == 0 {
				return fmt.Sprintf("msg_slow%d", n)
			}
			return fmt.Sprintf("msg_fast%d", n)
		}}
	code := e.run(context.Background(), []string{"load", "-json", "-url", srv.URL, "-n", "8", "-c", "8", "-timeout", "2s"})
	assert.Equal(t, exitRefused, code)
	var r loadReport
	require.NoError(t, json.Unmarshal(e.stdout.(*bytes.Buffer).Bytes(), &r))
	requireConsistent(t, r)
	assert.Equal(t, int64(2), r.Status["timeout"])
	assert.Equal(t, []string{"msg_slow4", "msg_slow8"}, r.UnacknowledgedIDs)
	assert.Equal(t, int64(8), r.Latency.Count, "timed-out deliveries count in the latency")
	assert.GreaterOrEqual(t, r.Latency.Max, 2000.0, "a timed-out delivery took at least -timeout")
}

// TestLoadJSONSchema pins the names of the -json report's fields: CI
// scripts read them.
func TestLoadJSONSchema(t *testing.T) {
	secret := nectarhookstest.NewSecret()
	rcv := newReceiver(t, secret)
	res := runCLI(t, invocation{vars: map[string]string{secretEnv: secret}}, "load", "-json", "-url", rcv.url, "-n", "10", "-tamper", "0.2")
	require.Equal(t, exitOK, res.code, res.stderr)
	var m map[string]any
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &m))
	keys := func(m map[string]any) []string {
		var ks []string
		for k := range m {
			ks = append(ks, k)
		}
		slices.Sort(ks)
		return ks
	}
	assert.Equal(t, []string{
		"aborted", "aborted_ids", "acknowledged", "answered_2xx", "answered_2xx_per_second", "concurrency", "deliveries", "deliveries_per_second",
		"failures", "forged", "hints", "interrupted", "latency_ms", "messages", "no_answer", "pass", "per_url", "rate",
		"refusals", "refused", "resent", "resent_accepted", "retries", "seconds", "stale", "status", "unacknowledged",
		"unacknowledged_ids", "url",
	}, keys(m), "no wait without -wait-url")
	assert.Equal(t, []string{"count", "max", "mean", "p50", "p90", "p99", "p99_9"}, keys(m["latency_ms"].(map[string]any)))
	assert.Equal(t, []string{"accepted", "sent"}, keys(m["forged"].(map[string]any)))
	refusals := m["refusals"].([]any)
	require.Len(t, refusals, 1)
	assert.Equal(t, []string{"count", "reason", "status", "what"}, keys(refusals[0].(map[string]any)))
	assert.Equal(t, map[string]any{"what": "forged", "status": "401", "reason": "nectarhooks: no matching signature", "count": 2.0}, refusals[0])
	assert.Equal(t, map[string]any{"200": 10.0, "401": 2.0}, m["status"])
	assert.Equal(t, true, m["pass"])
	perURL, ok := m["per_url"].([]any)
	require.True(t, ok, "per_url is a list: %v", m["per_url"])
	require.Len(t, perURL, 1)
	assert.Equal(t, map[string]any{"url": rcv.url, "deliveries": 12.0, "answered_2xx": 10.0, "refused": 2.0, "no_answer": 0.0}, perURL[0])
	assert.Equal(t, []any{}, m["hints"], "nothing failed that needs a hint")
	assert.Empty(t, res.stderr, "nothing but the JSON")

	help := runCLI(t, invocation{}, "help", "load").stdout
	for _, k := range append(keys(m), keys(m["latency_ms"].(map[string]any))...) {
		assert.Contains(t, help, k, "help load lists the report's fields")
	}
}

// TestLoadTextReport checks the summary printed without -json.
func TestLoadTextReport(t *testing.T) {
	secret := nectarhookstest.NewSecret()
	rcv := newReceiver(t, secret, nectarhooks.WithIdempotency(nectarhooks.NewMemoryStore(0, 0)))
	res := runCLI(t, invocation{vars: map[string]string{secretEnv: secret}}, "load", "-url", rcv.url, "-n", "40", "-dup", "0.25", "-stale", "0.1")
	require.Equal(t, exitOK, res.code, res.stderr)
	for _, want := range []string{
		"load: 40 messages to " + rcv.url + ", up to 8 at a time, closed loop\n",
		"latency      p50 ", " p99.9 ", "(50 genuine deliveries, from the send)",
		"stale   401       4  nectarhooks: message timestamp too old",
		"messages     40: 40 acknowledged, 0 never acknowledged\n",
		"again        10 resent with the same svix-id",
		"refused?     forged: 0 sent, 0 accepted; stale: 4 sent, 0 accepted\n",
		"verdict      PASS: every message acknowledged, no forged or stale delivery accepted\n",
	} {
		assert.Contains(t, res.stdout, want)
	}
	// A concurrent resend may be answered 409 while the first attempt
	// runs: 50 answered 2xx at most, 4 refused at least.
	assert.Regexp(t, `\nacknowledged \d+/s: (4\d|50) of 54 deliveries answered 2xx in \d+\.\d\ds\n`+
		`not 2xx      \d refused \(4 of them forged or stale, as they must be\), 0 without an answer\n`, res.stdout)
	assert.Empty(t, res.stderr, "no progress line when stderr is not a terminal")
}

// TestLoadProgress checks the live progress line: drawn on the progress
// writer (a terminal in real use) and erased at the end.
func TestLoadProgress(t *testing.T) {
	secret := nectarhookstest.NewSecret()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(20 * time.Millisecond)
		io.WriteString(w, "ok")
	}))
	t.Cleanup(srv.Close)
	var stdout, stderr, progress bytes.Buffer
	e := &env{stdout: &stdout, stderr: &stderr, progress: &progress, getenv: func(string) string { return secret }, now: time.Now, newID: nectarhookstest.NewMessageID}
	code := e.run(context.Background(), []string{"load", "-url", srv.URL, "-n", "40", "-c", "1"})
	require.Equal(t, exitOK, code, stderr.String())
	p := progress.String()
	assert.True(t, strings.HasPrefix(p, "\r\x1b[K"), "each redraw starts at the line's start: %q", p)
	assert.True(t, strings.HasSuffix(p, "\r\x1b[K"), "the line is erased at the end: %q", p)
	assert.Regexp(t, `\d+\.\ds  \d+ deliveries  \d+ 2xx  0 not  \d+ 2xx/s`, p)
	assert.NotContains(t, p, "\n", "one line, redrawn")
	assert.Empty(t, stderr.String())
}

func TestProgressLine(t *testing.T) {
	assert.Equal(t, "   2.0s  300 deliveries  290 2xx  10 not  145 2xx/s", progressLine(300, 290, 2*time.Second), "the rate of 2xx answers, not of attempts")
	assert.Equal(t, "   0.0s  0 deliveries  0 2xx  0 not  0 2xx/s", progressLine(0, 0, 0))
}

// TestLoadInterrupted checks that Ctrl-C stops the run, reports what was
// done, and fails it.
func TestLoadInterrupted(t *testing.T) {
	secret := nectarhookstest.NewSecret()
	arrived := make(chan struct{}, 100)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body) // so that the server notices the client going away
		arrived <- struct{}{}
		<-r.Context().Done() // never answers: only the interruption ends the run
	}))
	t.Cleanup(srv.Close)
	var stdout bytes.Buffer
	e := &env{stdout: &stdout, stderr: io.Discard, getenv: func(string) string { return secret }, now: time.Now, newID: nectarhookstest.NewMessageID}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	go func() { done <- e.run(ctx, []string{"load", "-json", "-url", srv.URL, "-n", "1000", "-c", "2"}) }()
	<-arrived
	cancel()
	select {
	case code := <-done:
		assert.Equal(t, exitRefused, code)
	case <-time.After(30 * time.Second):
		t.Fatal("load did not stop after the interruption")
	}
	var r loadReport
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &r))
	requireConsistent(t, r)
	assert.True(t, r.Interrupted)
	assert.False(t, r.Pass)
	assert.Less(t, r.Messages, 1000, "no new message after the interruption")
	assert.Positive(t, r.Status["interrupted"])
}

// TestEvery checks that the fractions spread exactly: of the first n
// items, floor(n*f) are chosen, for every n.
func TestEvery(t *testing.T) {
	for _, f := range []float64{0, 0.01, 0.1, 0.25, 1.0 / 3, 0.5, 0.99, 1} {
		t.Run(fmt.Sprint(f), func(t *testing.T) {
			chosen := 0
			for i := range 1000 {
				if every(f, i) {
					chosen++
				}
				require.Equal(t, int(float64(i+1)*f), chosen, "after %d items", i+1)
			}
		})
	}
}

func TestSvixRetrySchedule(t *testing.T) {
	var total time.Duration
	for _, d := range svixRetryDelays {
		total += d
	}
	assert.Equal(t, 8, svixAttempts, "Svix makes 8 attempts")
	assert.Equal(t, 27*time.Hour+35*time.Minute+5*time.Second, total, "about 28 hours")
}

// TestLoadEscapesAnswers checks that the reasons a server gives for its
// refusals, printed in the report and in -json, reach no terminal raw.
func TestLoadEscapesAnswers(t *testing.T) {
	secret := nectarhookstest.NewSecret()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, "no\x1b]0;pwned\x07"+hostileText)
	}))
	t.Cleanup(srv.Close)
	for _, args := range [][]string{nil, {"-json"}} {
		t.Run(fmt.Sprint(append([]string{"load"}, args...)), func(t *testing.T) {
			res := runCLI(t, invocation{vars: map[string]string{secretEnv: secret}},
				append([]string{"load", "-url", srv.URL, "-n", "2", "-c", "1"}, args...)...)
			assert.Equal(t, exitRefused, res.code)
			requireInert(t, res.stdout)
			requireInert(t, res.stderr)
			if args == nil {
				assert.Contains(t, res.stdout, `genuine 400       2  no\x1b]0;pwned\x07`+hostileOneLine)
				return
			}
			var r loadReport
			require.NoError(t, json.Unmarshal([]byte(res.stdout), &r))
			require.Len(t, r.Refusals, 1)
			assert.Equal(t, `no\x1b]0;pwned\x07`+hostileOneLine, r.Refusals[0].Reason)
		})
	}
}
