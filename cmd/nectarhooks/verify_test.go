package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
)

func TestVerify(t *testing.T) {
	secret := nectarhookstest.NewSecret()
	signer, err := nectarhookstest.NewSigner(secret)
	require.NoError(t, err)
	other, err := nectarhookstest.NewSigner(nectarhookstest.NewSecret())
	require.NoError(t, err)

	const id = "msg_capture1"
	sent := time.Unix(1_700_000_000, 0) // 2023-11-14T22:13:20Z
	body := nectarhookstest.Sample(nectarhooks.EventConnectionUpdated)
	require.True(t, bytes.HasSuffix(body, []byte("\n")), "the sample ends with a newline, as the newline cases assume")
	sig := signer.Sign(id, sent, body)
	lines := func(sig string) string {
		return fmt.Sprintf("svix-id: %s\nsvix-timestamp: %d\nsvix-signature: %s\n", id, sent.Unix(), sig)
	}
	var compact bytes.Buffer
	require.NoError(t, json.Compact(&compact, body))
	trimmed := bytes.TrimRight(body, "\n")

	tests := []struct {
		name     string
		headers  string
		body     []byte
		now      time.Time // the clock; zero: sent
		args     []string
		wantCode int
		want     []string // in stdout
		notWant  []string
	}{
		{
			name:    "Name: value lines",
			headers: lines(sig),
			want: []string{
				"verified: message msg_capture1\n", "headers: svix-*", "signed: 2023-11-14T22:13:20Z, 0s before the clock",
				"event type: connection.updated.v2",
			},
		},
		{
			name: "curl -v transcript, CRLF, names in any case",
			headers: strings.ReplaceAll("*   Trying 127.0.0.1:8080...\n* Connected to 127.0.0.1 (127.0.0.1) port 8080\n"+
				"> POST /webhooks/nectar HTTP/1.1\n> Host: 127.0.0.1:8080\n> User-Agent: curl/8.5.0\n> Accept: */*\n"+
				"> content-type: application/json\n> SVIX-ID: "+id+"\n> Svix-Timestamp: 1700000000\n> svix-signature: "+sig+"\n"+
				"> Content-Length: 831\n>\n} [831 bytes data]\n< HTTP/1.1 200 OK\n< Content-Length: 3\n<\n", "\n", "\r\n"),
			want: []string{"verified: message msg_capture1"},
		},
		{
			name:    "JSON object",
			headers: fmt.Sprintf(`{"Content-Type": "application/json", "svix-id": %q, "SVIX-TIMESTAMP": "1700000000", "svix-signature": %q}`, id, sig),
			want:    []string{"verified: message msg_capture1"},
		},
		{
			name:    "webhook-* headers",
			headers: strings.ReplaceAll(lines(sig), "svix-", "webhook-"),
			want:    []string{"verified: message msg_capture1", "headers: webhook-*"},
		},
		{
			name:    "one of several signatures matches",
			headers: lines(other.Sign(id, sent, body) + " v1a,whatever " + sig),
			want:    []string{"verified"},
		},
		{
			name:    "-now verifies an old capture",
			headers: lines(sig),
			now:     sent.Add(24 * time.Hour),
			args:    []string{"-now", "1700000030"},
			want:    []string{"verified", "30s before -now"},
		},
		{
			name:    "-tolerance admits an old capture",
			headers: lines(sig),
			now:     sent.Add(10 * time.Minute),
			args:    []string{"-tolerance", "15m"},
			want:    []string{"verified", "10m0s before the clock"},
		},
		{
			name:     "missing signature header",
			headers:  fmt.Sprintf("Content-Type: application/json\nsvix-id: %s\nsvix-timestamp: 1700000000\n", id),
			wantCode: exitRefused,
			want: []string{
				"not verified: missing headers", "missing: svix-signature (and the webhook-id",
				"a proxy or gateway", "headers found: content-type, svix-id, svix-timestamp",
			},
		},
		{
			name:     "empty header values count as missing",
			headers:  "svix-id:\nsvix-timestamp:\nsvix-signature:\n",
			wantCode: exitRefused,
			want:     []string{"missing: svix-id, svix-timestamp, svix-signature"},
		},
		{
			name:     "timestamp not a number",
			headers:  strings.Replace(lines(sig), "1700000000", "2023-11-14T22:13:20Z", 1),
			wantCode: exitRefused,
			want:     []string{"not verified: malformed headers", `svix-timestamp is "2023-11-14T22:13:20Z", not a whole number of Unix seconds`},
		},
		{
			name:     "signature without a version",
			headers:  lines(strings.TrimPrefix(sig, "v1,")),
			wantCode: exitRefused,
			want:     []string{"not verified: malformed headers", `holds no "version,signature" entry`, "copy the whole header value"},
		},
		{
			name:     "wrong secret",
			headers:  lines(other.Sign(id, sent, body)),
			wantCode: exitRefused,
			want: []string{
				"not verified: no matching signature", "The v1 signature in svix-signature is not this body's",
				"the secret is not this endpoint's", "re-serialised",
			},
			notWant: []string{"newline"},
		},
		{
			name:     "several signatures, none matching",
			headers:  lines(other.Sign(id, sent, body) + " " + other.Sign(id, sent, trimmed)),
			wantCode: exitRefused,
			want:     []string{"None of the 2 v1 signatures in svix-signature is this body's"},
		},
		{
			name:     "body re-serialised",
			headers:  lines(sig),
			body:     compact.Bytes(),
			wantCode: exitRefused,
			want:     []string{"not verified: no matching signature", "not byte for byte what was delivered"},
			notWant:  []string{"newline"},
		},
		{
			name:     "newline added when saved",
			headers:  lines(signer.Sign(id, sent, trimmed)),
			body:     body,
			wantCode: exitRefused,
			want:     []string{"no matching signature", "Without its final newline the body verifies"},
		},
		{
			name:     "newline lost when saved",
			headers:  lines(sig),
			body:     trimmed,
			wantCode: exitRefused,
			want:     []string{"no matching signature", "With a final newline the body verifies"},
		},
		{
			name:     "pretty-printed when saved",
			headers:  lines(signer.Sign(id, sent, compact.Bytes())),
			body:     body, // the sample is indented; the compact form was signed
			wantCode: exitRefused,
			want:     []string{"no matching signature", "Compacted, the JSON verifies: it was re-indented or pretty-printed after signing."},
		},
		{
			name:     "signature of another version only",
			headers:  lines("v2,abc"),
			wantCode: exitRefused,
			want:     []string{"not verified: no matching signature", "svix-signature has no v1 entry, only 1 of other versions"},
		},
		{
			name:     "too old, signature fine",
			headers:  lines(sig),
			now:      sent.Add(10 * time.Minute),
			wantCode: exitRefused,
			want: []string{
				"not verified: timestamp too old",
				"svix-timestamp 1700000000 is 2023-11-14T22:13:20Z, 10m0s before the clock (2023-11-14T22:23:20Z)",
				"more than the tolerance of 5m0s", "replayed",
				"The signature itself matches: with -now 1700000000 the capture verifies.",
			},
		},
		{
			name:     "days old, against -now",
			headers:  lines(sig),
			args:     []string{"-now", "1700259200"}, // 3 days later
			wantCode: exitRefused,
			want:     []string{"timestamp too old", "3 days before -now"},
		},
		{
			name:     "too old, and the wrong secret",
			headers:  lines(other.Sign(id, sent, body)),
			now:      sent.Add(time.Hour),
			wantCode: exitRefused,
			want:     []string{"not verified: timestamp too old", "1h0m0s before the clock", "The signature does not match either:", "the secret is not this endpoint's"},
			notWant:  []string{"itself matches"},
		},
		{
			name:     "too new",
			headers:  lines(sig),
			now:      sent.Add(-10 * time.Minute),
			wantCode: exitRefused,
			want:     []string{"not verified: timestamp too new", "10m0s after the clock", "clock", "The signature itself matches"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.body
			if b == nil {
				b = body
			}
			hpath := writeFile(t, "headers", []byte(tt.headers))
			bpath := writeFile(t, "body", b)
			now := tt.now
			if now.IsZero() {
				now = sent
			}
			args := append([]string{"verify", "-headers", hpath, "-body", bpath}, tt.args...)
			res := runCLI(t, invocation{vars: map[string]string{secretEnv: secret}, now: nectarhookstest.FixedClock(now)}, args...)
			assert.Equal(t, tt.wantCode, res.code, "stdout:\n%s\nstderr:\n%s", res.stdout, res.stderr)
			assert.Empty(t, res.stderr)
			for _, w := range tt.want {
				assert.Contains(t, res.stdout, w)
			}
			for _, w := range tt.notWant {
				assert.NotContains(t, res.stdout, w)
			}
		})
	}
}

// TestVerifySendRoundTrip checks that what send delivers, captured at the
// receiver, verifies with verify: the two commands agree on the format.
func TestVerifySendRoundTrip(t *testing.T) {
	secret := nectarhookstest.NewSecret()
	rcv := newReceiver(t, secret)
	inv := invocation{vars: map[string]string{secretEnv: secret}}
	res := runCLI(t, inv, "send", "-url", rcv.url, "document.updated.v2")
	require.Equal(t, exitOK, res.code, res.stderr)
	reqs, _ := rcv.seen()
	require.Len(t, reqs, 1)

	var headers strings.Builder
	require.NoError(t, reqs[0].header.Write(&headers))
	hpath := writeFile(t, "headers.txt", []byte(headers.String()))
	bpath := writeFile(t, "body.json", reqs[0].body)
	res = runCLI(t, inv, "verify", "-headers", hpath, "-body", bpath)
	assert.Equal(t, exitOK, res.code, res.stdout)
	assert.Contains(t, res.stdout, "verified: message "+reqs[0].header.Get("svix-id"))
	assert.Contains(t, res.stdout, "event type: document.updated.v2")
}

func TestParseHeaders(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    http.Header
		wantErr string
	}{
		{"lines", "svix-id: a\nSvix-Timestamp:1\n  svix-signature :  v1,x y  \n", http.Header{"Svix-Id": {"a"}, "Svix-Timestamp": {"1"}, "Svix-Signature": {"v1,x y"}}, ""},
		{"value with colons", "Host: 127.0.0.1:8080\n", http.Header{"Host": {"127.0.0.1:8080"}}, ""},
		{"repeated header", "svix-signature: v1,a\nsvix-signature: v1,b\n", http.Header{"Svix-Signature": {"v1,a", "v1,b"}}, ""},
		{"BOM and CRLF", "\xef\xbb\xbfsvix-id: a\r\n\r\n", http.Header{"Svix-Id": {"a"}}, ""},
		{"request line and HTTP/2 pseudo-headers skipped", "POST /hooks HTTP/2\n:authority: example.com\n:method: POST\nsvix-id: a\n", http.Header{"Svix-Id": {"a"}}, ""},
		{"curl -v transcript: its request headers only", "Note: Unnecessary use of -X or --request\n  % Total    % Received % Xferd\n" +
			"  0     0    0     0    0     0      0      0 --:--:-- --:--:-- --:--:--     0*   Trying 127.0.0.1:8080...\n" +
			"> POST /hooks HTTP/1.1\n> svix-id: a\n>\n} [717 bytes data]\n< HTTP/1.1 401 Unauthorized\n< Content-Type: text/plain\n" +
			"100   720  100     3  100   717   2949   688k --:--:-- --:--:-- --:--:--  703k\n", http.Header{"Svix-Id": {"a"}}, ""},
		{"response lines alone", "< HTTP/1.1 401 Unauthorized\n< Content-Type: text/plain\n", http.Header{"Content-Type": {"text/plain"}}, ""},
		{"a progress meter outside a transcript", "svix-id: a\n100   720  100     3\n", nil, "line 2"},
		{"JSON strings", `{"svix-id": "a", "content-type": "application/json"}`, http.Header{"Svix-Id": {"a"}, "Content-Type": {"application/json"}}, ""},
		{"JSON lists of strings", ` {"svix-signature": ["v1,a", "v1,b"]}`, http.Header{"Svix-Signature": {"v1,a", "v1,b"}}, ""},
		{"not a header line", "svix-id: a\nplease verify this\n", nil, `line 2, "please verify this", is not a "Name: value" header line`},
		{"space in a name", "svix id: a\n", nil, "line 1"},
		{"empty", "\n \n", nil, "no headers found"},
		{"JSON number", `{"svix-timestamp": 1700000000}`, nil, `the value of "svix-timestamp" is not a string`},
		{"JSON malformed", `{"svix-id": "a"`, nil, "not a JSON object"},
		{"JSON with text after", `{"svix-id": "a"} {}`, nil, "text after the object"},
		{"JSON with an empty name", `{"": ["x"]}`, nil, `"" is not a header name`},
		{"JSON with a name holding a space", `{"svix id": "a"}`, nil, `"svix id" is not a header name`},
		{"JSON empty", `{}`, nil, "holds no headers"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := parseHeaders([]byte(tt.in))
			if tt.wantErr != "" {
				assert.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, h)
		})
	}
}

func TestRelativeAge(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{0, "0s before"},
		{10 * time.Minute, "10m0s before"},
		{-90 * time.Second, "1m30s after"},
		{1500 * time.Millisecond, "2s before"},
		{47 * time.Hour, "47h0m0s before"},
		{-50 * time.Hour, "2 days after"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			assert.Equal(t, tt.want, relativeAge(tt.d))
		})
	}
}

// TestVerifyReadsSignOutput checks that what sign prints, its header lines
// and its curl command together or the curl command alone, is accepted by
// verify -headers.
func TestVerifyReadsSignOutput(t *testing.T) {
	secret := nectarhookstest.NewSecret()
	inv := invocation{vars: map[string]string{secretEnv: secret}}
	payload := nectarhookstest.Sample(nectarhooks.EventConnectionUpdated)
	payloadFile := writeFile(t, "payload.json", payload)
	tests := []struct {
		name string
		args []string
		keep func(out string) string // the part of sign's output saved as the headers file
	}{
		{"whole output, inline body", []string{"connection.updated.v2"}, func(out string) string { return out }},
		{"whole output, file body and URL", []string{"-url", "http://127.0.0.1:8080/webhooks/nectar?a=1&b=2", payloadFile}, func(out string) string { return out }},
		{"the curl command alone", []string{"connection.updated.v2"}, func(out string) string {
			_, curl, _ := strings.Cut(out, "\n\n")
			return curl
		}},
		{"the curl command pasted with a prompt", []string{"-url", "http://127.0.0.1:8080/x", payloadFile}, func(out string) string {
			_, curl, _ := strings.Cut(out, "\n\n")
			return "$ " + curl
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			signed := runCLI(t, inv, append([]string{"sign"}, tt.args...)...)
			require.Equal(t, exitOK, signed.code, signed.stderr)
			id := parseSignOutput(t, signed.stdout).Get("svix-id")
			headers := writeFile(t, "headers.txt", []byte(tt.keep(signed.stdout)))
			res := runCLI(t, inv, "verify", "-headers", headers, "-body", payloadFile)
			assert.Equal(t, exitOK, res.code, "stdout: %s\nstderr: %s", res.stdout, res.stderr)
			assert.Contains(t, res.stdout, "verified: message "+id)
		})
	}
}

// TestVerifyEscapesTheCapture checks that what verify prints from a
// capture, which came from elsewhere, reaches no terminal raw: the event
// type of a body that verifies, and the values of headers that do not.
func TestVerifyEscapesTheCapture(t *testing.T) {
	secret := nectarhookstest.NewSecret()
	signer, err := nectarhookstest.NewSigner(secret)
	require.NoError(t, err)
	sent := time.Unix(1_700_000_000, 0)
	body := []byte(`{"eventType": "doc\u001b[2J` + hostileText + `", "id": "d1"}`)
	sig := signer.Sign("msg_1", sent, body)
	tests := []struct {
		name     string
		headers  string
		wantCode int
		want     string // in stdout
	}{
		{
			name:    "hostile event type",
			headers: fmt.Sprintf("svix-id: msg_1\nsvix-timestamp: %d\nsvix-signature: %s\n", sent.Unix(), sig),
			// The body's bytes that are not UTF-8 are U+FFFD once decoded.
			want: `event type: doc\x1b[2J` + strings.ReplaceAll(strings.ReplaceAll(hostileEscaped, `\x9b`, `\ufffd`), `\xff`, `\ufffd`) + "\n",
		},
		{
			name:     "hostile timestamp",
			headers:  fmt.Sprintf("svix-id: msg_1\nsvix-timestamp: 17%s\nsvix-signature: %s\n", hostileText, sig),
			wantCode: exitRefused,
			want:     "not a whole number of Unix seconds",
		},
		{
			name:     "hostile signature",
			headers:  fmt.Sprintf("svix-id: msg_1\nsvix-timestamp: %d\nsvix-signature: %s\n", sent.Unix(), hostileText),
			wantCode: exitRefused,
			want:     "not verified: malformed headers",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hpath := writeFile(t, "headers", []byte(tt.headers))
			bpath := writeFile(t, "body", body)
			res := runCLI(t, invocation{vars: map[string]string{secretEnv: secret}, now: nectarhookstest.FixedClock(sent)},
				"verify", "-headers", hpath, "-body", bpath)
			assert.Equal(t, tt.wantCode, res.code, "stdout:\n%s\nstderr:\n%s", res.stdout, res.stderr)
			assert.Contains(t, res.stdout, tt.want)
			requireInert(t, res.stdout)
			requireInert(t, res.stderr)
		})
	}
}
