package goredisstore

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// FuzzIDs feeds the store message ids of any bytes: svix-id is the
// sender's, checked by the signature but not for its form. Each id must
// map to its own key, prefix+id byte for byte (Redis keys are binary-safe,
// and a hash tag in an id still names one key), and go through a whole
// claim, completion and Forget, by either way of claiming. Seeds: testdata/fuzz/FuzzIDs.
func FuzzIDs(f *testing.F) {
	c := testClient(f)
	prefix := testPrefix(f, c)
	s, scripted := New(c, WithPrefix(prefix)), New(c, WithPrefix(prefix))
	scripted.claimByScript.Store(true)
	f.Fuzz(func(t *testing.T, id string) {
		for _, s := range []*Store{s, scripted} {
			claimCompleteForget(t, s, c, id)
		}
	})
}

func claimCompleteForget(t *testing.T, s *Store, c *redis.Client, id string) {
	ctx := context.Background()
	key := s.prefix + id
	claim, token, err := s.Claim(ctx, id, time.Hour)
	if err != nil || claim != acquired {
		t.Fatalf("first claim of %q: %v, %v", id, claim, err)
	}
	if got := c.Get(ctx, key).Val(); got != inFlightPrefix+token {
		t.Fatalf("key %q holds %q, want the claim %q", key, got, inFlightPrefix+token)
	}
	if claim, _, err := s.Claim(ctx, id, time.Hour); err != nil || claim != inFlight {
		t.Fatalf("second claim of %q: %v, %v", id, claim, err)
	}
	if err := s.Complete(ctx, id, token); err != nil {
		t.Fatal(err)
	}
	if claim, _, err := s.Claim(ctx, id, time.Hour); err != nil || claim != done {
		t.Fatalf("claim of %q after Complete: %v, %v", id, claim, err)
	}
	if err := s.Forget(ctx, id); err != nil {
		t.Fatal(err)
	}
	if n := c.Exists(ctx, key).Val(); n != 0 {
		t.Fatalf("key %q still exists after Forget", key)
	}
}
