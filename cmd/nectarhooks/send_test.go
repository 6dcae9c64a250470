package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
)

// steppingClock reads start, then one second later at every call, so that
// the attempts of -repeat get distinct timestamps without waiting.
func steppingClock(start time.Time) func() time.Time {
	var n atomic.Int64
	return func() time.Time { return start.Add(time.Duration(n.Add(1)-1) * time.Second) }
}

func TestSend(t *testing.T) {
	secret := nectarhookstest.NewSecret()
	otherSecret := nectarhookstest.NewSecret()
	fileBody := []byte(`{"eventType": "document.created.v2", "id": "doc-from-file", "site": {"id": "s1", "name": "Test Site"}}`)
	file := writeFile(t, "payload.json", fileBody)
	start := time.Now()

	tests := []struct {
		name      string
		vars      map[string]string
		opts      []nectarhooks.Option // the receiver's
		failing   bool                 // the receiver's callbacks fail
		clock     func() time.Time
		args      []string // after -url
		wantCode  int
		wantLines []string // per delivery, in order: substrings of its line
		wantSum   string   // the summary line, "" when none is printed
		check     func(t *testing.T, reqs []seenRequest, events []seenEvent)
	}{
		{
			name: "all sends the five samples",
			args: []string{"-secret", secret, "all"},
			wantLines: []string{
				"connection.created.v2    msg_", "connection.updated.v2    msg_", "connection.validated.v2  msg_",
				"document.created.v2      msg_", "document.updated.v2      msg_",
			},
			wantSum: "5 deliveries: 5 answered 2xx, 0 not",
			check: func(t *testing.T, reqs []seenRequest, events []seenEvent) {
				require.Len(t, events, 5)
				require.Len(t, reqs, 5)
				ids := map[string]bool{}
				for i, et := range nectarhooks.EventTypes() {
					assert.Equal(t, et, events[i].typ)
					assert.Equal(t, string(nectarhookstest.Sample(et)), string(reqs[i].body), "the sample byte for byte")
					assert.Equal(t, "application/json", reqs[i].header.Get("Content-Type"))
					assert.Equal(t, events[i].id, reqs[i].header.Get("svix-id"))
					assert.Regexp(t, `^msg_[0-9A-Za-z]{27}$`, events[i].id)
					ids[events[i].id] = true
				}
				assert.Len(t, ids, 5, "a new message id per payload")
			},
		},
		{
			name:      "secret from the environment, flags after the payload",
			vars:      map[string]string{secretEnv: secret},
			args:      []string{"connection.updated.v2", "-timeout", "10s"},
			wantLines: []string{"connection.updated.v2  msg_"},
			check: func(t *testing.T, _ []seenRequest, events []seenEvent) {
				require.Len(t, events, 1)
				assert.Equal(t, nectarhooks.EventConnectionUpdated, events[0].typ)
			},
		},
		{
			name:      "-secret wins over the environment",
			vars:      map[string]string{secretEnv: otherSecret},
			args:      []string{"-secret", secret, "document.updated.v2"},
			wantLines: []string{"document.updated.v2"},
			check: func(t *testing.T, _ []seenRequest, events []seenEvent) {
				require.Len(t, events, 1)
				assert.Equal(t, nectarhooks.EventDocumentUpdated, events[0].typ)
			},
		},
		{
			name:      "another endpoint's secret is refused",
			vars:      map[string]string{secretEnv: otherSecret},
			args:      []string{"connection.created.v2"},
			wantCode:  exitRefused,
			wantLines: []string{"401 Unauthorized  nectarhooks: no matching signature"},
			check: func(t *testing.T, _ []seenRequest, events []seenEvent) {
				assert.Empty(t, events)
			},
		},
		{
			name:      "-tamper is refused",
			args:      []string{"-secret", secret, "-tamper", "connection.created.v2"},
			wantCode:  exitRefused,
			wantLines: []string{"401 Unauthorized  nectarhooks: no matching signature"},
			check: func(t *testing.T, reqs []seenRequest, events []seenEvent) {
				assert.Empty(t, events)
				require.Len(t, reqs, 1)
				sample := nectarhookstest.Sample(nectarhooks.EventConnectionCreated)
				assert.Equal(t, string(sample)+" ", string(reqs[0].body), "a space appended after signing")
				v, err := nectarhooks.NewVerifier(secret)
				require.NoError(t, err)
				assert.NoError(t, v.Verify(sample, reqs[0].header), "the signature is the untampered body's")
			},
		},
		{
			name:      "-stale is refused",
			opts:      []nectarhooks.Option{nectarhooks.WithClock(nectarhookstest.FixedClock(start))},
			clock:     nectarhookstest.FixedClock(start),
			args:      []string{"-secret", secret, "-stale", "document.created.v2"},
			wantCode:  exitRefused,
			wantLines: []string{"401 Unauthorized  nectarhooks: message timestamp too old: sent 10m0s before"},
			check: func(t *testing.T, reqs []seenRequest, events []seenEvent) {
				assert.Empty(t, events)
				require.Len(t, reqs, 1)
				assert.Equal(t, strconv.FormatInt(start.Add(-10*time.Minute).Unix(), 10), reqs[0].header.Get("svix-timestamp"))
			},
		},
		{
			name:  "-repeat resends the same message, which an idempotent receiver processes once",
			opts:  []nectarhooks.Option{nectarhooks.WithIdempotency(nectarhooks.NewMemoryStore(0, 0))},
			clock: steppingClock(start),
			args:  []string{"-secret", secret, "-repeat", "3", "connection.created.v2"},
			wantLines: []string{
				"(1/3)  200 OK  ok",
				"(2/3)  200 OK  acknowledged: message already processed",
				"(3/3)  200 OK  acknowledged: message already processed",
			},
			wantSum: "3 deliveries: 3 answered 2xx, 0 not",
			check: func(t *testing.T, reqs []seenRequest, events []seenEvent) {
				require.Len(t, events, 1, "the callback runs once")
				require.Len(t, reqs, 3)
				stamps, sigs := map[string]bool{}, map[string]bool{}
				for _, r := range reqs {
					assert.Equal(t, events[0].id, r.header.Get("svix-id"), "every attempt has the same message id")
					stamps[r.header.Get("svix-timestamp")] = true
					sigs[r.header.Get("svix-signature")] = true
				}
				assert.Len(t, stamps, 3, "each attempt is signed at its own time")
				assert.Len(t, sigs, 3)
			},
		},
		{
			name:      "-repeat without idempotency runs the callback every time",
			args:      []string{"-secret", secret, "-repeat", "2", "document.updated.v2", "connection.validated.v2"},
			wantLines: []string{"document.updated.v2      msg_", "document.updated.v2      msg_", "connection.validated.v2  msg_", "connection.validated.v2  msg_"},
			wantSum:   "4 deliveries: 4 answered 2xx, 0 not",
			check: func(t *testing.T, _ []seenRequest, events []seenEvent) {
				require.Len(t, events, 4)
				assert.Equal(t, events[0].id, events[1].id)
				assert.Equal(t, events[2].id, events[3].id)
				assert.NotEqual(t, events[0].id, events[2].id, "each payload is a message of its own")
				assert.Equal(t, nectarhooks.EventConnectionValidated, events[3].typ)
			},
		},
		{
			name:      "a FILE payload, byte for byte, with a sample",
			args:      []string{"-secret", secret, file, "connection.created.v2"},
			wantLines: []string{file + " (document.created.v2)  msg_", "connection.created.v2"},
			wantSum:   "2 deliveries: 2 answered 2xx, 0 not",
			check: func(t *testing.T, reqs []seenRequest, events []seenEvent) {
				require.Len(t, events, 2)
				require.Len(t, reqs, 2)
				assert.Equal(t, string(fileBody), string(reqs[0].body))
				doc, ok := events[0].ev.(*nectarhooks.DocumentCreated)
				require.True(t, ok, "%T", events[0].ev)
				assert.Equal(t, "doc-from-file", doc.ID)
				assert.Equal(t, "Test Site", doc.Site.Name)
				assert.Equal(t, nectarhooks.EventConnectionCreated, events[1].typ)
			},
		},
		{
			name:      "a failing callback is a 500",
			failing:   true,
			args:      []string{"-secret", secret, "connection.updated.v2", "document.created.v2"},
			wantCode:  exitRefused,
			wantLines: []string{"500 Internal Server Error  callback failed", "500 Internal Server Error  callback failed"},
			wantSum:   "2 deliveries: 0 answered 2xx, 2 not",
			check: func(t *testing.T, _ []seenRequest, events []seenEvent) {
				assert.Len(t, events, 2, "both were tried")
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rcv := newReceiver(t, secret, tt.opts...)
			rcv.fail.Store(tt.failing)
			res := runCLI(t, invocation{vars: tt.vars, now: tt.clock}, append([]string{"send", "-url", rcv.url}, tt.args...)...)
			assert.Equal(t, tt.wantCode, res.code, "stdout:\n%s\nstderr:\n%s", res.stdout, res.stderr)
			assert.Empty(t, res.stderr)

			lines := nonEmptyLines(res.stdout)
			want := len(tt.wantLines)
			if tt.wantSum != "" {
				want++
			}
			require.Len(t, lines, want, res.stdout)
			for i, w := range tt.wantLines {
				assert.Contains(t, lines[i], w)
			}
			if tt.wantSum != "" {
				assert.Equal(t, tt.wantSum, lines[len(lines)-1])
			}
			reqs, events := rcv.seen()
			tt.check(t, reqs, events)
		})
	}
}

func TestSendWithoutAnswer(t *testing.T) {
	secret := nectarhookstest.NewSecret()

	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()

	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(slow.Close)
	t.Cleanup(func() { close(release) }) // runs first: the handler returns, then the server closes

	var hits atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("/old", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/new", http.StatusTemporaryRedirect)
	})
	mux.HandleFunc("/new", func(w http.ResponseWriter, r *http.Request) { hits.Add(1) })
	redirecting := httptest.NewServer(mux)
	t.Cleanup(redirecting.Close)

	tests := []struct {
		name       string
		args       []string
		wantStdout []string
		wantStderr []string
		check      func(t *testing.T)
	}{
		{
			name:       "nothing listening",
			args:       []string{"-url", closedURL + "/webhooks", "connection.created.v2", "document.created.v2"},
			wantStdout: []string{"connection.created.v2  msg_", "no answer", "document.created.v2", "2 deliveries: 0 answered 2xx, 2 not"},
			wantStderr: []string{"nectarhooks send: connection.created.v2: ", "nectarhooks send: document.created.v2: "},
		},
		{
			name:       "no answer in time",
			args:       []string{"-url", slow.URL, "-timeout", "50ms", "connection.created.v2"},
			wantStdout: []string{"no answer"},
			wantStderr: []string{"no answer within 50ms; Svix would count the attempt as failed and retry"},
		},
		{
			name:       "a redirect is not followed",
			args:       []string{"-url", redirecting.URL + "/old", "connection.created.v2"},
			wantStdout: []string{"307 Temporary Redirect (redirect to /new, not followed)"},
			check: func(t *testing.T) {
				assert.Zero(t, hits.Load(), "the redirect's target was not requested")
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := runCLI(t, invocation{vars: map[string]string{secretEnv: secret}}, append([]string{"send"}, tt.args...)...)
			assert.Equal(t, exitRefused, res.code)
			for _, w := range tt.wantStdout {
				assert.Contains(t, res.stdout, w)
			}
			for _, w := range tt.wantStderr {
				assert.Contains(t, res.stderr, w)
			}
			if tt.check != nil {
				tt.check(t)
			}
		})
	}
}

func TestSendWarnsOfNonJSON(t *testing.T) {
	secret := nectarhookstest.NewSecret()
	rcv := newReceiver(t, secret)
	file := writeFile(t, "notes.txt", []byte("not json"))
	res := runCLI(t, invocation{vars: map[string]string{secretEnv: secret}}, "send", "-url", rcv.url, file)
	assert.Equal(t, exitRefused, res.code)
	assert.Contains(t, res.stderr, "warning: "+file+" is not valid JSON")
	assert.Contains(t, res.stdout, "400 Bad Request")
	reqs, events := rcv.seen()
	assert.Empty(t, events)
	require.Len(t, reqs, 1)
	assert.True(t, bytes.Equal([]byte("not json"), reqs[0].body), "sent as it is")
}

func TestSendLongAnswerIsCut(t *testing.T) {
	secret := nectarhookstest.NewSecret()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte("<html>\n<body>" + strings.Repeat("x", 100_000) + "</body>\n</html>"))
	}))
	t.Cleanup(srv.Close)
	res := runCLI(t, invocation{vars: map[string]string{secretEnv: secret}}, "send", "-url", srv.URL, "connection.created.v2")
	assert.Equal(t, exitRefused, res.code)
	lines := nonEmptyLines(res.stdout)
	require.Len(t, lines, 1)
	assert.Contains(t, lines[0], "404 Not Found  <html> <body>xxx")
	assert.True(t, strings.HasSuffix(lines[0], "..."))
	assert.Less(t, len(lines[0]), 400)
}

func TestSendInterrupted(t *testing.T) {
	secret := nectarhookstest.NewSecret()
	rcv := newReceiver(t, secret)
	var stdout, stderr bytes.Buffer
	e := &env{stdout: &stdout, stderr: &stderr, getenv: func(string) string { return secret }, now: time.Now, newID: nectarhookstest.NewMessageID}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // as Ctrl-C before the first delivery
	code := e.run(ctx, []string{"send", "-url", rcv.url, "-repeat", "2", "all"})
	assert.Equal(t, exitRefused, code)
	assert.Contains(t, stderr.String(), "nectarhooks send: interrupted after 0 of 10 deliveries")
	reqs, _ := rcv.seen()
	assert.Empty(t, reqs, "nothing is sent once interrupted")
}

// TestSendEscapesControlCharacters checks that an answer cannot drive the
// terminal: escape sequences and other control characters from the server
// are printed as escapes, not as the bytes a terminal acts on.
func TestSendEscapesControlCharacters(t *testing.T) {
	tests := []struct {
		name, answer, want string
	}{
		{"escape sequence that clears the screen", "denied\x1b[2J\x1b[H", `denied\x1b[2J\x1b[H`},
		{"carriage return and tab, white space, become spaces", "bad\rgood\tnews", `bad good news`},
		{"bell and backspace", "a\x07\x08b", `a\x07\x08b`},
		{"C1 control (CSI)", "x\u009b31my", `x\u009b31my`},
		{"bidi override", "abc\u202edcba", `abc\u202edcba`},
		{"invalid UTF-8", "ok\xff", `ok\xff`},
		{"plain text is left alone", "naïve café 🐝", "naïve café 🐝"},
	}
	secret := nectarhookstest.NewSecret()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusForbidden)
				io.WriteString(w, tt.answer)
			}))
			t.Cleanup(srv.Close)
			res := runCLI(t, invocation{vars: map[string]string{secretEnv: secret}}, "send", "-url", srv.URL, "connection.created.v2")
			assert.Equal(t, exitRefused, res.code)
			assert.Contains(t, res.stdout, "403 Forbidden  "+tt.want)
			for _, r := range res.stdout {
				assert.False(t, needsEscape(r) && r != '\n', "raw %U in the output: %q", r, res.stdout)
			}
		})
	}
}

// TestSendReadsFilesWithACap checks that a payload file that never ends
// is refused once past the body limit, instead of being read forever.
func TestSendReadsFilesWithACap(t *testing.T) {
	if _, err := os.Stat("/dev/zero"); err != nil {
		t.Skip("no /dev/zero here")
	}
	secret := nectarhookstest.NewSecret()
	done := make(chan cliResult, 1)
	go func() {
		done <- runCLI(t, invocation{vars: map[string]string{secretEnv: secret}}, "send", "-url", "http://127.0.0.1:1/", "/dev/zero")
	}()
	select {
	case res := <-done:
		assert.Equal(t, exitUsage, res.code)
		assert.Contains(t, res.stderr, "/dev/zero is larger than 1048576 bytes")
	case <-time.After(60 * time.Second):
		t.Fatal("send /dev/zero is still reading after a minute")
	}
}

// hostileText holds what a hostile server can get through Go's HTTP client
// in a header value (which refuses C0 controls there, but not these): the
// bidi override, isolate and marks that reorder what is shown, a line
// separator, CSI as a C1 control and as a raw byte, and a byte that is not
// UTF-8.
const hostileText = "gnp\u202eexe\u2066\u200e\u200f\u061c\u2028\u0085\u009b31m\x9b2J\xff"

// hostileEscaped is hostileText as the CLI must print it; hostileOneLine
// as it prints a body, whose white space (U+2028 and U+0085 are white
// space) becomes one space.
const (
	hostileEscaped = `gnp\u202eexe\u2066\u200e\u200f\u061c\u2028\u0085\u009b31m\x9b2J\xff`
	hostileOneLine = `gnp\u202eexe\u2066\u200e\u200f\u061c \u009b31m\x9b2J\xff`
)

// requireInert fails unless out is valid UTF-8 with no character a
// terminal acts on or reorders: no control character but the newline, no
// format character (bidi controls, marks), no line or paragraph separator.
// It does not use needsEscape, so that it checks the code rather than
// repeating it.
func requireInert(t *testing.T, out string) {
	t.Helper()
	require.True(t, utf8.ValidString(out), "not UTF-8: %q", out)
	for _, r := range out {
		if r == '\n' {
			continue
		}
		bad := unicode.IsControl(r) || unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp)
		require.False(t, bad, "raw %U in the output: %q", r, out)
	}
}

// TestSendEscapesHostileServer checks that nothing a server sends back,
// the Location of a redirect included, reaches the terminal raw.
func TestSendEscapesHostileServer(t *testing.T) {
	secret := nectarhookstest.NewSecret()
	tests := []struct {
		name   string
		status int
		header string // the Location header
		body   string
		want   string // in stdout
	}{
		{
			name:   "redirect with a hostile Location",
			status: http.StatusFound,
			header: "/next/" + hostileText,
			body:   "moved",
			want:   `302 Found (redirect to /next/` + hostileEscaped + `, not followed)  moved`,
		},
		{
			name:   "refusal with a hostile body",
			status: http.StatusForbidden,
			body:   "denied\x1b[2J\x07\x7f" + hostileText,
			want:   `403 Forbidden  denied\x1b[2J\x07\x7f` + hostileOneLine,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tt.header != "" {
					w.Header()["Location"] = []string{tt.header} // as is, not canonicalised or checked
				}
				w.WriteHeader(tt.status)
				io.WriteString(w, tt.body)
			}))
			t.Cleanup(srv.Close)
			res := runCLI(t, invocation{vars: map[string]string{secretEnv: secret}}, "send", "-url", srv.URL, "connection.created.v2")
			assert.Equal(t, exitRefused, res.code)
			assert.Contains(t, res.stdout, tt.want)
			requireInert(t, res.stdout)
			requireInert(t, res.stderr)
		})
	}
}
