package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
)

// FuzzListenDelivery sends listen arbitrary deliveries: any signed
// headers, any body. It must not panic; its verdict must be the
// verifier's; what it prints must be inert in a terminal; what it keeps
// must encode as the JSON the page reads.
func FuzzListenDelivery(f *testing.F) {
	secret := "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	now := time.Unix(1796400000, 0)
	signer, err := nectarhookstest.NewSigner(secret)
	if err != nil {
		f.Fatal(err)
	}
	sample := nectarhookstest.Sample(nectarhooks.EventConnectionCreated)
	h := signer.HeaderFor("msg_fuzz", now, sample)
	f.Add(h.Get("svix-id"), h.Get("svix-timestamp"), h.Get("svix-signature"), sample)
	f.Add("msg_\x1b[2J", "1796400000", "v1a,abc v2,x", []byte(hostilePayload))
	f.Add("", "", "", []byte("\xff\xfe\u202e"))
	v, err := nectarhooks.NewVerifier(secret, nectarhooks.WithClock(nectarhookstest.FixedClock(now)))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, id, ts, sig string, body []byte) {
		l, err := newListener(listenConfig{secret: secret, tolerance: nectarhooks.DefaultTolerance, maxBody: 1 << 20, history: 4, historyBytes: 1 << 20, now: nectarhookstest.FixedClock(now)})
		if err != nil {
			t.Fatal(err)
		}
		defer l.close()
		var out bytes.Buffer
		l.report = func(d *record) { writeDeliveryLine(&out, d) }
		req := httptest.NewRequest(http.MethodPost, "/hooks", bytes.NewReader(body))
		header := http.Header{"Svix-Id": {id}, "Svix-Timestamp": {ts}, "Svix-Signature": {sig}}
		for k, vs := range header {
			req.Header[k] = vs
		}
		l.ServeHTTP(httptest.NewRecorder(), req)
		d, ok := l.hist.get(1)
		if !ok {
			t.Fatal("the delivery was not kept")
		}
		if want := v.Verify(body, req.Header) == nil; d.Verdict.OK != want {
			t.Fatalf("verdict %+v, the verifier says ok=%v", d.Verdict, want)
		}
		if !d.Verdict.OK && d.Verdict.Title == "" {
			t.Fatal("a refusal without a title")
		}
		for _, r := range strings.TrimSuffix(out.String(), "\n") {
			if r != '\n' && needsEscape(r) {
				t.Fatalf("raw %U printed: %q", r, out.String())
			}
		}
		if _, err := json.Marshal(summarize(&d)); err != nil {
			t.Fatal(err)
		}
	})
}
