package nectarhooks

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"testing"
	"time"
)

// BenchmarkAccountHandler measures a delivery through NewAccountHandler,
// its keys cached, for 1, 1,000 and 10,000 accounts (each delivery to the
// next account in turn), beside a NewHandler of one secret on the same
// route: the per-request cost should not grow with the number of
// accounts, beyond what a larger working set costs the CPU's caches.
//
//	go test -run '^$' -bench 'AccountHandler' -benchmem -count 5 .
func BenchmarkAccountHandler(b *testing.B) {
	body, err := os.ReadFile("testdata/connection.updated.v2.json")
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	ts := strconv.FormatInt(now.Unix(), 10)
	callback := func(context.Context, *ConnectionUpdated) error { return nil }
	// signed returns n accounts' names and headers, each signed with its
	// own secret, and the lookup of those secrets.
	signed := func(n int) ([]string, []http.Header, KeyLookup) {
		names, headers, secrets := make([]string, n), make([]http.Header, n), map[string][]string{}
		for i := range n {
			secret := vtSecretOf(append(vtKey(byte(i), 24), byte(i>>8)))
			names[i] = "acct" + strconv.Itoa(i)
			secrets[names[i]] = []string{secret}
			headers[i] = vtHeaders(vtID, ts, vtNew(b, secret).Sign(vtID, now, body))
		}
		return names, headers, func(_ context.Context, account string) ([]string, error) { return secrets[account], nil }
	}
	run := func(b *testing.B, h http.Handler, names []string, headers []http.Header) {
		mux := http.NewServeMux()
		mux.Handle("POST /webhooks/{account}", h)
		reqs := make([]*http.Request, len(names))
		for i := range names {
			reqs[i] = httptest.NewRequest(http.MethodPost, "/webhooks/"+names[i], nil)
			reqs[i].Header = headers[i]
			reqs[i].ContentLength = int64(len(body))
		}
		serve := func(i int) {
			r := new(http.Request)
			*r = *reqs[i%len(reqs)]
			r.Body = io.NopCloser(bytes.NewReader(body))
			rr := httptest.NewRecorder()
			mux.ServeHTTP(rr, r)
			if rr.Code != http.StatusOK {
				b.Fatalf("answered %d: %s", rr.Code, rr.Body)
			}
		}
		for i := range reqs {
			serve(i) // fills the cache
		}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			serve(i)
			i++
		}
	}

	b.Run("single-secret", func(b *testing.B) {
		names, headers, lookup := signed(1)
		secrets, _ := lookup(context.Background(), names[0])
		h, err := NewHandler(secrets[0])
		if err != nil {
			b.Fatal(err)
		}
		h.OnConnectionUpdated(callback)
		run(b, h, names, headers)
	})
	for _, n := range []int{1, 1000, 10000} {
		b.Run("accounts="+strconv.Itoa(n), func(b *testing.B) {
			names, headers, lookup := signed(n)
			h, err := NewAccountHandler(func(r *http.Request) string { return r.PathValue("account") }, lookup)
			if err != nil {
				b.Fatal(err)
			}
			h.OnConnectionUpdated(callback)
			run(b, h, names, headers)
		})
	}
}
