package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
	"github.com/nectarhooks/nectarhooks/pgxstore"
)

// deadService is a service on PostgreSQL whose document callback fails
// until fixed: permanently for the document "doc-refused", transiently for
// the others. It serves one Handler that answers after the callback (sync)
// and one WithAsync (async), with the same callbacks, dead-letter table and
// idempotency table, as two replicas configured differently.
type deadService struct {
	sync, async *httptest.Server
	store       *pgxstore.DeadLetters
	table       string
	signer      *nectarhookstest.Signer
	secret      string
	fixed       atomic.Bool
	mu          sync.Mutex
	runs        map[string]int
}

func newDeadService(t *testing.T) *deadService {
	dsn := nectarhookstest.PostgresURL(t)
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, dsn)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	suffix := strings.ToLower(nectarhookstest.NewMessageID()[4:16])
	s := &deadService{table: "nh_dead_" + suffix, secret: nectarhookstest.NewSecret(), runs: map[string]int{}}
	for _, table := range []string{s.table, "nh_msgs_" + suffix} {
		t.Cleanup(func() {
			_, err := pool.Exec(context.Background(), "DROP TABLE IF EXISTS "+pgx.Identifier{table}.Sanitize())
			assert.NoError(t, err)
		})
	}
	s.store, err = pgxstore.NewDeadLetters(ctx, pool, s.table)
	require.NoError(t, err)
	idem, err := pgxstore.New(ctx, pool, pgxstore.WithTable("nh_msgs_"+suffix))
	require.NoError(t, err)
	s.signer, err = nectarhookstest.NewSigner(s.secret)
	require.NoError(t, err)
	for _, async := range []bool{false, true} {
		opts := []nectarhooks.Option{nectarhooks.WithDeadLetters(s.store), nectarhooks.WithIdempotency(idem),
			nectarhooks.WithErrorHandler(func(context.Context, int, error) {})}
		if async {
			opts = append(opts, nectarhooks.WithAsync(2, 16))
		}
		h, err := nectarhooks.NewHandler(s.secret, opts...)
		require.NoError(t, err)
		h.OnDocumentCreated(s.callback)
		srv := httptest.NewServer(h)
		t.Cleanup(func() {
			srv.Close()
			require.NoError(t, h.Shutdown(context.Background()))
		})
		if async {
			s.async = srv
		} else {
			s.sync = srv
		}
	}
	return s
}

func (s *deadService) callback(ctx context.Context, e *nectarhooks.DocumentCreated) error {
	m, _ := nectarhooks.MessageFromContext(ctx)
	s.mu.Lock()
	s.runs[m.ID]++
	s.mu.Unlock()
	switch {
	case s.fixed.Load():
		// Slow enough for concurrent replays to overlap.
		time.Sleep(5 * time.Millisecond)
		return nil
	case e.ID == "doc-refused":
		return nectarhooks.Permanent(errors.New("document doc-refused breaks rule 7"))
	}
	return errors.New("bug 1234")
}

func (s *deadService) runsOf(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.runs[id]
}

// deliver POSTs payload as message id to url and returns the answer.
func (s *deadService) deliver(t *testing.T, url, id string, payload []byte) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(string(payload)))
	require.NoError(t, err)
	for k, vs := range s.signer.HeaderFor(id, time.Now(), payload) {
		req.Header[k] = vs
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	return resp
}

func (s *deadService) cli(t *testing.T, args ...string) cliResult {
	t.Helper()
	return runCLI(t, invocation{vars: map[string]string{"DATABASE_URL": nectarhookstest.PostgresURL(t),
		"NECTAR_WEBHOOK_SECRET": s.secret}}, append([]string{"dead"}, append(args, "-table", s.table)...)...)
}

// listed runs dead list -json and returns its lines by id.
func (s *deadService) listed(t *testing.T, args ...string) map[string]deadJSON {
	t.Helper()
	res := s.cli(t, append([]string{"list", "-json"}, args...)...)
	require.Equal(t, exitOK, res.code, res.stderr)
	out := map[string]deadJSON{}
	for line := range strings.Lines(res.stdout) {
		var raw map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &raw), line)
		for _, key := range []string{"id", "event_type", "error", "attempts", "failed_at"} {
			assert.Contains(t, raw, key, line)
		}
		var d deadJSON
		require.NoError(t, json.Unmarshal([]byte(line), &d))
		_, twice := out[d.ID]
		require.False(t, twice, "%s listed twice", d.ID)
		out[d.ID] = d
	}
	return out
}

// TestDeadLettersEndToEnd: messages that fail until fixed, after a WithAsync
// answer and as aborted deliveries, are each listed once, byte for byte;
// replays before the fix count attempts on; after the fix two concurrent
// "dead replay -all" run each message exactly once, and the list is empty.
func TestDeadLettersEndToEnd(t *testing.T) {
	s := newDeadService(t)
	payloads := map[string][]byte{}
	for i := range 3 {
		id := fmt.Sprintf("msg_async%d", i)
		payloads[id] = fmt.Appendf(nil, "{\"eventType\": \"document.created.v2\",  \"id\":\"doc-%d\", \"name\":\"\u00e9t\u00e9\"}", i)
		resp := s.deliver(t, s.async.URL, id, payloads[id])
		require.Equal(t, http.StatusAccepted, resp.StatusCode)
	}
	payloads["msg_refused"] = []byte(`{"eventType":"document.created.v2","id":"doc-refused"}`)
	resp := s.deliver(t, s.sync.URL, "msg_refused", payloads["msg_refused"])
	require.Equal(t, http.StatusInternalServerError, resp.StatusCode)
	require.Equal(t, nectarhooks.AbortMessage, resp.Header.Get(nectarhooks.DeliveryHeader))

	require.Eventually(t, func() bool { return len(s.listed(t)) == 4 }, 15*time.Second, 50*time.Millisecond)
	got := s.listed(t)
	for id, payload := range payloads {
		require.Contains(t, got, id)
		assert.Equal(t, 1, got[id].Attempts, id)
		assert.Equal(t, "document.created.v2", got[id].EventType)
		assert.Equal(t, len(payload), got[id].PayloadBytes)
		show := s.cli(t, "show", "-json", "-id", id)
		require.Equal(t, exitOK, show.code, show.stderr)
		var d deadJSON
		require.NoError(t, json.Unmarshal([]byte(show.stdout), &d))
		raw, err := base64.StdEncoding.DecodeString(d.PayloadBase64)
		require.NoError(t, err)
		assert.Equal(t, payload, raw, "payload of %s byte for byte", id)
		text := s.cli(t, "show", "-id", id)
		assert.Contains(t, text.stdout, "\n"+string(payload)+"\n")
	}
	assert.Len(t, s.listed(t, "-type", "connection.created.v2"), 0)
	assert.Len(t, s.listed(t, "-since", "1h"), 4)
	assert.Len(t, s.listed(t, "-since", time.Now().Add(time.Hour).Format(time.RFC3339)), 0)

	// Before the fix: a replay fails again (answered 500, recorded here)
	// or is aborted again (recorded by the service): attempts count on.
	res := s.cli(t, "replay", "-id", "msg_async0", "-url", s.sync.URL)
	assert.Equal(t, exitRefused, res.code, res.stdout+res.stderr)
	assert.Contains(t, res.stdout, "1 failed again")
	res = s.cli(t, "replay", "-id", "msg_refused", "-url", s.sync.URL)
	assert.Equal(t, exitRefused, res.code, res.stdout+res.stderr)
	assert.Contains(t, res.stdout, "1 aborted again")
	got = s.listed(t)
	require.Len(t, got, 4)
	assert.Equal(t, 2, got["msg_async0"].Attempts)
	assert.Equal(t, 2, got["msg_refused"].Attempts)
	assert.Equal(t, 1, got["msg_async1"].Attempts)
	before := map[string]int{}
	for id := range payloads {
		before[id] = s.runsOf(id)
	}

	// The fix, then two replays at once.
	s.fixed.Store(true)
	var wg sync.WaitGroup
	results := make([]cliResult, 2)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = s.cli(t, "replay", "-all", "-url", s.sync.URL, "-json")
		}()
	}
	wg.Wait()
	replayed := 0
	for _, r := range results {
		require.Equal(t, exitOK, r.code, r.stdout+r.stderr)
		replayed += strings.Count(r.stdout, `"replay":"replayed"`)
	}
	assert.Equal(t, 4, replayed, "replayed in all:\n%s\n%s", results[0].stdout, results[1].stdout)
	for id := range payloads {
		assert.Equal(t, before[id]+1, s.runsOf(id), "runs of %s after the replays", id)
	}
	assert.Empty(t, s.listed(t))
}

func TestDeadUsage(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"dead"}, "want one of list, show or replay"},
		{[]string{"dead", "purge", "-db", "postgres://x"}, "want one of list, show or replay"},
		{[]string{"dead", "list"}, "-db is required"},
		{[]string{"dead", "list", "-db", "postgres://x", "-since", "yesterday"}, "neither an RFC 3339 time nor a duration"},
		{[]string{"dead", "replay", "-db", "postgres://x", "-url", "http://127.0.0.1:1/"}, "replay needs -id ID or -all"},
		{[]string{"dead", "replay", "-db", "postgres://x", "-all"}, "replay needs -url"},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			res := runCLI(t, invocation{}, tt.args...)
			assert.Equal(t, exitUsage, res.code)
			assert.Contains(t, res.stderr, tt.want)
		})
	}
}
