package nectarhooks

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strconv"
	"testing"
	"time"

	svix "github.com/svix/svix-webhooks/go"
)

// BenchmarkVerify compares Verify with the Svix library's and with a bare
// HMAC-SHA256 over the same signed content, the floor for any verifier.
// Both verifiers read the real clock.
func BenchmarkVerify(b *testing.B) {
	for _, size := range []struct {
		name string
		n    int
	}{{"1KiB", 1 << 10}, {"64KiB", 64 << 10}} {
		b.Run("size="+size.name, func(b *testing.B) {
			key := vtKey(60, 24)
			secret := vtSecretOf(key)
			body := make([]byte, size.n)
			for i := range body {
				body[i] = ' ' + byte(i%95)
			}
			// Set up per run: the timestamp must stay within tolerance.
			ts := time.Now()
			tsText := strconv.FormatInt(ts.Unix(), 10)
			wh, err := svix.NewWebhook(secret)
			if err != nil {
				b.Fatal(err)
			}
			sig, err := wh.Sign(vtID, ts, body)
			if err != nil {
				b.Fatal(err)
			}
			header := http.Header{"Svix-Id": {vtID}, "Svix-Timestamp": {tsText}, "Svix-Signature": {sig}}
			ours, err := NewVerifier(secret)
			if err != nil {
				b.Fatal(err)
			}

			b.Run("nectarhooks", func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(body)))
				for b.Loop() {
					if err := ours.Verify(body, header); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("svix", func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(body)))
				for b.Loop() {
					if err := wh.Verify(body, header); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("hmac-floor", func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(body)))
				mac := hmac.New(sha256.New, key)
				prefix := []byte(vtID + "." + tsText + ".")
				sum := make([]byte, 0, sha256.Size)
				for b.Loop() {
					mac.Reset()
					mac.Write(prefix)
					mac.Write(body)
					sum = mac.Sum(sum[:0])
				}
				// Keeps the work observable, and checks it is the real one.
				if "v1,"+base64.StdEncoding.EncodeToString(sum) != sig {
					b.Fatal("the floor computes another signature")
				}
			})
		})
	}
}

// BenchmarkVerifyJunkSignatureHeader measures refusing a signature header
// of a megabyte of junk, beside the Svix library, which splits it.
func BenchmarkVerifyJunkSignatureHeader(b *testing.B) {
	ts := time.Now()
	tsText := strconv.FormatInt(ts.Unix(), 10)
	secret := vtSecretOf(vtKey(61, 24))
	ours, err := NewVerifier(secret)
	if err != nil {
		b.Fatal(err)
	}
	wh, err := svix.NewWebhook(secret)
	if err != nil {
		b.Fatal(err)
	}
	body := []byte(vtBody)
	for _, junk := range vtJunkSignatureHeaders() {
		header := http.Header{"Svix-Id": {vtID}, "Svix-Timestamp": {tsText}, "Svix-Signature": {junk.sigs}}
		b.Run(junk.name, func(b *testing.B) {
			b.Run("nectarhooks", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if ours.Verify(body, header) == nil {
						b.Fatal("accepted")
					}
				}
			})
			b.Run("svix", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if wh.Verify(body, header) == nil {
						b.Fatal("accepted")
					}
				}
			})
		})
	}
}
