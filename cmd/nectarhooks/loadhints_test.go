package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
)

// closedURL returns a loopback URL nothing listens on: a server's, once
// it is closed.
func closedURL(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.NotFoundHandler())
	u := srv.URL + webhookPath
	srv.Close()
	return u
}

// TestLoadHeadlineAndHints checks that load's throughput counts only the
// deliveries answered 2xx, with the failures apart, and that a run that
// fails says the likely cause, in -json and in text: the usual mistakes
// (nothing running, the wrong secret, clocks apart, a slow receiver) all
// used to show as a high rate and a bare FAIL.
func TestLoadHeadlineAndHints(t *testing.T) {
	secret := nectarhookstest.NewSecret()
	right := newReceiver(t, secret)
	wrongSecret := newReceiver(t, nectarhookstest.NewSecret())
	nothing := closedURL(t)
	clockApart := newReceiver(t, secret, nectarhooks.WithClock(func() time.Time { return time.Now().Add(time.Hour) }))
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body) // so that the server notices the client going away
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	}))
	t.Cleanup(slow.Close)

	tests := []struct {
		name      string
		args      []string
		wantCode  int
		want2xx   int64
		wantHints []string // each a substring of one hint, in order
		wantText  []string
	}{
		{
			name:     "all well: no hint",
			args:     []string{"-url", right.url, "-n", "20"},
			wantCode: exitOK, want2xx: 20,
			wantText: []string{"acknowledged ", "/s: 20 of 20 deliveries answered 2xx in "},
		},
		{
			name:      "nothing listening",
			args:      []string{"-url", nothing, "-n", "20"},
			wantCode:  exitRefused,
			wantHints: []string{"20 of 20 deliveries to " + nothing + " were refused a connection: is the receiver running at " + nothing + "?"},
			wantText: []string{
				"acknowledged 0/s: 0 of 20 deliveries answered 2xx in ",
				"not 2xx      0 refused, 20 without an answer\n",
				"hint         20 of 20 deliveries to " + nothing + " were refused a connection",
			},
		},
		{
			name:      "the wrong secret",
			args:      []string{"-url", wrongSecret.url, "-n", "20"},
			wantCode:  exitRefused,
			wantHints: []string{`every delivery to ` + wrongSecret.url + ` was refused 401 "no matching signature": does -secret (or $NECTAR_WEBHOOK_SECRET) match the receiver's secret?`},
			wantText: []string{
				"acknowledged 0/s: 0 of 20 deliveries answered 2xx in ",
				"not 2xx      20 refused, 0 without an answer\n",
				`hint         every delivery to ` + wrongSecret.url + ` was refused 401 "no matching signature"`,
			},
		},
		{
			name:      "clocks an hour apart",
			args:      []string{"-url", clockApart.url, "-n", "5"},
			wantCode:  exitRefused,
			wantHints: []string{"every delivery to " + clockApart.url + " was refused 401 for its timestamp: are this machine's and the receiver's clocks apart?"},
		},
		{
			name:      "slower than -timeout",
			args:      []string{"-url", slow.URL, "-n", "2", "-c", "2", "-timeout", "100ms"},
			wantCode:  exitRefused,
			wantHints: []string{"2 deliveries were not answered within -timeout 100ms: is the receiver slower than -timeout, or stuck?"},
			wantText:  []string{"not 2xx      0 refused, 2 without an answer\n", "hint         2 deliveries were not answered within -timeout 100ms"},
		},
		{
			name:     "one replica of two down: it alone is named",
			args:     []string{"-url", right.url, "-url", nothing, "-n", "20"},
			wantCode: exitRefused, want2xx: 10,
			wantHints: []string{"10 of 10 deliveries to " + nothing + " were refused a connection: is the receiver running at " + nothing + "?"},
		},
		{
			name:     "one replica of two with another secret",
			args:     []string{"-url", wrongSecret.url, "-url", right.url, "-n", "20"},
			wantCode: exitRefused, want2xx: 10,
			wantHints: []string{"every delivery to " + wrongSecret.url + " was refused 401"},
		},
		{
			name:     "forged deliveries refused are no cause for a hint",
			args:     []string{"-url", right.url, "-n", "20", "-tamper", "1"},
			wantCode: exitOK, want2xx: 20,
			wantText: []string{"not 2xx      20 refused (20 of them forged or stale, as they must be), 0 without an answer\n"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inv := invocation{vars: map[string]string{secretEnv: secret}}
			code, r, res := loadJSON(t, inv, tt.args...)
			assert.Equal(t, tt.wantCode, code, "stderr: %s", res.stderr)
			assert.Equal(t, tt.want2xx, r.Answered2xx)
			assert.Equal(t, r.Deliveries, r.Answered2xx+r.Refused+r.NoAnswer, "every delivery is answered 2xx, refused or unanswered")
			if r.Answered2xx == 0 {
				assert.Zero(t, r.Answered2xxPerSec, "the headline rate counts no failure")
				assert.Positive(t, r.PerSecond, "while every attempt still counts in deliveries_per_second")
			} else {
				assert.Positive(t, r.Answered2xxPerSec)
				assert.LessOrEqual(t, r.Answered2xxPerSec, r.PerSecond)
			}
			require.Len(t, r.Hints, len(tt.wantHints), "hints: %q", r.Hints)
			for i, h := range tt.wantHints {
				assert.Contains(t, r.Hints[i], h)
			}

			text := runCLI(t, inv, append([]string{"load"}, tt.args...)...)
			assert.Equal(t, tt.wantCode, text.code)
			for _, w := range tt.wantText {
				assert.Contains(t, text.stdout, w)
			}
			for _, h := range r.Hints {
				assert.Contains(t, text.stdout, h+"\n", "the text report gives the same hints")
			}
			if len(tt.wantHints) == 0 {
				assert.NotContains(t, text.stdout, "hint ")
			}
		})
	}
}
