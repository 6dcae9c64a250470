package main

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
)

// parseSignOutput reads the three header lines sign prints first, and
// checks that a blank line and the curl command follow.
func parseSignOutput(t *testing.T, out string) http.Header {
	t.Helper()
	headerPart, curlPart, ok := strings.Cut(out, "\n\n")
	require.True(t, ok, "a blank line separates the headers from the curl command:\n%s", out)
	require.True(t, strings.HasPrefix(curlPart, "curl -sS -X POST "), "curl command:\n%s", curlPart)
	lines := strings.Split(headerPart, "\n")
	require.Len(t, lines, 3, "three header lines:\n%s", headerPart)
	h := make(http.Header)
	for i, name := range []string{"svix-id", "svix-timestamp", "svix-signature"} {
		n, v, ok := strings.Cut(lines[i], ": ")
		require.True(t, ok, "line %q", lines[i])
		require.Equal(t, name, n)
		h.Set(n, v)
	}
	return h
}

// curlArgs splits the curl command sign printed into its words.
func curlArgs(t *testing.T, out string) []string {
	t.Helper()
	_, curlPart, ok := strings.Cut(out, "\n\n")
	require.True(t, ok)
	words, err := shellWords(curlPart)
	require.NoError(t, err)
	return words
}

func TestSignTestVector(t *testing.T) {
	// Svix's documented example: the signature is fixed by the secret, id,
	// timestamp and body alone.
	body := writeFile(t, "payload.json", []byte(`{"test": 2432232314}`))
	res := runCLI(t, invocation{},
		"sign", "-secret", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
		"-id", "msg_p5jXN8AQM9LWM0D4loKWxJek", "-timestamp", "1614265330",
		"-url", "https://example.com/webhooks", body)
	require.Equal(t, exitOK, res.code, res.stderr)
	assert.Empty(t, res.stderr)
	assert.True(t, strings.HasPrefix(res.stdout, "svix-id: msg_p5jXN8AQM9LWM0D4loKWxJek\n"+
		"svix-timestamp: 1614265330\n"+
		"svix-signature: v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=\n\n"), res.stdout)
	assert.Equal(t, []string{
		"curl", "-sS", "-X", "POST", "https://example.com/webhooks",
		"-H", "Content-Type: application/json",
		"-H", "svix-id: msg_p5jXN8AQM9LWM0D4loKWxJek",
		"-H", "svix-timestamp: 1614265330",
		"-H", "svix-signature: v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
		"--data-binary", "@" + body,
	}, curlArgs(t, res.stdout))
}

func TestSign(t *testing.T) {
	secret := nectarhookstest.NewSecret()
	now := time.Unix(1_700_000_000, 0)
	custom := []byte("{\"eventType\": \"document.created.v2\", \"id\": \"it's mine\"}\n")
	file := writeFile(t, "my payload.json", custom)
	tests := []struct {
		name     string
		args     []string
		body     []byte
		wantID   string // "" for a generated one
		wantTS   int64
		wantURL  string
		wantData string
	}{
		{"sample, generated id, current time", []string{"connection.updated.v2"},
			nectarhookstest.Sample(nectarhooks.EventConnectionUpdated), "", now.Unix(), "$URL",
			string(nectarhookstest.Sample(nectarhooks.EventConnectionUpdated))},
		{"sample, given id and timestamp, -url", []string{"-id", "msg_given", "-timestamp", "1614265330", "-url", "http://127.0.0.1:8080/webhooks/nectar", "document.updated.v2"},
			nectarhookstest.Sample(nectarhooks.EventDocumentUpdated), "msg_given", 1614265330, "http://127.0.0.1:8080/webhooks/nectar",
			string(nectarhookstest.Sample(nectarhooks.EventDocumentUpdated))},
		{"file with a space in its name and a quote in its body", []string{file, "-url", "https://example.com/h?a=1&b=2"},
			custom, "", now.Unix(), "https://example.com/h?a=1&b=2", "@" + file},
		{"timestamp 0 is a timestamp", []string{"-timestamp", "0", "connection.created.v2"},
			nectarhookstest.Sample(nectarhooks.EventConnectionCreated), "", 0, "$URL",
			string(nectarhookstest.Sample(nectarhooks.EventConnectionCreated))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inv := invocation{vars: map[string]string{secretEnv: secret}, now: nectarhookstest.FixedClock(now)}
			res := runCLI(t, inv, append([]string{"sign"}, tt.args...)...)
			require.Equal(t, exitOK, res.code, res.stderr)
			assert.Empty(t, res.stderr)

			h := parseSignOutput(t, res.stdout)
			if tt.wantID != "" {
				assert.Equal(t, tt.wantID, h.Get("svix-id"))
			} else {
				assert.Regexp(t, `^msg_[0-9A-Za-z]{27}$`, h.Get("svix-id"))
			}
			assert.Equal(t, strconv.FormatInt(tt.wantTS, 10), h.Get("svix-timestamp"))
			v, err := nectarhooks.NewVerifier(secret, nectarhooks.WithClock(nectarhookstest.FixedClock(time.Unix(tt.wantTS, 0))))
			require.NoError(t, err)
			assert.NoError(t, v.Verify(tt.body, h), "the library's Verifier accepts the printed headers")
			assert.ErrorIs(t, v.Verify(append(bytes.Clone(tt.body), ' '), h), nectarhooks.ErrNoMatchingSignature, "and they sign these bytes only")

			assert.Equal(t, []string{
				"curl", "-sS", "-X", "POST", tt.wantURL,
				"-H", "Content-Type: application/json",
				"-H", "svix-id: " + h.Get("svix-id"),
				"-H", "svix-timestamp: " + h.Get("svix-timestamp"),
				"-H", "svix-signature: " + h.Get("svix-signature"),
				"--data-binary", tt.wantData,
			}, curlArgs(t, res.stdout))
		})
	}
}

// TestSignCurlDelivers runs the printed curl command in a real shell
// against a loopback receiver: the quoting, the inline sample and the
// @FILE form all have to survive a shell and curl.
func TestSignCurlDelivers(t *testing.T) {
	for _, tool := range []string{"sh", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed: %v", tool, err)
		}
	}
	secret := nectarhookstest.NewSecret()
	dir := t.TempDir()
	custom := []byte(`{"eventType":"document.created.v2","id":"doc-'quoted'","site":{"id":"s","name":"Site $HOME"}}`)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "my payload.json"), custom, 0o600))
	tests := []struct {
		name    string
		args    []string
		wantTyp nectarhooks.EventType
		wantID  string // the event's id
	}{
		{"sample inline, $URL", []string{"connection.updated.v2"}, nectarhooks.EventConnectionUpdated, "a6c70a54-34e7-4277-80b0-412869ce087c"},
		{"file, -url", []string{"-url", "", filepath.Join(dir, "my payload.json")}, nectarhooks.EventDocumentCreated, "doc-'quoted'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rcv := newReceiver(t, secret)
			args := append([]string{"sign", "-secret", secret}, tt.args...)
			for i, a := range args {
				if a == "-url" {
					args[i+1] = rcv.url
				}
			}
			res := runCLI(t, invocation{}, args...)
			require.Equal(t, exitOK, res.code, res.stderr)
			_, script, _ := strings.Cut(res.stdout, "\n\n")

			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			// -v: curl's transcript then goes through verify, as a user
			// debugging a delivery would pass it.
			cmd := exec.CommandContext(ctx, "sh", "-c", "curl -v "+strings.TrimPrefix(script, "curl "))
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), "URL="+rcv.url)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			require.NoError(t, cmd.Run(), "%s", stderr.String())
			assert.Equal(t, "ok\n", stdout.String(), "the receiver's answer")

			reqs, events := rcv.seen()
			require.Len(t, reqs, 1)
			transcript := writeFile(t, "curl-v.txt", stderr.Bytes())
			body := writeFile(t, "body.json", reqs[0].body)
			res = runCLI(t, invocation{}, "verify", "-secret", secret, "-headers", transcript, "-body", body)
			assert.Equal(t, exitOK, res.code, "%s%s", res.stdout, res.stderr)
			assert.Contains(t, res.stdout, "verified: message "+reqs[0].header.Get("svix-id"))

			require.Len(t, events, 1)
			assert.Equal(t, tt.wantTyp, events[0].typ)
			switch ev := events[0].ev.(type) {
			case *nectarhooks.ConnectionUpdated:
				assert.Equal(t, tt.wantID, ev.ID)
			case *nectarhooks.DocumentCreated:
				assert.Equal(t, tt.wantID, ev.ID)
				assert.Equal(t, "Site $HOME", ev.Site.Name, "no shell expansion inside the body")
			default:
				t.Fatalf("unexpected event %T", ev)
			}
		})
	}
}
