package main

import (
	"bytes"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
)

func TestWebhookRoute(t *testing.T) {
	secret := nectarhookstest.NewSecret()
	signer, err := nectarhookstest.NewSigner(secret)
	require.NoError(t, err)
	const connID, docID = "a6c70a54-34e7-4277-80b0-412869ce087c", "b2d4e6f8-1234-5678-9abc-def012345678"

	signed := func(t nectarhooks.EventType) func() *http.Request {
		return func() *http.Request {
			return signer.RequestFor("/webhooks/nectar", "msg_"+string(t), time.Now(), nectarhookstest.Sample(t))
		}
	}
	tests := []struct {
		name       string
		request    func() *http.Request
		wantStatus int
		want       []received // what reaches the route; nil for nothing
		wantLog    string     // the route's log line; "" for none
	}{
		{
			name: "connection.created.v2, typed by its shape", request: signed(nectarhooks.EventConnectionCreated),
			wantStatus: http.StatusNoContent,
			want:       []received{{MessageID: "msg_connection.created.v2", EventType: nectarhooks.EventConnectionCreated, ID: connID, Status: "CONNECTED"}},
			wantLog:    "accepted message msg_connection.created.v2: connection.created.v2 " + connID,
		},
		{
			name: "connection.updated.v2", request: signed(nectarhooks.EventConnectionUpdated),
			wantStatus: http.StatusNoContent,
			want:       []received{{MessageID: "msg_connection.updated.v2", EventType: nectarhooks.EventConnectionUpdated, ID: connID, Status: "CONNECTED"}},
			wantLog:    "accepted message msg_connection.updated.v2: connection.updated.v2 " + connID,
		},
		{
			name: "connection.validated.v2", request: signed(nectarhooks.EventConnectionValidated),
			wantStatus: http.StatusNoContent,
			want:       []received{{MessageID: "msg_connection.validated.v2", EventType: nectarhooks.EventConnectionValidated, ID: connID, Status: "CONNECTED"}},
			wantLog:    "accepted message msg_connection.validated.v2: connection.validated.v2 " + connID,
		},
		{
			name: "document.created.v2", request: signed(nectarhooks.EventDocumentCreated),
			wantStatus: http.StatusNoContent,
			want:       []received{{MessageID: "msg_document.created.v2", EventType: nectarhooks.EventDocumentCreated, ID: docID}},
			wantLog:    "accepted message msg_document.created.v2: document.created.v2 " + docID,
		},
		{
			name: "document.updated.v2", request: signed(nectarhooks.EventDocumentUpdated),
			wantStatus: http.StatusNoContent,
			want:       []received{{MessageID: "msg_document.updated.v2", EventType: nectarhooks.EventDocumentUpdated, ID: docID}},
			wantLog:    "accepted message msg_document.updated.v2: document.updated.v2 " + docID,
		},
		{
			name: "signed but not JSON reaches the route, which refuses it",
			request: func() *http.Request {
				return signer.Request("/webhooks/nectar", []byte("not json"))
			},
			wantStatus: http.StatusBadRequest,
			wantLog:    "refused message msg_",
		},
		{
			name: "tampered body never reaches the route",
			request: func() *http.Request {
				r := signer.Request("/webhooks/nectar", nectarhookstest.Sample(nectarhooks.EventConnectionUpdated))
				forged := bytes.Replace(nectarhookstest.Sample(nectarhooks.EventConnectionUpdated), []byte("CONNECTED"), []byte("DELETED!!"), 1)
				r.Body = io.NopCloser(bytes.NewReader(forged))
				return r
			},
			wantStatus: http.StatusUnauthorized,
		},
		{
			name: "unsigned request never reaches the route",
			request: func() *http.Request {
				return httptest.NewRequest(http.MethodPost, "/webhooks/nectar", bytes.NewReader(nectarhookstest.Sample(nectarhooks.EventDocumentCreated)))
			},
			wantStatus: http.StatusUnauthorized,
		},
		{
			name: "stale signature never reaches the route",
			request: func() *http.Request {
				return signer.RequestFor("/webhooks/nectar", "msg_old", time.Now().Add(-time.Hour), nectarhookstest.Sample(nectarhooks.EventDocumentCreated))
			},
			wantStatus: http.StatusUnauthorized,
		},
		{
			name: "GET is not routed",
			request: func() *http.Request {
				return httptest.NewRequest(http.MethodGet, "/webhooks/nectar", nil)
			},
			wantStatus: http.StatusMethodNotAllowed,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := nectarhooks.NewVerifier(secret)
			require.NoError(t, err)
			in := &inbox{}
			var logs strings.Builder
			rec := httptest.NewRecorder()
			newMux(v, in, log.New(&logs, "", 0)).ServeHTTP(rec, tt.request())
			assert.Equal(t, tt.wantStatus, rec.Code, rec.Body.String())
			assert.Equal(t, tt.want, in.all())
			if tt.wantLog == "" {
				assert.Empty(t, logs.String(), "the route logs nothing it did not see")
				return
			}
			lines := strings.Split(strings.TrimSuffix(logs.String(), "\n"), "\n")
			require.Len(t, lines, 1, "one line per delivery")
			assert.Contains(t, lines[0], tt.wantLog)
		})
	}
}

// TestRouteNeedsMiddleware shows why the route checks the context: mounted
// without the middleware by mistake, it refuses everything.
func TestRouteNeedsMiddleware(t *testing.T) {
	signer, err := nectarhookstest.NewSigner(nectarhookstest.NewSecret())
	require.NoError(t, err)
	tests := []struct {
		name    string
		payload []byte
	}{
		{name: "signed sample", payload: nectarhookstest.Sample(nectarhooks.EventDocumentCreated)},
		{name: "empty body", payload: []byte{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := &inbox{}
			rec := httptest.NewRecorder()
			webhookRoute(in, log.New(io.Discard, "", 0)).ServeHTTP(rec, signer.Request("/", tt.payload))
			assert.Equal(t, http.StatusUnauthorized, rec.Code)
			assert.Empty(t, in.all())
		})
	}
}
