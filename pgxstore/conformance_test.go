package pgxstore

import (
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
	"github.com/stretchr/testify/require"
)

// TestConformance runs the IdempotencyStore conformance suite: each
// namespace is a table of its own, and each store a Store with a pool of
// its own, as a replica has.
func TestConformance(t *testing.T) {
	var (
		mu      sync.Mutex
		created = map[string]bool{} // namespaces whose table is to be dropped
	)
	nectarhookstest.TestIdempotencyStore(t, func(t *testing.T, opts nectarhookstest.StoreOptions) nectarhooks.IdempotencyStore {
		table := "nectarhooks_test_" + opts.Namespace
		// Skipped, if it is to be, before the lock: a skip ends the
		// goroutine, and would leave mu locked for the other subtests.
		nectarhookstest.PostgresURL(t)
		mu.Lock()
		if !created[opts.Namespace] {
			created[opts.Namespace] = true
			dropAtEnd(t, "DROP TABLE IF EXISTS "+pgx.Identifier{table}.Sanitize())
		}
		mu.Unlock()
		pool := newPool(t, func(cfg *pgxpool.Config) {
			if opts.Dial != nil {
				cfg.ConnConfig.DialFunc = opts.Dial
			}
		})
		s, err := New(testContext(t), pool, WithTable(table), WithTTL(opts.TTL))
		require.NoError(t, err)
		return s
	})
}
