package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nectarhooks/nectarhooks/nectarhookstest"
)

// hostilePayload is a delivery body meant to script the page, were it
// ever shown as markup.
const hostilePayload = `{"eventType":"connection.created.v2","id":"</pre><script>document.title='pwned'</script>","company":{"name":"<img src=x onerror=\"document.title='pwned'\">"}}`

func getWith(t *testing.T, url string, header http.Header) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	for k, vs := range header {
		req.Header[k] = vs
	}
	if h := header.Get("Host"); h != "" {
		req.Host = h
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(b)
}

// TestListenWebGuards checks what every web answer carries and whom the
// page answers: a strict Content-Security-Policy, loopback Host names only.
func TestListenWebGuards(t *testing.T) {
	_, srv := newTestListener(t, listenConfig{secret: nectarhookstest.NewSecret(), forwardTo: "http://127.0.0.1:1/<script>x</script>", forwardSecret: nectarhookstest.NewSecret()})
	tests := []struct {
		name   string
		path   string
		host   string
		status int
		want   string
	}{
		{"page", "/", "", 200, "forwarding verified deliveries to http://127.0.0.1:1/&lt;script&gt;x&lt;/script&gt;"},
		{"page at localhost", "/", "localhost:8790", 200, "<title>nectarhooks listen</title>"},
		{"page at [::1]", "/", "[::1]:8790", 200, "<title>nectarhooks listen</title>"},
		{"script", "/_nectarhooks/static/app.js", "", 200, "textContent"},
		{"rebound name", "/", "evil.example:8790", 403, "loopback"},
		{"rebound name, API", "/_nectarhooks/deliveries/1", "evil.example", 403, "loopback"},
		{"GET elsewhere", "/webhooks/nectar", "", 405, "POST deliveries to any path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			if tt.host != "" {
				h.Set("Host", tt.host)
			}
			resp, body := getWith(t, srv.URL+tt.path, h)
			assert.Equal(t, tt.status, resp.StatusCode, body)
			assert.Contains(t, body, tt.want)
			assert.Equal(t, contentSecurityPolicy, resp.Header.Get("Content-Security-Policy"))
			assert.Equal(t, "nosniff", resp.Header.Get("X-Content-Type-Options"))
			assert.NotContains(t, body, "<script>x</script>")
		})
	}
	assert.Contains(t, contentSecurityPolicy, "script-src 'self'", "no inline script runs")
	assert.NotContains(t, contentSecurityPolicy, "unsafe-inline")
}

// TestListenWebDetailEscapes checks that a hostile body reaches the page
// only inside JSON strings, where the page reads it as text.
func TestListenWebDetailEscapes(t *testing.T) {
	_, srv := newTestListener(t, listenConfig{secret: nectarhookstest.NewSecret()})
	postTo(t, srv.URL, nil, []byte(hostilePayload))
	resp, body := getWith(t, srv.URL+"/_nectarhooks/deliveries/1", nil)
	require.Equal(t, 200, resp.StatusCode)
	assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	assert.NotContains(t, body, "<script>", "encoding/json writes < as \\u003c")
	var v struct {
		BodyText string `json:"bodyText"`
		Pretty   string `json:"pretty"`
		Verdict  diagnosis
	}
	require.NoError(t, json.Unmarshal([]byte(body), &v))
	assert.Equal(t, hostilePayload, v.BodyText, "shown byte for byte")
	assert.Contains(t, v.Pretty, "<script>")
	assert.Equal(t, checkMissing, v.Verdict.Check)
}

// TestListenEventStream reads the stream as a page would: the kept
// deliveries, "ready", then each new one; and checks the stream ends
// when the listener closes (goleak, in TestMain, checks nothing stays).
func TestListenEventStream(t *testing.T) {
	secret := nectarhookstest.NewSecret()
	signer, err := nectarhookstest.NewSigner(secret)
	require.NoError(t, err)
	l, srv := newTestListener(t, listenConfig{secret: secret})
	sample := nectarhookstest.Sample("document.updated.v2")
	postTo(t, srv.URL, signer.HeaderFor("msg_before", time.Now(), sample), sample)

	resp, err := http.Get(srv.URL + "/_nectarhooks/events")
	require.NoError(t, err)
	defer resp.Body.Close()
	assert.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	events := make(chan [2]string, 16)
	go func() {
		defer close(events)
		sc := bufio.NewScanner(resp.Body)
		var name string
		for sc.Scan() {
			line := sc.Text()
			if v, ok := strings.CutPrefix(line, "event: "); ok {
				name = v
			}
			if v, ok := strings.CutPrefix(line, "data: "); ok {
				events <- [2]string{name, v}
			}
		}
	}()
	next := func() (string, summary) {
		t.Helper()
		select {
		case ev, ok := <-events:
			require.True(t, ok, "the stream ended early")
			var s summary
			require.NoError(t, json.Unmarshal([]byte(ev[1]), &s))
			return ev[0], s
		case <-time.After(10 * time.Second):
			t.Fatal("no event within 10s")
			return "", summary{}
		}
	}
	name, s := next()
	assert.Equal(t, "delivery", name)
	assert.Equal(t, "msg_before", s.ID)
	name, _ = next()
	assert.Equal(t, "ready", name)

	postTo(t, srv.URL, signer.HeaderFor("msg_after", time.Now(), sample), sample)
	name, s = next()
	assert.Equal(t, "delivery", name)
	assert.Equal(t, "msg_after", s.ID)
	assert.Equal(t, int64(2), s.Seq)
	assert.True(t, s.Verdict.OK)

	l.close()
	select {
	case _, ok := <-events:
		assert.False(t, ok, "no event after close")
	case <-time.After(10 * time.Second):
		t.Fatal("the stream did not end when the listener closed")
	}
}
