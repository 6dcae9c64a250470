package main

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nectarhooks/nectarhooks/nectarhookstest"
)

// keygenPair runs keygen and returns the two keys it printed.
func keygenPair(t *testing.T) (signingKey, publicKey string) {
	t.Helper()
	res := runCLI(t, invocation{}, "keygen")
	require.Equal(t, exitOK, res.code, res.stderr)
	lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
	require.Len(t, lines, 2, res.stdout)
	signingKey = lines[0][strings.LastIndexByte(lines[0], ' ')+1:]
	publicKey = lines[1][strings.LastIndexByte(lines[1], ' ')+1:]
	require.True(t, strings.HasPrefix(signingKey, "whsk_"), lines[0])
	require.True(t, strings.HasPrefix(publicKey, "whpk_"), lines[1])
	return signingKey, publicKey
}

func TestKeygen(t *testing.T) {
	sk, pk := keygenPair(t)
	sk2, _ := keygenPair(t)
	assert.NotEqual(t, sk, sk2, "a new pair each run")

	res := runCLI(t, invocation{}, "keygen", "-public-of", sk)
	require.Equal(t, exitOK, res.code, res.stderr)
	assert.Equal(t, pk+"\n", res.stdout)

	for _, bad := range [][]string{
		{"keygen", "-public-of", pk},
		{"keygen", "-public-of", "whsk_AAAA"},
		{"keygen", "extra"},
	} {
		res := runCLI(t, invocation{}, bad...)
		assert.Equal(t, exitUsage, res.code, "%v: %s", bad, res.stdout)
		assert.NotContains(t, res.stderr, strings.TrimPrefix(sk, "whsk_"))
	}
}

// TestSendVerifyEd25519 sends with a whsk_ key to a receiver of its whpk_
// key, then checks the capture with verify, with either half and with
// another pair's public key.
func TestSendVerifyEd25519(t *testing.T) {
	sk, pk := keygenPair(t)
	_, otherPK := keygenPair(t)
	rcv := newReceiver(t, pk)
	res := runCLI(t, invocation{vars: map[string]string{secretEnv: sk}}, "send", "-url", rcv.url, "document.updated.v2")
	require.Equal(t, exitOK, res.code, res.stderr)
	reqs, events := rcv.seen()
	require.Len(t, reqs, 1)
	require.Len(t, events, 1)
	require.True(t, strings.HasPrefix(reqs[0].header.Get("Svix-Signature"), "v1a,"))

	var headers strings.Builder
	require.NoError(t, reqs[0].header.Write(&headers))
	hpath := writeFile(t, "headers.txt", []byte(headers.String()))
	bpath := writeFile(t, "body.json", reqs[0].body)
	for _, key := range []string{pk, sk} {
		res = runCLI(t, invocation{}, "verify", "-secret", key, "-headers", hpath, "-body", bpath)
		assert.Equal(t, exitOK, res.code, res.stdout+res.stderr)
	}
	res = runCLI(t, invocation{}, "verify", "-secret", otherPK, "-headers", hpath, "-body", bpath)
	assert.Equal(t, exitRefused, res.code, res.stdout)
	assert.Contains(t, res.stdout, "The v1a signature in svix-signature is not this body's")
	res = runCLI(t, invocation{}, "verify", "-secret", nectarhookstest.NewSecret(), "-headers", hpath, "-body", bpath)
	assert.Equal(t, exitRefused, res.code, res.stdout)
	assert.Contains(t, res.stdout, "has no v1 entry")
}

// TestSignWithKeys checks sign with a whsk_ key, and that a whpk_ key,
// which cannot sign, is refused by name.
func TestSignWithKeys(t *testing.T) {
	sk, pk := keygenPair(t)
	body := writeFile(t, "payload.json", []byte(`{"test": 2432232314}`))
	res := runCLI(t, invocation{}, "sign", "-secret", sk, "-id", "msg_1", "-timestamp", "1614265330", body)
	require.Equal(t, exitOK, res.code, res.stderr)
	h := parseSignOutput(t, res.stdout)
	require.True(t, strings.HasPrefix(h.Get("svix-signature"), "v1a,"))
	signer, err := nectarhookstest.NewSigner(sk)
	require.NoError(t, err)
	assert.Equal(t, signer.Sign("msg_1", time.Unix(1614265330, 0), []byte(`{"test": 2432232314}`)), h.Get("svix-signature"))

	for _, cmd := range []string{"sign", "send"} {
		res = runCLI(t, invocation{}, cmd, "-secret", pk, "-url", "http://127.0.0.1:1/", "document.created.v2")
		assert.Equal(t, exitUsage, res.code)
		assert.Contains(t, res.stderr, "a whpk_ public key cannot sign")
	}
}

// TestLoadEd25519 runs load with a whsk_ key against a receiver of its
// whpk_ key: every message is acknowledged, and the tampered ones are
// refused.
func TestLoadEd25519(t *testing.T) {
	sk, pk := keygenPair(t)
	rcv := newReceiver(t, pk)
	code, r, res := loadRun(t, sk, "-url", rcv.url, "-n", "20", "-tamper", "0.25")
	require.Equal(t, exitOK, code, res.stderr)
	requireConsistent(t, r)
	reqs, events := rcv.seen()
	require.NotEmpty(t, reqs)
	assert.Len(t, events, 20, "each message's callback ran once")
	v1a := 0
	for _, q := range reqs {
		if strings.HasPrefix(q.header.Get("Svix-Signature"), "v1a,") {
			v1a++
		}
	}
	// The genuine deliveries, and the forgeries whose body changed after
	// signing; the other forgeries are signed with a whsec_ key of load's.
	assert.GreaterOrEqual(t, v1a, 20)
	assert.Positive(t, r.Status["401"], "tampered deliveries are refused")
}
