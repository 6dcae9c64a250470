package nectarhooks

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"
)

// ErrInFlight is the error, answered with 409, of a delivery whose message
// an earlier delivery is still processing (WithIdempotency). Svix retries
// it later, when the first has finished or failed.
var ErrInFlight = errors.New("nectarhooks: message is being processed by an earlier delivery")

// ErrStoreUnavailable wraps an error from the idempotency store's Claim;
// the delivery is answered 503, so Svix retries it.
var ErrStoreUnavailable = errors.New("nectarhooks: idempotency store unavailable")

// Claim is an IdempotencyStore's answer to whether a message may be
// processed now.
type Claim int

const (
	// ClaimAcquired: the caller now holds the message and processes it;
	// it then calls Complete or Release.
	ClaimAcquired Claim = iota
	// ClaimDone: the message was processed already; it is acknowledged
	// without running its callback again.
	ClaimDone
	// ClaimInFlight: another delivery holds the message now.
	ClaimInFlight
)

// LeaseGrace is what a Handler adds to the callback deadline
// (WithCallbackTimeout) to make the lease of a claim: with the defaults a
// claim holds 10 s + 2 s = 12 s. The grace covers the time between the
// claim and the callback's start and between its end and Complete or
// Release, so that a holder that keeps to its deadline never loses its
// claim, while one that hangs or dies blocks its message for no longer
// than that.
const LeaseGrace = 2 * time.Second

// IdempotencyStore remembers which messages (by svix-id) were processed,
// so that a redelivery does not run its callback twice, also across the
// replicas of a service when the store is shared (the pgxstore and
// goredisstore modules). Implementations must be safe for concurrent use
// and keep this contract, which nectarhookstest.TestIdempotencyStore
// checks:
//
//   - Leases. A claim holds for the lease passed to Claim and then expires
//     on its own: a later Claim of the same id acquires it, as if the
//     holder had released it. A holder that hangs or died blocks its
//     message for no longer than the lease.
//   - Fencing. Each acquired claim has a token of its own, unique among the
//     claims of that id. Complete and Release act only while the token is
//     the id's current claim, or (Complete) while no newer claim exists: a
//     holder whose lease expired and was taken over cannot complete or
//     release the newer holder's claim.
//   - Completion. A completed id reports ClaimDone for the store's TTL
//     (DefaultIdempotencyTTL unless configured), then is forgotten.
//   - Forget removes an id in any state, so that its next delivery runs.
type IdempotencyStore interface {
	// Claim reports whether the message id may be processed now and, if
	// so, marks it in flight for lease and returns the claim's token,
	// which is empty for any other answer. An error means the store could
	// not answer; the delivery is then answered 503 and nothing runs.
	Claim(ctx context.Context, id string, lease time.Duration) (claim Claim, token string, err error)
	// Complete records that id was processed under token; later Claims of
	// it report ClaimDone for as long as the store remembers it. It does
	// nothing when another claim of id holds now.
	Complete(ctx context.Context, id, token string) error
	// Release ends the claim token on id after its processing failed, so
	// that the retry runs. It does nothing unless token is id's current
	// claim.
	Release(ctx context.Context, id, token string) error
	// Forget removes id, processed or in flight, so that its next delivery
	// runs the callback: for deliberate resends.
	Forget(ctx context.Context, id string) error
}

// WithIdempotency makes a Handler run each message's callback once: a
// delivery of a message already processed is acknowledged with 200 without
// running the callback again, one that arrives while an earlier delivery of
// the same message is still running is answered 409 (Svix retries it), and
// a failed callback releases the message so that the retry runs. Nectar
// resends through the Svix portal keep the message id, so a deliberate
// resend of a processed message is skipped too: remove it from the store
// first (IdempotencyStore.Forget). Default: none, every delivery runs its
// callback.
func WithIdempotency(store IdempotencyStore) Option {
	return func(o *options) error {
		o.idempotency = store
		return nil
	}
}

// DefaultIdempotencyTTL is how long MemoryStore remembers a processed
// message by default: Svix's retries span about 28 hours, and manual
// recovery may come later still.
const DefaultIdempotencyTTL = 48 * time.Hour

// DefaultMemoryStoreSize is how many processed messages MemoryStore
// remembers by default, about 10 MiB of memory.
const DefaultMemoryStoreSize = 100_000

// MemoryStore is an IdempotencyStore in the process's memory, bounded in
// size and time: it remembers up to a set number of processed messages,
// each for a set time, forgetting the oldest first when full. Messages in
// flight are always remembered. It is safe for concurrent use; it forgets
// everything when the process ends.
type MemoryStore struct {
	mu      sync.Mutex
	entries map[string]memoryEntry
	done    []doneRecord // completions in the order they happened
	head    int          // done[:head] were consumed already
	live    int          // done entries in entries; what the size cap counts
	seq     uint64       // numbers completions, to tell a record current
	tokens  uint64       // numbers claims: their tokens
	max     int
	ttl     time.Duration
	now     func() time.Time
}

type memoryEntry struct {
	inFlight bool
	token    uint64    // the claim's token, for entries in flight
	expires  time.Time // the claim's lease end, for entries in flight
	at       time.Time // completion time, for done entries
	seq      uint64    // the completion's number, for done entries
}

// doneRecord is one completion. It is current while its id's entry has the
// same seq; an id forgotten, or forgotten and completed again, leaves a
// stale record behind. Times cannot tell them apart: a coarse or fixed
// clock gives two completions the same time.
type doneRecord struct {
	id  string
	at  time.Time
	seq uint64
}

// NewMemoryStore returns a MemoryStore that remembers up to maxEntries
// processed messages for ttl each. Zero or negative values take the
// defaults, DefaultMemoryStoreSize and DefaultIdempotencyTTL.
func NewMemoryStore(maxEntries int, ttl time.Duration) *MemoryStore {
	if maxEntries <= 0 {
		maxEntries = DefaultMemoryStoreSize
	}
	if ttl <= 0 {
		ttl = DefaultIdempotencyTTL
	}
	return &MemoryStore{entries: make(map[string]memoryEntry), max: maxEntries, ttl: ttl, now: time.Now}
}

// Claim implements IdempotencyStore. A claim in flight past its lease is
// taken over, with a new token.
func (s *MemoryStore) Claim(_ context.Context, id string, lease time.Duration) (Claim, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	s.expire(now)
	if e, ok := s.entries[id]; ok {
		if !e.inFlight {
			return ClaimDone, "", nil
		}
		if now.Before(e.expires) {
			return ClaimInFlight, "", nil
		}
	}
	s.tokens++
	s.entries[id] = memoryEntry{inFlight: true, token: s.tokens, expires: now.Add(lease)}
	return ClaimAcquired, strconv.FormatUint(s.tokens, 10), nil
}

// stale reports whether token is not the claim e holds now.
func stale(e memoryEntry, token string) bool {
	return token != strconv.FormatUint(e.token, 10)
}

// Complete implements IdempotencyStore.
func (s *MemoryStore) Complete(_ context.Context, id, token string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if e, ok := s.entries[id]; ok && (!e.inFlight || stale(e, token)) {
		return nil // completed already (keep its first time), or claimed anew
	}
	s.seq++
	s.entries[id] = memoryEntry{at: now, seq: s.seq}
	s.done = append(s.done, doneRecord{id: id, at: now, seq: s.seq})
	s.live++
	s.expire(now)
	return nil
}

// Release implements IdempotencyStore.
func (s *MemoryStore) Release(_ context.Context, id, token string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.entries[id]; ok && e.inFlight && !stale(e, token) {
		delete(s.entries, id)
	}
	return nil
}

// Forget implements IdempotencyStore: it removes id, processed or in
// flight, so that its next delivery runs the callback. It never fails.
func (s *MemoryStore) Forget(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.entries[id]; ok && !e.inFlight {
		s.live--
	}
	delete(s.entries, id)
	return nil
}

// Len reports how many messages the store remembers, in flight or done.
func (s *MemoryStore) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	// Drop what has expired since the last call, so that the count is of
	// the messages a Claim would still recognise.
	s.expire(s.now())
	return len(s.entries)
}

// expire forgets done entries past their TTL, and the oldest ones while
// more than max are remembered. Stale records (see doneRecord) are dropped
// as they come up, and weeded out of the whole slice when they are many, so
// that Forget cannot grow it without bound.
func (s *MemoryStore) expire(now time.Time) {
	for s.head < len(s.done) {
		r := s.done[s.head]
		if s.current(r) {
			if now.Sub(r.at) < s.ttl && s.live <= s.max {
				break
			}
			delete(s.entries, r.id)
			s.live--
		}
		s.done[s.head] = doneRecord{}
		s.head++
	}
	if stale := len(s.done) - s.head - s.live; stale > 1024 && stale > s.live {
		kept := s.done[:0]
		for _, r := range s.done[s.head:] {
			if s.current(r) {
				kept = append(kept, r)
			}
		}
		clear(s.done[len(kept):])
		s.done, s.head = kept, 0
	}
	// Reuse the slice's space once most of it has been consumed.
	if s.head > 1024 && s.head > len(s.done)/2 {
		n := copy(s.done, s.done[s.head:])
		clear(s.done[n:])
		s.done, s.head = s.done[:n], 0
	}
}

// current reports whether r is its id's latest completion, still
// remembered.
func (s *MemoryStore) current(r doneRecord) bool {
	e, ok := s.entries[r.id]
	return ok && !e.inFlight && e.seq == r.seq
}

// String describes the store's limits.
func (s *MemoryStore) String() string {
	return fmt.Sprintf("MemoryStore(max %d, ttl %s)", s.max, s.ttl)
}
