package nectarhooks_test

import (
	"testing"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
)

// TestMemoryDeadLettersConformance holds MemoryDeadLetters to the
// DeadLetterStore contract. Instances share nothing, so the suite's
// instances on one namespace are one store.
func TestMemoryDeadLettersConformance(t *testing.T) {
	stores := map[string]*nectarhooks.MemoryDeadLetters{}
	nectarhookstest.TestDeadLetterStore(t, func(t *testing.T, opts nectarhookstest.StoreOptions) nectarhooks.DeadLetterStore {
		s, ok := stores[opts.Namespace]
		if !ok {
			s = nectarhooks.NewMemoryDeadLetters()
			stores[opts.Namespace] = s
		}
		return s
	})
}
