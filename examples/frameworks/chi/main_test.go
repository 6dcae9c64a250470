package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
)

func TestRouter(t *testing.T) {
	secret := nectarhookstest.NewSecret()
	signer, err := nectarhookstest.NewSigner(secret)
	require.NoError(t, err)
	sample := nectarhookstest.Sample(nectarhooks.EventConnectionUpdated)

	tests := []struct {
		name       string
		request    func() *http.Request
		wantStatus int
		wantCalls  int
	}{
		{
			name:       "signed sample reaches the callback",
			request:    func() *http.Request { return signer.Request("/webhooks/nectar", sample) },
			wantStatus: http.StatusOK,
			wantCalls:  1,
		},
		{
			name: "tampered body is refused",
			request: func() *http.Request {
				r := signer.Request("/webhooks/nectar", sample)
				r.Body = io.NopCloser(bytes.NewReader(bytes.Replace(sample, []byte("PENDING"), []byte("DELETED"), 1)))
				return r
			},
			wantStatus: http.StatusUnauthorized,
		},
		{
			name: "GET is refused by the router",
			request: func() *http.Request {
				return httptest.NewRequest(http.MethodGet, "/webhooks/nectar", nil)
			},
			wantStatus: http.StatusMethodNotAllowed,
		},
		{
			name: "the JSON API still works",
			request: func() *http.Request {
				return httptest.NewRequest(http.MethodPost, "/api/notes", bytes.NewReader([]byte(`{"text":"hi"}`)))
			},
			wantStatus: http.StatusCreated,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := nectarhooks.NewHandler(secret)
			require.NoError(t, err)
			calls := 0
			h.OnConnectionUpdated(func(_ context.Context, e *nectarhooks.ConnectionUpdated) error {
				calls++
				assert.Equal(t, nectarhooks.StatusConnected, e.Status)
				return nil
			})
			rec := httptest.NewRecorder()
			newRouter(h).ServeHTTP(rec, tt.request())
			assert.Equal(t, tt.wantStatus, rec.Code, rec.Body.String())
			assert.Equal(t, tt.wantCalls, calls)
		})
	}
}

// TestBodyMiddlewareBreaksSignatures shows why the webhook route stays out
// of the decoding group: behind middleware that drains the body the
// Handler has nothing to verify, and behind middleware that puts back a
// re-encoded body the signature no longer matches.
func TestBodyMiddlewareBreaksSignatures(t *testing.T) {
	secret := nectarhookstest.NewSecret()
	signer, err := nectarhookstest.NewSigner(secret)
	require.NoError(t, err)
	tests := []struct {
		name       string
		middleware func(http.Handler) http.Handler // nil for none
		wantStatus int
	}{
		{name: "apart from body middleware", wantStatus: http.StatusOK},
		{name: "behind middleware that drains the body", middleware: decodeJSON, wantStatus: http.StatusBadRequest},
		{name: "behind middleware that re-encodes the body", middleware: reencodeJSON, wantStatus: http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := nectarhooks.NewHandler(secret)
			require.NoError(t, err)
			calls := 0
			h.OnDocumentCreated(func(context.Context, *nectarhooks.DocumentCreated) error {
				calls++
				return nil
			})
			r := chi.NewRouter()
			if tt.middleware != nil {
				r.Use(tt.middleware)
			}
			r.Method(http.MethodPost, "/webhooks/nectar", h)
			rec := httptest.NewRecorder()
			r.ServeHTTP(rec, signer.Request("/webhooks/nectar", nectarhookstest.Sample(nectarhooks.EventDocumentCreated)))
			assert.Equal(t, tt.wantStatus, rec.Code, rec.Body.String())
			assert.Equal(t, tt.wantStatus == http.StatusOK, calls == 1)
		})
	}
}

// reencodeJSON decodes the body and puts back its re-encoding: the same
// content, different bytes (key order, white space).
func reencodeJSON(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			http.Error(w, "invalid JSON", http.StatusBadRequest)
			return
		}
		b, err := json.Marshal(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(b)), int64(len(b))
		next.ServeHTTP(w, r)
	})
}
