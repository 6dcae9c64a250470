package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
)

func TestParseSecrets(t *testing.T) {
	tests := []struct {
		name    string
		list    string
		want    []string
		wantErr bool
	}{
		{name: "one", list: "whsec_a", want: []string{"whsec_a"}},
		{name: "rotation, current first", list: "whsec_new,whsec_old", want: []string{"whsec_new", "whsec_old"}},
		{name: "spaces and empty entries", list: " whsec_new , ,whsec_old,\n", want: []string{"whsec_new", "whsec_old"}},
		{name: "unset", list: "", wantErr: true},
		{name: "only separators", list: " , ,", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseSecrets(tt.list)
			if tt.wantErr {
				require.Error(t, err)
				assert.Contains(t, err.Error(), secretEnv)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

// TestMux sends requests through the receiver's wiring: the mux, the
// Handler with its options, and the callbacks.
func TestMux(t *testing.T) {
	current, old := nectarhookstest.NewSecret(), nectarhookstest.NewSecret()
	sample := nectarhookstest.Sample

	type muxCase struct {
		name       string
		request    func(current, old *nectarhookstest.Signer) *http.Request
		repeat     int // how many times the same request is sent; 1 if 0
		wantStatus int
		wantLogs   map[string]int // log messages and how often each appears
	}
	// One delivery of each documented event type, each logged by its
	// callback as, for example, "connection created".
	var tests []muxCase
	for _, et := range nectarhooks.EventTypes() {
		tests = append(tests, muxCase{
			name: string(et),
			request: func(s, _ *nectarhookstest.Signer) *http.Request {
				return s.Request("/webhooks/nectar", sample(et))
			},
			wantStatus: http.StatusOK,
			wantLogs:   map[string]int{strings.ReplaceAll(strings.TrimSuffix(string(et), ".v2"), ".", " "): 1},
		})
	}
	tests = append(tests, []muxCase{
		{
			name: "signed with the old secret during rotation",
			request: func(_, o *nectarhookstest.Signer) *http.Request {
				return o.Request("/webhooks/nectar", sample(nectarhooks.EventDocumentCreated))
			},
			wantStatus: http.StatusOK,
			wantLogs:   map[string]int{"document created": 1},
		},
		{
			name: "redelivery runs the callback once",
			request: func(s, _ *nectarhookstest.Signer) *http.Request {
				return s.RequestFor("/webhooks/nectar", "msg_same", time.Now(), sample(nectarhooks.EventConnectionCreated))
			},
			repeat:     3,
			wantStatus: http.StatusOK,
			wantLogs:   map[string]int{"connection created": 1},
		},
		{
			name: "tampered body",
			request: func(s, _ *nectarhookstest.Signer) *http.Request {
				r := s.Request("/webhooks/nectar", sample(nectarhooks.EventDocumentCreated))
				r.Body = io.NopCloser(strings.NewReader(`{"eventType":"document.created.v2","id":"forged"}`))
				r.ContentLength = -1
				return r
			},
			wantStatus: http.StatusUnauthorized,
			wantLogs:   map[string]int{"document created": 0, "nectar webhook not acknowledged": 1},
		},
		{
			name: "signed with an unknown secret",
			request: func(_, _ *nectarhookstest.Signer) *http.Request {
				other, err := nectarhookstest.NewSigner(nectarhookstest.NewSecret())
				if err != nil {
					panic(err)
				}
				return other.Request("/webhooks/nectar", sample(nectarhooks.EventDocumentCreated))
			},
			wantStatus: http.StatusUnauthorized,
			wantLogs:   map[string]int{"document created": 0, "nectar webhook not acknowledged": 1},
		},
		{
			name: "GET on the webhook path",
			request: func(_, _ *nectarhookstest.Signer) *http.Request {
				return httptest.NewRequest(http.MethodGet, "/webhooks/nectar", nil)
			},
			wantStatus: http.StatusMethodNotAllowed,
			wantLogs:   map[string]int{"nectar webhook not acknowledged": 1},
		},
		{
			name: "health check",
			request: func(_, _ *nectarhookstest.Signer) *http.Request {
				return httptest.NewRequest(http.MethodGet, "/healthz", nil)
			},
			wantStatus: http.StatusOK,
			wantLogs:   map[string]int{"nectar webhook not acknowledged": 0},
		},
		{
			name: "other paths",
			request: func(s, _ *nectarhookstest.Signer) *http.Request {
				return s.Request("/webhooks/other", sample(nectarhooks.EventDocumentCreated))
			},
			wantStatus: http.StatusNotFound,
			wantLogs:   map[string]int{"document created": 0},
		},
	}...)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logs := &logBuffer{}
			h, err := newHandler(slog.New(slog.NewJSONHandler(logs, nil)), []string{current, old})
			require.NoError(t, err)
			mux := newMux(h, "/webhooks/nectar")
			currentSigner, err := nectarhookstest.NewSigner(current)
			require.NoError(t, err)
			oldSigner, err := nectarhookstest.NewSigner(old)
			require.NoError(t, err)

			for range max(tt.repeat, 1) {
				rec := httptest.NewRecorder()
				mux.ServeHTTP(rec, tt.request(currentSigner, oldSigner))
				assert.Equal(t, tt.wantStatus, rec.Code, rec.Body.String())
			}
			for msg, n := range tt.wantLogs {
				assert.Equal(t, n, logs.count(t, msg), "log records %q in:\n%s", msg, logs)
			}
		})
	}
}

func TestNewHandlerRefusesBadSecrets(t *testing.T) {
	tests := []struct {
		name    string
		secrets []string
	}{
		{name: "current secret not base64", secrets: []string{"whsec_not base64!"}},
		{name: "current secret too short", secrets: []string{"whsec_c2hvcnQ="}},
		{name: "older secret invalid", secrets: []string{nectarhookstest.NewSecret(), "whsec_???"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := newHandler(slog.New(slog.DiscardHandler), tt.secrets)
			require.ErrorIs(t, err, nectarhooks.ErrInvalidSecret)
		})
	}
}

// TestServe runs the server on a loopback port, sends it a signed delivery
// over a real connection, and shuts it down as a signal would.
func TestServe(t *testing.T) {
	secret := nectarhookstest.NewSecret()
	signer, err := nectarhookstest.NewSigner(secret)
	require.NoError(t, err)
	logs := &logBuffer{}
	logger := slog.New(slog.NewJSONHandler(logs, nil))
	h, err := newHandler(logger, []string{secret})
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- serve(ctx, logger, ln, newMux(h, "/hooks"), h) }()

	base := "http://" + ln.Addr().String()
	client := &http.Client{Timeout: 10 * time.Second}
	tests := []struct {
		name       string
		method     string
		path       string
		payload    []byte
		wantStatus int
	}{
		{name: "delivery", method: http.MethodPost, path: "/hooks", payload: nectarhookstest.Sample(nectarhooks.EventConnectionUpdated), wantStatus: http.StatusOK},
		{name: "unsigned delivery", method: http.MethodPost, path: "/hooks", wantStatus: http.StatusUnauthorized},
		{name: "health check", method: http.MethodGet, path: "/healthz", wantStatus: http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, base+tt.path, bytes.NewReader(tt.payload))
			require.NoError(t, err)
			if tt.payload != nil {
				req.Header = signer.Header(tt.payload)
			}
			resp, err := client.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			assert.Equal(t, tt.wantStatus, resp.StatusCode)
		})
	}

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not return after its context was cancelled")
	}
	assert.Equal(t, 1, logs.count(t, "connection updated"))
	assert.Equal(t, []string{"listening", "shutting down", "shut down"}, logs.messages(t, "listening", "shutting down", "shut down", "server stopped", "shutdown incomplete"))
	_, err = client.Get(base + "/healthz")
	assert.Error(t, err, "the server still answers after shutting down")
}

func TestRun(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name    string
		addr    string
		secrets string
		wantErr string // "" for success
	}{
		{name: "no secret", addr: "127.0.0.1:0", secrets: "", wantErr: secretEnv},
		{name: "bad secret", addr: "127.0.0.1:0", secrets: "whsec_!", wantErr: "invalid signing secret"},
		{name: "bad address", addr: "127.0.0.1:notaport", secrets: nectarhookstest.NewSecret(), wantErr: "notaport"},
		{name: "starts and stops", addr: "127.0.0.1:0", secrets: nectarhookstest.NewSecret()},
	}
	outcomes := []string{"not started", "listening", "shutting down", "shut down", "server stopped", "shutdown incomplete"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logs := &logBuffer{}
			err := run(cancelled, slog.New(slog.NewJSONHandler(logs, nil)), tt.addr, "/webhooks/nectar", tt.secrets)
			if tt.wantErr == "" {
				require.NoError(t, err)
				assert.Equal(t, []string{"listening", "shutting down", "shut down"}, logs.messages(t, outcomes...))
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.wantErr)
			// A configuration error is said to be one, with its reason,
			// and nothing suggests the server ever ran.
			assert.Equal(t, []string{"not started"}, logs.messages(t, outcomes...))
			assert.Contains(t, logs.String(), tt.wantErr)
		})
	}
}

// TestServeFails checks that a server that cannot serve says so.
func TestServeFails(t *testing.T) {
	h, err := newHandler(slog.New(slog.DiscardHandler), []string{nectarhookstest.NewSecret()})
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	require.NoError(t, ln.Close()) // Serve fails at once on a closed listener
	logs := &logBuffer{}
	err = serve(context.Background(), slog.New(slog.NewJSONHandler(logs, nil)), ln, newMux(h, "/"), h)
	require.Error(t, err)
	assert.Equal(t, []string{"listening", "server stopped"}, logs.messages(t, "listening", "server stopped", "shutting down", "shut down"))
}

// logBuffer collects JSON log lines; the server's goroutines write to it
// while tests read it.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// messages returns, in order, the messages of the records whose message is
// one of those given.
func (b *logBuffer) messages(t *testing.T, of ...string) []string {
	t.Helper()
	var out []string
	for _, line := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if line == "" {
			continue
		}
		var rec struct {
			Msg string `json:"msg"`
		}
		require.NoError(t, json.Unmarshal([]byte(line), &rec), line)
		if slices.Contains(of, rec.Msg) {
			out = append(out, rec.Msg)
		}
	}
	return out
}

// count reports how many records have msg as their message.
func (b *logBuffer) count(t *testing.T, msg string) int {
	t.Helper()
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if line == "" {
			continue
		}
		var rec struct {
			Msg string `json:"msg"`
		}
		require.NoError(t, json.Unmarshal([]byte(line), &rec), line)
		if rec.Msg == msg {
			n++
		}
	}
	return n
}
