package goredisstore

import (
	"sync"
	"testing"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
	"github.com/redis/go-redis/v9"
)

// TestConformance runs the IdempotencyStore conformance suite on the store,
// claiming both ways (SET NX GET, and the script for servers before Redis
// 7.0). Each store the suite asks for has a client of its own, as a replica
// has; a namespace becomes a key prefix, deleted when its subtest ends.
func TestConformance(t *testing.T) {
	for _, mode := range claimModes {
		t.Run(mode.name, func(t *testing.T) {
			var mu sync.Mutex
			cleaned := map[string]bool{} // prefixes whose deletion is registered
			nectarhookstest.TestIdempotencyStore(t, func(t *testing.T, opts nectarhookstest.StoreOptions) nectarhooks.IdempotencyStore {
				// The store's own client, through the suite's link when it
				// gives one, bounded by its callers' contexts as the
				// package documentation advises.
				c := redis.NewClient(&redis.Options{Addr: nectarhookstest.RedisAddr(t), Dialer: opts.Dial, ContextTimeoutEnabled: true})
				t.Cleanup(func() { _ = c.Close() })
				prefix := "nectarhooks-test:" + opts.Namespace + ":"
				mu.Lock()
				first := !cleaned[prefix]
				cleaned[prefix] = true
				mu.Unlock()
				if first {
					// On a client of its own: the store's link may be
					// frozen when the test ends.
					deleteAtCleanup(t, testClient(t), prefix)
				}
				s := New(c, WithPrefix(prefix), WithTTL(opts.TTL))
				s.claimByScript.Store(mode.byScript)
				return s
			})
		})
	}
}
