package nectarhookstest_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
)

// TestSignerEd25519NodeVector checks that a Signer of a whsk_ key signs
// as Node's crypto does (testdata/v1a, made by make-vectors.mjs).
func TestSignerEd25519NodeVector(t *testing.T) {
	b, err := os.ReadFile("../testdata/v1a/vectors.json")
	require.NoError(t, err)
	var vec struct {
		Signed struct {
			Key, ID, Body, Signature string
			Timestamp                int64
		} `json:"signed"`
	}
	require.NoError(t, json.Unmarshal(b, &vec))
	s, err := nectarhookstest.NewSigner(vec.Signed.Key)
	require.NoError(t, err)
	assert.Equal(t, vec.Signed.Signature, s.Sign(vec.Signed.ID, time.Unix(vec.Signed.Timestamp, 0), []byte(vec.Signed.Body)))
}

// TestKeyPair checks that a Handler of the public key accepts what a
// Signer of the private key signs, and refuses the private key itself.
func TestKeyPair(t *testing.T) {
	sk, pk := nectarhookstest.NewKeyPair()
	require.True(t, strings.HasPrefix(sk, "whsk_"))
	require.True(t, strings.HasPrefix(pk, "whpk_"))
	sk2, pk2 := nectarhookstest.NewKeyPair()
	require.NotEqual(t, sk, sk2)
	require.NotEqual(t, pk, pk2)

	signer, err := nectarhookstest.NewSigner(sk)
	require.NoError(t, err)
	for _, c := range []struct {
		name   string
		keys   []string
		status int
	}{
		{"its public key", []string{pk}, http.StatusOK},
		{"beside a secret", []string{nectarhookstest.NewSecret(), pk}, http.StatusOK},
		{"another public key", []string{pk2}, http.StatusUnauthorized},
		{"a secret alone", []string{nectarhookstest.NewSecret()}, http.StatusUnauthorized},
	} {
		t.Run(c.name, func(t *testing.T) {
			h, err := nectarhooks.NewHandler(c.keys[0], nectarhooks.WithSecrets(c.keys[1:]...))
			require.NoError(t, err)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, signer.Request("/", nectarhookstest.Sample(nectarhooks.EventDocumentCreated)))
			assert.Equal(t, c.status, rec.Code, rec.Body.String())
		})
	}
	_, err = nectarhooks.NewHandler(sk)
	require.ErrorIs(t, err, nectarhooks.ErrPrivateKey)

	// A 64-byte key whose second half is not the public key of its first.
	other, _ := nectarhookstest.NewKeyPair()
	damaged := sk[:len("whsk_")+43] + other[len("whsk_")+43:]
	for _, bad := range []string{"whsk_", "whsk_%%%", "whsk_" + strings.Repeat("A", 40), damaged} {
		_, err := nectarhookstest.NewSigner(bad)
		require.ErrorIs(t, err, nectarhooks.ErrInvalidSecret, bad)
	}
}
