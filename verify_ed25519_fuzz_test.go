package nectarhooks

import (
	"crypto/ed25519"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nectarhooks/nectarhooks/internal/edkey"
)

// FuzzVerifyAsymmetric checks that a Verifier of a public key and a
// secret never panics on arbitrary headers and fails with exactly one
// reason, accepts what the key's private half signs (v1a), with or
// without other entries around it, and refuses that message after any
// single change to its body, id, timestamp or signature.
func FuzzVerifyAsymmetric(f *testing.F) {
	f.Add([]byte("seed"), vtID, vtTSText, "v1a,abc v1,def", []byte(vtBody), vtTS, uint8(0), uint16(0), byte(1), "")
	f.Add([]byte{}, "", "", "", []byte{}, int64(0), uint8(7), uint16(3), byte(0), "v2,x")
	f.Add([]byte("k"), "msg_1", "+0001", "v1a,, v1a v1a,"+string(make([]byte, 88)), []byte("{}"), int64(-1), uint8(9), uint16(65535), byte(','), "v1,a ")
	f.Fuzz(func(t *testing.T, seed []byte, id, tsText, sigHeader string, body []byte, ts int64, mut uint8, pos uint16, val byte, around string) {
		var s [ed25519.SeedSize]byte
		copy(s[:], seed)
		sk := ed25519.NewKeyFromSeed(s[:])
		pub := edkey.FormatPublic(sk.Public().(ed25519.PublicKey))
		v, err := NewVerifier(pub, WithSecrets(vtSecretOf(vtFuzzKey(seed))), vtAt(time.Unix(ts, 0)), WithTolerance(time.Second))
		if err != nil {
			t.Fatal(err)
		}

		// Arbitrary headers.
		for _, h := range []http.Header{vtHeaders(id, tsText, sigHeader), vtHeadersNamed("Webhook-", id, tsText, sigHeader)} {
			if err := v.Verify(body, h); err != nil {
				vtCheckReason(t, err)
			}
		}

		// A message signed by the private half.
		if id == "" {
			id = "msg"
		}
		tsText = strconv.FormatInt(ts, 10)
		sig := edkey.Sign(sk, id, ts, body)
		header := func(id, ts, sig string) http.Header {
			if mut>>7 == 1 {
				return vtLower(vtHeaders(id, ts, sig))
			}
			return vtHeaders(id, ts, sig)
		}
		if err := v.Verify(body, header(id, tsText, sig)); err != nil {
			t.Fatalf("signed message refused: %v", err)
		}
		// Other entries before it are skipped, whatever they hold, as long
		// as they leave it an entry of its own and are not past the bound of
		// well-formed v1a entries.
		if err := v.Verify(body, header(id, tsText, around+" "+sig)); err != nil && strings.Count(around, "v1a,") < maxAsymmetricEntries {
			t.Fatalf("signed message after %q refused: %v", around, err)
		}

		// One change, which must be refused.
		x := val
		if x == 0 {
			x = 1
		}
		b := append([]byte{}, body...)
		at := func(n int) int { return int(pos) % n }
		switch mut % 8 {
		case 0:
			if len(b) == 0 {
				b = []byte{val}
			} else {
				b[at(len(b))] ^= x
			}
		case 1:
			i := at(len(b) + 1)
			b = append(append(append([]byte{}, b[:i]...), val), b[i:]...)
		case 2:
			ib := []byte(id)
			ib[at(len(ib))] ^= x
			id = string(ib)
		case 3:
			tsText = strconv.FormatInt(ts^1<<(pos%64), 10)
		case 4:
			sb := []byte(sig)
			sb[len("v1a,")+at(len(sb)-len("v1a,"))] ^= x
			sig = string(sb)
		case 5:
			sig = sig[:at(len(sig))]
		case 6:
			sig += string(vtBase64Alphabet[val%64])
		case 7:
			sig = "v1" + sig[len("v1a"):] // a v1a signature offered as v1
		}
		err = v.Verify(b, header(id, tsText, sig))
		if err == nil {
			t.Fatalf("mutation %d accepted: id %q, timestamp %q, signature %q, body %q", mut%8, id, tsText, sig, b)
		}
		vtCheckReason(t, err)
	})
}
