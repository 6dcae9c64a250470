package frameworks_test

// The "Mounting" fragment of docs/receiving.md, one paragraph per router,
// compiled in this module because it names chi, gin and echo. The core
// module's internal/readme test checks that the text here and in
// docs/receiving.md is the same; edit both together. TestMountedRoutes runs each mount.

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/go-chi/chi/v5"
	"github.com/labstack/echo/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
)

func mountNetHTTP(mux *http.ServeMux, h *nectarhooks.Handler) {
	// net/http
	mux.Handle("POST /webhooks/nectar", h)
}

func mountChi(r chi.Router, h *nectarhooks.Handler) {
	// chi
	r.Method(http.MethodPost, "/webhooks/nectar", h)
}

func mountGin(r *gin.Engine, h *nectarhooks.Handler) {
	// gin
	r.POST("/webhooks/nectar", gin.WrapH(h))
}

func mountEcho(e *echo.Echo, h *nectarhooks.Handler) {
	// echo: and keep echo's CSRF middleware off the route
	e.POST("/webhooks/nectar", echo.WrapHandler(h))
}

func TestMountedRoutes(t *testing.T) {
	gin.SetMode(gin.TestMode)
	secret := nectarhookstest.NewSecret()
	signer, err := nectarhookstest.NewSigner(secret)
	require.NoError(t, err)

	routers := []struct {
		name  string
		mount func(*nectarhooks.Handler) http.Handler
	}{
		{"net/http", func(h *nectarhooks.Handler) http.Handler {
			mux := http.NewServeMux()
			mountNetHTTP(mux, h)
			return mux
		}},
		{"chi", func(h *nectarhooks.Handler) http.Handler {
			r := chi.NewRouter()
			mountChi(r, h)
			return r
		}},
		{"gin", func(h *nectarhooks.Handler) http.Handler {
			r := gin.New()
			mountGin(r, h)
			return r
		}},
		{"echo", func(h *nectarhooks.Handler) http.Handler {
			e := echo.New()
			mountEcho(e, h)
			return e
		}},
	}
	for _, rt := range routers {
		t.Run(rt.name, func(t *testing.T) {
			h, err := nectarhooks.NewHandler(secret)
			require.NoError(t, err)
			calls := 0
			h.OnDocumentCreated(func(ctx context.Context, e *nectarhooks.DocumentCreated) error {
				calls++
				return nil
			})
			router := rt.mount(h)

			rec := httptest.NewRecorder()
			router.ServeHTTP(rec, signer.Request("/webhooks/nectar", nectarhookstest.Sample(nectarhooks.EventDocumentCreated)))
			assert.Equal(t, http.StatusOK, rec.Code)
			assert.Equal(t, 1, calls)

			rec = httptest.NewRecorder()
			router.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/webhooks/nectar", nil))
			assert.Equal(t, http.StatusUnauthorized, rec.Code)
			assert.Equal(t, 1, calls)
		})
	}
}
