package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
)

func TestRouter(t *testing.T) {
	gin.SetMode(gin.TestMode)
	secret := nectarhookstest.NewSecret()
	signer, err := nectarhookstest.NewSigner(secret)
	require.NoError(t, err)
	sample := nectarhookstest.Sample(nectarhooks.EventDocumentCreated)

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
				r.Body = io.NopCloser(bytes.NewReader(bytes.Replace(sample, []byte("Facility 1"), []byte("Facility 2"), 1)))
				return r
			},
			wantStatus: http.StatusUnauthorized,
		},
		{
			name: "unsigned request is refused",
			request: func() *http.Request {
				return httptest.NewRequest(http.MethodPost, "/webhooks/nectar", bytes.NewReader(sample))
			},
			wantStatus: http.StatusUnauthorized,
		},
		{
			name: "the JSON API still binds its bodies",
			request: func() *http.Request {
				return httptest.NewRequest(http.MethodPost, "/api/notes", bytes.NewReader([]byte(`{"text":"hi"}`)))
			},
			wantStatus: http.StatusCreated,
		},
		{
			name: "and refuses what does not bind",
			request: func() *http.Request {
				return httptest.NewRequest(http.MethodPost, "/api/notes", bytes.NewReader([]byte(`not json`)))
			},
			wantStatus: http.StatusBadRequest,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := nectarhooks.NewHandler(secret)
			require.NoError(t, err)
			calls := 0
			h.OnDocumentCreated(func(_ context.Context, e *nectarhooks.DocumentCreated) error {
				calls++
				assert.Equal(t, "California Facility 1", e.Site.Name)
				return nil
			})
			rec := httptest.NewRecorder()
			newRouter(h).ServeHTTP(rec, tt.request())
			assert.Equal(t, tt.wantStatus, rec.Code, rec.Body.String())
			assert.Equal(t, tt.wantCalls, calls)
		})
	}
}

// TestBindingBreaksSignatures shows why the webhook route stays out of the
// binding group: behind bindJSON the Handler finds the body already read.
func TestBindingBreaksSignatures(t *testing.T) {
	gin.SetMode(gin.TestMode)
	secret := nectarhookstest.NewSecret()
	signer, err := nectarhookstest.NewSigner(secret)
	require.NoError(t, err)
	tests := []struct {
		name       string
		behind     bool
		wantStatus int
	}{
		{name: "apart from the binding middleware", wantStatus: http.StatusOK},
		{name: "behind the binding middleware", behind: true, wantStatus: http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := nectarhooks.NewHandler(secret)
			require.NoError(t, err)
			r := gin.New()
			if tt.behind {
				r.Use(bindJSON)
			}
			r.POST("/webhooks/nectar", gin.WrapH(h))
			rec := httptest.NewRecorder()
			r.ServeHTTP(rec, signer.Request("/webhooks/nectar", nectarhookstest.Sample(nectarhooks.EventConnectionCreated)))
			assert.Equal(t, tt.wantStatus, rec.Code, rec.Body.String())
		})
	}
}
