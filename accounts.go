package nectarhooks

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// KeyLookup returns the keys an account's deliveries are checked against:
// its "whsec_" signing secrets and "whpk_" public keys, as NewVerifier
// reads them, several during a rotation. It returns an error matching
// ErrUnknownAccount (or no keys) for an account it does not know, and any
// other error when it cannot tell, such as a database that does not
// answer. It is called with the request's context without its
// cancellation, bounded by WithStoreTimeout, and must be safe for
// concurrent use.
type KeyLookup func(ctx context.Context, account string) ([]string, error)

// ErrUnknownAccount is the error of a delivery to an account the KeyLookup
// of NewAccountHandler does not know, or of a request the account function
// finds no account in (empty, or not 1 to MaxMessageIDLength bytes of
// printable ASCII without spaces). It matches ErrVerification, and is
// answered 401 like a delivery that fails verification: a 404 would tell
// anyone who can reach the route which accounts exist.
var ErrUnknownAccount error = &verificationError{"unknown account"}

// ErrKeyLookup is the error, answered with 503 so that Svix retries, of a
// delivery whose account's keys could not be looked up: the KeyLookup
// failed, panicked, did not answer within WithStoreTimeout, or returned a
// key NewVerifier refuses (the message says which, never the key).
var ErrKeyLookup = errors.New("nectarhooks: key lookup failed")

// Defaults of WithKeyCache.
const (
	DefaultKeyCacheSize = 10000
	DefaultKeyCacheTTL  = time.Minute
)

// WithKeyCache sets how many accounts' keys a Handler of NewAccountHandler
// keeps, and for how long: a key rotated in the lookup's source takes
// effect within ttl. Unknown accounts are kept too, so that a stream of
// deliveries to a removed account does not reach the source on each one;
// lookup failures are not kept, and an entry whose TTL has passed is not
// used once its new lookup fails: the delivery is answered 503 rather than
// checked against keys that may have been revoked. Past size accounts, an
// arbitrary one is dropped to make room. The TTL runs on the clock of
// WithClock. It affects Handlers of NewAccountHandler only. size and ttl
// must be positive. Default: DefaultKeyCacheSize (10,000) and
// DefaultKeyCacheTTL (1 minute).
func WithKeyCache(size int, ttl time.Duration) Option {
	return func(o *options) error {
		if size <= 0 || ttl <= 0 {
			return fmt.Errorf("%w: WithKeyCache(%d, %s): want a positive size and duration", errInvalidOption, size, ttl)
		}
		o.keyCacheSize, o.keyCacheTTL = size, ttl
		return nil
	}
}

// NewAccountHandler returns a Handler for one route that receives for many
// Svix endpoints, each with its own keys, such as
// "POST /webhooks/nectar/{account}" for a service that receives for
// several Nectar accounts or environments. For each request, account
// names the account (a path value, a header, anything of the request),
// and lookup gives its keys; the delivery is checked against those keys
// alone, never another account's. The account is on the Message
// (Message.Account), in callbacks, the error handler and the Observer.
//
// Keys are cached (WithKeyCache); concurrent deliveries to an account not
// in the cache wait for one lookup. An unknown account is answered 401
// (ErrUnknownAccount), a failed lookup 503 (ErrKeyLookup); otherwise the
// Handler answers as NewHandler's does. With WithIdempotency, a message
// is remembered per account, since Svix delivers one message with one id
// to every endpoint subscribed to it. WithSecrets is refused: every key
// comes from lookup; so is WithQueue with a Queue that is no AccountQueue
// (riverqueue's is one; WithAsync works too). The Handler has no Verifier
// (Verifier returns nil). Deliveries that do not arrive through net/http
// go through DispatchAccount, which is given the account: Dispatch has no
// request to take it from, and fails with ErrUnknownAccount.
func NewAccountHandler(account func(*http.Request) string, lookup KeyLookup, opts ...Option) (*Handler, error) {
	if account == nil || lookup == nil {
		return nil, fmt.Errorf("%w: NewAccountHandler needs an account function and a KeyLookup", errInvalidOption)
	}
	o, err := newOptions(opts)
	if err != nil {
		return nil, err
	}
	if len(o.secrets) > 0 {
		return nil, fmt.Errorf("%w: WithSecrets with NewAccountHandler: the KeyLookup gives every account's keys", errInvalidOption)
	}
	if _, ok := o.queue.(AccountQueue); o.queue != nil && !ok {
		// A Queue that keeps no account would run the message as no
		// account's, and one unique by id alone would queue one svix-id
		// sent to two accounts once.
		return nil, fmt.Errorf("%w: WithQueue with NewAccountHandler: the Queue (%T) is no AccountQueue: it must keep Message.Account and tell messages apart by account and id; use riverqueue, WithAsync, or a Handler per account", errInvalidOption, o.queue)
	}
	h, err := newHandler(nil, o)
	if err != nil {
		return nil, err
	}
	h.accounts = &accountKeys{account: account, lookup: lookup, opts: o, entries: map[string]*accountEntry{}}
	return h, nil
}

// AccountQueue is a Queue that keeps Message.Account with each message, so
// that its consumer runs the message as its account's, and holds one entry
// per account and id (Svix sends one svix-id to every endpoint), so that
// ErrAlreadyQueued means the same account's message. NewAccountHandler
// takes WithQueue only with an AccountQueue; riverqueue's Queue is one.
type AccountQueue interface {
	Queue
	// KeepsAccounts does nothing: a Queue that has it says it keeps the
	// promise above.
	KeepsAccounts()
}

// accountKeys is the cache of NewAccountHandler's Verifiers, by account.
type accountKeys struct {
	account func(*http.Request) string
	lookup  KeyLookup
	opts    *options

	mu      sync.Mutex
	entries map[string]*accountEntry
}

type accountEntry struct {
	ready   chan struct{} // closed once v and err are set
	v       *Verifier
	err     error // ErrUnknownAccount, kept; or a lookup failure, dropped
	expires time.Time
}

func (e *accountEntry) pending() bool {
	select {
	case <-e.ready:
		return false
	default:
		return true
	}
}

// verifier returns the Verifier of the account name.
func (a *accountKeys) verifier(ctx context.Context, name string) (*Verifier, error) {
	// An account becomes part of idempotency keys and logs, as an id does.
	if CheckMessageID(name) != nil {
		return nil, fmt.Errorf("%w: no valid account (want 1 to %d bytes of printable ASCII without spaces)", ErrUnknownAccount, MaxMessageIDLength)
	}
	now := a.opts.clock()
	a.mu.Lock()
	e := a.entries[name]
	if e == nil || !e.pending() && !now.Before(e.expires) {
		// A miss, or expired: this request looks it up, and any other
		// that arrives meanwhile waits for it.
		e = &accountEntry{ready: make(chan struct{})}
		a.makeRoomLocked()
		a.entries[name] = e
		a.mu.Unlock()
		v, err := a.load(ctx, name)
		a.mu.Lock()
		e.v, e.err, e.expires = v, err, now.Add(a.opts.keyCacheTTL)
		if err != nil && !errors.Is(err, ErrUnknownAccount) && a.entries[name] == e {
			delete(a.entries, name) // the next delivery tries again
		}
		close(e.ready)
		a.mu.Unlock()
		return v, err
	}
	a.mu.Unlock()
	select {
	case <-e.ready:
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: account %q: %w", ErrKeyLookup, name, ctx.Err())
	}
	return e.v, e.err
}

// makeRoomLocked drops an arbitrary settled entry when the cache is full.
func (a *accountKeys) makeRoomLocked() {
	if len(a.entries) < a.opts.keyCacheSize {
		return
	}
	for k, e := range a.entries {
		if !e.pending() {
			delete(a.entries, k)
			return
		}
	}
}

// load looks name up and builds its Verifier.
func (a *accountKeys) load(ctx context.Context, name string) (v *Verifier, err error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.opts.storeTimeout)
	defer cancel()
	defer func() {
		if p := recover(); p != nil {
			v, err = nil, fmt.Errorf("%w: account %q: the lookup panicked: %v", ErrKeyLookup, name, p)
		}
	}()
	keys, err := a.lookup(ctx, name)
	switch {
	case errors.Is(err, ErrUnknownAccount), err == nil && len(keys) == 0:
		return nil, fmt.Errorf("%w %q", ErrUnknownAccount, name)
	case err != nil:
		return nil, fmt.Errorf("%w: account %q: %w", ErrKeyLookup, name, err)
	}
	v = &Verifier{opts: a.opts}
	for i, k := range keys {
		if err := v.addKey(k); err != nil {
			return nil, fmt.Errorf("%w: account %q, key %d: %w", ErrKeyLookup, name, i+1, err)
		}
	}
	return v, nil
}

// storeKey is the key msg is remembered by in the idempotency store: its
// id or, for a delivery to an account of NewAccountHandler, the account
// and the id, apart by a space, which neither holds.
func (m *Message) storeKey() string { return storeKey(m.Account, m.ID) }

// storeKey is Message.storeKey of the message of account and id.
func storeKey(account, id string) string {
	if account == "" {
		return id
	}
	return account + " " + id
}
