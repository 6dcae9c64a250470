package nectarhooks_test

import (
	"bytes"
	"io"
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

// middlewareNext is the handler behind Verifier.Middleware in these tests:
// it records what it was passed and answers 204, so that an answer of 204
// can only come from it.
type middlewareNext struct {
	// mu orders next's writes before the test's reads when a server runs
	// it: the race detector sees no edge through a socket.
	mu     sync.Mutex
	calls  int
	body   []byte
	msg    nectarhooks.Message
	hasMsg bool
	again  []byte // a second read of the body, which must be empty
}

func (n *middlewareNext) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.calls++
	n.body, _ = io.ReadAll(r.Body)
	n.again, _ = io.ReadAll(r.Body)
	n.msg, n.hasMsg = nectarhooks.MessageFromContext(r.Context())
	w.WriteHeader(http.StatusNoContent)
}

func newMiddleware(t *testing.T, f *dispFixture, errs *dispErrRecorder, opts ...nectarhooks.Option) (http.Handler, *middlewareNext) {
	t.Helper()
	logger, _ := newDispLogger()
	opts = append([]nectarhooks.Option{
		nectarhooks.WithClock(nectarhookstest.FixedClock(dispT0)),
		nectarhooks.WithErrorHandler(errs.handle),
		nectarhooks.WithLogger(logger),
	}, opts...)
	v, err := nectarhooks.NewVerifier(f.secret, opts...)
	require.NoError(t, err)
	next := &middlewareNext{}
	return v.Middleware(next), next
}

func TestMiddlewarePassesAuthenticDeliveries(t *testing.T) {
	type row struct {
		name     string
		body     []byte
		chunked  bool
		wantType nectarhooks.EventType
	}
	var rows []row
	for _, et := range nectarhooks.EventTypes() {
		rows = append(rows, row{name: string(et), body: dispSample(t, et), wantType: et})
	}
	rows = append(rows,
		row{name: "chunked body", body: dispSample(t, nectarhooks.EventDocumentUpdated), chunked: true,
			wantType: nectarhooks.EventDocumentUpdated},
		row{name: "unknown event type", body: []byte(`{"eventType":"invoice.paid.v3","total":12}`),
			wantType: "invoice.paid.v3"},
		// The middleware only verifies: a payload Parse would refuse is
		// next's to judge, with an empty event type.
		row{name: "authentic but not JSON", body: []byte(`not json at all`), wantType: ""},
		row{name: "empty body", body: []byte{}, wantType: ""},
	)
	for _, tc := range rows {
		t.Run(tc.name, func(t *testing.T) {
			f := newDispFixture(t)
			var errs dispErrRecorder
			mw, next := newMiddleware(t, f, &errs)
			r := f.request(t, "msg_mw", tc.body)
			if tc.chunked {
				r.Body = io.NopCloser(io.MultiReader(bytes.NewReader(tc.body[:7]), bytes.NewReader(tc.body[7:])))
				r.ContentLength = -1
			}
			rr := httptest.NewRecorder()

			mw.ServeHTTP(rr, r)

			require.Equal(t, http.StatusNoContent, rr.Code, "answer %q", rr.Body.String())
			assert.Equal(t, 1, next.calls)
			assert.Equal(t, tc.body, next.body, "next read other bytes than were verified")
			assert.Empty(t, next.again, "the body did not end")
			require.True(t, next.hasMsg, "no Message in the request context")
			assert.Equal(t, "msg_mw", next.msg.ID)
			assert.True(t, dispT0.Equal(next.msg.Timestamp), "timestamp %s", next.msg.Timestamp)
			assert.Equal(t, tc.wantType, next.msg.EventType)
			assert.Equal(t, nectarhooks.PeekEventType(tc.body), next.msg.EventType)
			assert.Equal(t, tc.body, next.msg.Payload)
			assert.Empty(t, errs.all())
		})
	}
}

func TestMiddlewareRefusals(t *testing.T) {
	updated := dispSample(t, nectarhooks.EventConnectionUpdated)
	for _, tc := range []struct {
		name       string
		opts       []nectarhooks.Option
		edit       func(t *testing.T, f *dispFixture, r *http.Request)
		wantStatus int
		wantIs     []error
	}{
		{name: "GET", wantStatus: http.StatusMethodNotAllowed, wantIs: []error{nectarhooks.ErrMethodNotAllowed},
			edit: func(_ *testing.T, _ *dispFixture, r *http.Request) { r.Method = http.MethodGet }},
		{name: "Content-Length over the limit", opts: []nectarhooks.Option{nectarhooks.WithMaxBodyBytes(64)},
			wantStatus: http.StatusRequestEntityTooLarge, wantIs: []error{nectarhooks.ErrBodyTooLarge}},
		{name: "chunked body over the limit", opts: []nectarhooks.Option{nectarhooks.WithMaxBodyBytes(64)},
			wantStatus: http.StatusRequestEntityTooLarge, wantIs: []error{nectarhooks.ErrBodyTooLarge},
			edit: func(_ *testing.T, _ *dispFixture, r *http.Request) {
				r.Body = io.NopCloser(&dispEndlessReader{})
				r.ContentLength = -1
			}},
		{name: "body cut short", wantStatus: http.StatusBadRequest, wantIs: []error{nectarhooks.ErrReadBody},
			edit: func(_ *testing.T, _ *dispFixture, r *http.Request) {
				r.Body = io.NopCloser(strings.NewReader(`{"eventType"`)) // shorter than Content-Length
			}},
		{name: "missing headers", wantStatus: http.StatusUnauthorized,
			wantIs: []error{nectarhooks.ErrVerification, nectarhooks.ErrMissingHeaders},
			edit:   func(_ *testing.T, _ *dispFixture, r *http.Request) { r.Header.Del("Svix-Id") }},
		{name: "malformed timestamp", wantStatus: http.StatusUnauthorized,
			wantIs: []error{nectarhooks.ErrVerification, nectarhooks.ErrInvalidHeaders},
			edit:   func(_ *testing.T, _ *dispFixture, r *http.Request) { r.Header.Set("Svix-Timestamp", "1e9") }},
		{name: "wrong signature", wantStatus: http.StatusUnauthorized,
			wantIs: []error{nectarhooks.ErrVerification, nectarhooks.ErrNoMatchingSignature},
			edit: func(t *testing.T, f *dispFixture, r *http.Request) {
				sig, err := f.wh.Sign("msg_mw", dispT0, []byte(`{}`))
				require.NoError(t, err)
				r.Header.Set("Svix-Signature", sig)
			}},
		{name: "too old", wantStatus: http.StatusUnauthorized,
			wantIs: []error{nectarhooks.ErrVerification, nectarhooks.ErrMessageTooOld},
			edit: func(t *testing.T, f *dispFixture, r *http.Request) {
				for k, vs := range f.header(t, "msg_mw", dispT0.Add(-10*time.Minute), updated) {
					r.Header[k] = vs
				}
			}},
		{name: "too new", wantStatus: http.StatusUnauthorized,
			wantIs: []error{nectarhooks.ErrVerification, nectarhooks.ErrMessageTooNew},
			edit: func(t *testing.T, f *dispFixture, r *http.Request) {
				for k, vs := range f.header(t, "msg_mw", dispT0.Add(10*time.Minute), updated) {
					r.Header[k] = vs
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newDispFixture(t)
			var errs dispErrRecorder
			mw, next := newMiddleware(t, f, &errs, tc.opts...)
			r := f.request(t, "msg_mw", updated)
			if tc.edit != nil {
				tc.edit(t, f, r)
			}
			rr := httptest.NewRecorder()

			mw.ServeHTTP(rr, r)

			require.Equal(t, tc.wantStatus, rr.Code, "answer %q", rr.Body.String())
			assert.Zero(t, next.calls, "next ran for a refused request")
			dispAssertPlainAnswer(t, rr, f)
			if tc.wantStatus == http.StatusMethodNotAllowed {
				assert.Equal(t, http.MethodPost, rr.Header().Get("Allow"))
			}
			calls := errs.all()
			require.Len(t, calls, 1, "error handler calls")
			assert.Equal(t, tc.wantStatus, calls[0].status)
			assert.Equal(t, tc.wantStatus, nectarhooks.StatusCode(calls[0].err))
			assert.False(t, calls[0].hasMsg, "a refused request carried a Message")
			for _, want := range tc.wantIs {
				assert.ErrorIs(t, calls[0].err, want)
			}
		})
	}
}

// TestMiddlewareOverLoopback puts the middleware behind a real server, so
// that next reads the body from a request net/http built.
func TestMiddlewareOverLoopback(t *testing.T) {
	f := newDispFixture(t)
	var errs dispErrRecorder
	mw, next := newMiddleware(t, f, &errs)
	srv := httptest.NewServer(mw)
	defer srv.Close()
	client := &http.Client{Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()

	for _, tc := range []struct {
		name      string
		tamper    bool
		want      int
		wantCalls int
	}{
		{"authentic", false, http.StatusNoContent, 1},
		{"tampered", true, http.StatusUnauthorized, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := dispSample(t, nectarhooks.EventDocumentCreated)
			d := dispDelivery{id: "msg_loop", body: body, header: f.header(t, "msg_loop", dispT0, body)}
			if tc.tamper {
				d.body = append(bytes.Clone(body[:len(body)-2]), ' ', '}')
			}
			assert.Equal(t, tc.want, dispPost(client, srv.URL, d))
			next.mu.Lock()
			defer next.mu.Unlock()
			assert.Equal(t, tc.wantCalls, next.calls)
			assert.Equal(t, body, next.body)
		})
	}
	assert.Len(t, errs.all(), 1)
}
