package nectarhooks

import (
	"context"
	"errors"
	"fmt"
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

// IdempotencyStore remembers which messages (by svix-id) were processed,
// so that a redelivery does not run its callback twice. Implementations
// must be safe for concurrent use. MemoryStore serves one process; several
// replicas need a shared store, which the interface is small enough to
// build on Redis (Claim as SET id inflight NX with a lease, Complete as SET
// id done with the TTL, Release as DEL) or on a PostgreSQL table (INSERT
// ... ON CONFLICT DO NOTHING). A shared store should give claims a lease,
// longer than the callback timeout, so that a replica that dies while
// holding one does not block the message for longer than that.
type IdempotencyStore interface {
	// Claim reports whether the message id may be processed now and, if
	// so, marks it in flight.
	Claim(ctx context.Context, id string) (Claim, error)
	// Complete records that id was processed; later Claims of it report
	// ClaimDone for as long as the store remembers it.
	Complete(ctx context.Context, id string) error
	// Release forgets the claim on id after its processing failed, so the
	// retry runs.
	Release(ctx context.Context, id string) error
}

// WithIdempotency makes a Handler run each message's callback once: a
// delivery of a message already processed is acknowledged with 200 without
// running the callback again, one that arrives while an earlier delivery of
// the same message is still running is answered 409 (Svix retries it), and
// a failed callback releases the message so that the retry runs. Nectar
// resends through the Svix portal keep the message id, so a deliberate
// resend of a processed message is skipped too: remove it from the store
// first (MemoryStore.Forget). Default: none, every delivery runs its
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
	max     int
	ttl     time.Duration
	now     func() time.Time
}

type memoryEntry struct {
	inFlight bool
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

// Claim implements IdempotencyStore.
func (s *MemoryStore) Claim(_ context.Context, id string) (Claim, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	s.expire(now)
	if e, ok := s.entries[id]; ok {
		if e.inFlight {
			return ClaimInFlight, nil
		}
		return ClaimDone, nil
	}
	s.entries[id] = memoryEntry{inFlight: true}
	return ClaimAcquired, nil
}

// Complete implements IdempotencyStore.
func (s *MemoryStore) Complete(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if e, ok := s.entries[id]; ok && !e.inFlight {
		return nil // completed already; keep its first time
	}
	s.seq++
	s.entries[id] = memoryEntry{at: now, seq: s.seq}
	s.done = append(s.done, doneRecord{id: id, at: now, seq: s.seq})
	s.live++
	s.expire(now)
	return nil
}

// Release implements IdempotencyStore.
func (s *MemoryStore) Release(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.entries[id]; ok && e.inFlight {
		delete(s.entries, id)
	}
	return nil
}

// Forget removes id, processed or in flight, so that its next delivery
// runs the callback: for deliberate resends.
func (s *MemoryStore) Forget(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.entries[id]; ok && !e.inFlight {
		s.live--
	}
	delete(s.entries, id)
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
