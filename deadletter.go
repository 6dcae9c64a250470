package nectarhooks

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"
)

// DeadLetter is a message the Handler gave up on, kept so that the service
// can see why and run it again once the cause is fixed (see
// Handler.ReplayDeadLetters). A Handler records one (WithDeadLetters) for a
// callback that fails after a WithAsync Handler answered 202, and for a
// delivery it tells Svix to stop retrying (ErrAborted): a callback's
// Permanent error, or a verified payload that does not decode.
type DeadLetter struct {
	// Message is the message as it was verified: ID, Timestamp (the
	// svix-timestamp of the attempt that failed), EventType, the Payload
	// byte for byte, and Account, the account of a Handler of
	// NewAccountHandler it was delivered to ("" otherwise). A dead letter
	// is one per account and id: Svix sends one svix-id to every
	// endpoint, and each account's record of it is its own.
	Message Message
	// Error is the error of the last attempt, as text.
	Error string
	// Attempts counts the attempts that failed: 1 when first recorded,
	// and one more for each replay that failed again.
	Attempts int
	// FirstFailedAt is when the message was first recorded, LastFailedAt
	// when its last attempt failed.
	FirstFailedAt, LastFailedAt time.Time
}

// DeadLetterFilter selects dead letters: every field left zero selects all.
type DeadLetterFilter struct {
	// Account selects the messages delivered to this account of a
	// Handler of NewAccountHandler (Message.Account); "" selects every
	// account's and those of Handlers without accounts.
	Account string
	// ID selects the message with this svix-id.
	ID string
	// EventType selects messages of this event type.
	EventType EventType
	// Since selects messages whose last attempt failed at or after it.
	Since time.Time
	// Limit caps how many are returned; 0 means no cap.
	Limit int
}

// Match reports whether d is selected by f (its Limit aside), for stores
// that filter in Go.
func (f DeadLetterFilter) Match(d DeadLetter) bool {
	return (f.Account == "" || d.Message.Account == f.Account) &&
		(f.ID == "" || d.Message.ID == f.ID) &&
		(f.EventType == "" || d.Message.EventType == f.EventType) &&
		(f.Since.IsZero() || !d.LastFailedAt.Before(f.Since))
}

// DeadLetterStore keeps dead letters, one per account and message id
// (Message.Account and Message.ID; the account is "" for a Handler without
// accounts), until they are replayed successfully. Implementations must be safe for concurrent use
// and keep this contract, which nectarhookstest.TestDeadLetterStore checks:
//
//   - Record keeps the payload byte for byte, the account, and the times
//     to the millisecond at least. Recording an account and id it has
//     already adds the new
//     record's Attempts to the old count, keeps the first FirstFailedAt and
//     takes the new Error and LastFailedAt: a message that fails again is
//     one dead letter, with its attempts counted on.
//   - Take hands a dead letter to one replay at a time: it claims the id
//     for lease and returns a token, and until the lease ends (or the
//     record is recorded again) a second Take of it reports false. A replay
//     that dies leaves the dead letter to the next one once its lease ends;
//     nothing is removed by taking it.
//   - Remove deletes the dead letter only while token is its claim: a
//     replay that succeeded removes it, but not after the message was
//     recorded again meanwhile (Record ends a claim).
//   - List returns the dead letters f selects, claimed or not, oldest
//     LastFailedAt first.
//
// MemoryDeadLetters keeps them in one process; the pgxstore module keeps
// them in PostgreSQL, and the riverqueue module in River's own jobs.
type DeadLetterStore interface {
	// Record adds d, or counts it on an earlier record of the same
	// account and id (see the contract above). An error means it was not recorded: the
	// Handler then does not abort the delivery (see ErrDeadLetterStore).
	Record(ctx context.Context, d DeadLetter) error
	// List returns the dead letters f selects, oldest LastFailedAt first.
	List(ctx context.Context, f DeadLetterFilter) ([]DeadLetter, error)
	// Take claims the dead letter of account and id for a replay lasting
	// up to lease, returning it and the claim's token, or ok false when
	// there is no such dead letter or another replay holds it.
	Take(ctx context.Context, account, id string, lease time.Duration) (d DeadLetter, token string, ok bool, err error)
	// Remove deletes the dead letter of account and id if token is still
	// its claim.
	Remove(ctx context.Context, account, id, token string) error
}

// WithDeadLetters makes a Handler record in store every message it gives
// up on (see DeadLetter), before giving it up: a delivery is answered
// with "webhook-delivery: abort-message" only once its dead letter is
// recorded, and one whose record failed is answered without it, so that
// Svix retries (ErrDeadLetterStore). store must not be nil. Default: none;
// nothing is recorded and nothing aborted, a callback's Permanent error is
// answered 500 as any other, and a failure after a WithAsync answer only
// reaches the error handler.
func WithDeadLetters(store DeadLetterStore) Option {
	return func(o *options) error {
		if store == nil {
			return fmt.Errorf("%w: WithDeadLetters(nil)", errInvalidOption)
		}
		o.deadLetters = store
		return nil
	}
}

// DefaultMemoryDeadLetterBytes is how much a MemoryDeadLetters keeps
// when NewMemoryDeadLetters is given 0: 64 MiB of records.
const DefaultMemoryDeadLetterBytes = 64 << 20

// ErrDeadLettersFull is returned by MemoryDeadLetters.Record when keeping
// the record would take the store past its size. A Handler then records
// nothing and aborts nothing (ErrDeadLetterStore): the delivery keeps its
// answer without "webhook-delivery: abort-message", so Svix retries it.
var ErrDeadLettersFull = errors.New("nectarhooks: dead-letter store full")

// MemoryDeadLetters is a DeadLetterStore in the process's memory, for one
// process: its dead letters are lost with it, so use it where the
// messages' source can send them again, or in tests; the pgxstore module
// keeps them in PostgreSQL. It is bounded by the bytes of its records
// (payload, ids, event type and error text), because a bug that fails
// every message would otherwise fill the process's memory with them and
// take the process, its queue and every dead letter down together; a full
// store refuses new records (ErrDeadLettersFull) instead of dropping old
// ones, so that each refusal is answered as a failure Svix retries. Safe
// for concurrent use.
type MemoryDeadLetters struct {
	mu       sync.Mutex
	letters  map[string]*memoryLetter
	tokens   uint64
	now      func() time.Time
	size     int64 // the bytes of the records kept (recordSize)
	maxBytes int64
}

type memoryLetter struct {
	d       DeadLetter
	token   string    // the claim of a replay, if any
	claimed time.Time // when that claim ends
}

// NewMemoryDeadLetters returns an empty MemoryDeadLetters that keeps at
// most maxBytes of records (see recordSize); 0 means
// DefaultMemoryDeadLetterBytes. It panics if maxBytes is negative.
func NewMemoryDeadLetters(maxBytes int64) *MemoryDeadLetters {
	if maxBytes < 0 {
		panic("nectarhooks: NewMemoryDeadLetters with a negative size")
	}
	if maxBytes == 0 {
		maxBytes = DefaultMemoryDeadLetterBytes
	}
	return &MemoryDeadLetters{letters: make(map[string]*memoryLetter), now: time.Now, maxBytes: maxBytes}
}

// recordOverhead stands for what a record costs beyond its strings: the
// map entry, the struct and its times.
const recordOverhead = 256

// recordSize is what d counts against a MemoryDeadLetters' size.
func recordSize(d *DeadLetter) int64 {
	m := &d.Message
	return int64(len(m.Payload)+len(m.ID)+len(m.Account)+len(m.EventType)+len(d.Error)) + recordOverhead
}

// Record implements DeadLetterStore; it keeps a copy of the payload. It
// returns ErrDeadLettersFull, and keeps nothing, when the record would
// take the store past its size; a record that replaces one of the same
// message counts only the difference.
func (s *MemoryDeadLetters) Record(_ context.Context, d DeadLetter) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := d.Message.storeKey()
	size := recordSize(&d)
	var old int64
	if l, ok := s.letters[k]; ok {
		d.Attempts += l.d.Attempts
		d.FirstFailedAt = l.d.FirstFailedAt
		old = recordSize(&l.d)
	}
	if s.size-old+size > s.maxBytes {
		return fmt.Errorf("%w: %d of %d bytes kept, the record of %s takes %d", ErrDeadLettersFull, s.size, s.maxBytes, d.Message.ID, size)
	}
	d.Message.Payload = slices.Clone(d.Message.Payload)
	s.letters[k] = &memoryLetter{d: d}
	s.size += size - old
	return nil
}

// List implements DeadLetterStore.
func (s *MemoryDeadLetters) List(_ context.Context, f DeadLetterFilter) ([]DeadLetter, error) {
	s.mu.Lock()
	var out []DeadLetter
	for _, l := range s.letters {
		if f.Match(l.d) {
			out = append(out, l.d)
		}
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b DeadLetter) int {
		if c := a.LastFailedAt.Compare(b.LastFailedAt); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Message.ID, b.Message.ID); c != 0 {
			return c
		}
		return cmp.Compare(a.Message.Account, b.Message.Account)
	})
	if f.Limit > 0 && len(out) > f.Limit {
		out = out[:f.Limit]
	}
	for i := range out {
		out[i].Message.Payload = slices.Clone(out[i].Message.Payload)
	}
	return out, nil
}

// Take implements DeadLetterStore.
func (s *MemoryDeadLetters) Take(_ context.Context, account, id string, lease time.Duration) (DeadLetter, string, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.letters[storeKey(account, id)]
	now := s.now()
	if !ok || (l.token != "" && now.Before(l.claimed)) {
		return DeadLetter{}, "", false, nil
	}
	s.tokens++
	l.token, l.claimed = strconv.FormatUint(s.tokens, 10), now.Add(lease)
	d := l.d
	d.Message.Payload = slices.Clone(d.Message.Payload)
	return d, l.token, true, nil
}

// Remove implements DeadLetterStore.
func (s *MemoryDeadLetters) Remove(_ context.Context, account, id, token string) error {
	k := storeKey(account, id)
	s.mu.Lock()
	defer s.mu.Unlock()
	if l, ok := s.letters[k]; ok && token != "" && l.token == token {
		delete(s.letters, k)
		s.size -= recordSize(&l.d)
	}
	return nil
}
