package nectarhooks

import (
	"crypto/ed25519"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/nectarhooks/nectarhooks/internal/edkey"
)

// BenchmarkVerifyV1a compares Verify of a v1a (ed25519) signature with
// Verify of a v1 (HMAC) one and with crypto/ed25519.Verify alone over the
// same signed content, the floor for any v1a verifier.
func BenchmarkVerifyV1a(b *testing.B) {
	for _, size := range []struct {
		name string
		n    int
	}{{"1KiB", 1 << 10}, {"64KiB", 64 << 10}} {
		b.Run("size="+size.name, func(b *testing.B) {
			sk, pub := edNewKey(70)
			secret := vtSecretOf(vtKey(70, 24))
			body := make([]byte, size.n)
			for i := range body {
				body[i] = ' ' + byte(i%95)
			}
			ts := time.Now()
			tsText := strconv.FormatInt(ts.Unix(), 10)
			edV, err := NewVerifier(pub)
			if err != nil {
				b.Fatal(err)
			}
			macV, err := NewVerifier(secret)
			if err != nil {
				b.Fatal(err)
			}
			edHeader := http.Header{"Svix-Id": {vtID}, "Svix-Timestamp": {tsText}, "Svix-Signature": {edkey.Sign(sk, vtID, ts.Unix(), body)}}
			macHeader := http.Header{"Svix-Id": {vtID}, "Svix-Timestamp": {tsText}, "Svix-Signature": {macV.Sign(vtID, ts, body)}}

			b.Run("v1a", func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(body)))
				for b.Loop() {
					if err := edV.Verify(body, edHeader); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("v1", func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(body)))
				for b.Loop() {
					if err := macV.Verify(body, macHeader); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("ed25519-floor", func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(body)))
				msg := append([]byte(vtID+"."+tsText+"."), body...)
				sig := ed25519.Sign(sk, msg)
				pubKey := sk.Public().(ed25519.PublicKey)
				for b.Loop() {
					if !ed25519.Verify(pubKey, msg, sig) {
						b.Fatal("the floor refuses the signature")
					}
				}
			})
		})
	}
}
