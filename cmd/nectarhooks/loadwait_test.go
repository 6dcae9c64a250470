package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nectarhooks/nectarhooks/nectarhookstest"
)

// backlog is a receiver's backlog endpoint for -wait-url: it answers
// each GET with the backlog, which shrinks by one at every read once the
// load is over, as a queue's workers catch up; render writes the answer.
type backlog struct {
	mu     sync.Mutex
	left   int
	reads  int
	render func(w io.Writer, left int)
	url    string
}

func newBacklog(t *testing.T, left int, render func(w io.Writer, left int)) *backlog {
	t.Helper()
	b := &backlog{left: left, render: render}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.mu.Lock()
		defer b.mu.Unlock()
		b.reads++
		b.render(w, b.left)
		if b.left > 0 {
			b.left--
		}
	}))
	t.Cleanup(srv.Close)
	b.url = srv.URL + "/metrics"
	return b
}

func (b *backlog) readCount() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.reads
}

func plainNumber(w io.Writer, left int) { fmt.Fprintf(w, "%d\n", left) }

// prometheus writes a text exposition as a client library does: comments,
// a metric per queue whose samples add up to the backlog, and metrics
// with longer names that start with the same words, which do not count.
func prometheus(w io.Writer, left int) {
	fmt.Fprintf(w, `# HELP app_backlog Deliveries waiting to be worked.
# TYPE app_backlog gauge
app_backlog{queue="a",note="with } and \" inside"} %d
app_backlog{queue="b"} %d
# TYPE app_backlog_total counter
app_backlog_total 1234
app_backlogs 99
go_goroutines 12
`, (left+1)/2, left/2)
}

// TestLoadWaitsForTheBacklog checks -wait-url: after the load, the
// backlog is read until it is 0, and the report says how long it took;
// a backlog that stays, or cannot be read, fails the run.
func TestLoadWaitsForTheBacklog(t *testing.T) {
	secret := nectarhookstest.NewSecret()
	tests := []struct {
		name        string
		start       int
		render      func(io.Writer, int)
		args        []string // after -wait-url
		wantCode    int
		wantDrained bool
		wantReads   int // 0: not checked
		wantError   string
		wantText    string
	}{
		{
			name: "a plain number counting down", start: 5, render: plainNumber,
			wantCode: exitOK, wantDrained: true, wantReads: 6,
			wantText: "backlog      drained ",
		},
		{
			name: "already empty", start: 0, render: plainNumber,
			wantCode: exitOK, wantDrained: true, wantReads: 1,
		},
		{
			name: "a Prometheus metric summed over its series", start: 7, render: prometheus,
			args:     []string{"-wait-metric", "app_backlog"},
			wantCode: exitOK, wantDrained: true, wantReads: 8,
			wantText: "(7 at its end; app_backlog at ",
		},
		{
			name: "a backlog that does not drain in time", start: 1000, render: plainNumber,
			args:     []string{"-wait-timeout", "400ms"},
			wantCode: exitRefused,
			wantText: "FAIL: the backlog did not drain within -wait-timeout",
		},
		{
			name: "a metrics page without -wait-metric", start: 3, render: prometheus,
			args:     []string{"-wait-timeout", "300ms"},
			wantCode: exitRefused, wantError: "name the metric with -wait-metric",
			wantText: "backlog      not read in ",
		},
		{
			name: "a metric that is not there", start: 3, render: prometheus,
			args:     []string{"-wait-metric", "river_jobs_available", "-wait-timeout", "300ms"},
			wantCode: exitRefused, wantError: "no metric river_jobs_available in the answer",
		},
		{
			name: "an answer that is not a number", start: 3,
			render:   func(w io.Writer, _ int) { io.WriteString(w, "ok\x1b[2J") },
			args:     []string{"-wait-timeout", "300ms"},
			wantCode: exitRefused, wantError: `the answer "ok\\x1b[2J" is not a number`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rcv := newReceiver(t, secret)
			b := newBacklog(t, tt.start, tt.render)
			inv := invocation{vars: map[string]string{secretEnv: secret}}
			args := append([]string{"-url", rcv.url, "-n", "10", "-wait-url", b.url}, tt.args...)
			began := time.Now()
			code, r, res := loadJSON(t, inv, args...)
			took := time.Since(began)
			assert.Equal(t, tt.wantCode, code, "stderr: %s", res.stderr)
			assert.Equal(t, tt.wantCode == exitOK, r.Pass)
			require.NotNil(t, r.Wait, "stdout: %s", res.stdout)
			w := r.Wait
			assert.Equal(t, b.url, w.URL)
			assert.Equal(t, tt.wantDrained, w.Drained)
			assert.Empty(t, w.Skipped)
			if tt.wantReads > 0 {
				assert.Equal(t, tt.wantReads, w.Reads)
				assert.Equal(t, tt.wantReads, b.readCount(), "no read after the backlog read 0")
				require.NotNil(t, w.AtStart)
				assert.Equal(t, float64(tt.start), *w.AtStart, "the backlog at the load's end")
				require.NotNil(t, w.Last)
				assert.Zero(t, *w.Last)
				// Reads are 100ms apart, as help load says: the drain
				// took at least that many intervals, and is timed so.
				minimum := time.Duration(tt.wantReads-1) * 100 * time.Millisecond
				assert.GreaterOrEqual(t, w.Seconds, minimum.Seconds()*0.9)
				assert.GreaterOrEqual(t, took, minimum)
			}
			if tt.wantError != "" {
				assert.Contains(t, w.Error, tt.wantError)
				assert.Nil(t, w.Last, "no read gave a number")
				assert.Greater(t, w.Reads, 1, "reads again until -wait-timeout")
			}
			if !tt.wantDrained {
				assert.Less(t, took, 20*time.Second, "gives up at -wait-timeout")
			}

			b2 := newBacklog(t, tt.start, tt.render)
			text := runCLI(t, inv, append([]string{"load", "-url", rcv.url, "-n", "10", "-wait-url", b2.url}, tt.args...)...)
			assert.Equal(t, tt.wantCode, text.code)
			assert.Contains(t, text.stdout, "; then up to ")
			if tt.wantText != "" {
				assert.Contains(t, text.stdout, tt.wantText)
			}
			if tt.wantDrained {
				assert.Contains(t, text.stdout, "PASS: every message acknowledged and the backlog drained")
			}
			requireInert(t, text.stdout)
		})
	}
}

// TestLoadWaitSkipped checks that nothing is waited for when nothing was
// acknowledged: the run has failed already, and nothing was queued.
func TestLoadWaitSkipped(t *testing.T) {
	secret := nectarhookstest.NewSecret()
	b := newBacklog(t, 5, plainNumber)
	code, r, res := loadJSON(t, invocation{vars: map[string]string{secretEnv: secret}},
		"-url", closedURL(t), "-n", "3", "-wait-url", b.url)
	assert.Equal(t, exitRefused, code, res.stderr)
	require.NotNil(t, r.Wait, res.stdout)
	assert.Equal(t, "no message was acknowledged", r.Wait.Skipped)
	assert.False(t, r.Wait.Drained)
	assert.Zero(t, b.readCount())
}

// TestLoadWaitUsageErrors checks the -wait flags' validation: each a
// usage error before anything is sent.
func TestLoadWaitUsageErrors(t *testing.T) {
	secret := nectarhookstest.NewSecret()
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	t.Cleanup(srv.Close)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"-wait-metric alone", []string{"-wait-metric", "app_backlog"}, "-wait-metric names what to read at -wait-url, which is not given"},
		{"-wait-timeout alone", []string{"-wait-timeout", "5s"}, "-wait-timeout bounds the wait for -wait-url, which is not given"},
		{"-wait-url not http", []string{"-wait-url", "localhost:9090/metrics"}, `-wait-url "localhost:9090/metrics" is not an http:// or https:// URL`},
		{"-wait-metric not a name", []string{"-wait-url", srv.URL, "-wait-metric", "app backlog"}, `-wait-metric "app backlog" is not a Prometheus metric name`},
		{"-wait-metric with labels", []string{"-wait-url", srv.URL, "-wait-metric", `app_backlog{queue="a"}`}, `-wait-metric "app_backlog{queue=\"a\"}" is not a Prometheus metric name`},
		{"-wait-timeout 0", []string{"-wait-url", srv.URL, "-wait-timeout", "0s"}, "-wait-timeout must be positive, got 0s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := runCLI(t, invocation{vars: map[string]string{secretEnv: secret}}, append([]string{"load", "-url", srv.URL, "-n", "1"}, tt.args...)...)
			assert.Equal(t, exitUsage, res.code)
			lines := nonEmptyLines(res.stderr)
			require.Len(t, lines, 2, res.stderr)
			assert.Equal(t, "nectarhooks load: "+tt.want, lines[0])
		})
	}
	assert.Zero(t, hits.Load(), "nothing was sent")
}

// TestLoadWaitInterrupted checks that Ctrl-C while waiting for the
// backlog ends the wait at once and fails the run as interrupted.
func TestLoadWaitInterrupted(t *testing.T) {
	secret := nectarhookstest.NewSecret()
	rcv := newReceiver(t, secret)
	// Interrupted at the second read: the first was answered in full.
	read := make(chan struct{}, 1)
	var reads atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if reads.Add(1) == 2 {
			read <- struct{}{}
		}
		io.WriteString(w, "7")
	}))
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { <-read; cancel() }()
	var stdout bytes.Buffer
	e := &env{stdout: &stdout, stderr: io.Discard, getenv: func(string) string { return secret }, now: time.Now, newID: nectarhookstest.NewMessageID}
	began := time.Now()
	code := e.run(ctx, []string{"load", "-json", "-url", rcv.url, "-n", "5", "-wait-url", srv.URL, "-wait-timeout", "30s"})
	assert.Equal(t, exitRefused, code)
	assert.Less(t, time.Since(began), 10*time.Second, "the wait ends with the interruption, not at -wait-timeout")
	var r struct {
		Interrupted bool      `json:"interrupted"`
		Pass        bool      `json:"pass"`
		Wait        *waitJSON `json:"wait"`
	}
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &r), stdout.String())
	assert.True(t, r.Interrupted)
	assert.False(t, r.Pass)
	require.NotNil(t, r.Wait)
	assert.False(t, r.Wait.Drained)
	require.NotNil(t, r.Wait.Last)
	assert.Equal(t, 7.0, *r.Wait.Last)
}
