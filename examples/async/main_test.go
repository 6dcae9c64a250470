package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
)

// wait bounds every wait in these tests, so that a bug fails the test
// instead of hanging it. It is not a timing assertion: everything here
// happens in milliseconds.
const wait = 30 * time.Second

// worker is a process function the test controls: each call announces the
// message it got on started, then blocks until release is closed.
type worker struct {
	started chan string
	release chan struct{}
	err     error // returned by every call

	mu   sync.Mutex
	done []string // message ids processed, in order
}

func newWorker() *worker {
	return &worker{started: make(chan string, 16), release: make(chan struct{})}
}

func (w *worker) process(ctx context.Context, _ *nectarhooks.Document) error {
	m, _ := nectarhooks.MessageFromContext(ctx)
	w.started <- m.ID
	select {
	case <-w.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.done = append(w.done, m.ID)
	return w.err
}

func (w *worker) processed() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.done...)
}

// TestQueueAndDrain walks a Handler with one worker and room for two
// queued messages through a burst of deliveries and a shutdown, over a
// loopback connection.
func TestQueueAndDrain(t *testing.T) {
	secret := nectarhookstest.NewSecret()
	signer, err := nectarhookstest.NewSigner(secret)
	require.NoError(t, err)
	w := newWorker()
	h, err := newHandler(secret, 1, 2, slog.New(slog.DiscardHandler), w.process)
	require.NoError(t, err)

	srv := newServer("", h, slog.New(slog.DiscardHandler))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	url := "http://" + ln.Addr().String() + "/webhooks/nectar"
	client := &http.Client{Timeout: wait}
	doc := nectarhookstest.Sample(nectarhooks.EventDocumentCreated)

	post := func(t *testing.T, id string, payload []byte) int {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(payload))
		require.NoError(t, err)
		req.Header = signer.HeaderFor(id, time.Now(), payload)
		resp, err := client.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		_, err = io.Copy(io.Discard, resp.Body)
		require.NoError(t, err)
		return resp.StatusCode
	}

	steps := []struct {
		name       string
		id         string
		payload    []byte
		wantStatus int
		// waitStart waits for the worker to pick this message up, so
		// that the queue's contents are known for the next steps.
		waitStart bool
	}{
		{name: "first is acknowledged and taken by the worker", id: "msg_1", payload: doc, wantStatus: http.StatusAccepted, waitStart: true},
		{name: "second waits in the queue", id: "msg_2", payload: doc, wantStatus: http.StatusAccepted},
		{name: "third waits in the queue", id: "msg_3", payload: doc, wantStatus: http.StatusAccepted},
		{name: "fourth finds the queue full, for Svix to retry", id: "msg_4", payload: doc, wantStatus: http.StatusServiceUnavailable},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			assert.Equal(t, st.wantStatus, post(t, st.id, st.payload))
			if st.waitStart {
				select {
				case id := <-w.started:
					assert.Equal(t, st.id, id)
				case <-time.After(wait):
					t.Fatal("the worker never started")
				}
			}
		})
	}

	t.Run("forged delivery is still refused at once", func(t *testing.T) {
		req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(`{"eventType":"document.created.v2"}`))
		require.NoError(t, err)
		req.Header = signer.HeaderFor("msg_forged", time.Now(), doc)
		resp, err := client.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	})

	t.Run("shutdown drains the queue", func(t *testing.T) {
		close(w.release)
		require.NoError(t, shutdown(srv, h, wait))
		assert.Equal(t, []string{"msg_1", "msg_2", "msg_3"}, w.processed())
		assert.ErrorIs(t, <-served, http.ErrServerClosed)
	})

	t.Run("deliveries after shutdown are refused for Svix to retry", func(t *testing.T) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, signer.Request("/webhooks/nectar", doc))
		assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
	})
}

// TestFailureAfterAcknowledgement checks that a callback failing after
// the 202 is logged with what is needed to replay it.
func TestFailureAfterAcknowledgement(t *testing.T) {
	tests := []struct {
		name      string
		event     nectarhooks.EventType
		err       error
		wantLog   bool
		wantCalls int
	}{
		{name: "failure is logged for replay", event: nectarhooks.EventDocumentUpdated, err: errors.New("nectar API down"), wantLog: true, wantCalls: 1},
		{name: "success is not", event: nectarhooks.EventDocumentCreated, wantCalls: 1},
		// Acknowledged with 200 at once, not queued: they take no queue slot.
		{name: "events without a callback are acknowledged and dropped", event: nectarhooks.EventConnectionCreated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			secret := nectarhookstest.NewSecret()
			signer, err := nectarhookstest.NewSigner(secret)
			require.NoError(t, err)
			w := newWorker()
			w.err = tt.err
			close(w.release)
			logs := &logBuffer{}
			h, err := newHandler(secret, 1, 1, slog.New(slog.NewTextHandler(logs, nil)), w.process)
			require.NoError(t, err)

			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, signer.RequestFor("/webhooks/nectar", "msg_x", time.Now(), nectarhookstest.Sample(tt.event)))
			if tt.wantCalls > 0 {
				assert.Equal(t, http.StatusAccepted, rec.Code)
			} else {
				assert.Equal(t, http.StatusOK, rec.Code)
			}

			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			require.NoError(t, h.Shutdown(ctx))
			assert.Len(t, w.processed(), tt.wantCalls)
			if tt.wantLog {
				assert.Contains(t, logs.String(), "background processing failed; replay this message")
				assert.Contains(t, logs.String(), "message_id=msg_x")
				assert.Contains(t, logs.String(), tt.err.Error())
			} else {
				assert.NotContains(t, logs.String(), "background processing failed")
			}
		})
	}
}

// TestLogsAreJSON checks that what the program logs, from the work on the
// Handler's workers to the HTTP server's own messages, is one JSON object
// per line, through the logger main makes.
func TestLogsAreJSON(t *testing.T) {
	secret := nectarhookstest.NewSecret()
	signer, err := nectarhookstest.NewSigner(secret)
	require.NoError(t, err)
	logs := &logBuffer{}
	logger := newLogger(logs)
	h, err := newHandler(secret, 1, 4, logger, newDocumentSyncer(logger, 0))
	require.NoError(t, err)
	srv := newServer("127.0.0.1:0", h, logger)

	rec := httptest.NewRecorder()
	srv.Handler.ServeHTTP(rec, signer.RequestFor("/webhooks/nectar", "msg_synced", time.Now(), nectarhookstest.Sample(nectarhooks.EventDocumentCreated)))
	require.Equal(t, http.StatusAccepted, rec.Code)
	srv.ErrorLog.Print("http: TLS handshake error from 127.0.0.1:1234: EOF")
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	require.NoError(t, h.Shutdown(ctx))

	var msgs []string
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var rec map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &rec), "not a JSON line: %s", line)
		msgs = append(msgs, fmt.Sprint(rec["msg"]))
		if rec["msg"] == "document synced" {
			assert.Equal(t, "msg_synced", rec["message_id"])
		}
	}
	assert.Contains(t, msgs, "document synced")
	assert.Contains(t, msgs, "http: TLS handshake error from 127.0.0.1:1234: EOF")
}

// logBuffer collects log output written by the Handler's workers.
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
