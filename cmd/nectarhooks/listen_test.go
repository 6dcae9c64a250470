package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
)

// syncBuffer is a bytes.Buffer for a command writing from its handlers
// while the test reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// runningListen is "nectarhooks listen" started by startListen.
type runningListen struct {
	url            string // "http://127.0.0.1:PORT/", the page and the endpoint
	stdout, stderr *syncBuffer
	stop           func() int // Ctrl-C, then the exit status
}

// startListen runs the listen command as main would, on a free loopback
// port, and returns once it listens. It is stopped when the test ends.
func startListen(t *testing.T, vars map[string]string, args ...string) *runningListen {
	t.Helper()
	r := &runningListen{stdout: &syncBuffer{}, stderr: &syncBuffer{}}
	e := &env{stdout: r.stdout, stderr: r.stderr, getenv: func(k string) string { return vars[k] }, now: time.Now, newID: nectarhookstest.NewMessageID}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { done <- e.run(ctx, append([]string{"listen", "-addr", "127.0.0.1:0"}, args...)) }()
	var once sync.Once
	code := -1
	r.stop = func() int {
		once.Do(func() {
			cancel()
			select {
			case code = <-done:
			case <-time.After(20 * time.Second):
				t.Error("listen did not stop within 20s of Ctrl-C")
			}
		})
		return code
	}
	t.Cleanup(func() { r.stop() })
	addr := regexp.MustCompile(`receiving deliveries at (http://127\.0\.0\.1:\d+/)`)
	require.Eventually(t, func() bool {
		m := addr.FindStringSubmatch(r.stderr.String())
		if m != nil {
			r.url = m[1]
		}
		select {
		case c := <-done:
			t.Fatalf("listen exited with %d: %s", c, r.stderr.String())
		default:
		}
		return m != nil
	}, 10*time.Second, 10*time.Millisecond, "listen did not start: %s", r.stderr.String())
	return r
}

// jsonLines decodes listen -json's output.
func jsonLines(t *testing.T, out string) []summary {
	t.Helper()
	var ss []summary
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var s summary
		require.NoError(t, json.Unmarshal(sc.Bytes(), &s), "line %q", sc.Text())
		ss = append(ss, s)
	}
	return ss
}

// TestListenCommand is the newcomer's session: listen in one terminal,
// send the five samples from another with the secret listen printed, and
// read one line per delivery; then Ctrl-C.
func TestListenCommand(t *testing.T) {
	l := startListen(t, nil)
	secret := regexp.MustCompile(`export NECTAR_WEBHOOK_SECRET=(whsec_\S+)`).FindStringSubmatch(l.stderr.String())
	require.NotNil(t, secret, "listen without a secret prints the one it made up: %s", l.stderr.String())

	res := runCLI(t, invocation{vars: map[string]string{secretEnv: secret[1]}}, "send", "-url", l.url+"webhooks/nectar", "all")
	require.Equal(t, exitOK, res.code, res.stderr)
	assert.Contains(t, res.stdout, "5 answered 2xx")

	res = runCLI(t, invocation{vars: map[string]string{secretEnv: secret[1]}}, "send", "-url", l.url+"webhooks/nectar", "-stale", "document.created.v2")
	require.Equal(t, exitRefused, res.code)
	// The timestamp is whole seconds: 10m0s or 10m1s, as the clock's
	// fraction of a second falls.
	assert.Regexp(t, `401 Unauthorized  timestamp too old: signed 10m[01]s before the clock`, res.stdout)

	// A page left open does not keep listen from stopping: its event
	// stream ends with it (and goleak, in TestMain, finds nothing left).
	stream, err := http.Get(l.url + "_nectarhooks/events")
	require.NoError(t, err)
	defer stream.Body.Close()
	require.Equal(t, exitOK, l.stop())
	rest, _ := io.ReadAll(stream.Body)
	assert.Contains(t, string(rest), "event: ready", "the stream was live, and ended")
	lines := strings.Split(strings.TrimSpace(l.stdout.String()), "\n")
	var verified, refused int
	for _, line := range lines {
		switch {
		case strings.Contains(line, "  verified  200 OK"):
			verified++
		case regexp.MustCompile(`document\.created\.v2  NOT VERIFIED timestamp too old: signed 10m[01]s before the clock \(tolerance 5m0s\)  401 Unauthorized$`).MatchString(line):
			refused++
		}
	}
	assert.Equal(t, 5, verified, l.stdout.String())
	assert.Equal(t, 1, refused, l.stdout.String())
	assert.Contains(t, l.stdout.String(), "    The signature itself matches: only the time is off.")
	assert.Contains(t, l.stderr.String(), "stopped after 6 deliveries")
}

// TestListenJSON checks -json: one object per delivery, nothing else on
// stdout, the verdict with its check.
func TestListenJSON(t *testing.T) {
	secret := nectarhookstest.NewSecret()
	vars := map[string]string{secretEnv: secret}
	l := startListen(t, vars, "-json")
	assert.NotContains(t, l.stderr.String(), "export", "a secret given is not printed")
	runCLI(t, invocation{vars: vars}, "send", "-url", l.url, "connection.updated.v2")
	runCLI(t, invocation{vars: vars}, "send", "-url", l.url, "-tamper", "connection.created.v2")
	require.Equal(t, exitOK, l.stop())
	ss := jsonLines(t, l.stdout.String())
	require.Len(t, ss, 2)
	assert.Equal(t, "connection.updated.v2", ss[0].Type)
	assert.True(t, ss[0].Verdict.OK)
	assert.Equal(t, 200, ss[0].Answer.Status)
	assert.Equal(t, checkBodyChanged, ss[1].Verdict.Check)
	assert.Equal(t, 401, ss[1].Answer.Status)
	assert.Regexp(t, `^msg_`, ss[1].ID)
}

func TestListenUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"api key for a secret", []string{"-secret", "sk_live_abcdef"}, `starts with "sk_", which is some other kind of key`},
		{"secret not base64", []string{"-secret", "whsec_!!!"}, "is not standard base64"},
		{"forward not http", []string{"-forward-to", "ftp://x"}, `-forward-to "ftp://x" is not an http:// or https:// URL`},
		{"forward secret alone", []string{"-forward-secret", nectarhookstest.NewSecret()}, "-forward-secret is for -forward-to"},
		{"bad forward secret", []string{"-forward-to", "http://127.0.0.1:1/", "-forward-secret", "whsec_x"}, "-forward-secret"},
		{"zero tolerance", []string{"-tolerance", "0s"}, "-tolerance must be positive"},
		{"zero history", []string{"-history", "0"}, "-history and -history-bytes must be at least 1"},
		{"argument", []string{"extra"}, `unexpected argument "extra"`},
		{"address taken", []string{"-addr", "256.0.0.1:1"}, "listen"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := runCLI(t, invocation{}, append([]string{"listen"}, tt.args...)...)
			assert.Equal(t, exitUsage, res.code)
			assert.Contains(t, res.stderr, tt.want)
			assert.Empty(t, res.stdout)
		})
	}
}

// newTestListener is a listener behind an httptest server, on a fixed
// clock.
func newTestListener(t *testing.T, cfg listenConfig) (*listener, *httptest.Server) {
	t.Helper()
	if cfg.tolerance == 0 {
		cfg.tolerance = nectarhooks.DefaultTolerance
	}
	if cfg.maxBody == 0 {
		cfg.maxBody = nectarhooks.DefaultMaxBodyBytes
	}
	if cfg.history == 0 {
		cfg.history, cfg.historyBytes = 100, 1<<20
	}
	if cfg.timeout == 0 {
		cfg.timeout = 5 * time.Second
	}
	l, err := newListener(cfg)
	require.NoError(t, err)
	srv := httptest.NewServer(l)
	t.Cleanup(func() {
		l.close()
		srv.Close()
	})
	return l, srv
}

func postTo(t *testing.T, url string, h http.Header, body []byte) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	require.NoError(t, err)
	for k, vs := range h {
		req.Header[k] = vs
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(b)
}

// TestListenVerdicts sends one delivery per way to fail, and checks the
// check named, the title's words, and the answer.
func TestListenVerdicts(t *testing.T) {
	secret := nectarhookstest.NewSecret()
	now := time.Unix(1796400000, 0)
	signer, err := nectarhookstest.NewSigner(secret)
	require.NoError(t, err)
	other, err := nectarhookstest.NewSigner(nectarhookstest.NewSecret())
	require.NoError(t, err)
	sample := nectarhookstest.Sample(nectarhooks.EventConnectionCreated)
	compact := func() []byte {
		var b bytes.Buffer
		require.NoError(t, json.Compact(&b, sample))
		return b.Bytes()
	}()
	var pretty bytes.Buffer
	require.NoError(t, json.Indent(&pretty, compact, "", "    "))

	tests := []struct {
		name      string
		header    http.Header
		body      []byte
		check     string
		title     string // a part of the title
		status    int
		decodedAs string
	}{
		{"verified", signer.HeaderFor("msg_ok", now, sample), sample, checkVerified, "verified", 200, "*nectarhooks.ConnectionCreated"},
		{"missing headers", http.Header{"Content-Type": {"application/json"}}, sample, checkMissing, "missing headers", 401, "*nectarhooks.ConnectionCreated"},
		{"timestamp not a number", func() http.Header {
			h := signer.HeaderFor("msg_ts", now, sample)
			h.Set("svix-timestamp", "yesterday")
			return h
		}(), sample, checkMalformed, "malformed headers", 401, ""},
		{"stale", signer.HeaderFor("msg_old", now.Add(-7*time.Minute), sample), sample, checkTooOld, "timestamp too old: signed 7m0s before the clock (tolerance 5m0s)", 401, ""},
		{"future", signer.HeaderFor("msg_new", now.Add(time.Hour), sample), sample, checkTooNew, "timestamp too new: signed 1h0m0s after the clock (tolerance 5m0s)", 401, ""},
		{"another secret", other.HeaderFor("msg_other", now, sample), sample, checkNoSignature, "no signature for this secret", 401, ""},
		{"newline added", signer.HeaderFor("msg_nl", now, compact), append(bytes.Clone(compact), '\n'), checkBodyChanged, "a newline was added", 401, ""},
		{"space appended", signer.HeaderFor("msg_sp", now, sample), append(bytes.Clone(sample), ' '), checkBodyChanged, "white space was added after signing", 401, ""},
		{"pretty-printed", signer.HeaderFor("msg_pp", now, compact), pretty.Bytes(), checkBodyChanged, "re-indented or pretty-printed", 401, ""},
		{"asymmetric signature only", func() http.Header {
			h := signer.HeaderFor("msg_v1a", now, sample)
			h.Set("svix-signature", "v1a,"+strings.Repeat("A", 86)+"==")
			return h
		}(), sample, checkSecretFormat, "v1a entries, no v1", 401, ""},
	}
	_, srv := newTestListener(t, listenConfig{secret: secret, now: nectarhookstest.FixedClock(now)})
	l := srv.Config.Handler.(*listener)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, text := postTo(t, srv.URL+"/hooks", tt.header, tt.body)
			assert.Equal(t, tt.status, resp.StatusCode, text)
			d, ok := l.hist.get(int64(i + 1))
			require.True(t, ok)
			assert.Equal(t, tt.check, d.Verdict.Check, d.Verdict.Title)
			assert.Contains(t, d.Verdict.Title, tt.title)
			assert.Equal(t, tt.check == checkVerified, d.Verdict.OK)
			assert.Equal(t, tt.check == checkVerified, len(d.Verdict.Reason) == 0, "a failure says why; a success has nothing to explain")
			assert.Equal(t, tt.body, d.Body, "the body is kept byte for byte")
			if tt.decodedAs != "" {
				assert.Equal(t, tt.decodedAs, d.DecodedAs)
				assert.Contains(t, string(d.Decoded), `"name":"Demo Company"`)
			}
			assert.Equal(t, "connection.created.v2", d.Type)
		})
	}
}

// TestListenBodyTooLarge checks the bound on a body: 413, and nothing of
// it kept.
func TestListenBodyTooLarge(t *testing.T) {
	l, srv := newTestListener(t, listenConfig{secret: nectarhookstest.NewSecret(), maxBody: 100})
	resp, _ := postTo(t, srv.URL, nil, bytes.Repeat([]byte("x"), 101))
	assert.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
	d, ok := l.hist.get(1)
	require.True(t, ok)
	assert.Equal(t, checkBodyTooLarge, d.Verdict.Check)
	assert.Nil(t, d.Body)
}

// forwardTarget is the developer's receiver behind listen: it checks the
// re-signed deliveries with the forward secret and answers as told.
type forwardTarget struct {
	srv    *httptest.Server
	mu     sync.Mutex
	got    []seenRequest
	status int
}

func newForwardTarget(t *testing.T, secret string, status int) *forwardTarget {
	ft := &forwardTarget{status: status}
	v, err := nectarhooks.NewVerifier(secret)
	require.NoError(t, err)
	ft.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		ft.mu.Lock()
		ft.got = append(ft.got, seenRequest{header: r.Header.Clone(), body: body})
		status := ft.status
		ft.mu.Unlock()
		if err := v.Verify(body, r.Header); err != nil {
			http.Error(w, "target: "+err.Error(), http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "text/x-target")
		w.WriteHeader(status)
		fmt.Fprintf(w, "target says %d", status)
	}))
	t.Cleanup(ft.srv.Close)
	return ft
}

func (ft *forwardTarget) requests() []seenRequest {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	return append([]seenRequest(nil), ft.got...)
}

// TestListenForward checks that a verified delivery reaches the target
// re-signed with the forward secret under the same svix-id, that the
// sender gets the target's answer, and that one which does not verify
// never reaches it.
func TestListenForward(t *testing.T) {
	secret, fwdSecret := nectarhookstest.NewSecret(), nectarhookstest.NewSecret()
	signer, err := nectarhookstest.NewSigner(secret)
	require.NoError(t, err)
	sample := nectarhookstest.Sample(nectarhooks.EventDocumentCreated)
	tests := []struct {
		name       string
		status     int  // the target's answer
		down       bool // the target is not there
		header     http.Header
		wantStatus int    // the sender's answer
		wantBody   string // a part of it
		reached    bool
	}{
		{"accepted", 202, false, signer.HeaderFor("msg_fwd_a", time.Now(), sample), 202, "target says 202", true},
		{"target fails", 500, false, signer.HeaderFor("msg_fwd_b", time.Now(), sample), 500, "target says 500", true},
		{"target down", 200, true, signer.HeaderFor("msg_fwd_c", time.Now(), sample), 502, "forward target gave no answer", false},
		{"not verified", 200, false, signer.HeaderFor("msg_fwd_d", time.Now().Add(-time.Hour), sample), 401, "timestamp too old", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ft := newForwardTarget(t, fwdSecret, tt.status)
			target := ft.srv.URL + "/webhooks/nectar"
			if tt.down {
				ft.srv.Close()
			}
			l, srv := newTestListener(t, listenConfig{secret: secret, forwardTo: target, forwardSecret: fwdSecret})
			resp, text := postTo(t, srv.URL+"/in", tt.header, sample)
			assert.Equal(t, tt.wantStatus, resp.StatusCode)
			assert.Contains(t, text, tt.wantBody)
			d, ok := l.hist.get(1)
			require.True(t, ok)
			if !tt.reached {
				assert.Empty(t, ft.requests())
				return
			}
			assert.Equal(t, "text/x-target", resp.Header.Get("Content-Type"), "the target's content type is passed on")
			got := ft.requests()
			require.Len(t, got, 1)
			assert.Equal(t, tt.header.Get("svix-id"), got[0].header.Get("svix-id"), "the same message id")
			assert.Equal(t, sample, got[0].body)
			assert.NoError(t, verifyWith(t, fwdSecret, got[0].body, got[0].header), "re-signed with the forward secret")
			assert.Error(t, verifyWith(t, secret, got[0].body, got[0].header), "not with the sender's")
			require.NotNil(t, d.Forward)
			require.NotNil(t, d.Forward.Answer)
			assert.Equal(t, tt.status, d.Forward.Answer.Status)
		})
	}
}

// TestListenReplay replays a kept delivery through the page's API: the
// target gets it again with the same svix-id, a new timestamp, a valid
// signature; the event stream reports the replay.
func TestListenReplay(t *testing.T) {
	secret, fwdSecret := nectarhookstest.NewSecret(), nectarhookstest.NewSecret()
	signer, err := nectarhookstest.NewSigner(secret)
	require.NoError(t, err)
	ft := newForwardTarget(t, fwdSecret, 200)
	var mu sync.Mutex
	clock := time.Now()
	now := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return clock
	}
	l, srv := newTestListener(t, listenConfig{secret: secret, forwardTo: ft.srv.URL, forwardSecret: fwdSecret, now: now})
	sample := nectarhookstest.Sample(nectarhooks.EventConnectionUpdated)
	resp, _ := postTo(t, srv.URL, signer.HeaderFor("msg_replay", now(), sample), sample)
	require.Equal(t, 200, resp.StatusCode)

	mu.Lock()
	clock = clock.Add(90 * time.Second)
	mu.Unlock()
	replay := func(seq string, header bool) (*http.Response, string) {
		h := http.Header{}
		if header {
			h.Set("X-Nectarhooks-Replay", "1")
		}
		return postTo(t, srv.URL+"/_nectarhooks/deliveries/"+seq+"/replay", h, nil)
	}
	resp, text := replay("1", false)
	assert.Equal(t, http.StatusForbidden, resp.StatusCode, "a replay needs the page's header")
	assert.Contains(t, text, "X-Nectarhooks-Replay")
	resp, text = replay("99", true)
	assert.Equal(t, http.StatusNotFound, resp.StatusCode, text)
	resp, text = replay("1", true)
	require.Equal(t, http.StatusOK, resp.StatusCode, text)
	// One that did not verify is never replayed: re-signed, it would
	// pass at the target.
	postTo(t, srv.URL, signer.HeaderFor("msg_forged", now(), sample), append(bytes.Clone(sample), 'x'))
	resp, text = replay("2", true)
	assert.Equal(t, http.StatusConflict, resp.StatusCode)
	assert.Contains(t, text, "did not verify")

	got := ft.requests()
	require.Len(t, got, 2)
	assert.Equal(t, "msg_replay", got[1].header.Get("svix-id"))
	assert.Equal(t, sample, got[1].body)
	first, _ := strconv.ParseInt(got[0].header.Get("svix-timestamp"), 10, 64)
	second, _ := strconv.ParseInt(got[1].header.Get("svix-timestamp"), 10, 64)
	assert.Equal(t, int64(90), second-first, "a new timestamp")
	assert.NoError(t, verifyWith(t, fwdSecret, got[1].body, got[1].header))
	d, ok := l.hist.get(1)
	require.True(t, ok)
	require.Len(t, d.Replays, 1)
	assert.Equal(t, 200, d.Replays[0].Answer.Status)

	// Without a forward target there is nothing to replay to.
	_, plain := newTestListener(t, listenConfig{secret: secret})
	postTo(t, plain.URL, signer.HeaderFor("msg_plain", time.Now(), sample), sample)
	resp, text = postTo(t, plain.URL+"/_nectarhooks/deliveries/1/replay", http.Header{"X-Nectarhooks-Replay": {"1"}}, nil)
	assert.Equal(t, http.StatusConflict, resp.StatusCode)
	assert.Contains(t, text, "-forward-to")
}

// TestListenHistoryBounds checks both bounds and the file.
func TestListenHistoryBounds(t *testing.T) {
	mk := func(n int) *record { return &record{Body: bytes.Repeat([]byte("x"), n)} }
	t.Run("count", func(t *testing.T) {
		h := newHistory(3, 1<<20)
		for range 5 {
			h.add(mk(10))
		}
		var seqs []int64
		for _, d := range h.list() {
			seqs = append(seqs, d.Seq)
		}
		assert.Equal(t, []int64{3, 4, 5}, seqs)
	})
	t.Run("bytes", func(t *testing.T) {
		h := newHistory(100, 3100)
		for range 10 {
			h.add(mk(1000)) // 1512 bytes each, with the overhead counted
		}
		list := h.list()
		require.Len(t, list, 2)
		assert.Equal(t, int64(9), list[0].Seq)
		assert.Equal(t, int64(10), list[1].Seq)
		var total int64
		for i := range list {
			total += list[i].size()
		}
		assert.LessOrEqual(t, total, int64(3100))
	})
	t.Run("one larger than the bound is kept alone", func(t *testing.T) {
		h := newHistory(100, 100)
		h.add(mk(10))
		h.add(mk(1000))
		list := h.list()
		require.Len(t, list, 1)
		assert.Equal(t, int64(2), list[0].Seq)
	})
	t.Run("file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "history.jsonl")
		h := newHistory(3, 1<<20)
		require.NoError(t, h.persist(path))
		for range 4 {
			h.add(mk(10))
		}
		_, ok := h.update(4, func(d *record) { d.Replays = append(d.Replays, forwarded{URL: "http://t/"}) })
		require.True(t, ok)
		h.closeFile()
		// A line cut short when the last run was killed.
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
		require.NoError(t, err)
		_, err = f.WriteString(`{"seq":9,"body":"eHh4`)
		require.NoError(t, err)
		require.NoError(t, f.Close())

		again := newHistory(2, 1<<20)
		require.NoError(t, again.persist(path))
		list := again.list()
		require.Len(t, list, 2)
		assert.Equal(t, int64(3), list[0].Seq)
		assert.Equal(t, int64(4), list[1].Seq)
		assert.Len(t, list[1].Replays, 1, "the later line of a delivery wins")
		again.add(mk(1))
		assert.Equal(t, int64(5), again.total(), "numbering goes on")
		again.closeFile()
		data, err := os.ReadFile(path)
		require.NoError(t, err)
		assert.Equal(t, 3, bytes.Count(data, []byte("\n")), "rewritten with what was kept, then appended to")
	})
}

// verifyWith checks a request with a secret, as the forward target would.
func verifyWith(t *testing.T, secret string, body []byte, h http.Header) error {
	t.Helper()
	v, err := nectarhooks.NewVerifier(secret)
	require.NoError(t, err)
	return v.Verify(body, h)
}
