package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nectarhooks/nectarhooks/nectarhookstest"
)

// benchConcurrency is the senders in flight in both benchmarks.
const benchConcurrency = 8

// BenchmarkLoadOverhead measures what load costs per delivery beside the
// least a sender can do, in the same run against the same trivial
// endpoint: "load" runs the generator (scheduler, signing each delivery,
// histogram, accounting); "bare" is benchConcurrency goroutines posting
// one pre-signed request after another with a plain http.Client. Their
// ratio says how much of a receiver's measured capacity is the tool's.
func BenchmarkLoadOverhead(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, "ok")
	}))
	defer srv.Close()
	signer, err := nectarhookstest.NewSigner(nectarhookstest.NewSecret())
	if err != nil {
		b.Fatal(err)
	}
	body := nectarhookstest.Sample("connection.updated.v2")

	b.Run("load", func(b *testing.B) {
		g := newLoadGen(loadConfig{
			urls:        []string{srv.URL},
			signer:      signer,
			payloads:    []payload{{label: "connection.updated.v2", body: body}},
			messages:    b.N,
			concurrency: benchConcurrency,
			timeout:     15 * time.Second,
			retryScale:  1,
			newID:       nectarhookstest.NewMessageID,
			now:         time.Now,
		})
		b.ResetTimer()
		g.run(context.Background())
		b.StopTimer()
		if r := g.report(false); !r.Pass || r.Deliveries != int64(b.N) {
			b.Fatalf("%d deliveries, pass %v", r.Deliveries, r.Pass)
		}
	})

	b.Run("bare", func(b *testing.B) {
		transport := http.DefaultTransport.(*http.Transport).Clone()
		transport.MaxIdleConnsPerHost = benchConcurrency
		client := &http.Client{Transport: transport}
		defer transport.CloseIdleConnections()
		header := signer.HeaderFor("msg_bench", time.Now(), body)
		var next atomic.Int64
		var wg sync.WaitGroup
		b.ResetTimer()
		for range benchConcurrency {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for next.Add(1) <= int64(b.N) {
					req, _ := http.NewRequest(http.MethodPost, srv.URL, bytes.NewReader(body))
					for k, v := range header {
						req.Header[k] = v
					}
					resp, err := client.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}()
		}
		wg.Wait()
	})
}
