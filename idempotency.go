package nectarhooks

import (
	"context"
	"errors"
	"fmt"
	"slices"
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
// claim holds 10 s + 2 s = 12 s from the moment the store grants it. The
// grace covers the time between the claim and the callback's start, and
// between the callback's end and Complete or Release, so that a holder that
// keeps to its deadline never loses its claim, while one that hangs or dies
// blocks its message for no longer than the lease. With WithAsync a worker
// claims a message anew when it waited in the queue for more than half of
// LeaseGrace, since the rest of the lease taken at intake might then not
// cover the callback's deadline.
const LeaseGrace = 2 * time.Second

// IdempotencyStore remembers which messages (by svix-id) were processed,
// so that a redelivery does not run its callback twice, also across the
// replicas of a service when the store is shared (the pgxstore and
// goredisstore modules). Implementations must be safe for concurrent use
// and keep this contract, which nectarhookstest.TestIdempotencyStore
// checks:
//
//   - Leases. A claim holds for the lease passed to Claim, counted from
//     when the store grants it, and then expires on its own: a later Claim
//     of the same id acquires it, as if the holder had released it. A
//     holder that hangs or died blocks its message for no longer than the
//     lease. A Handler asks for WithCallbackTimeout plus LeaseGrace. The
//     store's clock may be coarse (milliseconds, or a database's
//     transaction time), never early.
//   - Fencing. Each acquired claim has a token of its own, never handed
//     out again for that id. Release acts only while its token is the id's
//     current claim. Complete acts while its token is the current claim or
//     no live claim exists (the holder's lease ran out and nobody took the
//     message over): a holder that hung past its lease and then succeeded
//     still records its work, but a holder whose message was taken over can
//     neither complete nor release the newer holder's claim.
//   - Completion. A completed id reports ClaimDone for the store's TTL
//     (DefaultIdempotencyTTL unless configured), counted from the
//     completion, then is forgotten. A claim in flight is kept for its
//     lease however short the TTL.
//   - Forget removes an id in any state, so that its next delivery runs.
//     It does not stop a holder still running the callback: with no live
//     claim left to fence, that holder's Complete records the message, as
//     after a lease that ran out (and its Release does nothing). Forget a
//     message once its processing has ended.
//   - Deadlines. Every method returns once its context ends, with an
//     error, also when the server does not answer at all: a Handler gives
//     each call WithStoreTimeout and stops waiting then, but a call that
//     lingers holds a connection of the store's pool.
//
// Every method answers for the id alone: ids are opaque strings, compared
// byte for byte, of any length a svix-id header can have.
type IdempotencyStore interface {
	// Claim reports whether the message id may be processed now and, if
	// so, marks it in flight for lease and returns the claim's token,
	// which is empty for any other answer. An error means the store could
	// not answer; the delivery is then answered 503 and nothing runs.
	Claim(ctx context.Context, id string, lease time.Duration) (claim Claim, token string, err error)
	// Complete records that id was processed under token; later Claims of
	// it report ClaimDone for as long as the store remembers it. It does
	// nothing when another claim of id holds now, or when id is done
	// already (its first completion counts for the TTL).
	Complete(ctx context.Context, id, token string) error
	// Release ends the claim token on id after its processing failed, so
	// that the retry runs. It does nothing unless token is id's current
	// claim.
	Release(ctx context.Context, id, token string) error
	// Forget removes id, processed or in flight, so that its next delivery
	// runs the callback: for deliberate resends. Forgetting an id the
	// store does not have is not an error.
	Forget(ctx context.Context, id string) error
}

// WithIdempotency makes a Handler run each message's callback once: a
// delivery of a message already processed is acknowledged with 200 without
// running the callback again, one that arrives while an earlier delivery of
// the same message is still running is answered 409 (Svix retries it), and
// a failed callback releases the message so that the retry runs. Nectar
// resends through the Svix portal keep the message id, so a deliberate
// resend of a processed message is skipped too: remove it from the store
// first (IdempotencyStore.Forget). A delivery's claim on its message is a
// lease of WithCallbackTimeout plus LeaseGrace: a callback that hangs past
// it, or a replica that dies, leaves the message to the next delivery once
// the lease ends (see IdempotencyStore). store must not be nil. Default:
// none, every delivery runs its callback.
func WithIdempotency(store IdempotencyStore) Option {
	return func(o *options) error {
		if store == nil {
			return fmt.Errorf("%w: WithIdempotency(nil)", errInvalidOption)
		}
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
// each for a set time, forgetting the oldest first when full. Claims in
// flight do not count towards the size: they are few (one per running
// callback) and are forgotten when their lease ends. It keeps the leases
// and fencing tokens of the IdempotencyStore contract, so that a callback
// that hangs past its deadline blocks its message for no longer than the
// lease, and a late Release cannot free a message claimed anew. It is safe
// for concurrent use; it forgets everything when the process ends, and it
// cannot be shared by replicas in other processes (see the pgxstore and
// goredisstore modules for that).
type MemoryStore struct {
	mu      sync.Mutex
	entries map[string]memoryEntry
	done    []doneRecord // completions in the order they happened
	head    int          // done[:head] were consumed already
	live    int          // done entries in entries; what the size cap counts
	seq     uint64       // numbers completions, to tell a record current
	tokens  uint64       // numbers claims: their tokens
	leases  leaseHeap    // the claims' lease ends, soonest first
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

// leaseRecord is one claim's lease end. It is current while its id's entry
// is in flight with the same token; a claim completed, released or
// forgotten leaves it behind until it comes due, which is soon, since
// leases are short.
type leaseRecord struct {
	id      string
	token   uint64
	expires time.Time
}

// leaseHeap is a min-heap of lease records by their end, so that expired
// claims leave the map without a scan of every entry. (Hand-written rather
// than container/heap, whose interface would allocate on every claim.)
type leaseHeap []leaseRecord

// push adds r.
func (h *leaseHeap) push(r leaseRecord) {
	*h = append(*h, r)
	q := *h
	for i := len(q) - 1; i > 0; {
		parent := (i - 1) / 2
		if !q[i].expires.Before(q[parent].expires) {
			break
		}
		q[i], q[parent] = q[parent], q[i]
		i = parent
	}
}

// pop removes and returns the record that ends first; h must not be empty.
func (h *leaseHeap) pop() leaseRecord {
	q := *h
	top := q[0]
	last := len(q) - 1
	q[0] = q[last]
	q[last] = leaseRecord{}
	q = q[:last]
	for i := 0; ; {
		least, l, r := i, 2*i+1, 2*i+2
		if l < len(q) && q[l].expires.Before(q[least].expires) {
			least = l
		}
		if r < len(q) && q[r].expires.Before(q[least].expires) {
			least = r
		}
		if least == i {
			break
		}
		q[i], q[least] = q[least], q[i]
		i = least
	}
	*h = q
	return top
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
// taken over, with a new token. The context is not used: the store cannot
// fail.
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
	expires := now.Add(lease)
	s.entries[id] = memoryEntry{inFlight: true, token: s.tokens, expires: expires}
	s.leases.push(leaseRecord{id: id, token: s.tokens, expires: expires})
	return ClaimAcquired, strconv.FormatUint(s.tokens, 10), nil
}

// holds reports whether e is the claim of token, whatever its lease.
func holds(e memoryEntry, token string) bool {
	n, err := strconv.ParseUint(token, 10, 64)
	return err == nil && e.inFlight && e.token == n
}

// Complete implements IdempotencyStore.
func (s *MemoryStore) Complete(_ context.Context, id, token string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if e, ok := s.entries[id]; ok {
		if !e.inFlight {
			return nil // completed already: keep its first time
		}
		if !holds(e, token) && now.Before(e.expires) {
			return nil // claimed anew, and that claim holds
		}
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
	if e, ok := s.entries[id]; ok && holds(e, token) {
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

// Len reports how many messages the store remembers: processed ones within
// their TTL and the size cap, and claims whose lease has not ended.
func (s *MemoryStore) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	// Drop what has expired since the last call, so that the count is of
	// the messages a Claim would still recognise.
	s.expire(s.now())
	return len(s.entries)
}

// expire forgets claims past their lease, done entries past their TTL, and
// the oldest done ones while more than max are remembered. Stale records
// (see doneRecord, leaseRecord) are dropped as they come up; stale
// completion records are also weeded out of the whole slice when they are
// many, so that Forget cannot grow it without bound.
func (s *MemoryStore) expire(now time.Time) {
	for len(s.leases) > 0 && !now.Before(s.leases[0].expires) {
		r := s.leases.pop()
		if s.leased(r) {
			delete(s.entries, r.id)
		}
	}
	// Claims settled long before their lease ends (a long
	// WithCallbackTimeout) would otherwise pile up records until then.
	inFlight := len(s.entries) - s.live
	if stale := len(s.leases) - inFlight; stale > 1024 && stale > inFlight {
		kept := s.leases[:0]
		for _, r := range s.leases {
			if s.leased(r) {
				kept = append(kept, r)
			}
		}
		clear(s.leases[len(kept):])
		// A sorted slice is a valid heap.
		slices.SortFunc(kept, func(a, b leaseRecord) int { return a.expires.Compare(b.expires) })
		s.leases = kept
	}
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

// leased reports whether r is the lease of its id's claim in flight.
func (s *MemoryStore) leased(r leaseRecord) bool {
	e, ok := s.entries[r.id]
	return ok && e.inFlight && e.token == r.token
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
