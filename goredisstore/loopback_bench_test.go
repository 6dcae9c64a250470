package goredisstore

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
)

// BenchmarkLoopbackDeliveries sends signed deliveries of new messages over
// loopback HTTP from benchSenders goroutines to a Handler with
// WithIdempotency, and reports deliveries per second: with goredisstore
// and with MemoryStore, in the same run, so that their ratio says what
// sharing the store across replicas costs a receiver. The callback does
// nothing, which makes the store's share as large as it can be.
//
// Run: go test -run '^$' -bench LoopbackDeliveries -count 5
func BenchmarkLoopbackDeliveries(b *testing.B) {
	b.Run("goredisstore", func(b *testing.B) {
		runDeliveries(b, storeForBench(b))
	})
	b.Run("MemoryStore", func(b *testing.B) {
		runDeliveries(b, nectarhooks.NewMemoryStore(0, benchTTL))
	})
}

func runDeliveries(b *testing.B, store nectarhooks.IdempotencyStore) {
	secret := nectarhookstest.NewSecret()
	signer, err := nectarhookstest.NewSigner(secret)
	if err != nil {
		b.Fatal(err)
	}
	h, err := nectarhooks.NewHandler(secret, nectarhooks.WithIdempotency(store))
	if err != nil {
		b.Fatal(err)
	}
	h.OnConnectionUpdated(func(context.Context, *nectarhooks.ConnectionUpdated) error { return nil })
	srv := httptest.NewServer(h)
	b.Cleanup(srv.Close)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: benchSenders}}
	b.Cleanup(client.CloseIdleConnections)
	payload := nectarhookstest.Sample(nectarhooks.EventConnectionUpdated)
	ctx := context.Background()

	runParallel(b, "deliveries/s", func(string) error {
		req, err := signer.NewRequest(ctx, srv.URL, payload)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Errorf("status %d", resp.StatusCode)
		}
		return nil
	})
}
