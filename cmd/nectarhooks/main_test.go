package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
)

// cliResult is what one run of the program produced.
type cliResult struct {
	code           int
	stdout, stderr string
}

// invocation describes a run: its environment variables and clock.
type invocation struct {
	vars map[string]string
	now  func() time.Time // nil: time.Now
}

// runCLI runs the program as main would, with env and clock substituted,
// bounded by a deadline so that a hung delivery fails the test instead of
// hanging it.
func runCLI(t *testing.T, inv invocation, args ...string) cliResult {
	t.Helper()
	var stdout, stderr bytes.Buffer
	e := &env{
		stdout: &stdout,
		stderr: &stderr,
		getenv: func(k string) string { return inv.vars[k] },
		now:    inv.now,
		newID:  nectarhookstest.NewMessageID,
	}
	if e.now == nil {
		e.now = time.Now
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code := e.run(ctx, args)
	return cliResult{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// seenRequest is one request as the receiver got it.
type seenRequest struct {
	header http.Header
	body   []byte
}

// seenEvent is one callback call.
type seenEvent struct {
	typ nectarhooks.EventType
	id  string // the message id, from the callback's context
	ev  nectarhooks.Event
}

// receiver is a loopback endpoint running the library's Handler with a
// callback for every event type, recording requests and callbacks.
type receiver struct {
	url  string
	fail atomic.Bool // callbacks return an error

	mu       sync.Mutex
	requests []seenRequest
	events   []seenEvent
}

const webhookPath = "/webhooks/nectar"

func newReceiver(t *testing.T, secret string, opts ...nectarhooks.Option) *receiver {
	t.Helper()
	h, err := nectarhooks.NewHandler(secret, append([]nectarhooks.Option{nectarhooks.WithLogger(nil)}, opts...)...)
	require.NoError(t, err)
	r := &receiver{}
	h.OnConnectionCreated(func(ctx context.Context, e *nectarhooks.ConnectionCreated) error { return r.record(ctx, e) })
	h.OnConnectionUpdated(func(ctx context.Context, e *nectarhooks.ConnectionUpdated) error { return r.record(ctx, e) })
	h.OnConnectionValidated(func(ctx context.Context, e *nectarhooks.ConnectionValidated) error { return r.record(ctx, e) })
	h.OnDocumentCreated(func(ctx context.Context, e *nectarhooks.DocumentCreated) error { return r.record(ctx, e) })
	h.OnDocumentUpdated(func(ctx context.Context, e *nectarhooks.DocumentUpdated) error { return r.record(ctx, e) })
	mux := http.NewServeMux()
	mux.HandleFunc(webhookPath, func(w http.ResponseWriter, req *http.Request) {
		body, err := io.ReadAll(req.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		r.requests = append(r.requests, seenRequest{header: req.Header.Clone(), body: body})
		r.mu.Unlock()
		req.Body = io.NopCloser(bytes.NewReader(body))
		h.ServeHTTP(w, req)
	})
	srv := httptest.NewServer(mux) // listens on 127.0.0.1
	t.Cleanup(srv.Close)
	r.url = srv.URL + webhookPath
	return r
}

func (r *receiver) record(ctx context.Context, ev nectarhooks.Event) error {
	msg, _ := nectarhooks.MessageFromContext(ctx)
	r.mu.Lock()
	r.events = append(r.events, seenEvent{typ: ev.Type(), id: msg.ID, ev: ev})
	r.mu.Unlock()
	if r.fail.Load() {
		return errors.New("the test's callback fails")
	}
	return nil
}

func (r *receiver) seen() ([]seenRequest, []seenEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]seenRequest(nil), r.requests...), append([]seenEvent(nil), r.events...)
}

func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(path, data, 0o600))
	return path
}

func nonEmptyLines(s string) []string {
	var lines []string
	for _, l := range strings.Split(s, "\n") {
		if strings.TrimSpace(l) != "" {
			lines = append(lines, l)
		}
	}
	return lines
}

func TestUsageErrors(t *testing.T) {
	secret := nectarhookstest.NewSecret()
	withSecret := invocation{vars: map[string]string{secretEnv: secret}}
	garbage := writeFile(t, "headers.txt", []byte("this is not a header\n"))
	body := writeFile(t, "body.json", []byte(`{}`))
	big := writeFile(t, "big.json", bytes.Repeat([]byte(" "), nectarhooks.DefaultMaxBodyBytes+1))
	secretKey := strings.TrimPrefix(secret, "whsec_")
	tests := []struct {
		name string
		inv  invocation
		args []string
		want []string // in stderr
		run  string   // the command the "Run 'nectarhooks help ...'" line names; "-" for the whole usage
	}{
		{"no command", withSecret, nil, []string{"no command given", "Usage:\n  nectarhooks send"}, "-"},
		{"unknown command", withSecret, []string{"trigger"}, []string{`unknown command "trigger"`}, ""},
		{"help for an unknown command", withSecret, []string{"help", "trigger"}, []string{`unknown command "trigger"`}, ""},
		{"help with two commands", withSecret, []string{"help", "send", "sign"}, []string{"at most one command"}, ""},

		{"send without -url", withSecret, []string{"send", "all"}, []string{"-url is required"}, "send"},
		{"send without payload", withSecret, []string{"send", "-url", "http://127.0.0.1:1/"}, []string{"no payload given"}, "send"},
		{"send to a non-http URL", withSecret, []string{"send", "-url", "ftp://127.0.0.1/x", "all"}, []string{`"ftp://127.0.0.1/x" is not an http`}, "send"},
		{"send to a URL without host", withSecret, []string{"send", "-url", "127.0.0.1:8080/x", "all"}, []string{"is not an http"}, "send"},
		{"send -repeat 0", withSecret, []string{"send", "-url", "http://127.0.0.1:1/", "-repeat", "0", "all"}, []string{"-repeat must be at least 1"}, "send"},
		{"send -repeat not a number", withSecret, []string{"send", "-repeat", "twice", "all"}, []string{`invalid value "twice" for flag -repeat`}, "send"},
		{"send -timeout 0", withSecret, []string{"send", "-url", "http://127.0.0.1:1/", "-timeout", "0s", "all"}, []string{"-timeout must be positive"}, "send"},
		{"send with an unknown flag", withSecret, []string{"send", "-url", "http://127.0.0.1:1/", "-retries", "3", "all"}, []string{"flag provided but not defined: -retries"}, "send"},
		{"send without a secret", invocation{}, []string{"send", "-url", "http://127.0.0.1:1/", "all"}, []string{"no signing secret", secretEnv}, "send"},
		{"send with an invalid secret", withSecret, []string{"send", "-url", "http://127.0.0.1:1/", "-secret", "whsec_c2hvcnQ=", "all"}, []string{"invalid signing secret"}, "send"},
		{"send an unknown event type", withSecret, []string{"send", "-url", "http://127.0.0.1:1/", "connection.deleted.v2"}, []string{`"connection.deleted.v2" is neither a bundled sample nor a file`, "connection.created.v2, connection.updated.v2"}, "send"},
		{"send a missing file", withSecret, []string{"send", "-url", "http://127.0.0.1:1/", filepath.Join(t.TempDir(), "missing.json")}, []string{"reading the payload", "missing.json"}, "send"},

		{"send a file over the body limit", withSecret, []string{"send", "-url", "http://127.0.0.1:1/", big}, []string{"is larger than 1048576 bytes"}, "send"},
		{"send with an API key for a secret", withSecret, []string{"send", "-url", "http://127.0.0.1:1/", "-secret", "sk_live_" + secretKey, "all"}, []string{`starts with "sk_"`, "other kind of key", `"whsec_" followed by base64`}, "send"},
		{"send with an upper-case prefix", withSecret, []string{"send", "-url", "http://127.0.0.1:1/", "-secret", "WHSEC_" + secretKey, "all"}, []string{`starts with "WHSEC_"`, "lower case"}, "send"},
		{"send with a quoted secret from a .env file", invocation{vars: map[string]string{secretEnv: `"` + secret + `"`}}, []string{"send", "-url", "http://127.0.0.1:1/", "all"}, []string{"in quotes", ".env", `"whsec_" followed by base64`}, "send"},
		{"sign with a single-quoted secret", withSecret, []string{"sign", "-secret", "'" + secret + "'", "connection.created.v2"}, []string{"in quotes"}, "sign"},
		{"verify with an invalid secret", withSecret, []string{"verify", "-headers", garbage, "-body", body, "-secret", "whsec_c2hvcnQ="}, []string{"invalid signing secret"}, "verify"},
		{"verify with an API key for a secret", withSecret, []string{"verify", "-headers", garbage, "-body", body, "-secret", "pk_" + secretKey}, []string{`starts with "pk_"`}, "verify"},
		{"verify a body over the body limit", withSecret, []string{"verify", "-headers", garbage, "-body", big}, []string{"is larger than 1048576 bytes"}, "verify"},

		{"load without -url", withSecret, []string{"load"}, []string{"-url is required"}, "load"},
		{"load to a non-http URL", withSecret, []string{"load", "-url", "localhost:8080"}, []string{"is not an http"}, "load"},
		{"load -n and -duration", withSecret, []string{"load", "-url", "http://127.0.0.1:1/", "-n", "10", "-duration", "1s"}, []string{"-n and -duration are exclusive"}, "load"},
		{"load -n 0", withSecret, []string{"load", "-url", "http://127.0.0.1:1/", "-n", "0"}, []string{"-n must be at least 1"}, "load"},
		{"load -duration 0", withSecret, []string{"load", "-url", "http://127.0.0.1:1/", "-duration", "0s"}, []string{"-duration must be positive"}, "load"},
		{"load -c 0", withSecret, []string{"load", "-url", "http://127.0.0.1:1/", "-c", "0"}, []string{"-c must be at least 1"}, "load"},
		{"load -rate -1", withSecret, []string{"load", "-url", "http://127.0.0.1:1/", "-rate", "-1"}, []string{"-rate must not be negative"}, "load"},
		{"load -timeout 0", withSecret, []string{"load", "-url", "http://127.0.0.1:1/", "-timeout", "0s"}, []string{"-timeout must be positive"}, "load"},
		{"load -dup 2", withSecret, []string{"load", "-url", "http://127.0.0.1:1/", "-dup", "2"}, []string{"-dup is a fraction"}, "load"},
		{"load -tamper -0.1", withSecret, []string{"load", "-url", "http://127.0.0.1:1/", "-tamper", "-0.1"}, []string{"-tamper is a fraction"}, "load"},
		{"load -stale 1.5", withSecret, []string{"load", "-url", "http://127.0.0.1:1/", "-stale", "1.5"}, []string{"-stale is a fraction"}, "load"},
		{"load -retry-scale 0", withSecret, []string{"load", "-url", "http://127.0.0.1:1/", "-retry", "-retry-scale", "0"}, []string{"-retry-scale must be more than 0"}, "load"},
		{"load without a secret", invocation{}, []string{"load", "-url", "http://127.0.0.1:1/"}, []string{"no signing secret"}, "load"},
		{"load with an API key for a secret", withSecret, []string{"load", "-url", "http://127.0.0.1:1/", "-secret", "sk_test_" + secretKey}, []string{`starts with "sk_"`}, "load"},
		{"load an unknown event type", withSecret, []string{"load", "-url", "http://127.0.0.1:1/", "invoice.paid.v1"}, []string{"neither a bundled sample nor a file"}, "load"},

		{"sign without payload", withSecret, []string{"sign"}, []string{"no payload given"}, "sign"},
		{"sign two payloads", withSecret, []string{"sign", "connection.created.v2", "document.created.v2"}, []string{"sign takes one payload, got 2"}, "sign"},
		{"sign all", withSecret, []string{"sign", "all"}, []string{`"all" is for send`}, "sign"},
		{"sign with an id holding a space", withSecret, []string{"sign", "-id", "msg one", "connection.created.v2"}, []string{`-id "msg one" is not usable`}, "sign"},
		{"sign with an empty id", withSecret, []string{"sign", "-id", "", "connection.created.v2"}, []string{`-id "" is not usable`}, "sign"},
		{"sign with a bad URL", withSecret, []string{"sign", "-url", "localhost", "connection.created.v2"}, []string{`-url "localhost" is not an http`}, "sign"},
		{"sign with a bad timestamp", withSecret, []string{"sign", "-timestamp", "yesterday", "connection.created.v2"}, []string{`invalid value "yesterday" for flag -timestamp`}, "sign"},
		{"sign without a secret", invocation{}, []string{"sign", "connection.created.v2"}, []string{"no signing secret"}, "sign"},

		{"verify without -headers", withSecret, []string{"verify", "-body", body}, []string{"both -headers and -body are required"}, "verify"},
		{"verify with an argument", withSecret, []string{"verify", "-headers", garbage, "-body", body, "extra"}, []string{`unexpected argument "extra"`}, "verify"},
		{"verify -tolerance 0", withSecret, []string{"verify", "-headers", garbage, "-body", body, "-tolerance", "0s"}, []string{"-tolerance must be positive"}, "verify"},
		{"verify a headers file that is not headers", withSecret, []string{"verify", "-headers", garbage, "-body", body}, []string{`line 1, "this is not a header", is not a "Name: value" header line`}, "verify"},
		{"verify a missing headers file", withSecret, []string{"verify", "-headers", filepath.Join(t.TempDir(), "nope.txt"), "-body", body}, []string{"reading the headers"}, "verify"},
		{"verify a missing body file", withSecret, []string{"verify", "-headers", garbage, "-body", filepath.Join(t.TempDir(), "nope.json")}, []string{"reading the body"}, "verify"},
		{"verify without a secret", invocation{}, []string{"verify", "-headers", garbage, "-body", body}, []string{"no signing secret"}, "verify"},

		{"samples with two arguments", withSecret, []string{"samples", "connection.created.v2", "document.created.v2"}, []string{"at most one event type"}, "samples"},
		{"samples of an unknown type", withSecret, []string{"samples", "invoice.paid.v1"}, []string{`no sample for "invoice.paid.v1"`}, "samples"},
		{"samples with a flag", withSecret, []string{"samples", "-v"}, []string{"flag provided but not defined: -v"}, "samples"},
		{"version with an argument", withSecret, []string{"version", "now"}, []string{`unexpected argument "now"`}, "version"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := runCLI(t, tt.inv, tt.args...)
			assert.Equal(t, exitUsage, res.code)
			assert.Empty(t, res.stdout, "usage errors print nothing on stdout")
			for _, w := range tt.want {
				assert.Contains(t, res.stderr, w)
			}
			if tt.run == "-" {
				return
			}
			// The error, then one line pointing to the usage: the usage
			// itself would scroll the error out of sight.
			lines := nonEmptyLines(res.stderr)
			require.Len(t, lines, 2, "stderr: %s", res.stderr)
			prefix := "nectarhooks: "
			if tt.run != "" {
				prefix = "nectarhooks " + tt.run + ": "
			}
			assert.True(t, strings.HasPrefix(lines[0], prefix), "the error names the command: %q", lines[0])
			assert.NotContains(t, lines[0], ": nectarhooks: ", "one prefix, not the library's as well")
			assert.Equal(t, strings.TrimSpace("Run 'nectarhooks help "+tt.run)+"' for usage.", lines[1])
			assert.NotContains(t, res.stderr, "Flags:")
			assert.NotContains(t, res.stderr, secretKey, "the secret is never repeated")
			assert.NotContains(t, res.stderr, "not standard base64", "a secret of the wrong kind is named as such")
		})
	}
}

// TestUsageListsEveryCommand keeps the usage text in step with the
// commands main runs: a command added to commands() but not to usageText
// would be invisible in "nectarhooks help".
func TestUsageListsEveryCommand(t *testing.T) {
	for _, c := range commands() {
		t.Run(c.name, func(t *testing.T) {
			assert.Contains(t, usageText, "  nectarhooks "+c.name+" ", "usageText lists %q", c.name)
		})
	}
}

func TestHelp(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"help", []string{"help"}, []string{"Usage:", "nectarhooks send", "nectarhooks load", "nectarhooks sign", "nectarhooks verify", "nectarhooks samples", "Exit status", secretEnv}},
		{"-h", []string{"-h"}, []string{"Usage:", "nectarhooks send"}},
		{"--help", []string{"--help"}, []string{"Usage:", "nectarhooks send"}},
		{"help load", []string{"help", "load"}, []string{"Usage: nectarhooks load -url URL", "-n N", "-duration D", "-c N", "-rate R", "-dup F", "-retry", "-retry-scale X", "-tamper F", "-stale F", "-json", "coordinated omission", "Examples:",
			"-url URL...", "spread the deliveries over replicas", "-wait-url URL", "-wait-metric NAME", "-wait-timeout D", "(default 1m0s)"}},
		{"help send", []string{"help", "send"}, []string{"Usage: nectarhooks send -url URL", "-id msg_...", "-repeat N", "same svix-id", "-stale", "-tamper", "-timeout D", "Examples:"}},
		{"send -h", []string{"send", "-h"}, []string{"Usage: nectarhooks send -url URL", "Examples:"}},
		{"send -h after other flags", []string{"send", "-url", "http://127.0.0.1:1/", "all", "-h"}, []string{"Usage: nectarhooks send -url URL"}},
		{"help sign", []string{"help", "sign"}, []string{"Usage: nectarhooks sign", "-id msg_...", "-timestamp UNIX", "curl", "Examples:"}},
		{"sign --help", []string{"sign", "--help"}, []string{"Usage: nectarhooks sign"}},
		{"help verify", []string{"help", "verify"}, []string{"Usage: nectarhooks verify", "-headers FILE", "-body FILE", "-now UNIX", "-tolerance D", "(default 5m0s)", "curl -v", "Examples:"}},
		{"verify -help", []string{"verify", "-help"}, []string{"Usage: nectarhooks verify"}},
		{"help samples", []string{"help", "samples"}, []string{"Usage: nectarhooks samples [EVENT]", "Examples:"}},
		{"help version", []string{"help", "version"}, []string{"Usage: nectarhooks version", "commit", "modified", "-buildvcs=false"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := runCLI(t, invocation{}, tt.args...)
			assert.Equal(t, exitOK, res.code)
			assert.Empty(t, res.stderr)
			for _, w := range tt.want {
				assert.Contains(t, res.stdout, w)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	res := runCLI(t, invocation{}, "version")
	require.Equal(t, exitOK, res.code)
	assert.Empty(t, res.stderr)
	assert.Regexp(t, `^nectarhooks \S+.* \(`+regexp.QuoteMeta(runtime.Version()+" "+runtime.GOOS+"/"+runtime.GOARCH)+`\)\n$`, res.stdout)
}

func TestSamples(t *testing.T) {
	t.Run("list", func(t *testing.T) {
		res := runCLI(t, invocation{}, "samples")
		require.Equal(t, exitOK, res.code)
		assert.Empty(t, res.stderr)
		var want []string
		for _, et := range nectarhooks.EventTypes() {
			want = append(want, string(et))
		}
		assert.Equal(t, want, nonEmptyLines(res.stdout))
	})
	for _, et := range nectarhooks.EventTypes() {
		t.Run("print "+string(et), func(t *testing.T) {
			res := runCLI(t, invocation{}, "samples", string(et))
			require.Equal(t, exitOK, res.code)
			assert.Empty(t, res.stderr)
			want := nectarhookstest.Sample(et)
			require.NotEmpty(t, want)
			assert.Equal(t, string(want), res.stdout, "the sample byte for byte")
			assert.Equal(t, et, nectarhooks.PeekEventType([]byte(res.stdout)))
		})
	}
}

// TestRun drives the real entry point, which reads the process's
// environment and clock.
func TestRun(t *testing.T) {
	secret := nectarhookstest.NewSecret()
	t.Setenv(secretEnv, secret)
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"sign", "-id", "msg_fromrun", "connection.created.v2"}, &stdout, &stderr)
	require.Equal(t, exitOK, code, stderr.String())
	h := parseSignOutput(t, stdout.String())
	v, err := nectarhooks.NewVerifier(secret)
	require.NoError(t, err)
	assert.NoError(t, v.Verify(nectarhookstest.Sample(nectarhooks.EventConnectionCreated), h),
		"signed with the secret from the environment, at the current time")
	assert.Equal(t, "msg_fromrun", h.Get("svix-id"))
}

func TestParseInterspersed(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantPos  []string
		wantURL  string
		wantRep  int
		wantFlag bool
	}{
		{"flags first", []string{"-url", "u", "-repeat", "2", "a", "b"}, []string{"a", "b"}, "u", 2, false},
		{"flags last", []string{"a", "b", "-url", "u", "-x"}, []string{"a", "b"}, "u", 1, true},
		{"flags between", []string{"a", "-repeat=3", "b", "-x", "c"}, []string{"a", "b", "c"}, "", 3, true},
		{"after --, all positional", []string{"-x", "--", "-url", "a"}, []string{"-url", "a"}, "", 1, true},
		{"-- after a positional", []string{"a", "--", "-repeat", "4"}, []string{"a", "-repeat", "4"}, "", 1, false},
		{"none", nil, nil, "", 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			u := fs.String("url", "", "")
			r := fs.Int("repeat", 1, "")
			x := fs.Bool("x", false, "")
			pos, err := parseInterspersed(fs, tt.args)
			require.NoError(t, err)
			assert.Equal(t, tt.wantPos, pos)
			assert.Equal(t, tt.wantURL, *u)
			assert.Equal(t, tt.wantRep, *r)
			assert.Equal(t, tt.wantFlag, *x)
		})
	}
	t.Run("error", func(t *testing.T) {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		_, err := parseInterspersed(fs, []string{"a", "-nope"})
		assert.ErrorContains(t, err, "-nope")
	})
}

func TestNewMessageID(t *testing.T) {
	seen := make(map[string]bool)
	for i := range 200 {
		id := nectarhookstest.NewMessageID()
		require.Regexp(t, `^msg_[0-9A-Za-z]{27}$`, id)
		require.False(t, seen[id], "id %d repeats an earlier one", i)
		seen[id] = true
	}
}

func TestOneLine(t *testing.T) {
	tests := []struct {
		name, in string
		limit    int
		want     string
	}{
		{"trimmed", "  ok\n", 10, "ok"},
		{"lines joined", "a\n b\r\n\tc", 10, "a b c"},
		{"cut", "abcdefghij", 4, "abcd..."},
		{"cut on a character boundary", "ab\u00e9cd", 3, "ab..."},
		{"empty", "\n", 10, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, oneLine(tt.in, tt.limit))
		})
	}
}

func TestEscapeControl(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"printable text as is", "naïve café 🐝 日本語 ¿qué? a\u00a0b", "naïve café 🐝 日本語 ¿qué? a\u00a0b"},
		{"C0 controls and DEL", "a\x00\t\n\r\x1b[2J\x7fb", `a\x00\x09\x0a\x0d\x1b[2J\x7fb`},
		{"C1 controls", "\u0085\u009b31m", `\u0085\u009b31m`},
		{"bidi embeddings, overrides, isolates", "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069", `\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069`},
		{"marks and other format characters", "\u200e\u200f\u061c\u200b\ufeff\u00ad", `\u200e\u200f\u061c\u200b\ufeff\u00ad`},
		{"line and paragraph separators", "a\u2028b\u2029c", `a\u2028b\u2029c`},
		{"beyond the BMP: tag characters", "x\U000e0041", `x\U000e0041`},
		{"bytes that are not UTF-8", "ok\xff\x9b\xc3", `ok\xff\x9b\xc3`},
		{"a replacement character", "\ufffd", `\ufffd`},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := escapeControl(tt.in)
			assert.Equal(t, tt.want, got)
			requireInert(t, got)
		})
	}
}

func TestShellQuote(t *testing.T) {
	tests := []struct{ in, want string }{
		{"http://127.0.0.1:8080/webhooks/nectar", "http://127.0.0.1:8080/webhooks/nectar"},
		{"svix-id: msg_1", "'svix-id: msg_1'"},
		{"it's", `'it'\''s'`},
		{"", "''"},
		{"a\nb", "'a\nb'"},
		{"$URL", "'$URL'"},
		{"https://x.example/hook?a=1&b=2", "'https://x.example/hook?a=1&b=2'"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q", tt.in), func(t *testing.T) {
			got := shellQuote(tt.in)
			assert.Equal(t, tt.want, got)
			words, err := shellWords(got)
			require.NoError(t, err)
			assert.Equal(t, []string{tt.in}, words, "the shell reads back the original")
		})
	}
}

// TestMeaninglessFlagValues checks every float and duration flag against
// the values that parse but mean nothing: NaN and the infinities, which
// fail every comparison or pass every bound, negatives, and what each
// flag's own doc rules out. Each is a usage error naming the flag, before
// anything is sent.
func TestMeaninglessFlagValues(t *testing.T) {
	secret := nectarhookstest.NewSecret()
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	t.Cleanup(srv.Close)
	headers := writeFile(t, "headers.txt", []byte("svix-id: msg_1\n"))
	body := writeFile(t, "body.json", []byte(`{}`))
	commands := map[string][]string{
		"send":   {"send", "-url", srv.URL, "connection.created.v2"},
		"load":   {"load", "-url", srv.URL, "-n", "10"}, // more than one message: the last one's start bounds -rate
		"verify": {"verify", "-headers", headers, "-body", body},
	}
	tests := []struct {
		command, flag string
		values        []string
	}{
		{"send", "timeout", []string{"0s", "-1s"}},
		{"load", "rate", []string{"NaN", "nan", "+Inf", "Inf", "-Inf", "-1", "-0.5", "1e400", "1e-300", "1e-10"}},
		{"load", "retry-scale", []string{"NaN", "+Inf", "-Inf", "0", "-0", "-1", "1.5"}},
		{"load", "dup", []string{"NaN", "+Inf", "-Inf", "-0.1", "1.5"}},
		{"load", "tamper", []string{"NaN", "+Inf", "-Inf", "-0.1", "1.5"}},
		{"load", "stale", []string{"NaN", "+Inf", "-Inf", "-0.1", "1.5"}},
		{"load", "timeout", []string{"0s", "-1s"}},
		{"load", "duration", []string{"0s", "-1s"}},
		{"load", "wait-timeout", []string{"0s", "-1s"}},
		{"verify", "tolerance", []string{"0s", "-1s"}},
	}
	for _, tt := range tests {
		for _, v := range tt.values {
			t.Run(tt.command+" -"+tt.flag+" "+v, func(t *testing.T) {
				args := slices.Clone(commands[tt.command])
				if tt.flag == "duration" {
					args = slices.DeleteFunc(args, func(a string) bool { return a == "-n" || a == "10" })
				}
				args = append(args, "-"+tt.flag, v)
				res := runCLI(t, invocation{vars: map[string]string{secretEnv: secret}}, args...)
				assert.Equal(t, exitUsage, res.code, "stdout:\n%s\nstderr:\n%s", res.stdout, res.stderr)
				assert.Empty(t, res.stdout)
				lines := nonEmptyLines(res.stderr)
				require.Len(t, lines, 2, res.stderr)
				assert.True(t, strings.HasPrefix(lines[0], "nectarhooks "+tt.command+": "), lines[0])
				assert.Regexp(t, "-"+regexp.QuoteMeta(tt.flag)+"[ :]", lines[0], "the error names the flag")
				assert.Equal(t, "Run 'nectarhooks help "+tt.command+"' for usage.", lines[1])
			})
		}
	}
	assert.Zero(t, hits.Load(), "nothing was sent")
}

// TestMeaningfulFlagValues checks the edges the validation of
// TestMeaninglessFlagValues must still let through.
func TestMeaningfulFlagValues(t *testing.T) {
	secret := nectarhookstest.NewSecret()
	rcv := newReceiver(t, secret)
	for _, args := range [][]string{
		{"-rate", "0"},        // a closed loop
		{"-rate", "1e6"},      // as fast as it can, on an open loop
		{"-retry-scale", "1"}, // the real schedule
		{"-retry-scale", "1e-9"},
		{"-dup", "0", "-tamper", "1", "-stale", "1"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			res := runCLI(t, invocation{vars: map[string]string{secretEnv: secret}},
				append([]string{"load", "-url", rcv.url, "-n", "2"}, args...)...)
			assert.Equal(t, exitOK, res.code, "stdout:\n%s\nstderr:\n%s", res.stdout, res.stderr)
		})
	}
}
