package main

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
)

// TestListenPublicKey: listen -secret whpk_… verifies a v1a delivery
// signed with the pair's whsk_ key, names the failed check for one signed
// with another pair's key (no signature for this key, not "another kind
// of key"), and for a v1 (HMAC) delivery says the key is of another kind.
func TestListenPublicKey(t *testing.T) {
	now := time.Unix(1796400000, 0)
	signing, public := nectarhookstest.NewKeyPair()
	otherSigning, _ := nectarhookstest.NewKeyPair()
	signer := func(key string) *nectarhookstest.Signer {
		s, err := nectarhookstest.NewSigner(key)
		require.NoError(t, err)
		return s
	}
	sample := nectarhookstest.Sample(nectarhooks.EventConnectionCreated)
	tests := []struct {
		name   string
		header http.Header
		check  string
		title  string
		status int
	}{
		{"the pair's signing key", signer(signing).HeaderFor("msg_v1a_ok", now, sample), checkVerified, "verified", 200},
		{"another pair's signing key", signer(otherSigning).HeaderFor("msg_v1a_other", now, sample), checkNoSignature, "no signature for this key", 401},
		{"an HMAC secret", signer(nectarhookstest.NewSecret()).HeaderFor("msg_v1", now, sample), checkSecretFormat, "v1 entries, no v1a", 401},
	}
	_, srv := newTestListener(t, listenConfig{secret: public, now: nectarhookstest.FixedClock(now)})
	l := srv.Config.Handler.(*listener)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, text := postTo(t, srv.URL+"/hooks", tt.header, sample)
			assert.Equal(t, tt.status, resp.StatusCode, text)
			d, ok := l.hist.get(int64(i + 1))
			require.True(t, ok)
			assert.Equal(t, tt.check, d.Verdict.Check, d.Verdict.Title)
			assert.Contains(t, d.Verdict.Title, tt.title)
		})
	}
}
