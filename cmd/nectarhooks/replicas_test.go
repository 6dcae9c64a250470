package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
)

// The tests in this file are written against the command line and the
// -json output only, so that they also build against the code before
// -id, several -url and the refusal of repeated flags, and fail there.

// TestRepeatedFlagsAreRefused checks that a flag that takes one value,
// given twice, is a usage error naming it, for every command, instead of
// the last value silently winning; and that the secret is not repeated.
func TestRepeatedFlagsAreRefused(t *testing.T) {
	secret := nectarhookstest.NewSecret()
	other := nectarhookstest.NewSecret()
	var hits sync.Map
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Store(r.URL.Path, true) }))
	t.Cleanup(srv.Close)
	headers := writeFile(t, "headers.txt", []byte("svix-id: msg_1\n"))
	body := writeFile(t, "body.json", []byte(`{}`))
	tests := []struct {
		name, command, flag string
		args                []string
	}{
		{"send -url twice", "send", "url", []string{"send", "-url", srv.URL + "/a", "-url", srv.URL + "/b", "connection.created.v2"}},
		{"send -secret twice", "send", "secret", []string{"send", "-url", srv.URL + "/a", "-secret", secret, "-secret", other, "connection.created.v2"}},
		{"send -repeat twice, = form", "send", "repeat", []string{"send", "-url", srv.URL + "/a", "-repeat=2", "connection.created.v2", "-repeat", "3"}},
		{"send -stale twice, a bool", "send", "stale", []string{"send", "-url", srv.URL + "/a", "-stale", "-stale=false", "connection.created.v2"}},
		{"load -n twice", "load", "n", []string{"load", "-url", srv.URL + "/a", "-n", "1", "-n", "2"}},
		{"load -json twice", "load", "json", []string{"load", "-url", srv.URL + "/a", "-n", "1", "-json", "-json"}},
		{"load -wait-url twice", "load", "wait-url", []string{"load", "-url", srv.URL + "/a", "-n", "1", "-wait-url", srv.URL + "/m", "-wait-url", srv.URL + "/m"}},
		{"sign -id twice", "sign", "id", []string{"sign", "-id", "msg_a", "-id", "msg_b", "connection.created.v2"}},
		{"sign -timestamp twice", "sign", "timestamp", []string{"sign", "-timestamp", "1", "-timestamp", "2", "connection.created.v2"}},
		{"verify -headers twice", "verify", "headers", []string{"verify", "-headers", headers, "-headers", headers, "-body", body}},
		{"verify -tolerance twice", "verify", "tolerance", []string{"verify", "-headers", headers, "-body", body, "-tolerance", "1m", "-tolerance", "2m"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := runCLI(t, invocation{vars: map[string]string{secretEnv: secret}}, tt.args...)
			assert.Equal(t, exitUsage, res.code, "stdout:\n%s\nstderr:\n%s", res.stdout, res.stderr)
			assert.Empty(t, res.stdout)
			lines := nonEmptyLines(res.stderr)
			require.Len(t, lines, 2, res.stderr)
			assert.Equal(t, "nectarhooks "+tt.command+": -"+tt.flag+" is given 2 times; it takes one value, so give it once", lines[0])
			assert.Equal(t, "Run 'nectarhooks help "+tt.command+"' for usage.", lines[1])
			assert.NotContains(t, res.stderr, strings.TrimPrefix(other, "whsec_"), "the secrets are not repeated")
		})
	}
	hits.Range(func(k, _ any) bool {
		t.Errorf("%v was requested: nothing is sent on a usage error", k)
		return true
	})
}

// TestSendID checks send -id: the same message sent to two replicas that
// share an idempotency store is processed once, as Svix's retry reaching
// another replica must be.
func TestSendID(t *testing.T) {
	secret := nectarhookstest.NewSecret()
	store := nectarhooks.NewMemoryStore(0, 0)
	a := newReceiver(t, secret, nectarhooks.WithIdempotency(store))
	b := newReceiver(t, secret, nectarhooks.WithIdempotency(store))
	inv := invocation{vars: map[string]string{secretEnv: secret}}
	const id = "msg_2QmA6kS7oD9xYhWJtqZbYl3m2Fe"

	first := runCLI(t, inv, "send", "-url", a.url, "-id", id, "document.created.v2")
	require.Equal(t, exitOK, first.code, first.stderr)
	assert.Contains(t, first.stdout, "document.created.v2  "+id+"  200 OK  ok")
	second := runCLI(t, inv, "send", "-url", b.url, "document.created.v2", "-id", id, "-repeat", "2")
	require.Equal(t, exitOK, second.code, second.stderr)
	assert.Contains(t, second.stdout, id+"  (1/2)  200 OK  acknowledged: message already processed")

	reqsA, eventsA := a.seen()
	reqsB, eventsB := b.seen()
	require.Len(t, reqsA, 1)
	require.Len(t, reqsB, 2)
	for _, r := range append(reqsA, reqsB...) {
		assert.Equal(t, id, r.header.Get("svix-id"))
	}
	assert.Len(t, eventsA, 1, "the callback ran on the first replica")
	assert.Empty(t, eventsB, "and not again on the second")
}

// TestMessageIDRule checks -id of send and sign against the rule of
// nectarhooks.ErrInvalidMessageID, which a receiver answers 400 to:
// refused before anything is sent, with the reason.
func TestMessageIDRule(t *testing.T) {
	secret := nectarhookstest.NewSecret()
	var hits sync.Map
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Store(r.Header.Get("svix-id"), true) }))
	t.Cleanup(srv.Close)
	tests := []struct {
		name, id, want string
	}{
		{"empty", "", "0 bytes, want 1 to 256"},
		{"longer than MaxMessageIDLength", "msg_" + strings.Repeat("x", nectarhooks.MaxMessageIDLength-3), "257 bytes, want 1 to 256"},
		{"a space", "msg one", "byte 0x20 at 3"},
		{"a tab", "msg\tone", "byte 0x09 at 3"},
		{"a control character", "msg\x1b[2J", "byte 0x1b at 3"},
		{"DEL", "msg\x7f", "byte 0x7f at 3"},
		{"not ASCII", "msg_é", "byte 0xc3 at 4"},
	}
	for _, tt := range tests {
		for _, command := range []string{"send", "sign"} {
			t.Run(command+" "+tt.name, func(t *testing.T) {
				args := []string{command, "-id", tt.id, "connection.created.v2"}
				if command == "send" {
					args = append(args, "-url", srv.URL)
				}
				res := runCLI(t, invocation{vars: map[string]string{secretEnv: secret}}, args...)
				assert.Equal(t, exitUsage, res.code, "stdout:\n%s\nstderr:\n%s", res.stdout, res.stderr)
				assert.Empty(t, res.stdout)
				lines := nonEmptyLines(res.stderr)
				require.Len(t, lines, 2, res.stderr)
				assert.Contains(t, lines[0], "nectarhooks "+command+": -id ")
				assert.Contains(t, lines[0], "is not usable: invalid message id: "+tt.want)
				requireInert(t, res.stderr)
			})
		}
	}
	t.Run("the longest id is usable", func(t *testing.T) {
		id := "msg_" + strings.Repeat("x", nectarhooks.MaxMessageIDLength-4)
		rcv := newReceiver(t, secret)
		res := runCLI(t, invocation{vars: map[string]string{secretEnv: secret}}, "send", "-url", rcv.url, "-id", id, "connection.created.v2")
		require.Equal(t, exitOK, res.code, res.stderr)
		reqs, _ := rcv.seen()
		require.Len(t, reqs, 1)
		assert.Equal(t, id, reqs[0].header.Get("svix-id"))
	})
	t.Run("send -id with two payloads", func(t *testing.T) {
		res := runCLI(t, invocation{vars: map[string]string{secretEnv: secret}}, "send", "-url", srv.URL, "-id", "msg_1", "all")
		assert.Equal(t, exitUsage, res.code)
		assert.Contains(t, res.stderr, "-id names one message, but 5 payloads are given")
	})
	hits.Range(func(k, _ any) bool {
		t.Errorf("%q was sent: an invalid id is refused before sending", k)
		return true
	})
}

// perURL is one entry of the -json report's per_url.
type perURL struct {
	URL         string `json:"url"`
	Deliveries  int64  `json:"deliveries"`
	Answered2xx int64  `json:"answered_2xx"`
	Refused     int64  `json:"refused"`
	NoAnswer    int64  `json:"no_answer"`
}

// loadJSONReport is the part of the -json report the tests of this file
// and of loadwait_test.go read, decoded on its own so that they build
// against code whose loadReport lacks the fields.
type loadJSONReport struct {
	Pass              bool             `json:"pass"`
	Messages          int              `json:"messages"`
	Acknowledged      int              `json:"acknowledged"`
	Deliveries        int64            `json:"deliveries"`
	Retries           int64            `json:"retries"`
	Resent            int64            `json:"resent"`
	PerSecond         float64          `json:"deliveries_per_second"`
	Answered2xx       int64            `json:"answered_2xx"`
	Answered2xxPerSec float64          `json:"answered_2xx_per_second"`
	Refused           int64            `json:"refused"`
	NoAnswer          int64            `json:"no_answer"`
	PerURL            []perURL         `json:"per_url"`
	Hints             []string         `json:"hints"`
	Wait              *waitJSON        `json:"wait"`
	Status            map[string]int64 `json:"status"`
}

// waitJSON is the report's wait object.
type waitJSON struct {
	URL     string   `json:"url"`
	Metric  string   `json:"metric"`
	Drained bool     `json:"drained"`
	Seconds float64  `json:"seconds"`
	AtStart *float64 `json:"at_start"`
	Last    *float64 `json:"last"`
	Reads   int      `json:"reads"`
	Error   string   `json:"error"`
	Skipped string   `json:"skipped"`
}

// loadJSON runs "nectarhooks load -json" and decodes its report.
func loadJSON(t *testing.T, inv invocation, args ...string) (int, loadJSONReport, cliResult) {
	t.Helper()
	res := runCLI(t, inv, append([]string{"load", "-json"}, args...)...)
	var r loadJSONReport
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &r), "stdout: %s\nstderr: %s", res.stdout, res.stderr)
	return res.code, r, res
}

// TestLoadSpreadsOverURLs checks load against two replicas: messages take
// the URLs in turn, a resend goes to the other replica, and replicas that
// share an idempotency store run each callback once.
func TestLoadSpreadsOverURLs(t *testing.T) {
	secret := nectarhookstest.NewSecret()
	store := nectarhooks.NewMemoryStore(0, 0)
	a := newReceiver(t, secret, nectarhooks.WithIdempotency(store))
	b := newReceiver(t, secret, nectarhooks.WithIdempotency(store))
	code, r, res := loadJSON(t, invocation{vars: map[string]string{secretEnv: secret}},
		"-url", a.url, "-url", b.url, "-n", "40", "-c", "4", "-dup", "1")
	require.Equal(t, exitOK, code, res.stderr)
	assert.True(t, r.Pass)
	assert.Equal(t, 40, r.Acknowledged)
	assert.Equal(t, int64(40), r.Resent)
	require.Len(t, r.PerURL, 2)
	assert.Equal(t, a.url, r.PerURL[0].URL)
	assert.Equal(t, b.url, r.PerURL[1].URL)
	for _, u := range r.PerURL {
		assert.Equal(t, int64(40), u.Deliveries, "half the first attempts and half the resends: %+v", u)
		assert.Equal(t, u.Deliveries, u.Answered2xx+u.Refused+u.NoAnswer)
	}

	reqsA, eventsA := a.seen()
	reqsB, eventsB := b.seen()
	assert.Len(t, reqsA, 40)
	assert.Len(t, reqsB, 40)
	onA := map[string]bool{}
	for _, r := range reqsA {
		onA[r.header.Get("svix-id")] = true
	}
	for _, r := range reqsB {
		assert.True(t, onA[r.header.Get("svix-id")], "every message reached both replicas")
	}
	calls := map[string]int{}
	for _, e := range append(eventsA, eventsB...) {
		calls[e.id]++
	}
	assert.Len(t, calls, 40)
	for id, n := range calls {
		assert.Equal(t, 1, n, "the callback of %s ran once across the replicas", id)
	}

	t.Run("forged and stale deliveries reach every replica", func(t *testing.T) {
		code, r, res := loadJSON(t, invocation{vars: map[string]string{secretEnv: secret}},
			"-url", a.url, "-url", b.url, "-n", "200", "-tamper", "0.05", "-stale", "0.05")
		require.Equal(t, exitOK, code, res.stderr)
		require.Len(t, r.PerURL, 2)
		for _, u := range r.PerURL {
			assert.Equal(t, perURL{URL: u.URL, Deliveries: 110, Answered2xx: 100, Refused: 10}, u, "5 forged and 5 stale each")
		}
	})

	t.Run("text report", func(t *testing.T) {
		res := runCLI(t, invocation{vars: map[string]string{secretEnv: secret}}, "load", "-url", a.url, "-url", b.url, "-n", "10")
		require.Equal(t, exitOK, res.code, res.stderr)
		assert.Contains(t, res.stdout, "load: 10 messages to "+a.url+", "+b.url+" in turn, ")
		assert.Contains(t, res.stdout, "per URL           5 deliveries: 5 2xx, 0 refused, 0 without an answer  "+a.url+"\n")
		assert.Contains(t, res.stdout, "                  5 deliveries: 5 2xx, 0 refused, 0 without an answer  "+b.url+"\n")
	})
}

// TestLoadRetriesGoToTheNextURL checks that a message whose attempt fails
// on one replica is retried on the next, as Svix's retry reaches any
// replica: with one replica failing everything, every message is still
// acknowledged, those first sent to it on the second attempt.
func TestLoadRetriesGoToTheNextURL(t *testing.T) {
	secret := nectarhookstest.NewSecret()
	var mu sync.Mutex
	failed := map[string]int{}
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		mu.Lock()
		failed[r.Header.Get("svix-id")]++
		mu.Unlock()
		http.Error(w, "replica unhealthy", http.StatusServiceUnavailable)
	}))
	t.Cleanup(down.Close)
	up := newReceiver(t, secret)
	code, r, res := loadJSON(t, invocation{vars: map[string]string{secretEnv: secret}},
		"-url", down.URL, "-url", up.url, "-n", "20", "-c", "4", "-retry", "-retry-scale", "0.00001")
	require.Equal(t, exitOK, code, res.stderr)
	assert.True(t, r.Pass)
	assert.Equal(t, 20, r.Acknowledged)
	assert.Equal(t, int64(10), r.Retries, "one retry for each message sent first to the failing replica")
	require.Len(t, r.PerURL, 2)
	assert.Equal(t, perURL{URL: down.URL, Deliveries: 10, Refused: 10}, r.PerURL[0])
	assert.Equal(t, perURL{URL: up.url, Deliveries: 20, Answered2xx: 20}, r.PerURL[1])
	mu.Lock()
	defer mu.Unlock()
	assert.Len(t, failed, 10)
	for id, n := range failed {
		assert.Equal(t, 1, n, "%s was retried on the other replica, not this one", id)
	}
}
