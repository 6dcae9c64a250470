package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
)

func TestServer(t *testing.T) {
	secret := nectarhookstest.NewSecret()
	signer, err := nectarhookstest.NewSigner(secret)
	require.NoError(t, err)
	sample := nectarhookstest.Sample(nectarhooks.EventConnectionCreated)

	tests := []struct {
		name       string
		request    func() *http.Request
		wantStatus int
		wantCalls  int
	}{
		{
			name:       "signed sample passes CSRF and reaches the callback",
			request:    func() *http.Request { return signer.Request(webhookPath, sample) },
			wantStatus: http.StatusOK,
			wantCalls:  1,
		},
		{
			name: "tampered body is refused",
			request: func() *http.Request {
				r := signer.Request(webhookPath, sample)
				r.Body = io.NopCloser(bytes.NewReader(bytes.Replace(sample, []byte("CONNECTED"), []byte("SUSPENDED"), 1)))
				return r
			},
			wantStatus: http.StatusUnauthorized,
		},
		{
			name: "unsigned request is refused",
			request: func() *http.Request {
				return httptest.NewRequest(http.MethodPost, webhookPath, bytes.NewReader(sample))
			},
			wantStatus: http.StatusUnauthorized,
		},
		{
			name: "other routes keep CSRF protection",
			request: func() *http.Request {
				r := httptest.NewRequest(http.MethodPost, "/account/settings", strings.NewReader(`{"email":"a@example.com"}`))
				r.Header.Set(echo.HeaderContentType, echo.MIMEApplicationJSON)
				return r
			},
			wantStatus: http.StatusBadRequest, // missing CSRF token
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := nectarhooks.NewHandler(secret)
			require.NoError(t, err)
			calls := 0
			h.OnConnectionCreated(func(_ context.Context, e *nectarhooks.ConnectionCreated) error {
				calls++
				assert.Equal(t, "Demo Company", e.Company.Name)
				return nil
			})
			rec := httptest.NewRecorder()
			newServer(h).ServeHTTP(rec, tt.request())
			assert.Equal(t, tt.wantStatus, rec.Code, rec.Body.String())
			assert.Equal(t, tt.wantCalls, calls)
		})
	}
}

// TestCSRFRefusesDeliveries shows why the webhook route skips CSRF: echo's
// default CSRF middleware refuses every delivery Svix sends.
func TestCSRFRefusesDeliveries(t *testing.T) {
	secret := nectarhookstest.NewSecret()
	signer, err := nectarhookstest.NewSigner(secret)
	require.NoError(t, err)
	tests := []struct {
		name       string
		csrf       echo.MiddlewareFunc // nil for none
		wantStatus int
	}{
		{name: "without CSRF", wantStatus: http.StatusOK},
		{name: "CSRF skipping the webhook route", csrf: middleware.CSRFWithConfig(middleware.CSRFConfig{
			Skipper: func(c echo.Context) bool { return c.Path() == webhookPath },
		}), wantStatus: http.StatusOK},
		{name: "default CSRF", csrf: middleware.CSRF(), wantStatus: http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := nectarhooks.NewHandler(secret)
			require.NoError(t, err)
			e := echo.New()
			if tt.csrf != nil {
				e.Use(tt.csrf)
			}
			e.POST(webhookPath, echo.WrapHandler(h))
			rec := httptest.NewRecorder()
			e.ServeHTTP(rec, signer.Request(webhookPath, nectarhookstest.Sample(nectarhooks.EventDocumentUpdated)))
			assert.Equal(t, tt.wantStatus, rec.Code, rec.Body.String())
		})
	}
}
