package readme_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
)

// keyStore is where a service keeps its accounts' keys.
type keyStore interface {
	Keys(ctx context.Context, account string) ([]string, error)
}

// README "Many endpoints, and ed25519 keys" and docs/keys.md.
func accountRoute(mux *http.ServeMux, secrets keyStore) error {
	h, err := nectarhooks.NewAccountHandler(
		func(r *http.Request) string { return r.PathValue("account") },
		func(ctx context.Context, account string) ([]string, error) {
			return secrets.Keys(ctx, account) // or nectarhooks.ErrUnknownAccount
		},
	)
	mux.Handle("POST /webhooks/nectar/{account}", h)

	return err
}

type mapKeys map[string][]string

func (m mapKeys) Keys(_ context.Context, account string) ([]string, error) {
	if k, ok := m[account]; ok {
		return k, nil
	}
	return nil, nectarhooks.ErrUnknownAccount
}

func TestAccountRoute(t *testing.T) {
	secret := nectarhookstest.NewSecret()
	mux := http.NewServeMux()
	require.NoError(t, accountRoute(mux, mapKeys{"acme": {secret}}))
	signer, err := nectarhookstest.NewSigner(secret)
	require.NoError(t, err)
	payload := nectarhookstest.Sample(nectarhooks.EventDocumentCreated)
	for account, want := range map[string]int{"acme": 200, "other": 401} {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, signer.Request("/webhooks/nectar/"+account, payload))
		assert.Equal(t, want, rec.Code, account)
	}
}

// docs/keys.md "ed25519 (v1a) signatures".
func publicKeyHandler() (*nectarhooks.Handler, error) {
	h, err := nectarhooks.NewHandler(os.Getenv("NECTAR_WEBHOOK_PUBLIC_KEY")) // whpk_...

	return h, err
}

// docs/keys.md "Moving an endpoint from HMAC to ed25519".
func hmacToEd25519(publicKey, oldSecret string) (*nectarhooks.Handler, error) {
	h, err := nectarhooks.NewHandler(publicKey, nectarhooks.WithSecrets(oldSecret))

	return h, err
}

func TestHMACToEd25519(t *testing.T) {
	signingKey, publicKey := nectarhookstest.NewKeyPair()
	oldSecret := nectarhookstest.NewSecret()
	h, err := hmacToEd25519(publicKey, oldSecret)
	require.NoError(t, err)
	payload := nectarhookstest.Sample(nectarhooks.EventDocumentCreated)
	for _, key := range []string{signingKey, oldSecret} {
		signer, err := nectarhookstest.NewSigner(key)
		require.NoError(t, err)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, signer.Request("/", payload))
		assert.Equal(t, 200, rec.Code)
	}
	t.Setenv("NECTAR_WEBHOOK_PUBLIC_KEY", publicKey)
	_, err = publicKeyHandler()
	require.NoError(t, err)
}
