package goredisstore

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nectarhooks/nectarhooks"
	"github.com/redis/go-redis/v9"
)

// The values a message's key holds: a claim in flight, with its token, or
// a processed message.
const (
	inFlightPrefix = "inflight:"
	doneValue      = "done"
)

// ErrForeignValue is the error (matched with errors.Is) of a Claim that
// found, under the store's key for the message, a value the store does not
// write: the prefix is shared with other data. The Handler answers 503, as
// for any store failure, rather than guess whether the message was
// processed.
var ErrForeignValue = errors.New("goredisstore: key holds a value this store did not write")

// Store is a nectarhooks.IdempotencyStore on Redis, shared by every replica
// whose Store has the same client database and prefix. It is safe for
// concurrent use. Make one with New.
type Store struct {
	client redis.UniversalClient
	prefix string
	ttl    time.Duration

	// claimByScript is set once the server has refused SET with NX and
	// GET together (Redis before 7.0): Claim then runs claimScript.
	claimByScript atomic.Bool
}

var _ nectarhooks.IdempotencyStore = (*Store)(nil)

// New returns a Store that keeps its keys in client's database, under the
// prefix set by WithPrefix (default DefaultPrefix), and remembers processed
// messages for the TTL set by WithTTL (default
// nectarhooks.DefaultIdempotencyTTL). Any redis.UniversalClient will do: a
// *redis.Client (single node, or Sentinel through redis.NewFailoverClient),
// a *redis.ClusterClient, or what redis.NewUniversalClient returns. New does
// not contact the server; the store does not own the client and never
// closes it.
//
// Make the client with ContextTimeoutEnabled: true. A Handler gives each
// store call a deadline of its own (nectarhooks.WithStoreTimeout, 1 second
// by default) and stops waiting for a call that passes it, but go-redis
// otherwise ignores the deadline for socket reads: a call on a link that
// went silent keeps running, and holds its pooled connection, for the
// client's ReadTimeout (5 seconds by default) after the Handler gave up.
//
// New panics if client is nil or the prefix is unusable (see WithPrefix).
func New(client redis.UniversalClient, opts ...Option) *Store {
	if client == nil {
		panic("goredisstore: New: nil client")
	}
	c := newConfig(opts)
	return &Store{client: client, prefix: c.prefix, ttl: c.ttl}
}

// key is where the store keeps message id.
func (s *Store) key(id string) string { return s.prefix + id }

// Claim implements nectarhooks.IdempotencyStore in one round trip: if the
// message's key is absent it becomes "inflight:" and a new random token,
// expiring after lease (rounded up to whole milliseconds) on the server's
// clock, and Claim reports ClaimAcquired with that token; a key holding
// "done" reports ClaimDone, and one holding a claim ClaimInFlight, unless
// the claim is this call's own, written by an attempt of it whose reply was
// lost before go-redis sent it again: that is ClaimAcquired. A lease that
// ran out has expired with its key, so the message is claimed anew. Errors
// come from the client (server unreachable, timeout, a cancelled ctx) or
// are ErrForeignValue.
func (s *Store) Claim(ctx context.Context, id string, lease time.Duration) (nectarhooks.Claim, string, error) {
	token := rand.Text()
	old, set, err := s.setIfAbsent(ctx, s.key(id), inFlightPrefix+token, lease)
	switch {
	case err != nil:
		return 0, "", fmt.Errorf("goredisstore: claim %q: %w", id, err)
	case set:
		return nectarhooks.ClaimAcquired, token, nil
	case old == doneValue:
		return nectarhooks.ClaimDone, "", nil
	case strings.HasPrefix(old, inFlightPrefix):
		return nectarhooks.ClaimInFlight, "", nil
	}
	return 0, "", fmt.Errorf("%w: claim: key %q holds %.40q", ErrForeignValue, s.key(id), old)
}

// setIfAbsent sets key to value, expiring after lease, unless key exists;
// it reports whether it set it and otherwise the value key holds. It sends
// SET key value NX PX lease GET, a plain command that costs the server a
// fraction of a script; on servers before Redis 7.0, which refuse NX with
// GET, it runs claimScript, which does the same, from then on.
//
// A key that already holds value was set by this very call: go-redis sends
// a command again (MaxRetries, 3 by default) when its connection breaks or
// its read times out, also after the server ran it and only the reply was
// lost, and the second SET then finds the first one's value. value holds a
// token new to this call, so nothing else can have written it; answering
// "in flight" would leave the message blocked by a claim nobody holds until
// its lease ran out.
func (s *Store) setIfAbsent(ctx context.Context, key, value string, lease time.Duration) (old string, set bool, err error) {
	if !s.claimByScript.Load() {
		old, err = s.client.Do(ctx, "set", key, value, "nx", "px", millis(lease), "get").Text()
		switch {
		case err == redis.Nil:
			return "", true, nil
		case err == nil:
			return old, old == value, nil
		case !refusesNXGet(err):
			return "", false, err
		}
		s.claimByScript.Store(true)
	}
	res, err := claimScript.Run(ctx, s.client, []string{key}, value, millis(lease)).Result()
	if err != nil {
		return "", false, err
	}
	if old, ok := res.(string); ok {
		return old, old == value, nil
	}
	return "", true, nil
}

// refusesNXGet reports whether err is a server's refusal of SET with both
// NX and GET, as Redis before 7.0 answers it.
func refusesNXGet(err error) bool {
	return redis.HasErrorPrefix(err, "syntax error") // after "ERR ", which it drops
}

// Complete implements nectarhooks.IdempotencyStore: the message's key
// becomes "done", expiring after the store's TTL, if it still holds the
// claim token, or if it is absent because that claim's lease ran out (or
// the message was forgotten) and nobody claimed it since. A newer claim is
// left alone, and so is an earlier "done", whose TTL is not prolonged.
func (s *Store) Complete(ctx context.Context, id, token string) error {
	if err := completeScript.Run(ctx, s.client, []string{s.key(id)}, inFlightPrefix+token, millis(s.ttl)).Err(); err != nil {
		return fmt.Errorf("goredisstore: complete %q: %w", id, err)
	}
	return nil
}

// Release implements nectarhooks.IdempotencyStore: it deletes the
// message's key if it still holds the claim token, so that the next
// delivery runs; a newer claim, or a processed message, is left alone.
func (s *Store) Release(ctx context.Context, id, token string) error {
	if err := releaseScript.Run(ctx, s.client, []string{s.key(id)}, inFlightPrefix+token).Err(); err != nil {
		return fmt.Errorf("goredisstore: release %q: %w", id, err)
	}
	return nil
}

// Forget implements nectarhooks.IdempotencyStore: it deletes the message's
// key, processed or in flight, so that its next delivery runs the callback
// (for a deliberate resend from the Svix portal). A holder still running
// the callback is not stopped; its Complete then records the message again.
// Forgetting an unknown id is not an error.
func (s *Store) Forget(ctx context.Context, id string) error {
	if err := s.client.Del(ctx, s.key(id)).Err(); err != nil {
		return fmt.Errorf("goredisstore: forget %q: %w", id, err)
	}
	return nil
}

// millis is d in whole milliseconds for PX, rounded up and at least 1:
// PX refuses zero, and rounding down could end a lease early.
func millis(d time.Duration) int64 {
	ms := int64(d / time.Millisecond)
	if d%time.Millisecond != 0 {
		ms++
	}
	return max(ms, 1)
}
