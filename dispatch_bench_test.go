package nectarhooks_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	svix "github.com/svix/svix-webhooks/go"

	"github.com/nectarhooks/nectarhooks"
)

// These benchmarks put the package beside what a Go team writes today with
// the Svix library and encoding/json, in the same run, so that the ratios
// hold on a shared, noisy machine:
//
//	go test -run '^$' -bench 'Pipeline|Parse|Loopback' -benchmem -count 5 .

// benchSink keeps callbacks' reads from being optimised away.
var benchSink string

// benchCallback is the callback of both pipelines: it reads fields of the
// event, as any real callback would.
func benchCallback(_ context.Context, e *nectarhooks.ConnectionUpdated) error {
	if e.Old.Status == nil {
		return errors.New("no previous status")
	}
	benchSink = string(*e.Old.Status)
	return nil
}

// peerHandler is the receiving pipeline written by hand: read the body,
// verify it with the Svix library, peek at the event type with
// encoding/json, decode the typed struct, call the callback, answer 200.
func peerHandler(wh *svix.Webhook) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, "unreadable body", http.StatusBadRequest)
			return
		}
		if err := wh.Verify(body, r.Header); err != nil {
			http.Error(w, "invalid signature", http.StatusUnauthorized)
			return
		}
		var peek struct {
			EventType string `json:"eventType"`
		}
		if err := json.Unmarshal(body, &peek); err != nil {
			http.Error(w, "invalid payload", http.StatusBadRequest)
			return
		}
		switch nectarhooks.EventType(peek.EventType) {
		case nectarhooks.EventConnectionUpdated:
			var e nectarhooks.ConnectionUpdated
			if err := json.Unmarshal(body, &e); err != nil {
				http.Error(w, "invalid payload", http.StatusBadRequest)
				return
			}
			if err := benchCallback(r.Context(), &e); err != nil {
				http.Error(w, "callback failed", http.StatusInternalServerError)
				return
			}
		}
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, "ok\n")
	})
}

// benchDelivery returns the documented connection.updated.v2 sample, its
// Svix headers signed now, and the endpoint's secret.
func benchDelivery(b *testing.B) (body []byte, header http.Header, f *dispFixture) {
	f = newDispFixture(b)
	body = dispSample(b, nectarhooks.EventConnectionUpdated)
	return body, f.header(b, "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", time.Now(), body), f
}

// benchHandler is the Handler both in-process and loopback benchmarks
// measure: default options and benchCallback.
func benchHandler(b *testing.B, secret string) *nectarhooks.Handler {
	h, err := nectarhooks.NewHandler(secret)
	if err != nil {
		b.Fatal(err)
	}
	h.OnConnectionUpdated(benchCallback)
	return h
}

func BenchmarkPipeline(b *testing.B) {
	body, header, f := benchDelivery(b)
	h := benchHandler(b, f.secret)
	template := httptest.NewRequest(http.MethodPost, "/webhooks/nectar", nil)
	template.Header = header
	template.ContentLength = int64(len(body))

	for _, side := range []struct {
		name string
		h    http.Handler
	}{
		{"nectarhooks", h},
		{"peer", peerHandler(f.wh)},
		// harness is the cost both sides share: the fresh request and
		// recorder of every iteration, and an answer. Subtracting it
		// from both gives the pipelines' own costs.
		{"harness", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })},
	} {
		b.Run(side.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				r := new(http.Request)
				*r = *template
				r.Body = io.NopCloser(bytes.NewReader(body))
				rr := httptest.NewRecorder()
				side.h.ServeHTTP(rr, r)
				if rr.Code != http.StatusOK {
					b.Fatalf("answered %d: %s", rr.Code, rr.Body)
				}
			}
		})
	}
}

func BenchmarkParse(b *testing.B) {
	types := nectarhooks.EventTypes()
	b.Run("nectarhooks", func(b *testing.B) {
		for _, et := range types {
			payload := dispSample(b, et)
			b.Run(string(et), func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(payload)))
				for b.Loop() {
					ev, err := nectarhooks.Parse(payload)
					if err != nil || ev.Type() != et {
						b.Fatalf("Parse: %v, %v", ev, err)
					}
				}
			})
		}
	})
	// encoding-json does what Parse replaces: peek at the event type, then
	// decode into the typed struct. It is handed the type of samples that
	// have no eventType, which Parse has to infer.
	b.Run("encoding-json", func(b *testing.B) {
		for _, et := range types {
			payload := dispSample(b, et)
			b.Run(string(et), func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(payload)))
				for b.Loop() {
					var peek struct {
						EventType string `json:"eventType"`
					}
					if err := json.Unmarshal(payload, &peek); err != nil {
						b.Fatal(err)
					}
					if err := json.Unmarshal(payload, newTypedEvent(et)); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	})
}

// newTypedEvent returns a new, empty struct of et's type.
func newTypedEvent(et nectarhooks.EventType) nectarhooks.Event {
	switch et {
	case nectarhooks.EventConnectionCreated:
		return &nectarhooks.ConnectionCreated{}
	case nectarhooks.EventConnectionUpdated:
		return &nectarhooks.ConnectionUpdated{}
	case nectarhooks.EventConnectionValidated:
		return &nectarhooks.ConnectionValidated{}
	case nectarhooks.EventDocumentCreated:
		return &nectarhooks.DocumentCreated{}
	case nectarhooks.EventDocumentUpdated:
		return &nectarhooks.DocumentUpdated{}
	}
	panic("no typed event for " + et)
}

// BenchmarkLoopback measures requests per second over a real loopback
// server: the Handler against a bare handler that only reads the body and
// answers 200, with the same clients and the same signed deliveries.
func BenchmarkLoopback(b *testing.B) {
	body, header, f := benchDelivery(b)
	h := benchHandler(b, f.secret)
	bare := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadAll(r.Body); err != nil {
			http.Error(w, "unreadable body", http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, "ok\n")
	})

	for _, side := range []struct {
		name string
		h    http.Handler
	}{
		{"handler", h},
		{"bare", bare},
	} {
		b.Run(side.name, func(b *testing.B) {
			const parallelism = 4 // client goroutines per GOMAXPROCS
			srv := httptest.NewServer(side.h)
			defer srv.Close()
			client := &http.Client{
				Timeout: 10 * time.Second,
				// One connection per client goroutine, kept alive.
				Transport: &http.Transport{MaxConnsPerHost: 64, MaxIdleConnsPerHost: 64},
			}
			defer client.CloseIdleConnections()
			b.ReportAllocs()
			b.SetParallelism(parallelism)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req, err := http.NewRequest(http.MethodPost, srv.URL, bytes.NewReader(body))
					if err != nil {
						b.Error(err)
						return
					}
					req.Header = header // only read, by the transport
					resp, err := client.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err != nil || resp.StatusCode != http.StatusOK {
						b.Errorf("answered %d, %v", resp.StatusCode, err)
						return
					}
				}
			})
		})
	}
}
