package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
)

// BenchmarkListenReceive is one delivery through listen's handler
// (verify, diagnose, decode, keep, publish, report), beside its floor:
// the same delivery verified and parsed by the library alone. The ratio is
// what listen's bookkeeping costs; read it, not the absolute numbers.
func BenchmarkListenReceive(b *testing.B) {
	secret := nectarhookstest.NewSecret()
	signer, err := nectarhookstest.NewSigner(secret)
	if err != nil {
		b.Fatal(err)
	}
	body := nectarhookstest.Sample(nectarhooks.EventConnectionUpdated)
	header := signer.HeaderFor("msg_bench", time.Now(), body)
	request := func() *http.Request {
		r := httptest.NewRequest(http.MethodPost, "/hooks", bytes.NewReader(body))
		for k, vs := range header {
			r.Header[k] = vs
		}
		return r
	}
	b.Run("listen", func(b *testing.B) {
		l, err := newListener(listenConfig{secret: secret, tolerance: nectarhooks.DefaultTolerance, maxBody: 1 << 20, history: 500, historyBytes: 64 << 20})
		if err != nil {
			b.Fatal(err)
		}
		defer l.close()
		b.ReportAllocs()
		for b.Loop() {
			w := httptest.NewRecorder()
			l.ServeHTTP(w, request())
			if w.Code != http.StatusOK {
				b.Fatal(w.Code)
			}
		}
	})
	b.Run("floor=Verify+Parse", func(b *testing.B) {
		v, err := nectarhooks.NewVerifier(secret)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			r := request()
			var buf bytes.Buffer
			if _, err := buf.ReadFrom(r.Body); err != nil {
				b.Fatal(err)
			}
			if err := v.Verify(buf.Bytes(), r.Header); err != nil {
				b.Fatal(err)
			}
			if _, err := nectarhooks.Parse(buf.Bytes()); err != nil {
				b.Fatal(err)
			}
			httptest.NewRecorder().WriteHeader(http.StatusOK)
		}
	})
}
