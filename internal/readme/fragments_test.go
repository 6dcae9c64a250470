package readme_test

// The fragments of the core module in README.md and docs/*.md, each inside
// as little program as it needs to compile, and run where running them
// proves something. TestREADMEFragmentsHaveCompiledCopies checks that the
// text here and in the markdown is the same; edit both together.

import (
	"context"
	"encoding/base64"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/internal/readme/events"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
)

// docs/receiving.md "Middleware mode".
func middlewareMode(mux *http.ServeMux, existingRoute http.Handler) {
	v, err := nectarhooks.NewVerifier(os.Getenv("NECTAR_WEBHOOK_SECRET"))
	if err != nil {
		log.Fatal(err)
	}
	mux.Handle("POST /webhooks/nectar", v.Middleware(existingRoute))
}

// docs/receiving.md "Without net/http": the Lambda sketch uses a package-level h.
var h *nectarhooks.Handler

func handle(ctx context.Context, req events.LambdaFunctionURLRequest) (events.LambdaFunctionURLResponse, error) {
	body := []byte(req.Body)
	if req.IsBase64Encoded {
		var err error
		if body, err = base64.StdEncoding.DecodeString(req.Body); err != nil {
			return events.LambdaFunctionURLResponse{StatusCode: http.StatusBadRequest}, nil
		}
	}
	header := http.Header{}
	for k, v := range req.Headers { // lower-case keys: Dispatch finds them anyway
		header[k] = []string{v}
	}
	err := h.Dispatch(ctx, body, header)
	return events.LambdaFunctionURLResponse{StatusCode: nectarhooks.StatusCode(err)}, nil
}

// README "Production checklist" and docs/receiving.md "Secret rotation".
func secretRotation(newSecret, oldSecret string) (*nectarhooks.Handler, error) {
	h, err := nectarhooks.NewHandler(newSecret, nectarhooks.WithSecrets(oldSecret))

	return h, err
}

// docs/retries.md "Retries and duplicate deliveries".
func idempotency(secret string) (*nectarhooks.Handler, error) {
	h, err := nectarhooks.NewHandler(secret,
		nectarhooks.WithIdempotency(nectarhooks.NewMemoryStore(0, 0)))

	return h, err
}

// README "Production checklist": the shutdown order with River. River's
// client and pgx's pool are interfaces here, so that the core module
// compiles it; docs/durable.md has the whole program, compiled in the
// riverqueue module.
func shutdownOrder(ctx context.Context, srv *http.Server, h *nectarhooks.Handler,
	client interface{ Stop(context.Context) error }, pool interface{ Close() }) {
	srv.Shutdown(ctx) // 1. the HTTP server: no new deliveries
	h.Shutdown(ctx)   // 2. the Handler: drains a WithAsync queue
	client.Stop(ctx)  // 3. River: running jobs finish
	pool.Close()      // 4. the database pool
}

// stopRecorder records the order of the Stop and Close calls.
type stopRecorder struct {
	name  string
	calls *[]string
}

func (r stopRecorder) Stop(context.Context) error { *r.calls = append(*r.calls, r.name); return nil }
func (r stopRecorder) Close()                     { *r.calls = append(*r.calls, r.name) }

func TestShutdownOrderFragment(t *testing.T) {
	secret := nectarhookstest.NewSecret()
	h, err := nectarhooks.NewHandler(secret, nectarhooks.WithAsync(1, 4))
	require.NoError(t, err)
	h.OnDocumentCreated(func(ctx context.Context, e *nectarhooks.DocumentCreated) error { return nil })
	srv := httptest.NewServer(h)
	var calls []string
	shutdownOrder(context.Background(), srv.Config, h, stopRecorder{"river", &calls}, stopRecorder{"pool", &calls})
	srv.Close()
	assert.Equal(t, []string{"river", "pool"}, calls)

	// The Handler was shut down before River: a delivery now is refused.
	signer, err := nectarhookstest.NewSigner(secret)
	require.NoError(t, err)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, signer.Request("/", nectarhookstest.Sample(nectarhooks.EventDocumentCreated)))
	assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
}

func TestMiddlewareModeFragment(t *testing.T) {
	secret := nectarhookstest.NewSecret()
	t.Setenv("NECTAR_WEBHOOK_SECRET", secret)
	reached := 0
	mux := http.NewServeMux()
	middlewareMode(mux, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached++
	}))
	signer, err := nectarhookstest.NewSigner(secret)
	require.NoError(t, err)

	tests := []struct {
		name    string
		req     *http.Request
		code    int
		reached int
	}{
		{"signed", signer.Request("/webhooks/nectar", nectarhookstest.Sample(nectarhooks.EventDocumentCreated)), http.StatusOK, 1},
		{"unsigned", httptest.NewRequest(http.MethodPost, "/webhooks/nectar", strings.NewReader("{}")), http.StatusUnauthorized, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			mux.ServeHTTP(rec, tt.req)
			assert.Equal(t, tt.code, rec.Code)
			assert.Equal(t, tt.reached, reached)
		})
	}
}

func TestLambdaFragment(t *testing.T) {
	secret := nectarhookstest.NewSecret()
	var err error
	h, err = nectarhooks.NewHandler(secret)
	require.NoError(t, err)
	var got string
	h.OnDocumentCreated(func(ctx context.Context, e *nectarhooks.DocumentCreated) error {
		got = e.ID
		return nil
	})
	signer, err := nectarhookstest.NewSigner(secret)
	require.NoError(t, err)
	payload := nectarhookstest.Sample(nectarhooks.EventDocumentCreated)
	headers := map[string]string{}
	for k, v := range signer.Header(payload) {
		headers[strings.ToLower(k)] = v[0]
	}

	tests := []struct {
		name string
		req  events.LambdaFunctionURLRequest
		code int
	}{
		{"plain body", events.LambdaFunctionURLRequest{Headers: headers, Body: string(payload)}, http.StatusOK},
		{"base64 body", events.LambdaFunctionURLRequest{Headers: headers, Body: base64.StdEncoding.EncodeToString(payload), IsBase64Encoded: true}, http.StatusOK},
		{"bad base64", events.LambdaFunctionURLRequest{Headers: headers, Body: "!", IsBase64Encoded: true}, http.StatusBadRequest},
		{"no headers", events.LambdaFunctionURLRequest{Body: string(payload)}, http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got = ""
			resp, err := handle(context.Background(), tt.req)
			require.NoError(t, err)
			assert.Equal(t, tt.code, resp.StatusCode)
			if tt.code == http.StatusOK {
				ev, err := nectarhooks.Parse(payload)
				require.NoError(t, err)
				assert.Equal(t, ev.(*nectarhooks.DocumentCreated).ID, got)
			}
		})
	}
}

func TestSecretRotationFragment(t *testing.T) {
	oldSecret, newSecret := nectarhookstest.NewSecret(), nectarhookstest.NewSecret()
	h, err := secretRotation(newSecret, oldSecret)
	require.NoError(t, err)
	for name, secret := range map[string]string{"old": oldSecret, "new": newSecret, "other": nectarhookstest.NewSecret()} {
		t.Run(name, func(t *testing.T) {
			signer, err := nectarhookstest.NewSigner(secret)
			require.NoError(t, err)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, signer.Request("/", nectarhookstest.Sample(nectarhooks.EventDocumentCreated)))
			want := http.StatusOK
			if name == "other" {
				want = http.StatusUnauthorized
			}
			assert.Equal(t, want, rec.Code)
		})
	}
}

func TestIdempotencyFragment(t *testing.T) {
	secret := nectarhookstest.NewSecret()
	h, err := idempotency(secret)
	require.NoError(t, err)
	calls := 0
	h.OnDocumentCreated(func(ctx context.Context, e *nectarhooks.DocumentCreated) error {
		calls++
		return nil
	})
	signer, err := nectarhookstest.NewSigner(secret)
	require.NoError(t, err)
	id := nectarhookstest.NewMessageID()
	for range 3 {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, signer.RequestFor("/", id, time.Now(), nectarhookstest.Sample(nectarhooks.EventDocumentCreated)))
		require.Equal(t, http.StatusOK, rec.Code)
	}
	assert.Equal(t, 1, calls, "three deliveries of one message run the callback once")
}
