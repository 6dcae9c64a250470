package main

import (
	"bufio"
	"encoding/json"
	"html"
	"html/template"
	"io"
	"net/http"
	"regexp"
	"strconv"
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

// TestListenPageRowsEscaped renders the page with deliveries already kept
// whose svix-id, event type and verdict (which quotes the signature
// header) are markup meant to break out of the row's text and attributes;
// each must come back, unescaped, exactly as sent: text, not markup.
func TestListenPageRowsEscaped(t *testing.T) {
	const (
		hostileID   = `msg_"><script>document.title='pwned'</script>`
		hostileType = `<img src=x onerror="document.title='pwned'">`
		hostileSig  = `"><b/x>,c2ln`
	)
	secret := nectarhookstest.NewSecret()
	signer, err := nectarhookstest.NewSigner(secret)
	require.NoError(t, err)
	_, srv := newTestListener(t, listenConfig{secret: secret})
	body := []byte(`{"eventType":` + strconv.Quote(hostileType) + `,"payload":{"x":"</td></tr><script>document.title='pwned'</script>"}}`)
	postTo(t, srv.URL, signer.HeaderFor(hostileID, time.Now(), body), body)
	forged := signer.HeaderFor("msg_forged", time.Now(), body)
	forged.Set("svix-signature", hostileSig)
	postTo(t, srv.URL, forged, body)

	resp, page := getWith(t, srv.URL+"/", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "text/html; charset=utf-8", resp.Header.Get("Content-Type"))
	for _, raw := range []string{"<script>document", "<img src=x", "<b/x>", `"><b`, `"><script`} {
		assert.NotContains(t, page, raw, "markup from a delivery")
	}
	assert.Equal(t, 1, strings.Count(page, "<script"), "the page's own script only")

	// Each row, attribute by attribute and cell by cell: html/template's
	// escaping keeps every value inside its quotes or its cell.
	row := regexp.MustCompile(`<tr data-seq="(\d+)" data-type="([^"<>]*)" data-ok="(ok|failed)" title="([^"<>]*)">\s*` +
		`<td>\d+</td><td>[0-9:]{8}</td><td>([^<>]*)</td><td>([^<>]*)</td><td class="(?:ok|bad)">([^<>]*)</td><td>([^<>]*)</td>\s*</tr>`)
	rows := row.FindAllStringSubmatch(page, -1)
	require.Len(t, rows, 2, "two rows, each parsed whole:\n%s", page)
	un := html.UnescapeString
	tests := []struct {
		name      string
		row       []string
		seq, id   string
		ok        string
		inVerdict string
	}{
		{"newest first: the forged one, its signature header quoted", rows[0], "2", "msg_forged", "failed", `signed with another kind of key: "><b/x> entries`},
		{"the hostile svix-id", rows[1], "1", hostileID, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.row
			assert.Equal(t, tt.seq, r[1])
			assert.Equal(t, hostileType, un(r[2]), "data-type")
			assert.Equal(t, tt.id, un(r[5]), "svix-id cell")
			assert.Equal(t, hostileType, un(r[6]), "type cell")
			assert.Equal(t, un(r[4]), un(r[7]), "the title is the verdict")
			if tt.inVerdict != "" {
				assert.Equal(t, tt.ok, r[3])
				assert.Contains(t, un(r[7]), tt.inVerdict)
			}
		})
	}
	assert.Contains(t, page, `<option value="`+template.HTMLEscapeString(hostileType)+`">`, "the type filter offers it, escaped")
}
