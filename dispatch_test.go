package nectarhooks_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	svix "github.com/svix/svix-webhooks/go"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
)

// The dispatcher's tests sign every delivery with the official Svix Go
// library, not with this package's own Sign, so that a mistake shared by
// our signer and our verifier cannot hide itself.

// dispT0 is the instant the tests' handlers read as "now" and most
// deliveries are signed at, so that the tolerance checks are exact.
var dispT0 = time.Date(2024, time.September, 6, 0, 20, 0, 0, time.UTC)

// dispFixture is one endpoint: its secret, and a Svix signer for it.
type dispFixture struct {
	secret string
	key    string // the base64 part of secret, which must never leak either
	wh     *svix.Webhook
}

func newDispFixture(t testing.TB) *dispFixture {
	t.Helper()
	secret := nectarhookstest.NewSecret()
	wh, err := svix.NewWebhook(secret)
	require.NoError(t, err)
	return &dispFixture{secret: secret, key: strings.TrimPrefix(secret, "whsec_"), wh: wh}
}

// header returns the svix-* headers Svix would send for body.
func (f *dispFixture) header(t testing.TB, id string, ts time.Time, body []byte) http.Header {
	t.Helper()
	sig, err := f.wh.Sign(id, ts, body)
	require.NoError(t, err)
	h := make(http.Header, 4)
	h.Set("Content-Type", "application/json")
	h.Set("Svix-Id", id)
	h.Set("Svix-Timestamp", strconv.FormatInt(ts.Unix(), 10))
	h.Set("Svix-Signature", sig)
	return h
}

// request returns a POST of body signed at dispT0.
func (f *dispFixture) request(t testing.TB, id string, body []byte) *http.Request {
	t.Helper()
	return f.requestAt(t, id, dispT0, body)
}

func (f *dispFixture) requestAt(t testing.TB, id string, ts time.Time, body []byte) *http.Request {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "/webhooks/nectar", bytes.NewReader(body))
	for k, vs := range f.header(t, id, ts, body) {
		r.Header[k] = vs
	}
	return r
}

// dispSample returns Nectar's documented payload for et from testdata/,
// falling back to nectarhookstest.Sample for a sample not published there.
func dispSample(t testing.TB, et nectarhooks.EventType) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", string(et)+".json"))
	if errors.Is(err, fs.ErrNotExist) {
		b = nectarhookstest.Sample(et)
		require.NotNil(t, b, "no sample for %s", et)
		return b
	}
	require.NoError(t, err)
	return b
}

// dispErrCall is one call of the error handler.
type dispErrCall struct {
	status int
	err    error
	msg    nectarhooks.Message
	hasMsg bool
}

// dispErrRecorder is a WithErrorHandler function that remembers its calls.
type dispErrRecorder struct {
	mu    sync.Mutex
	calls []dispErrCall
}

func (r *dispErrRecorder) handle(ctx context.Context, status int, err error) {
	m, ok := nectarhooks.MessageFromContext(ctx)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, dispErrCall{status: status, err: err, msg: m, hasMsg: ok})
}

func (r *dispErrRecorder) all() []dispErrCall {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]dispErrCall(nil), r.calls...)
}

// dispLogBuffer is a bytes.Buffer safe for the concurrent writes of a logger.
type dispLogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *dispLogBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *dispLogBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// newDispLogger returns a logger that writes every level, as text, to a
// buffer.
func newDispLogger() (*slog.Logger, *dispLogBuffer) {
	buf := &dispLogBuffer{}
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

// dispCapture records what callbacks received.
type dispCapture struct {
	mu     sync.Mutex
	events []nectarhooks.Event
	msgs   []nectarhooks.Message
	hasMsg []bool
	ctxErr []error // the callback context's Err when the callback returned
}

func (c *dispCapture) record(ctx context.Context, ev nectarhooks.Event, m nectarhooks.Message) {
	fromCtx, ok := nectarhooks.MessageFromContext(ctx)
	if ev == nil { // OnUnhandled: the Message is the argument
		fromCtx, ok = m, true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.events = append(c.events, ev)
	c.msgs = append(c.msgs, fromCtx)
	c.hasMsg = append(c.hasMsg, ok)
	c.ctxErr = append(c.ctxErr, ctx.Err())
}

func (c *dispCapture) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.msgs)
}

// dispRegisterAll registers a callback for each typed event that records it
// and returns ret(ctx).
func dispRegisterAll(h *nectarhooks.Handler, c *dispCapture, ret func(context.Context) error) {
	if ret == nil {
		ret = func(context.Context) error { return nil }
	}
	h.OnConnectionCreated(func(ctx context.Context, e *nectarhooks.ConnectionCreated) error {
		c.record(ctx, e, nectarhooks.Message{})
		return ret(ctx)
	})
	h.OnConnectionUpdated(func(ctx context.Context, e *nectarhooks.ConnectionUpdated) error {
		c.record(ctx, e, nectarhooks.Message{})
		return ret(ctx)
	})
	h.OnConnectionValidated(func(ctx context.Context, e *nectarhooks.ConnectionValidated) error {
		c.record(ctx, e, nectarhooks.Message{})
		return ret(ctx)
	})
	h.OnDocumentCreated(func(ctx context.Context, e *nectarhooks.DocumentCreated) error {
		c.record(ctx, e, nectarhooks.Message{})
		return ret(ctx)
	})
	h.OnDocumentUpdated(func(ctx context.Context, e *nectarhooks.DocumentUpdated) error {
		c.record(ctx, e, nectarhooks.Message{})
		return ret(ctx)
	})
}

func dispRegisterUnhandled(h *nectarhooks.Handler, c *dispCapture, ret func(context.Context) error) {
	h.OnUnhandled(func(ctx context.Context, m nectarhooks.Message) error {
		c.record(ctx, nil, m)
		if ret == nil {
			return nil
		}
		return ret(ctx)
	})
}

func dispTime(s string) nectarhooks.Time {
	t, err := time.Parse(nectarhooks.TimeLayout, s)
	if err != nil {
		panic(err)
	}
	return nectarhooks.Time{Time: t}
}

func dispPtr[T any](v T) *T { return &v }

// The values Nectar's documented samples hold, written out by hand.
var (
	dispCompany = nectarhooks.Company{
		ExternalID: "269350a4-8595-42cc-96ee-bf047d093505",
		ID:         "91c21c6b-5f3f-4d5f-9fb9-02530ef4b13c",
		Name:       "Demo Company",
		PublicID:   "cb78b85c-e68e-48de-a99e-e88862076823",
	}
	dispSite = nectarhooks.Site{ID: "67e72ddf-9e9c-42b6-81da-13c1130c691a", Name: "California Facility 1"}
)

func dispConnection(updated string) nectarhooks.Connection {
	return nectarhooks.Connection{
		ID:         "a6c70a54-34e7-4277-80b0-412869ce087c",
		Company:    dispCompany,
		Datasource: nectarhooks.Datasource{Name: "Los Angeles Department of Water and Power"},
		SitesRelations: []nectarhooks.SiteRelation{{
			AccountIDs:      []string{"0137746423"},
			DatasourceTypes: []nectarhooks.DatasourceType{nectarhooks.DatasourceElectricity},
			Site:            dispSite,
		}},
		Status:  nectarhooks.StatusConnected,
		URL:     "https://ladwp.com",
		Created: dispTime("2024-09-06T00:15:43.073014"),
		Updated: dispTime(updated),
	}
}

func dispDocument(updated string) nectarhooks.Document {
	return nectarhooks.Document{
		ID:      "b2d4e6f8-1234-5678-9abc-def012345678",
		Company: dispCompany,
		Site:    dispSite,
		Created: dispTime("2024-09-10T14:22:00.000000"),
		Updated: dispTime(updated),
	}
}

// dispWantEvent returns the typed event the documented sample of et decodes to.
func dispWantEvent(et nectarhooks.EventType, raw []byte) nectarhooks.Event {
	switch et {
	case nectarhooks.EventConnectionCreated:
		return &nectarhooks.ConnectionCreated{Connection: dispConnection("2024-09-06T00:15:43.073032"), Raw: raw}
	case nectarhooks.EventConnectionValidated:
		return &nectarhooks.ConnectionValidated{Connection: dispConnection("2024-09-06T00:15:43.073032"), Raw: raw}
	case nectarhooks.EventConnectionUpdated:
		return &nectarhooks.ConnectionUpdated{
			Connection:       dispConnection("2024-09-07T12:30:00.000000"),
			ProtectedChanges: []string{"status"},
			Old:              nectarhooks.ConnectionOld{Status: dispPtr(nectarhooks.StatusPending)},
			Raw:              raw,
		}
	case nectarhooks.EventDocumentCreated:
		return &nectarhooks.DocumentCreated{Document: dispDocument("2024-09-10T14:22:00.000000"), Raw: raw}
	case nectarhooks.EventDocumentUpdated:
		return &nectarhooks.DocumentUpdated{
			Document: dispDocument("2024-09-12T08:15:00.000000"),
			Old:      nectarhooks.DocumentOld{Updated: dispPtr(dispTime("2024-09-10T14:22:00.000000"))},
			Raw:      raw,
		}
	}
	panic("no expected event for " + et)
}

// errDispBoom is what failing callbacks return, wrapped in text that must
// never reach the HTTP answer.
var errDispBoom = errors.New("boom")

const dispLeak = "hunter2" // in callback errors and panics; must not be answered

// dispEndlessReader is a body that never ends, and counts what was read of it.
type dispEndlessReader struct{ n atomic.Int64 }

func (r *dispEndlessReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = ' '
	}
	r.n.Add(int64(len(p)))
	return len(p), nil
}

// dispCountingReader counts the bytes read from it.
type dispCountingReader struct {
	r io.Reader
	n int
}

func (c *dispCountingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// dispStatusRow is one row of the Handler's status policy.
type dispStatusRow struct {
	name string
	opts []nectarhooks.Option
	// setup registers callbacks, into c, on h.
	setup func(h *nectarhooks.Handler, c *dispCapture)
	// request builds the delivery.
	request    func(t *testing.T, f *dispFixture) *http.Request
	wantStatus int
	// wantIs must all match the error handler's error with errors.Is.
	wantIs []error
	// wantCalls is how many callbacks ran.
	wantCalls int
	// check runs further assertions.
	check func(t *testing.T, rr *httptest.ResponseRecorder, c *dispCapture, calls []dispErrCall, logs string)
}

func dispSignedSample(et nectarhooks.EventType) func(t *testing.T, f *dispFixture) *http.Request {
	return func(t *testing.T, f *dispFixture) *http.Request {
		return f.request(t, "msg_"+string(et), dispSample(t, et))
	}
}

func dispSignedBody(body string) func(t *testing.T, f *dispFixture) *http.Request {
	return func(t *testing.T, f *dispFixture) *http.Request {
		return f.request(t, "msg_body", []byte(body))
	}
}

// dispWithHeader returns a request builder that signs the documented
// connection.updated.v2 sample and then edits the headers.
func dispWithHeader(edit func(t *testing.T, f *dispFixture, h http.Header)) func(t *testing.T, f *dispFixture) *http.Request {
	return func(t *testing.T, f *dispFixture) *http.Request {
		r := f.request(t, "msg_hdr", dispSample(t, nectarhooks.EventConnectionUpdated))
		edit(t, f, r.Header)
		return r
	}
}

func dispAssertCallbackError(t *testing.T, calls []dispErrCall, et nectarhooks.EventType, id string) *nectarhooks.CallbackError {
	t.Helper()
	require.Len(t, calls, 1)
	var ce *nectarhooks.CallbackError
	require.ErrorAs(t, calls[0].err, &ce)
	assert.Equal(t, et, ce.EventType)
	assert.Equal(t, id, ce.MessageID)
	// A verified delivery's Message reaches the error handler.
	assert.True(t, calls[0].hasMsg)
	assert.Equal(t, id, calls[0].msg.ID)
	return ce
}

func dispStatusRows() []dispStatusRow {
	updated := nectarhooks.EventConnectionUpdated
	var rows []dispStatusRow
	rows = append(rows,
		dispStatusRow{
			name:  "GET is 405 with Allow: POST",
			setup: func(h *nectarhooks.Handler, c *dispCapture) { dispRegisterAll(h, c, nil) },
			request: func(t *testing.T, f *dispFixture) *http.Request {
				r := f.request(t, "msg_get", dispSample(t, updated))
				r.Method = http.MethodGet
				return r
			},
			wantStatus: http.StatusMethodNotAllowed,
			wantIs:     []error{nectarhooks.ErrMethodNotAllowed},
			check: func(t *testing.T, rr *httptest.ResponseRecorder, _ *dispCapture, _ []dispErrCall, _ string) {
				assert.Equal(t, http.MethodPost, rr.Header().Get("Allow"))
			},
		},
		dispStatusRow{
			name:  "PUT is 405 with Allow: POST",
			setup: func(h *nectarhooks.Handler, c *dispCapture) { dispRegisterAll(h, c, nil) },
			request: func(t *testing.T, f *dispFixture) *http.Request {
				r := f.request(t, "msg_put", dispSample(t, updated))
				r.Method = http.MethodPut
				return r
			},
			wantStatus: http.StatusMethodNotAllowed,
			wantIs:     []error{nectarhooks.ErrMethodNotAllowed},
			check: func(t *testing.T, rr *httptest.ResponseRecorder, _ *dispCapture, _ []dispErrCall, _ string) {
				assert.Equal(t, http.MethodPost, rr.Header().Get("Allow"))
			},
		},
	)

	// Content-Length over the limit is refused before a byte is read.
	var counted *dispCountingReader
	rows = append(rows, dispStatusRow{
		name:  "Content-Length over WithMaxBodyBytes is 413, unread",
		opts:  []nectarhooks.Option{nectarhooks.WithMaxBodyBytes(100)},
		setup: func(h *nectarhooks.Handler, c *dispCapture) { dispRegisterAll(h, c, nil) },
		request: func(t *testing.T, f *dispFixture) *http.Request {
			r := f.request(t, "msg_big", dispSample(t, updated))
			require.Greater(t, r.ContentLength, int64(100))
			counted = &dispCountingReader{r: r.Body}
			r.Body = io.NopCloser(counted)
			return r
		},
		wantStatus: http.StatusRequestEntityTooLarge,
		wantIs:     []error{nectarhooks.ErrBodyTooLarge},
		check: func(t *testing.T, _ *httptest.ResponseRecorder, _ *dispCapture, _ []dispErrCall, _ string) {
			assert.Zero(t, counted.n, "the body was read although Content-Length was over the limit")
		},
	})

	// A body of unknown length is cut off once it passes the limit.
	var endless *dispEndlessReader
	rows = append(rows, dispStatusRow{
		name:  "chunked body over WithMaxBodyBytes is 413, read only up to the limit",
		opts:  []nectarhooks.Option{nectarhooks.WithMaxBodyBytes(1000)},
		setup: func(h *nectarhooks.Handler, c *dispCapture) { dispRegisterAll(h, c, nil) },
		request: func(t *testing.T, f *dispFixture) *http.Request {
			endless = &dispEndlessReader{}
			r := f.request(t, "msg_chunked", dispSample(t, updated))
			r.Body = io.NopCloser(endless)
			r.ContentLength = -1
			r.TransferEncoding = []string{"chunked"}
			return r
		},
		wantStatus: http.StatusRequestEntityTooLarge,
		wantIs:     []error{nectarhooks.ErrBodyTooLarge},
		check: func(t *testing.T, _ *httptest.ResponseRecorder, _ *dispCapture, _ []dispErrCall, _ string) {
			// The reader may fill one buffer past the limit, not more.
			assert.Greater(t, endless.n.Load(), int64(1000))
			assert.LessOrEqual(t, endless.n.Load(), int64(1000+64<<10))
		},
	})
	rows = append(rows, dispStatusRow{
		name:  "chunked body within WithMaxBodyBytes is delivered",
		opts:  []nectarhooks.Option{nectarhooks.WithMaxBodyBytes(int64(1 << 12))},
		setup: func(h *nectarhooks.Handler, c *dispCapture) { dispRegisterAll(h, c, nil) },
		request: func(t *testing.T, f *dispFixture) *http.Request {
			body := dispSample(t, updated)
			r := f.request(t, "msg_chunked_ok", body)
			r.Body = io.NopCloser(io.MultiReader(bytes.NewReader(body[:10]), bytes.NewReader(body[10:])))
			r.ContentLength = -1
			r.TransferEncoding = []string{"chunked"}
			return r
		},
		wantStatus: http.StatusOK,
		wantCalls:  1,
	})

	rows = append(rows, dispStatusRow{
		name:  "body that fails while being read is 400",
		setup: func(h *nectarhooks.Handler, c *dispCapture) { dispRegisterAll(h, c, nil) },
		request: func(t *testing.T, f *dispFixture) *http.Request {
			body := dispSample(t, updated)
			r := f.request(t, "msg_cut", body)
			r.Body = io.NopCloser(io.MultiReader(bytes.NewReader(body[:20]), iotest.ErrReader(io.ErrUnexpectedEOF)))
			return r
		},
		wantStatus: http.StatusBadRequest,
		wantIs:     []error{nectarhooks.ErrReadBody, io.ErrUnexpectedEOF},
	})

	// Every way verification fails is a 401 before anything is decoded.
	rows = append(rows,
		dispUnauthorized("no svix headers", nectarhooks.ErrMissingHeaders, func(_ *testing.T, _ *dispFixture, h http.Header) {
			h.Del("Svix-Id")
			h.Del("Svix-Timestamp")
			h.Del("Svix-Signature")
		}),
		dispUnauthorized("no svix-signature", nectarhooks.ErrMissingHeaders, func(_ *testing.T, _ *dispFixture, h http.Header) {
			h.Del("Svix-Signature")
		}),
		dispUnauthorized("timestamp not a number", nectarhooks.ErrInvalidHeaders, func(_ *testing.T, _ *dispFixture, h http.Header) {
			h.Set("Svix-Timestamp", "yesterday")
		}),
		dispUnauthorized("signature header without a version,signature entry", nectarhooks.ErrInvalidHeaders, func(_ *testing.T, _ *dispFixture, h http.Header) {
			h.Set("Svix-Signature", "deadbeef")
		}),
		dispUnauthorized("signed with another secret", nectarhooks.ErrNoMatchingSignature, func(t *testing.T, _ *dispFixture, h http.Header) {
			other := newDispFixture(t)
			sig, err := other.wh.Sign(h.Get("Svix-Id"), dispT0, dispSample(t, updated))
			require.NoError(t, err)
			h.Set("Svix-Signature", sig)
		}),
		dispUnauthorized("signature of another body", nectarhooks.ErrNoMatchingSignature, func(t *testing.T, f *dispFixture, h http.Header) {
			sig, err := f.wh.Sign(h.Get("Svix-Id"), dispT0, []byte(`{"eventType":"connection.updated.v2"}`))
			require.NoError(t, err)
			h.Set("Svix-Signature", sig)
		}),
		dispUnauthorized("signature of another message id", nectarhooks.ErrNoMatchingSignature, func(_ *testing.T, _ *dispFixture, h http.Header) {
			h.Set("Svix-Id", "msg_other")
		}),
		dispUnauthorized("only a v2 entry carrying the v1 signature", nectarhooks.ErrNoMatchingSignature, func(_ *testing.T, _ *dispFixture, h http.Header) {
			h.Set("Svix-Signature", strings.Replace(h.Get("Svix-Signature"), "v1,", "v2,", 1))
		}),
		dispUnauthorized("timestamp more than 5 minutes old", nectarhooks.ErrMessageTooOld, func(t *testing.T, f *dispFixture, h http.Header) {
			ts := dispT0.Add(-5*time.Minute - time.Second)
			for k, vs := range f.header(t, h.Get("Svix-Id"), ts, dispSample(t, updated)) {
				h[k] = vs
			}
		}),
		dispUnauthorized("timestamp more than 5 minutes ahead", nectarhooks.ErrMessageTooNew, func(t *testing.T, f *dispFixture, h http.Header) {
			ts := dispT0.Add(5*time.Minute + time.Second)
			for k, vs := range f.header(t, h.Get("Svix-Id"), ts, dispSample(t, updated)) {
				h[k] = vs
			}
		}),
	)

	// Verified, but not a payload: 400.
	for _, b := range []struct{ name, body string }{
		{"malformed JSON is 400", `{"eventType": "connection.updated.v2", "id": `},
		{"not an object is 400", `["connection.updated.v2"]`},
		{"eventType not a string is 400", `{"eventType": 7, "id": "x"}`},
		{"string field holding a number is 400", `{"eventType": "connection.updated.v2", "id": 42}`},
		{"array field holding an object is 400", `{"eventType": "connection.updated.v2", "protectedChanges": {"status": 1}}`},
		{"timestamp of the wrong form is 400", `{"eventType": "document.created.v2", "created": "next tuesday"}`},
	} {
		rows = append(rows, dispStatusRow{
			name: b.name,
			setup: func(h *nectarhooks.Handler, c *dispCapture) {
				dispRegisterAll(h, c, nil)
				dispRegisterUnhandled(h, c, nil)
			},
			request:    dispSignedBody(b.body),
			wantStatus: http.StatusBadRequest,
			wantIs:     []error{nectarhooks.ErrInvalidPayload},
			check: func(t *testing.T, _ *httptest.ResponseRecorder, _ *dispCapture, calls []dispErrCall, _ string) {
				var pe *nectarhooks.PayloadError
				assert.ErrorAs(t, calls[0].err, &pe)
				assert.NotErrorIs(t, calls[0].err, nectarhooks.ErrVerification)
				// The delivery was verified, so the error handler gets its
				// Message (WithErrorHandler), to find it in the Svix portal.
				assert.True(t, calls[0].hasMsg, "a verified delivery reached the error handler without its Message")
				assert.Equal(t, "msg_body", calls[0].msg.ID)
			},
		})
	}

	// overrun is the context error the overrunning callback saw.
	var overrun error
	rows = append(rows,
		dispStatusRow{
			name:       "no callback registered is 200, acknowledged",
			request:    dispSignedSample(updated),
			wantStatus: http.StatusOK,
			check: func(t *testing.T, rr *httptest.ResponseRecorder, _ *dispCapture, _ []dispErrCall, logs string) {
				assert.Contains(t, rr.Body.String(), "acknowledged")
				assert.Contains(t, logs, "level=DEBUG")
				assert.Contains(t, logs, "event_type="+string(updated))
			},
		},
		dispStatusRow{
			name: "callback for another type only is 200, acknowledged",
			setup: func(h *nectarhooks.Handler, c *dispCapture) {
				h.OnDocumentCreated(func(ctx context.Context, e *nectarhooks.DocumentCreated) error {
					c.record(ctx, e, nectarhooks.Message{})
					return nil
				})
			},
			request:    dispSignedSample(updated),
			wantStatus: http.StatusOK,
			check: func(t *testing.T, rr *httptest.ResponseRecorder, _ *dispCapture, _ []dispErrCall, _ string) {
				assert.Contains(t, rr.Body.String(), "acknowledged")
			},
		},
		dispStatusRow{
			name:       "unknown event type without OnUnhandled is 200, acknowledged",
			setup:      func(h *nectarhooks.Handler, c *dispCapture) { dispRegisterAll(h, c, nil) },
			request:    dispSignedBody(`{"eventType": "invoice.paid.v3", "id": 42, "site": "nowhere"}`),
			wantStatus: http.StatusOK,
			check: func(t *testing.T, rr *httptest.ResponseRecorder, _ *dispCapture, _ []dispErrCall, logs string) {
				assert.Contains(t, rr.Body.String(), "acknowledged")
				assert.Contains(t, logs, "level=INFO")
				assert.Contains(t, logs, "event_type=invoice.paid.v3")
			},
		},
		dispStatusRow{
			name: "unknown event type reaches OnUnhandled with its Message",
			setup: func(h *nectarhooks.Handler, c *dispCapture) {
				dispRegisterAll(h, c, nil)
				dispRegisterUnhandled(h, c, nil)
			},
			request:    dispSignedBody(`{"eventType": "invoice.paid.v3", "id": 42, "site": "nowhere"}`),
			wantStatus: http.StatusOK,
			wantCalls:  1,
			check: func(t *testing.T, _ *httptest.ResponseRecorder, c *dispCapture, _ []dispErrCall, _ string) {
				assert.Nil(t, c.events[0], "a typed callback ran")
				m := c.msgs[0]
				assert.Equal(t, "msg_body", m.ID)
				assert.Equal(t, nectarhooks.EventType("invoice.paid.v3"), m.EventType)
				assert.True(t, dispT0.Equal(m.Timestamp))
				assert.JSONEq(t, `{"eventType": "invoice.paid.v3", "id": 42, "site": "nowhere"}`, string(m.Payload))
			},
		},
		dispStatusRow{
			name:       "known event type without its callback reaches OnUnhandled",
			setup:      func(h *nectarhooks.Handler, c *dispCapture) { dispRegisterUnhandled(h, c, nil) },
			request:    dispSignedSample(nectarhooks.EventConnectionCreated),
			wantStatus: http.StatusOK,
			wantCalls:  1,
			check: func(t *testing.T, _ *httptest.ResponseRecorder, c *dispCapture, _ []dispErrCall, _ string) {
				m := c.msgs[0]
				assert.Equal(t, "msg_"+string(nectarhooks.EventConnectionCreated), m.ID)
				// The documented sample has no eventType: the shape tells it.
				assert.Equal(t, nectarhooks.EventConnectionCreated, m.EventType)
				assert.Equal(t, dispSample(t, nectarhooks.EventConnectionCreated), m.Payload)
			},
		},
		dispStatusRow{
			name: "OnUnhandled returning an error is 500",
			setup: func(h *nectarhooks.Handler, c *dispCapture) {
				dispRegisterUnhandled(h, c, func(context.Context) error { return fmt.Errorf("%s: %w", dispLeak, errDispBoom) })
			},
			request:    dispSignedBody(`{"eventType": "invoice.paid.v3"}`),
			wantStatus: http.StatusInternalServerError,
			wantIs:     []error{errDispBoom},
			wantCalls:  1,
			check: func(t *testing.T, _ *httptest.ResponseRecorder, _ *dispCapture, calls []dispErrCall, _ string) {
				dispAssertCallbackError(t, calls, "invoice.paid.v3", "msg_body")
			},
		},
		dispStatusRow{
			name: "callback error is 500",
			setup: func(h *nectarhooks.Handler, c *dispCapture) {
				dispRegisterAll(h, c, func(context.Context) error { return fmt.Errorf("db password %s: %w", dispLeak, errDispBoom) })
			},
			request:    dispSignedSample(updated),
			wantStatus: http.StatusInternalServerError,
			wantIs:     []error{errDispBoom},
			wantCalls:  1,
			check: func(t *testing.T, rr *httptest.ResponseRecorder, _ *dispCapture, calls []dispErrCall, logs string) {
				ce := dispAssertCallbackError(t, calls, updated, "msg_"+string(updated))
				assert.ErrorIs(t, ce.Err, errDispBoom)
				assert.NotErrorIs(t, calls[0].err, nectarhooks.ErrCallbackTimeout)
				assert.Equal(t, "callback failed\n", rr.Body.String())
				// The error handler replaces the log.
				assert.Empty(t, logs)
			},
		},
		dispStatusRow{
			name: "callback panic is 500, recovered, its stack to the error handler",
			setup: func(h *nectarhooks.Handler, c *dispCapture) {
				dispRegisterAll(h, c, func(context.Context) error { panic("lost the " + dispLeak) })
			},
			request:    dispSignedSample(nectarhooks.EventDocumentUpdated),
			wantStatus: http.StatusInternalServerError,
			wantCalls:  1,
			check: func(t *testing.T, rr *httptest.ResponseRecorder, _ *dispCapture, calls []dispErrCall, logs string) {
				ce := dispAssertCallbackError(t, calls, nectarhooks.EventDocumentUpdated, "msg_"+string(nectarhooks.EventDocumentUpdated))
				var pe *nectarhooks.PanicError
				require.ErrorAs(t, calls[0].err, &pe)
				assert.Same(t, pe, ce.Err)
				assert.Equal(t, "lost the "+dispLeak, pe.Value)
				assert.Contains(t, string(pe.Stack), "dispatch_test.go", "the stack is not the panicking callback's")
				assert.Equal(t, "callback failed\n", rr.Body.String())
				// The error handler replaces the log: nothing is said twice.
				assert.NotContains(t, logs, "level=ERROR")
			},
		},
		dispStatusRow{
			name: "callback overrunning WithCallbackTimeout is 503, its context cancelled",
			opts: []nectarhooks.Option{nectarhooks.WithCallbackTimeout(20 * time.Millisecond)},
			setup: func(h *nectarhooks.Handler, c *dispCapture) {
				dispRegisterAll(h, c, func(ctx context.Context) error {
					<-ctx.Done() // returns only because the deadline cancels it
					overrun = ctx.Err()
					return fmt.Errorf("%s gave up: %w", dispLeak, overrun)
				})
			},
			request:    dispSignedSample(nectarhooks.EventDocumentCreated),
			wantStatus: http.StatusServiceUnavailable,
			wantIs:     []error{nectarhooks.ErrCallbackTimeout, context.DeadlineExceeded},
			wantCalls:  1,
			check: func(t *testing.T, rr *httptest.ResponseRecorder, c *dispCapture, calls []dispErrCall, _ string) {
				dispAssertCallbackError(t, calls, nectarhooks.EventDocumentCreated, "msg_"+string(nectarhooks.EventDocumentCreated))
				assert.ErrorIs(t, overrun, context.DeadlineExceeded)
				assert.Equal(t, "callback deadline exceeded\n", rr.Body.String())
			},
		},
		dispStatusRow{
			name:       "unbranded webhook-* headers are accepted",
			setup:      func(h *nectarhooks.Handler, c *dispCapture) { dispRegisterAll(h, c, nil) },
			wantStatus: http.StatusOK,
			wantCalls:  1,
			request: dispWithHeader(func(_ *testing.T, _ *dispFixture, h http.Header) {
				for _, name := range []string{"Id", "Timestamp", "Signature"} {
					h.Set("Webhook-"+name, h.Get("Svix-"+name))
					h.Del("Svix-" + name)
				}
			}),
		},
		dispStatusRow{
			name:       "any matching v1 entry among several is accepted",
			setup:      func(h *nectarhooks.Handler, c *dispCapture) { dispRegisterAll(h, c, nil) },
			wantStatus: http.StatusOK,
			wantCalls:  1,
			request: dispWithHeader(func(t *testing.T, _ *dispFixture, h http.Header) {
				other := newDispFixture(t)
				sig, err := other.wh.Sign(h.Get("Svix-Id"), dispT0, dispSample(t, updated))
				require.NoError(t, err)
				h.Set("Svix-Signature", "v2,abc "+sig+" "+h.Get("Svix-Signature"))
			}),
		},
	)

	// Each documented event type reaches its typed callback, decoded.
	for _, et := range nectarhooks.EventTypes() {
		rows = append(rows, dispStatusRow{
			name: "success: " + string(et),
			setup: func(h *nectarhooks.Handler, c *dispCapture) {
				dispRegisterAll(h, c, nil)
				dispRegisterUnhandled(h, c, nil)
			},
			request:    dispSignedSample(et),
			wantStatus: http.StatusOK,
			wantCalls:  1,
			check: func(t *testing.T, rr *httptest.ResponseRecorder, c *dispCapture, _ []dispErrCall, _ string) {
				body := dispSample(t, et)
				assert.Equal(t, dispWantEvent(et, body), c.events[0])
				require.True(t, c.hasMsg[0], "no Message in the callback's context")
				m := c.msgs[0]
				assert.Equal(t, "msg_"+string(et), m.ID)
				assert.True(t, dispT0.Equal(m.Timestamp), "timestamp %s", m.Timestamp)
				assert.Equal(t, et, m.EventType)
				assert.Equal(t, body, m.Payload)
				assert.Equal(t, "ok\n", rr.Body.String())
				assert.NoError(t, c.ctxErr[0], "the callback's context ended before it returned")
			},
		})
	}
	return rows
}

// dispUnauthorized is a row for a delivery whose headers edit breaks.
func dispUnauthorized(name string, want error, edit func(t *testing.T, f *dispFixture, h http.Header)) dispStatusRow {
	return dispStatusRow{
		name: name + " is 401",
		setup: func(h *nectarhooks.Handler, c *dispCapture) {
			dispRegisterAll(h, c, nil)
			dispRegisterUnhandled(h, c, nil)
		},
		request:    dispWithHeader(edit),
		wantStatus: http.StatusUnauthorized,
		wantIs:     []error{nectarhooks.ErrVerification, want},
		check: func(t *testing.T, _ *httptest.ResponseRecorder, _ *dispCapture, calls []dispErrCall, _ string) {
			assert.False(t, calls[0].hasMsg, "an unverified delivery carried a Message")
			// Only the one sentinel: the reasons stay apart.
			for _, other := range []error{nectarhooks.ErrMissingHeaders, nectarhooks.ErrInvalidHeaders,
				nectarhooks.ErrNoMatchingSignature, nectarhooks.ErrMessageTooOld, nectarhooks.ErrMessageTooNew} {
				if other != want {
					assert.NotErrorIs(t, calls[0].err, other)
				}
			}
		},
	}
}

func TestHandlerStatusPolicy(t *testing.T) {
	for _, row := range dispStatusRows() {
		t.Run(row.name, func(t *testing.T) {
			f := newDispFixture(t)
			var errs dispErrRecorder
			logger, logs := newDispLogger()
			opts := append([]nectarhooks.Option{
				nectarhooks.WithClock(nectarhookstest.FixedClock(dispT0)),
				nectarhooks.WithErrorHandler(errs.handle),
				nectarhooks.WithLogger(logger),
			}, row.opts...)
			h, err := nectarhooks.NewHandler(f.secret, opts...)
			require.NoError(t, err)
			c := &dispCapture{}
			if row.setup != nil {
				row.setup(h, c)
			}

			rr := httptest.NewRecorder()
			h.ServeHTTP(rr, row.request(t, f))

			require.Equal(t, row.wantStatus, rr.Code, "answer: %q", rr.Body.String())
			dispAssertPlainAnswer(t, rr, f)
			assert.NotContains(t, logs.String(), f.key, "the log holds the secret")
			assert.Equal(t, row.wantCalls, c.count(), "callbacks run")

			calls := errs.all()
			if row.wantStatus < 300 {
				assert.Empty(t, calls, "the error handler was called for a 2xx")
			} else {
				require.Len(t, calls, 1, "error handler calls")
				assert.Equal(t, row.wantStatus, calls[0].status)
				assert.Equal(t, row.wantStatus, nectarhooks.StatusCode(calls[0].err))
				for _, want := range row.wantIs {
					assert.ErrorIs(t, calls[0].err, want)
				}
			}
			if row.check != nil {
				row.check(t, rr, c, calls, logs.String())
			}
		})
	}
}

// dispAssertPlainAnswer checks that an answer is one short line of plain text
// that gives nothing away.
func dispAssertPlainAnswer(t *testing.T, rr *httptest.ResponseRecorder, f *dispFixture) {
	t.Helper()
	body := rr.Body.String()
	assert.Equal(t, "text/plain; charset=utf-8", rr.Header().Get("Content-Type"))
	assert.Equal(t, "nosniff", rr.Header().Get("X-Content-Type-Options"))
	assert.LessOrEqual(t, len(body), 200, "answer %q", body)
	assert.True(t, strings.HasSuffix(body, "\n") && strings.Count(body, "\n") == 1, "answer %q is not one line", body)
	assert.NotContains(t, body, f.key)
	assert.NotContains(t, body, "whsec_")
	assert.NotContains(t, body, dispLeak)
	assert.NotContains(t, body, "{", "the answer echoes the payload")
}

// TestHandlerKeepsServingAfterPanic sends a panicking delivery over a real
// loopback server, then a good one: the server must answer both.
func TestHandlerKeepsServingAfterPanic(t *testing.T) {
	f := newDispFixture(t)
	var errs dispErrRecorder
	logger, _ := newDispLogger()
	h, err := nectarhooks.NewHandler(f.secret,
		nectarhooks.WithClock(nectarhookstest.FixedClock(dispT0)),
		nectarhooks.WithErrorHandler(errs.handle), nectarhooks.WithLogger(logger))
	require.NoError(t, err)
	var created atomic.Int32
	h.OnDocumentUpdated(func(context.Context, *nectarhooks.DocumentUpdated) error { panic("kaboom") })
	h.OnDocumentCreated(func(context.Context, *nectarhooks.DocumentCreated) error {
		created.Add(1)
		return nil
	})
	srv := httptest.NewServer(h)
	defer srv.Close()
	client := &http.Client{Timeout: 10 * time.Second}

	for i, tc := range []struct {
		et   nectarhooks.EventType
		want int
	}{
		{nectarhooks.EventDocumentUpdated, http.StatusInternalServerError},
		{nectarhooks.EventDocumentCreated, http.StatusOK},
		{nectarhooks.EventDocumentUpdated, http.StatusInternalServerError},
		{nectarhooks.EventDocumentCreated, http.StatusOK},
	} {
		t.Run(fmt.Sprintf("%d %s", i, tc.et), func(t *testing.T) {
			body := dispSample(t, tc.et)
			req, err := http.NewRequest(http.MethodPost, srv.URL, bytes.NewReader(body))
			require.NoError(t, err)
			for k, vs := range f.header(t, fmt.Sprintf("msg_%d", i), dispT0, body) {
				req.Header[k] = vs
			}
			resp, err := client.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			answer, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			assert.Equal(t, tc.want, resp.StatusCode, "answer %q", answer)
		})
	}
	assert.Equal(t, int32(2), created.Load())
	calls := errs.all()
	require.Len(t, calls, 2)
	for _, c := range calls {
		var pe *nectarhooks.PanicError
		assert.ErrorAs(t, c.err, &pe)
		assert.Equal(t, http.StatusInternalServerError, c.status)
	}
}

func TestStatusCode(t *testing.T) {
	timeout := &nectarhooks.CallbackError{EventType: nectarhooks.EventConnectionCreated, MessageID: "msg_1",
		Err: fmt.Errorf("%w after 10s: %w", nectarhooks.ErrCallbackTimeout, context.DeadlineExceeded)}
	for _, tc := range []struct {
		name string
		err  error
		want int
	}{
		{"nil", nil, http.StatusOK},
		{"method", nectarhooks.ErrMethodNotAllowed, http.StatusMethodNotAllowed},
		{"body too large", nectarhooks.ErrBodyTooLarge, http.StatusRequestEntityTooLarge},
		{"verification", nectarhooks.ErrVerification, http.StatusUnauthorized},
		{"missing headers", nectarhooks.ErrMissingHeaders, http.StatusUnauthorized},
		{"invalid headers", nectarhooks.ErrInvalidHeaders, http.StatusUnauthorized},
		{"no matching signature", nectarhooks.ErrNoMatchingSignature, http.StatusUnauthorized},
		{"too old, wrapped", fmt.Errorf("%w: sent 6m ago", nectarhooks.ErrMessageTooOld), http.StatusUnauthorized},
		{"too new", nectarhooks.ErrMessageTooNew, http.StatusUnauthorized},
		{"invalid payload", nectarhooks.ErrInvalidPayload, http.StatusBadRequest},
		{"payload error", &nectarhooks.PayloadError{Field: "id", Offset: 3, Err: errors.New("want a string")}, http.StatusBadRequest},
		{"read body", fmt.Errorf("%w: %w", nectarhooks.ErrReadBody, io.ErrUnexpectedEOF), http.StatusBadRequest},
		{"in flight", nectarhooks.ErrInFlight, http.StatusConflict},
		{"queue full", nectarhooks.ErrQueueFull, http.StatusServiceUnavailable},
		{"already queued, wrapped", fmt.Errorf("job 7: %w", nectarhooks.ErrAlreadyQueued), http.StatusAccepted},
		{"store unavailable", fmt.Errorf("%w: %w", nectarhooks.ErrStoreUnavailable, errDispBoom), http.StatusServiceUnavailable},
		{"shutting down", nectarhooks.ErrShuttingDown, http.StatusServiceUnavailable},
		{"callback timeout", timeout, http.StatusServiceUnavailable},
		{"callback error", &nectarhooks.CallbackError{Err: errDispBoom}, http.StatusInternalServerError},
		{"callback panic", &nectarhooks.CallbackError{Err: &nectarhooks.PanicError{Value: 1}}, http.StatusInternalServerError},
		{"callback returning a deadline without the handler's timeout", &nectarhooks.CallbackError{Err: context.DeadlineExceeded}, http.StatusInternalServerError},
		{"anything else", errors.New("unexpected"), http.StatusInternalServerError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, nectarhooks.StatusCode(tc.err))
		})
	}
}

func TestCallbackErrorAndPanicError(t *testing.T) {
	pe := &nectarhooks.PanicError{Value: "oops", Stack: []byte("goroutine 1 [running]:")}
	for _, tc := range []struct {
		name     string
		err      *nectarhooks.CallbackError
		contains []string
		is       error
	}{
		{"error", &nectarhooks.CallbackError{EventType: nectarhooks.EventDocumentCreated, MessageID: "msg_7", Err: errDispBoom},
			[]string{"document.created.v2", "msg_7", "boom"}, errDispBoom},
		{"panic", &nectarhooks.CallbackError{EventType: nectarhooks.EventConnectionUpdated, MessageID: "msg_8", Err: pe},
			[]string{"connection.updated.v2", "msg_8", "panic: oops"}, pe},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, s := range tc.contains {
				assert.Contains(t, tc.err.Error(), s)
			}
			assert.NotContains(t, tc.err.Error(), "goroutine", "the stack belongs in logs, not in Error")
			assert.ErrorIs(t, tc.err, tc.is)
		})
	}
}

func TestMessageFromContext(t *testing.T) {
	m := nectarhooks.Message{ID: "msg_1", Timestamp: dispT0, EventType: nectarhooks.EventDocumentCreated, Payload: []byte(`{}`)}
	for _, tc := range []struct {
		name   string
		ctx    context.Context
		want   nectarhooks.Message
		wantOK bool
	}{
		{"empty context", context.Background(), nectarhooks.Message{}, false},
		{"other values only", context.WithValue(context.Background(), struct{ k int }{1}, "v"), nectarhooks.Message{}, false},
		{"ContextWithMessage", nectarhooks.ContextWithMessage(context.Background(), m), m, true},
		{"beneath other values", context.WithValue(nectarhooks.ContextWithMessage(context.Background(), m), struct{ k int }{1}, "v"), m, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := nectarhooks.MessageFromContext(tc.ctx)
			assert.Equal(t, tc.wantOK, ok)
			assert.Equal(t, tc.want, got)
		})
	}
}

// dispDeliveryRow is a delivery handed to ServeHTTP, Dispatch and, when it is
// dispAuthentic, DispatchVerified; all three must agree.
type dispDeliveryRow struct {
	name     string
	body     []byte
	header   func(t *testing.T, f *dispFixture, body []byte) http.Header
	callback func(context.Context) error
	verified bool // whether DispatchVerified applies: the header is dispAuthentic
	// timeout is WithCallbackTimeout's; zero means a minute. Only a row
	// about the deadline sets a short one: a callback error returned after
	// the deadline is a timeout (503), and on a loaded machine the
	// callback's goroutine can be scheduled 20 ms late, turning "callback
	// error" into a timeout in one call and not in the next.
	timeout   time.Duration
	wantIs    []error
	wantCalls int
}

func dispAuthentic(t *testing.T, f *dispFixture, body []byte) http.Header {
	return f.header(t, "msg_dispatch", dispT0, body)
}

func dispDeliveryRows(t *testing.T) []dispDeliveryRow {
	updated := dispSample(t, nectarhooks.EventConnectionUpdated)
	return []dispDeliveryRow{
		{name: "success", body: updated, header: dispAuthentic, verified: true, wantCalls: 1},
		{name: "unknown type acknowledged", body: []byte(`{"eventType":"x.v9"}`), header: dispAuthentic, verified: true},
		{name: "missing headers", body: updated, verified: false,
			header: func(*testing.T, *dispFixture, []byte) http.Header { return http.Header{} },
			wantIs: []error{nectarhooks.ErrVerification, nectarhooks.ErrMissingHeaders}},
		{name: "too old", body: updated, verified: false,
			header: func(t *testing.T, f *dispFixture, body []byte) http.Header {
				return f.header(t, "msg_old", dispT0.Add(-time.Hour), body)
			},
			wantIs: []error{nectarhooks.ErrVerification, nectarhooks.ErrMessageTooOld}},
		{name: "wrong signature", body: updated, verified: false,
			header: func(t *testing.T, f *dispFixture, _ []byte) http.Header {
				return f.header(t, "msg_dispatch", dispT0, []byte("{}"))
			},
			wantIs: []error{nectarhooks.ErrVerification, nectarhooks.ErrNoMatchingSignature}},
		{name: "invalid payload", body: []byte(`{"eventType":"document.created.v2","site":[]}`), header: dispAuthentic, verified: true,
			wantIs: []error{nectarhooks.ErrInvalidPayload}},
		{name: "callback error", body: updated, header: dispAuthentic, verified: true, wantCalls: 1,
			callback: func(context.Context) error { return errDispBoom },
			wantIs:   []error{errDispBoom}},
		{name: "callback panic", body: updated, header: dispAuthentic, verified: true, wantCalls: 1,
			callback: func(context.Context) error { panic("dispatch panic") }},
		{name: "callback timeout", body: updated, header: dispAuthentic, verified: true, wantCalls: 1,
			timeout:  20 * time.Millisecond,
			callback: func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() },
			wantIs:   []error{nectarhooks.ErrCallbackTimeout, context.DeadlineExceeded}},
	}
}

func TestDispatchAgreesWithServeHTTP(t *testing.T) {
	for _, row := range dispDeliveryRows(t) {
		t.Run(row.name, func(t *testing.T) {
			f := newDispFixture(t)
			var errs dispErrRecorder
			timeout := row.timeout
			if timeout == 0 {
				timeout = time.Minute
			}
			h, err := nectarhooks.NewHandler(f.secret,
				nectarhooks.WithClock(nectarhookstest.FixedClock(dispT0)),
				nectarhooks.WithCallbackTimeout(timeout),
				nectarhooks.WithErrorHandler(errs.handle),
				nectarhooks.WithLogger(nil))
			require.NoError(t, err)
			c := &dispCapture{}
			dispRegisterAll(h, c, row.callback)
			header := row.header(t, f, row.body)

			// ServeHTTP: the reference.
			r := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(row.body))
			r.Header = header.Clone()
			rr := httptest.NewRecorder()
			h.ServeHTTP(rr, r)
			served := errs.all()
			var servedErr error
			if rr.Code >= 300 {
				require.Len(t, served, 1)
				servedErr = served[0].err
			} else {
				require.Empty(t, served)
			}

			results := map[string]error{
				"Dispatch": h.Dispatch(context.Background(), row.body, header.Clone()),
			}
			if row.verified {
				results["DispatchVerified"] = h.DispatchVerified(context.Background(), nectarhooks.Message{
					ID: "msg_dispatch", Timestamp: dispT0, Payload: row.body,
				})
			}
			assert.Len(t, errs.all(), len(served), "Dispatch called the error handler")
			assert.Equal(t, row.wantCalls*len(results)+row.wantCalls, c.count(), "callbacks run")

			for name, got := range results {
				assert.Equal(t, rr.Code, nectarhooks.StatusCode(got), "%s: %v", name, got)
				assert.Equal(t, servedErr == nil, got == nil, "%s: %v, ServeHTTP: %v", name, got, servedErr)
				for _, want := range row.wantIs {
					assert.ErrorIs(t, got, want, name)
					assert.ErrorIs(t, servedErr, want, "ServeHTTP")
				}
				var gotCE, servedCE *nectarhooks.CallbackError
				assert.Equal(t, errors.As(servedErr, &servedCE), errors.As(got, &gotCE), name)
				var gotPE, servedPE *nectarhooks.PanicError
				assert.Equal(t, errors.As(servedErr, &servedPE), errors.As(got, &gotPE), name)
			}
		})
	}
}

// TestDispatchVerifiedCallbackContext checks what a callback run by
// DispatchVerified finds in its context: the stored message, with the
// event type Parse resolved, even long after the tolerance.
func TestDispatchVerifiedCallbackContext(t *testing.T) {
	for _, et := range nectarhooks.EventTypes() {
		t.Run(string(et), func(t *testing.T) {
			f := newDispFixture(t)
			h, err := nectarhooks.NewHandler(f.secret, nectarhooks.WithLogger(nil))
			require.NoError(t, err)
			c := &dispCapture{}
			dispRegisterAll(h, c, nil)
			body := dispSample(t, et)
			stored := nectarhooks.Message{ID: "msg_stored", Timestamp: dispT0.Add(-72 * time.Hour), EventType: "stale", Payload: body}

			require.NoError(t, h.DispatchVerified(context.Background(), stored))

			require.Equal(t, 1, c.count())
			assert.Equal(t, dispWantEvent(et, body), c.events[0])
			m := c.msgs[0]
			assert.Equal(t, stored.ID, m.ID)
			assert.True(t, stored.Timestamp.Equal(m.Timestamp))
			assert.Equal(t, et, m.EventType)
			assert.Equal(t, body, m.Payload)
		})
	}
}

// TestDispatchLowerCaseHeaders hands Dispatch header maps as AWS Lambda
// and some proxies build them, with keys that are not canonical.
func TestDispatchLowerCaseHeaders(t *testing.T) {
	for _, tc := range []struct {
		name    string
		keys    [3]string // id, timestamp, signature
		wantErr error
	}{
		{"lower-case svix", [3]string{"svix-id", "svix-timestamp", "svix-signature"}, nil},
		{"upper-case svix", [3]string{"SVIX-ID", "SVIX-TIMESTAMP", "SVIX-SIGNATURE"}, nil},
		{"lower-case webhook", [3]string{"webhook-id", "webhook-timestamp", "webhook-signature"}, nil},
		{"mixed", [3]string{"svix-Id", "Svix-timestamp", "sViX-sIgNaTuRe"}, nil},
		{"misspelt", [3]string{"svix_id", "svix-timestamp", "svix-signature"}, nectarhooks.ErrMissingHeaders},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newDispFixture(t)
			h, err := nectarhooks.NewHandler(f.secret, nectarhooks.WithClock(nectarhookstest.FixedClock(dispT0)))
			require.NoError(t, err)
			c := &dispCapture{}
			dispRegisterAll(h, c, nil)
			body := dispSample(t, nectarhooks.EventDocumentUpdated)
			sig, err := f.wh.Sign("msg_lambda", dispT0, body)
			require.NoError(t, err)
			header := http.Header{
				tc.keys[0]: {"msg_lambda"},
				tc.keys[1]: {strconv.FormatInt(dispT0.Unix(), 10)},
				tc.keys[2]: {sig},
			}

			err = h.Dispatch(context.Background(), body, header)

			if tc.wantErr != nil {
				assert.ErrorIs(t, err, tc.wantErr)
				assert.Zero(t, c.count())
				return
			}
			require.NoError(t, err)
			require.Equal(t, 1, c.count())
			assert.Equal(t, "msg_lambda", c.msgs[0].ID)
			assert.Equal(t, dispWantEvent(nectarhooks.EventDocumentUpdated, body), c.events[0])
		})
	}
}

// TestHandlerLogs checks where the Handler's log records go: to
// WithLogger's logger, to slog.Default without it, and nowhere with
// WithLogger(nil). It swaps slog's default logger, so it is not parallel.
func TestHandlerLogs(t *testing.T) {
	deliveries := []struct {
		name     string
		et       nectarhooks.EventType // with its callback panicking, or none registered
		tamper   bool
		panics   bool
		wantLogs []string
	}{
		{name: "refused", et: nectarhooks.EventConnectionUpdated, tamper: true,
			wantLogs: []string{"level=WARN", "delivery refused", "status=401"}},
		{name: "panic", et: nectarhooks.EventDocumentCreated, panics: true,
			wantLogs: []string{"level=ERROR", "delivery failed", "status=500", "message_id=msg_panic", "stack=", "dispatch_test.go"}},
		{name: "no callback", et: nectarhooks.EventDocumentUpdated,
			wantLogs: []string{"level=DEBUG", "event_type=document.updated.v2"}},
	}
	for _, mode := range []string{"WithLogger", "default", "WithLogger(nil)"} {
		for _, d := range deliveries {
			t.Run(mode+"/"+d.name, func(t *testing.T) {
				defaultLogger, defaultBuf := newDispLogger()
				previous := slog.Default()
				slog.SetDefault(defaultLogger)
				t.Cleanup(func() { slog.SetDefault(previous) })

				f := newDispFixture(t)
				opts := []nectarhooks.Option{nectarhooks.WithClock(nectarhookstest.FixedClock(dispT0))}
				ownLogger, ownBuf := newDispLogger()
				switch mode {
				case "WithLogger":
					opts = append(opts, nectarhooks.WithLogger(ownLogger))
				case "WithLogger(nil)":
					opts = append(opts, nectarhooks.WithLogger(nil))
				}
				h, err := nectarhooks.NewHandler(f.secret, opts...)
				require.NoError(t, err)
				if d.panics {
					h.OnDocumentCreated(func(context.Context, *nectarhooks.DocumentCreated) error { panic("logged") })
				}
				body := dispSample(t, d.et)
				id := "msg_" + strings.ReplaceAll(d.name, " ", "_")
				if d.panics {
					id = "msg_panic"
				}
				r := f.request(t, id, body)
				if d.tamper {
					r.Header.Set("Svix-Signature", "v1,AAAA")
				}
				h.ServeHTTP(httptest.NewRecorder(), r)

				var got, silent string
				switch mode {
				case "WithLogger":
					got, silent = ownBuf.String(), defaultBuf.String()
				case "default":
					got, silent = defaultBuf.String(), ownBuf.String()
				case "WithLogger(nil)":
					assert.Empty(t, defaultBuf.String(), "WithLogger(nil) logged to slog.Default")
					assert.Empty(t, ownBuf.String())
					return
				}
				assert.Empty(t, silent, "logged to the wrong logger")
				for _, want := range d.wantLogs {
					assert.Contains(t, got, want)
				}
				assert.NotContains(t, got, f.key)
				if d.panics {
					// The panic is logged once, with its stack.
					assert.Equal(t, 1, strings.Count(got, "\n"), "log:\n%s", got)
				}
			})
		}
	}
}

// TestHandlerRegistration checks that a later registration replaces an
// earlier one and that nil removes it, for every On method.
func TestHandlerRegistration(t *testing.T) {
	type slot struct {
		et  nectarhooks.EventType
		set func(h *nectarhooks.Handler, fn func() error) // nil fn: remove
	}
	slots := []slot{
		{nectarhooks.EventConnectionCreated, func(h *nectarhooks.Handler, fn func() error) {
			if fn == nil {
				h.OnConnectionCreated(nil)
				return
			}
			h.OnConnectionCreated(func(context.Context, *nectarhooks.ConnectionCreated) error { return fn() })
		}},
		{nectarhooks.EventConnectionUpdated, func(h *nectarhooks.Handler, fn func() error) {
			if fn == nil {
				h.OnConnectionUpdated(nil)
				return
			}
			h.OnConnectionUpdated(func(context.Context, *nectarhooks.ConnectionUpdated) error { return fn() })
		}},
		{nectarhooks.EventConnectionValidated, func(h *nectarhooks.Handler, fn func() error) {
			if fn == nil {
				h.OnConnectionValidated(nil)
				return
			}
			h.OnConnectionValidated(func(context.Context, *nectarhooks.ConnectionValidated) error { return fn() })
		}},
		{nectarhooks.EventDocumentCreated, func(h *nectarhooks.Handler, fn func() error) {
			if fn == nil {
				h.OnDocumentCreated(nil)
				return
			}
			h.OnDocumentCreated(func(context.Context, *nectarhooks.DocumentCreated) error { return fn() })
		}},
		{nectarhooks.EventDocumentUpdated, func(h *nectarhooks.Handler, fn func() error) {
			if fn == nil {
				h.OnDocumentUpdated(nil)
				return
			}
			h.OnDocumentUpdated(func(context.Context, *nectarhooks.DocumentUpdated) error { return fn() })
		}},
		{"invoice.paid.v3", func(h *nectarhooks.Handler, fn func() error) {
			if fn == nil {
				h.OnUnhandled(nil)
				return
			}
			h.OnUnhandled(func(context.Context, nectarhooks.Message) error { return fn() })
		}},
	}
	for _, s := range slots {
		t.Run(string(s.et), func(t *testing.T) {
			f := newDispFixture(t)
			h, err := nectarhooks.NewHandler(f.secret, nectarhooks.WithClock(nectarhookstest.FixedClock(dispT0)), nectarhooks.WithLogger(nil))
			require.NoError(t, err)
			body := []byte(`{"eventType":"` + string(s.et) + `"}`)
			if s.et.Known() {
				body = dispSample(t, s.et)
			}
			deliver := func() int {
				rr := httptest.NewRecorder()
				h.ServeHTTP(rr, f.request(t, "msg_reg", body))
				return rr.Code
			}
			var first, second int
			s.set(h, func() error { first++; return errDispBoom })
			assert.Equal(t, http.StatusInternalServerError, deliver())
			s.set(h, func() error { second++; return nil })
			assert.Equal(t, http.StatusOK, deliver())
			s.set(h, nil)
			assert.Equal(t, http.StatusOK, deliver(), "acknowledged once removed")
			assert.Equal(t, 1, first, "first callback")
			assert.Equal(t, 1, second, "replacement")
		})
	}
}

// TestHandlerRegistrationRace registers and removes callbacks while
// deliveries are served; run with -race. Every delivery is answered 200,
// either by the callback ("ok") or as acknowledged without one, and the
// callbacks run exactly as often as "ok" was answered.
func TestHandlerRegistrationRace(t *testing.T) {
	f := newDispFixture(t)
	h, err := nectarhooks.NewHandler(f.secret, nectarhooks.WithClock(nectarhookstest.FixedClock(dispT0)), nectarhooks.WithLogger(nil))
	require.NoError(t, err)
	var ran atomic.Int64
	cb := func(context.Context, *nectarhooks.ConnectionUpdated) error { ran.Add(1); return nil }
	const deliveries = 400
	body := dispSample(t, nectarhooks.EventConnectionUpdated)
	reqs := make([]*http.Request, deliveries)
	for i := range reqs {
		reqs[i] = f.request(t, fmt.Sprintf("msg_race_%d", i), body)
	}

	stop := make(chan struct{})
	var registrar sync.WaitGroup
	registrar.Add(1)
	go func() {
		defer registrar.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if i%2 == 0 {
				h.OnConnectionUpdated(cb)
			} else {
				h.OnConnectionUpdated(nil)
			}
		}
	}()
	var okCount, ackCount atomic.Int64
	var servers sync.WaitGroup
	codes := make([]int, deliveries)
	for i, r := range reqs {
		servers.Add(1)
		go func() {
			defer servers.Done()
			rr := httptest.NewRecorder()
			h.ServeHTTP(rr, r)
			codes[i] = rr.Code
			switch {
			case rr.Body.String() == "ok\n":
				okCount.Add(1)
			case strings.HasPrefix(rr.Body.String(), "acknowledged"):
				ackCount.Add(1)
			}
		}()
	}
	servers.Wait()
	close(stop)
	registrar.Wait()

	for i, code := range codes {
		assert.Equal(t, http.StatusOK, code, "delivery %d", i)
	}
	assert.Equal(t, int64(deliveries), okCount.Load()+ackCount.Load())
	assert.Equal(t, okCount.Load(), ran.Load())
}

// TestHandlerConcurrentDeliveries sends thousands of signed deliveries at
// once, straight to ServeHTTP and over a loopback server: every one must be
// acknowledged and run its callback exactly once.
func TestHandlerConcurrentDeliveries(t *testing.T) {
	const direct, overLoopback, workers = 3000, 600, 16
	f := newDispFixture(t)
	var errs dispErrRecorder
	h, err := nectarhooks.NewHandler(f.secret, nectarhooks.WithErrorHandler(errs.handle), nectarhooks.WithLogger(nil))
	require.NoError(t, err)
	var mu sync.Mutex
	seen := map[string]int{}
	typed := map[string]nectarhooks.EventType{}
	count := func(ctx context.Context, et nectarhooks.EventType) error {
		m, ok := nectarhooks.MessageFromContext(ctx)
		if !ok {
			return errors.New("no message in context")
		}
		mu.Lock()
		defer mu.Unlock()
		seen[m.ID]++
		typed[m.ID] = et
		return nil
	}
	h.OnConnectionCreated(func(ctx context.Context, e *nectarhooks.ConnectionCreated) error { return count(ctx, e.Type()) })
	h.OnConnectionUpdated(func(ctx context.Context, e *nectarhooks.ConnectionUpdated) error { return count(ctx, e.Type()) })
	h.OnConnectionValidated(func(ctx context.Context, e *nectarhooks.ConnectionValidated) error { return count(ctx, e.Type()) })
	h.OnDocumentCreated(func(ctx context.Context, e *nectarhooks.DocumentCreated) error { return count(ctx, e.Type()) })
	h.OnDocumentUpdated(func(ctx context.Context, e *nectarhooks.DocumentUpdated) error { return count(ctx, e.Type()) })

	// Every delivery is signed up front, now, as Svix would: these go
	// through the real clock.
	types := nectarhooks.EventTypes()
	now := time.Now()
	deliveries := make([]dispDelivery, direct+overLoopback)
	for i := range deliveries {
		et := types[i%len(types)]
		d := dispDelivery{id: fmt.Sprintf("msg_conc_%05d", i), et: et, body: dispSample(t, et)}
		d.header = f.header(t, d.id, now, d.body)
		deliveries[i] = d
	}

	t.Run("ServeHTTP", func(t *testing.T) {
		codes := make([]int, direct)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i, d := range deliveries[:direct] {
			r := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(d.body))
			r.Header = d.header
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				rr := httptest.NewRecorder()
				h.ServeHTTP(rr, r)
				codes[i] = rr.Code
			}()
		}
		close(start)
		wg.Wait()
		for i, code := range codes {
			assert.Equal(t, http.StatusOK, code, "delivery %d", i)
		}
	})

	t.Run("loopback", func(t *testing.T) {
		srv := httptest.NewServer(h)
		defer srv.Close()
		client := &http.Client{
			Timeout:   10 * time.Second,
			Transport: &http.Transport{MaxConnsPerHost: workers, MaxIdleConnsPerHost: workers},
		}
		defer client.CloseIdleConnections()
		jobs := make(chan int)
		codes := make([]int, overLoopback)
		var wg sync.WaitGroup
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range jobs {
					codes[i] = dispPost(client, srv.URL, deliveries[direct+i])
				}
			}()
		}
		for i := range overLoopback {
			jobs <- i
		}
		close(jobs)
		wg.Wait()
		for i, code := range codes {
			assert.Equal(t, http.StatusOK, code, "delivery %d", direct+i)
		}
	})

	mu.Lock()
	defer mu.Unlock()
	assert.Empty(t, errs.all())
	assert.Len(t, seen, len(deliveries))
	for _, d := range deliveries {
		assert.Equal(t, 1, seen[d.id], "callbacks for %s", d.id)
		assert.Equal(t, d.et, typed[d.id], "event type of %s", d.id)
	}
}

// dispDelivery is one signed delivery, ready to send.
type dispDelivery struct {
	id     string
	et     nectarhooks.EventType
	body   []byte
	header http.Header
}

// dispPost sends d to url and returns the answer's status, or -1 when there
// was none.
func dispPost(client *http.Client, url string, d dispDelivery) int {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(d.body))
	if err != nil {
		return -1
	}
	req.Header = d.header.Clone()
	resp, err := client.Do(req)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return -1
	}
	return resp.StatusCode
}

// dispCtxKey is a context key of the tests' own.
type dispCtxKey struct{}

// dispWaitErr polls ctx.Err, without ever calling Done, until it is set;
// it gives up after ten seconds and returns nil.
func dispWaitErr(ctx context.Context) error {
	for range 10000 {
		if err := ctx.Err(); err != nil {
			return err
		}
		time.Sleep(time.Millisecond)
	}
	return nil
}

// dispIsClosed reports whether ch is closed, without waiting.
func dispIsClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// TestCallbackContext holds a callback's context to what
// context.WithTimeout(parent, WithCallbackTimeout) gives, whichever of its
// methods is called first.
func TestCallbackContext(t *testing.T) {
	type observed struct {
		err, cause  error
		done        bool
		deadline    time.Time
		hasDeadline bool
		value       any
		msg         nectarhooks.Message
		hasMsg      bool
	}
	for _, tc := range []struct {
		name    string
		timeout time.Duration
		// parent returns the context handed to Dispatch, and a function
		// the callback may call to cancel it.
		parent func(t *testing.T) (context.Context, func())
		// during runs in the callback and returns its error.
		during func(ctx context.Context, cancelParent func(), o *observed) error
		// after checks, once Dispatch has returned, the context the
		// callback held on to.
		after     func(t *testing.T, ctx context.Context, o *observed)
		wantErrIs []error
	}{
		{
			name: "alive during the callback, values and Message found",
			during: func(ctx context.Context, _ func(), o *observed) error {
				o.err = ctx.Err()
				o.deadline, o.hasDeadline = ctx.Deadline()
				o.value = ctx.Value(dispCtxKey{})
				o.msg, o.hasMsg = nectarhooks.MessageFromContext(ctx)
				o.done = dispIsClosed(ctx.Done())
				return nil
			},
			after: func(t *testing.T, _ context.Context, o *observed) {
				assert.NoError(t, o.err)
				assert.False(t, o.done)
				require.True(t, o.hasDeadline)
				assert.False(t, o.deadline.After(time.Now().Add(nectarhooks.DefaultCallbackTimeout)), "deadline %s", o.deadline)
				assert.Equal(t, "parent value", o.value)
				assert.True(t, o.hasMsg)
				assert.Equal(t, "msg_ctx", o.msg.ID)
			},
		},
		{
			name: "cancelled once the callback returns, Done never asked for",
			during: func(ctx context.Context, _ func(), o *observed) error {
				o.err = ctx.Err()
				return nil
			},
			after: func(t *testing.T, ctx context.Context, o *observed) {
				assert.NoError(t, o.err)
				assert.ErrorIs(t, ctx.Err(), context.Canceled)
				assert.True(t, dispIsClosed(ctx.Done()))
				assert.ErrorIs(t, context.Cause(ctx), context.Canceled)
			},
		},
		{
			name: "cancelled once the callback returns, Done asked for",
			during: func(ctx context.Context, _ func(), o *observed) error {
				o.done = dispIsClosed(ctx.Done())
				return nil
			},
			after: func(t *testing.T, ctx context.Context, o *observed) {
				assert.False(t, o.done)
				assert.True(t, dispIsClosed(ctx.Done()))
				assert.ErrorIs(t, ctx.Err(), context.Canceled)
			},
		},
		{
			name:    "deadline seen through Done",
			timeout: 20 * time.Millisecond,
			during: func(ctx context.Context, _ func(), o *observed) error {
				<-ctx.Done()
				o.err, o.cause = ctx.Err(), context.Cause(ctx)
				return ctx.Err()
			},
			after: func(t *testing.T, ctx context.Context, o *observed) {
				assert.ErrorIs(t, o.err, context.DeadlineExceeded)
				assert.ErrorIs(t, o.cause, context.DeadlineExceeded)
				assert.ErrorIs(t, ctx.Err(), context.DeadlineExceeded, "the deadline stays the reason after return")
			},
			wantErrIs: []error{nectarhooks.ErrCallbackTimeout, context.DeadlineExceeded},
		},
		{
			name:    "deadline seen through Err alone",
			timeout: 20 * time.Millisecond,
			during: func(ctx context.Context, _ func(), o *observed) error {
				o.err = dispWaitErr(ctx)
				o.done = dispIsClosed(ctx.Done())
				o.cause = context.Cause(ctx)
				return o.err
			},
			after: func(t *testing.T, _ context.Context, o *observed) {
				assert.ErrorIs(t, o.err, context.DeadlineExceeded)
				assert.True(t, o.done, "Err reported the deadline but Done was open")
				assert.ErrorIs(t, o.cause, context.DeadlineExceeded)
			},
			wantErrIs: []error{nectarhooks.ErrCallbackTimeout, context.DeadlineExceeded},
		},
		{
			name:    "deadline reaches derived contexts and AfterFunc",
			timeout: 20 * time.Millisecond,
			during: func(ctx context.Context, _ func(), o *observed) error {
				child, cancel := context.WithCancel(context.WithValue(ctx, dispCtxKey{}, "child value"))
				defer cancel()
				ran := make(chan struct{})
				context.AfterFunc(ctx, func() { close(ran) })
				<-child.Done()
				<-ran
				o.err, o.cause = child.Err(), context.Cause(child)
				o.msg, o.hasMsg = nectarhooks.MessageFromContext(child)
				o.value = child.Value(dispCtxKey{})
				return child.Err()
			},
			after: func(t *testing.T, _ context.Context, o *observed) {
				assert.ErrorIs(t, o.err, context.DeadlineExceeded)
				assert.ErrorIs(t, o.cause, context.DeadlineExceeded)
				assert.True(t, o.hasMsg)
				assert.Equal(t, "child value", o.value)
			},
			wantErrIs: []error{nectarhooks.ErrCallbackTimeout},
		},
		{
			name: "parent cancellation seen through Err alone",
			parent: func(*testing.T) (context.Context, func()) {
				return context.WithCancel(context.WithValue(context.Background(), dispCtxKey{}, "parent value"))
			},
			during: func(ctx context.Context, cancelParent func(), o *observed) error {
				before := ctx.Err()
				cancelParent()
				o.err = ctx.Err()
				o.done = dispIsClosed(ctx.Done())
				if before != nil {
					return errors.New("cancelled before the parent was")
				}
				return o.err
			},
			after: func(t *testing.T, _ context.Context, o *observed) {
				assert.ErrorIs(t, o.err, context.Canceled)
				assert.True(t, o.done)
			},
			wantErrIs: []error{context.Canceled},
		},
		{
			name: "parent cancellation seen through Done",
			parent: func(*testing.T) (context.Context, func()) {
				return context.WithCancel(context.WithValue(context.Background(), dispCtxKey{}, "parent value"))
			},
			during: func(ctx context.Context, cancelParent func(), o *observed) error {
				done := ctx.Done()
				o.done = dispIsClosed(done)
				cancelParent()
				<-done
				o.err = ctx.Err()
				return o.err
			},
			after: func(t *testing.T, _ context.Context, o *observed) {
				assert.False(t, o.done)
				assert.ErrorIs(t, o.err, context.Canceled)
			},
			wantErrIs: []error{context.Canceled},
		},
		{
			name:    "an earlier parent deadline is the deadline",
			timeout: time.Hour,
			parent: func(*testing.T) (context.Context, func()) {
				return context.WithDeadline(context.WithValue(context.Background(), dispCtxKey{}, "parent value"), dispT0.Add(time.Hour))
			},
			during: func(ctx context.Context, _ func(), o *observed) error {
				o.deadline, o.hasDeadline = ctx.Deadline()
				o.err = ctx.Err()
				return nil
			},
			after: func(t *testing.T, _ context.Context, o *observed) {
				require.True(t, o.hasDeadline)
				assert.True(t, o.deadline.Equal(dispT0.Add(time.Hour)), "deadline %s", o.deadline)
				// That deadline is long past: the context is done.
				assert.ErrorIs(t, o.err, context.DeadlineExceeded)
			},
		},
		{
			name: "used from other goroutines while the callback returns",
			during: func(ctx context.Context, _ func(), _ *observed) error {
				var wg sync.WaitGroup
				for i := range 8 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for range 100 {
							switch i % 4 {
							case 0:
								_ = ctx.Err()
							case 1:
								_ = ctx.Done()
							case 2:
								_ = ctx.Value(dispCtxKey{})
							default:
								_, _ = ctx.Deadline()
							}
						}
					}()
				}
				// Returns while the goroutines may still run: the
				// context ends under them.
				go wg.Wait()
				return nil
			},
			after: func(t *testing.T, ctx context.Context, _ *observed) {
				assert.ErrorIs(t, ctx.Err(), context.Canceled)
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newDispFixture(t)
			opts := []nectarhooks.Option{nectarhooks.WithLogger(nil)}
			if tc.timeout > 0 {
				opts = append(opts, nectarhooks.WithCallbackTimeout(tc.timeout))
			}
			h, err := nectarhooks.NewHandler(f.secret, opts...)
			require.NoError(t, err)
			parent, cancelParent := context.WithValue(context.Background(), dispCtxKey{}, "parent value"), func() {}
			if tc.parent != nil {
				parent, cancelParent = tc.parent(t)
			}
			defer cancelParent()
			var held context.Context
			var o observed
			h.OnDocumentCreated(func(ctx context.Context, _ *nectarhooks.DocumentCreated) error {
				held = ctx
				return tc.during(ctx, cancelParent, &o)
			})

			err = h.DispatchVerified(parent, nectarhooks.Message{ID: "msg_ctx", Timestamp: dispT0,
				Payload: dispSample(t, nectarhooks.EventDocumentCreated)})

			if tc.wantErrIs == nil {
				require.NoError(t, err)
			} else {
				require.Error(t, err)
				for _, want := range tc.wantErrIs {
					assert.ErrorIs(t, err, want)
				}
			}
			require.NotNil(t, held, "the callback did not run")
			tc.after(t, held, &o)
		})
	}
}

// TestDispatchAllocations pins what the dispatcher adds to Parse's
// allocations on a delivery whose callback succeeds: the context carrying
// the Message (one) and the callback's context.WithTimeout (four: the
// context, its timer, the timer's function and the cancel function), and
// nothing else.
func TestDispatchAllocations(t *testing.T) {
	if nectarhooks.RaceEnabled {
		t.Skip("under the race detector sync.Pool drops items at random and the verifier's pooled HMAC states are made again: counts only hold without it")
	}
	for _, et := range nectarhooks.EventTypes() {
		t.Run(string(et), func(t *testing.T) {
			f := newDispFixture(t)
			h, err := nectarhooks.NewHandler(f.secret, nectarhooks.WithClock(nectarhookstest.FixedClock(dispT0)))
			require.NoError(t, err)
			c := &dispCapture{}
			dispRegisterAll(h, c, nil)
			// A callback that allocates nothing, registered last.
			noop := func(context.Context) error { return nil }
			h.OnConnectionCreated(func(ctx context.Context, _ *nectarhooks.ConnectionCreated) error { return noop(ctx) })
			h.OnConnectionUpdated(func(ctx context.Context, _ *nectarhooks.ConnectionUpdated) error { return noop(ctx) })
			h.OnConnectionValidated(func(ctx context.Context, _ *nectarhooks.ConnectionValidated) error { return noop(ctx) })
			h.OnDocumentCreated(func(ctx context.Context, _ *nectarhooks.DocumentCreated) error { return noop(ctx) })
			h.OnDocumentUpdated(func(ctx context.Context, _ *nectarhooks.DocumentUpdated) error { return noop(ctx) })
			body := dispSample(t, et)
			header := f.header(t, "msg_allocs", dispT0, body)
			ctx := context.Background()

			parse := testing.AllocsPerRun(100, func() {
				if _, err := nectarhooks.Parse(body); err != nil {
					panic(err)
				}
			})
			dispatch := testing.AllocsPerRun(100, func() {
				if err := h.Dispatch(ctx, body, header); err != nil {
					panic(err)
				}
			})
			assert.LessOrEqual(t, dispatch-parse, 5.0, "Parse: %v allocations, Dispatch: %v", parse, dispatch)
		})
	}
}

// A request built by hand may leave ContentLength at 0 with a body, which
// then means "unknown" (http.NewRequest does so for readers it does not
// know); the Handler reads it rather than taking it for empty.
func TestHandlerReadsBodyOfUnknownLength(t *testing.T) {
	secret := nectarhookstest.NewSecret()
	h, err := nectarhooks.NewHandler(secret)
	require.NoError(t, err)
	var got string
	h.OnConnectionUpdated(func(_ context.Context, e *nectarhooks.ConnectionUpdated) error {
		got = e.ID
		return nil
	})
	signer, err := nectarhookstest.NewSigner(secret)
	require.NoError(t, err)
	body := nectarhookstest.Sample(nectarhooks.EventConnectionUpdated)

	for _, tc := range []struct {
		name          string
		contentLength int64
	}{
		{"zero meaning unknown", 0},
		{"chunked", -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got = ""
			// io.MultiReader hides the reader's length from http.NewRequest.
			r, err := http.NewRequest(http.MethodPost, "/hook", io.MultiReader(bytes.NewReader(body)))
			require.NoError(t, err)
			r.ContentLength = tc.contentLength
			r.Header = signer.Header(body)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			assert.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
			assert.Equal(t, "a6c70a54-34e7-4277-80b0-412869ce087c", got)
		})
	}
}
