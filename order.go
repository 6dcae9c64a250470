package nectarhooks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Event order. Svix does not deliver in order: an update whose first
// attempt failed comes back seconds to hours later, after newer updates of
// the same connection succeeded, and a receiver that applies it then sets
// an old state over a new one. Every connection and document payload
// carries the entity's id and its updated time (microseconds), which is
// all it takes to tell: an ordering guard remembers, per entity, the
// newest version applied, and refuses older ones. MemoryOrder is one for
// one process; pgxstore.Order keeps it in PostgreSQL, in the callback's
// transaction, and goredisstore.Order in Redis.

// ErrStale is the error, wrapped, of an ordering guard for an event older
// than one of the same entity applied already (see EventVersion). A
// callback that returns it (or an error wrapping it) is not a failure: the
// delivery is acknowledged (200), the message recorded as processed by
// the idempotency store, if any, so that it is not retried, and the
// Observer sees OutcomeStale. The callback's other effects are the
// callback's: return it before writing anything, or from a transaction
// that rolls back.
var ErrStale = errors.New("nectarhooks: stale event: a newer version of the entity was applied already")

// errStale is call's report of a callback that returned ErrStale, which
// acknowledged and outcome recognize.
var errStale = errors.New("nectarhooks: stale event")

// EntityVersion is what an ordering guard orders an event by: which entity
// it is about, and which version of it the event carries.
type EntityVersion struct {
	// Entity is the event family and the entity's id: "connection:" and
	// Connection.ID for connection.created, .updated and .validated alike,
	// "document:" and Document.ID for document.created and .updated. A
	// created event thus orders with the entity's later updates. Under a
	// Handler of NewAccountHandler it starts with the message's account
	// and a space ("acme connection:c1"): each account's entities are its
	// own, ids alike or not, as each account's messages are.
	Entity string
	// Updated is the entity's updated time, or, when the payload has none,
	// its created time. Events are ordered by it alone: an event is stale
	// when it is strictly older than the newest applied. A tie (the same
	// microsecond) is applied, not refused: two messages with one version
	// are told apart by nothing, and a redelivery of one message is the
	// idempotency store's to drop.
	Updated time.Time
}

// EventVersion returns the entity and version an ordering guard orders ev
// by, and false for events it cannot order: unknown event types, and
// payloads without an id or without both updated and created. Those are
// always applied. ctx is the callback's: the account of its message, if
// any (MessageFromContext), is part of the entity.
func EventVersion(ctx context.Context, ev Event) (EntityVersion, bool) {
	var family, id string
	var updated, created Time
	switch e := ev.(type) {
	case *ConnectionCreated:
		family, id, updated, created = "connection:", e.ID, e.Updated, e.Created
	case *ConnectionUpdated:
		family, id, updated, created = "connection:", e.ID, e.Updated, e.Created
	case *ConnectionValidated:
		family, id, updated, created = "connection:", e.ID, e.Updated, e.Created
	case *DocumentCreated:
		family, id, updated, created = "document:", e.ID, e.Updated, e.Created
	case *DocumentUpdated:
		family, id, updated, created = "document:", e.ID, e.Updated, e.Created
	default:
		return EntityVersion{}, false
	}
	v := updated.Time
	if v.IsZero() {
		v = created.Time
	}
	if id == "" || v.IsZero() {
		return EntityVersion{}, false
	}
	var entity string
	if m, ok := ctx.Value(messageKey{}).(*Message); ok && m.Account != "" {
		entity = m.Account + " " + family + id // one concatenation, one allocation
	} else {
		entity = family + id
	}
	return EntityVersion{Entity: entity, Updated: v.UTC()}, true
}

// MemoryOrder is an ordering guard in the process's memory, for a service
// that runs one replica: it remembers the newest version applied of each
// entity (about 100 bytes each, for as long as the process runs), and
// applies the events of one entity one at a time, so that the check, the
// callback's work and the record of its version cannot interleave with
// another event of the same entity. Replicas need a shared guard:
// pgxstore.Order, or goredisstore.Order. It is safe for concurrent use.
type MemoryOrder struct {
	mu       sync.Mutex
	entities map[string]*memoryEntity
}

type memoryEntity struct {
	mu     sync.Mutex // held while an event of the entity is applied
	newest time.Time  // guarded by mu
}

// NewMemoryOrder returns an empty MemoryOrder.
func NewMemoryOrder() *MemoryOrder {
	return &MemoryOrder{entities: make(map[string]*memoryEntity)}
}

// Apply runs apply for ev unless ev is older than the newest version of its
// entity applied so far (see EntityVersion): then it returns an error
// matching ErrStale without running apply. When apply returns nil, ev's
// version becomes the entity's newest; when it fails, nothing is recorded
// and a retry of ev can apply it. Events EventVersion cannot order run
// apply at once. ctx is the callback's, for the account of its message
// (see EntityVersion). Return Apply's error from the callback:
//
//	h.OnConnectionUpdated(func(ctx context.Context, e *nectarhooks.ConnectionUpdated) error {
//		return order.Apply(ctx, e, func() error { return setStatus(ctx, e.ID, e.Status) })
//	})
func (o *MemoryOrder) Apply(ctx context.Context, ev Event, apply func() error) error {
	v, ok := EventVersion(ctx, ev)
	if !ok {
		return apply()
	}
	o.mu.Lock()
	e := o.entities[v.Entity]
	if e == nil {
		e = &memoryEntity{}
		o.entities[v.Entity] = e
	}
	o.mu.Unlock()

	e.mu.Lock()
	defer e.mu.Unlock()
	if v.Updated.Before(e.newest) {
		return staleError(v, e.newest)
	}
	if err := apply(); err != nil {
		return err
	}
	e.newest = v.Updated
	return nil
}

// Newest returns the newest version applied of entity (as
// EntityVersion.Entity spells it), and whether one was.
func (o *MemoryOrder) Newest(entity string) (time.Time, bool) {
	o.mu.Lock()
	e := o.entities[entity]
	o.mu.Unlock()
	if e == nil {
		return time.Time{}, false
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.newest, !e.newest.IsZero()
}

// staleError is ErrStale with the versions that tell why.
func staleError(v EntityVersion, newest time.Time) error {
	return fmt.Errorf("%w: %s at %s, applied %s", ErrStale, v.Entity,
		v.Updated.Format(TimeLayout), newest.Format(TimeLayout))
}

// logStale logs, at debug level, a stale event acknowledged.
func (h *Handler) logStale(ctx context.Context, msg *Message, err error) {
	h.opts.log().LogAttrs(ctx, slog.LevelDebug, "nectarhooks: stale event; acknowledged",
		slog.String("message_id", msg.ID), slog.String("event_type", string(msg.EventType)), slog.Any("order", err))
}
