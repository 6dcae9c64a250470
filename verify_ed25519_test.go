package nectarhooks

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nectarhooks/nectarhooks/internal/edkey"
)

// edVectors is testdata/v1a/vectors.json, which make-vectors.mjs writes
// with Node's crypto.
type edVectors struct {
	KeyPairs []struct{ Whsk, Whpk string } `json:"keyPairs"`
	Signed   struct {
		Key, ID, Body, Signature string
		Timestamp                int64
	} `json:"signed"`
	Cases []struct {
		Name, ID, Body, Signature string
		Timestamp                 int64
		Keys                      []string
		Valid, Unbranded          bool
	} `json:"cases"`
}

func edLoadVectors(t *testing.T) edVectors {
	t.Helper()
	b, err := os.ReadFile("testdata/v1a/vectors.json")
	require.NoError(t, err)
	var v edVectors
	require.NoError(t, json.Unmarshal(b, &v))
	require.NotEmpty(t, v.Cases)
	return v
}

// edNewKey is a deterministic key pair, distinct per seed.
func edNewKey(seed byte) (ed25519.PrivateKey, string) {
	k := ed25519.NewKeyFromSeed(vtKey(seed, ed25519.SeedSize))
	return k, edkey.FormatPublic(k.Public().(ed25519.PublicKey))
}

// TestVerifyV1aNodeVectors checks the Verifier's decisions on signatures
// Node's crypto made: valid, tampered, truncated, wrong key, malleated,
// mixed with v1, rotated.
func TestVerifyV1aNodeVectors(t *testing.T) {
	vec := edLoadVectors(t)
	for _, c := range vec.Cases {
		t.Run(c.Name, func(t *testing.T) {
			v, err := NewVerifier(c.Keys[0], WithSecrets(c.Keys[1:]...), vtAt(time.Unix(c.Timestamp, 0)))
			require.NoError(t, err)
			ts := strconv.FormatInt(c.Timestamp, 10)
			h := vtHeaders(c.ID, ts, c.Signature)
			if c.Unbranded {
				h = vtHeadersNamed("Webhook-", c.ID, ts, c.Signature)
			}
			err = v.Verify([]byte(c.Body), h)
			if c.Valid {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, ErrNoMatchingSignature)
			vtCheckReason(t, err)
		})
	}
}

// TestV1aKeysInterop checks that the Go side reads Node's whsk_ keys as the
// pairs of its whpk_ keys, and signs as Node does (ed25519 signatures are
// deterministic).
func TestV1aKeysInterop(t *testing.T) {
	vec := edLoadVectors(t)
	for i, kp := range vec.KeyPairs {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			sk, err := edkey.Signing(kp.Whsk)
			require.NoError(t, err)
			assert.Equal(t, kp.Whpk, edkey.FormatPublic(sk.Public().(ed25519.PublicKey)))
			assert.Equal(t, kp.Whsk, edkey.FormatSigning(sk))
			// The seed alone is read as the same key.
			seedOnly, err := edkey.Signing("whsk_" + base64.StdEncoding.EncodeToString(sk.Seed()))
			require.NoError(t, err)
			assert.Equal(t, sk, seedOnly)
		})
	}
	s := vec.Signed
	sk, err := edkey.Signing(s.Key)
	require.NoError(t, err)
	assert.Equal(t, s.Signature, edkey.Sign(sk, s.ID, s.Timestamp, []byte(s.Body)))
}

// TestV1aKeyErrors checks what NewVerifier says of unusable keys: a whsk_
// private key is named as such, anywhere it is given.
func TestV1aKeyErrors(t *testing.T) {
	sk, pub := edNewKey(1)
	whsk := edkey.FormatSigning(sk)
	for _, c := range []struct {
		name    string
		secret  string
		more    []string
		private bool
	}{
		{"private key", whsk, nil, true},
		{"private key with space", " " + whsk + "\n", nil, true},
		{"private key in WithSecrets", pub, []string{whsk}, true},
		{"public key too short", "whpk_" + base64.StdEncoding.EncodeToString(make([]byte, 31)), nil, false},
		{"public key too long", "whpk_" + base64.StdEncoding.EncodeToString(make([]byte, 33)), nil, false},
		{"public key not base64", "whpk_%%%", nil, false},
		{"public key empty", "whpk_", nil, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := NewVerifier(c.secret, WithSecrets(c.more...))
			require.ErrorIs(t, err, ErrInvalidSecret)
			assert.Equal(t, c.private, errors.Is(err, ErrPrivateKey), "%v", err)
			assert.NotContains(t, err.Error(), strings.TrimPrefix(whsk, "whsk_"), "the key is repeated")
			_, err = NewHandler(c.secret, WithSecrets(c.more...))
			require.ErrorIs(t, err, ErrInvalidSecret)
		})
	}
	// A public key with space around it and without padding is read.
	_, err := NewVerifier(" " + strings.TrimRight(pub, "=") + "\n")
	require.NoError(t, err)
}

// TestVerifyV1a signs with Go and checks the rules the vectors do not
// cover: the bound on v1a entries, both header spellings, Sign on a
// Verifier of public keys, and S + L built here as well.
func TestVerifyV1a(t *testing.T) {
	sk, pub := edNewKey(2)
	at := time.Unix(vtTS, 0)
	body := []byte(vtBody)
	good := edkey.Sign(sk, vtID, vtTS, body)
	v := vtNew(t, pub, vtAt(at))
	junk := func(n int) string {
		// Well-formed entries that do not verify.
		return strings.Repeat("v1a,"+base64.StdEncoding.EncodeToString(make([]byte, 64))+" ", n)
	}
	for _, c := range []struct {
		name  string
		sigs  string
		valid bool
	}{
		{"alone", good, true},
		{"after 3 well-formed entries", junk(3) + good, true},
		{"after 4 well-formed entries (the bound)", junk(4) + good, false},
		{"after malformed entries, which do not count", strings.Repeat("v1a,abc ", 50) + good, true},
		{"S + L", edMalleate(t, good), false},
		{"S + L + L", edMalleate(t, edMalleate(t, good)), false},
		{"lower-case base64 letter changed", good[:10] + string(good[10]^0x20) + good[11:], false},
		{"last character's unused bits set", good[:len(good)-3] + string(good[len(good)-3]+1) + "==", false},
		{"empty v1a", "v1a,", false},
		{"v1a without comma", "v1a" + good[4:], false},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, h := range []http.Header{vtHeaders(vtID, vtTSText, c.sigs), vtLower(vtHeadersNamed("Webhook-", vtID, vtTSText, c.sigs))} {
				err := v.Verify(body, h)
				if c.valid {
					require.NoError(t, err)
					continue
				}
				require.Error(t, err)
				vtCheckReason(t, err)
			}
		})
	}
	assert.Empty(t, v.Sign(vtID, at, body), "a Verifier of public keys cannot sign")
}

// edMalleate returns the v1a entry with S replaced by S + L, which
// crypto/ed25519 must refuse: RFC 8032 requires S < L.
func edMalleate(t *testing.T, entry string) string {
	t.Helper()
	sig, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(entry, "v1a,"))
	require.NoError(t, err)
	l, _ := new(big.Int).SetString("7237005577332262213973186563042994240857116359379907606001950938285454250989", 10)
	le := func(b []byte) *big.Int {
		r := make([]byte, len(b))
		for i := range b {
			r[len(b)-1-i] = b[i]
		}
		return new(big.Int).SetBytes(r)
	}
	s := le(sig[32:])
	s.Add(s, l)
	be := s.FillBytes(make([]byte, 32))
	for i := range 32 {
		sig[32+i] = be[31-i]
	}
	return "v1a," + base64.StdEncoding.EncodeToString(sig)
}

func TestVerifyV1aAllocs(t *testing.T) {
	if RaceEnabled {
		t.Skip("the race detector makes sync.Pool drop items, so allocations vary")
	}
	skOld, pubOld := edNewKey(3)
	skNew, pubNew := edNewKey(4)
	secret := vtSecretOf(vtKey(42, 24))
	v := vtNew(t, pubNew, vtAtKA(), WithSecrets(pubOld, secret))
	body := []byte(strings.Repeat(`{"a":"0123456789abcdef"}`, 43))[:1024]
	sigNew := edkey.Sign(skNew, vtID, vtTS, body)
	sigOld := edkey.Sign(skOld, vtID, vtTS, body)
	// A check that fails costs crypto/ed25519 one allocation (Go 1.26
	// builds its error with errors.New), so the second key matches after
	// at most one; ours add none.
	for _, c := range []struct {
		name   string
		h      http.Header
		allocs float64
	}{
		{"canonical", vtHeaders(vtID, vtTSText, sigNew), 0},
		{"lower-case keys", vtLower(vtHeaders(vtID, vtTSText, sigNew)), 0},
		{"mixed header", vtHeaders(vtID, vtTSText, "v1,"+strings.Repeat("A", 43)+"= "+sigNew), 0},
		{"second key", vtHeaders(vtID, vtTSText, sigOld), 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			var err error
			allocs := testing.AllocsPerRun(100, func() { err = v.Verify(body, c.h) })
			require.NoError(t, err)
			assert.LessOrEqual(t, allocs, c.allocs)
		})
	}
}
