package nectarhooks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nectarhooks/nectarhooks/internal/edkey"
)

// acSource is a KeyLookup over a map that can change, as a database
// whose secrets are rotated, counting its calls.
type acSource struct {
	mu    sync.Mutex
	keys  map[string][]string
	err   error // returned for every account while set
	calls atomic.Int64
}

func (s *acSource) lookup(_ context.Context, account string) ([]string, error) {
	s.calls.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return nil, s.err
	}
	if account == "panics" {
		panic("lookup bug")
	}
	keys, ok := s.keys[account]
	if !ok {
		return nil, ErrUnknownAccount
	}
	return keys, nil
}

func (s *acSource) set(account string, keys ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys[account] = keys
}

// acClock is a clock tests move.
type acClock struct{ now atomic.Int64 }

func (c *acClock) read() time.Time         { return time.Unix(0, c.now.Load()) }
func (c *acClock) advance(d time.Duration) { c.now.Add(int64(d)) }

// acFixture is an account Handler behind "POST /webhooks/{account}".
type acFixture struct {
	src   *acSource
	clock *acClock
	h     *Handler
	mux   *http.ServeMux
	body  []byte
	seen  chan Message // the Message of each callback
	errs  chan error   // each error handled
}

func newACFixture(t testing.TB, opts ...Option) *acFixture {
	t.Helper()
	body, err := os.ReadFile("testdata/connection.updated.v2.json")
	require.NoError(t, err)
	f := &acFixture{src: &acSource{keys: map[string][]string{}}, clock: &acClock{}, body: body,
		seen: make(chan Message, 4096), errs: make(chan error, 4096)}
	f.clock.now.Store(time.Unix(vtTS, 0).UnixNano())
	opts = append([]Option{WithClock(f.clock.read), WithErrorHandler(func(_ context.Context, _ int, err error) { f.errs <- err })}, opts...)
	f.h, err = NewAccountHandler(func(r *http.Request) string { return r.PathValue("account") }, f.src.lookup, opts...)
	require.NoError(t, err)
	f.h.OnConnectionUpdated(func(ctx context.Context, _ *ConnectionUpdated) error {
		m, _ := MessageFromContext(ctx)
		f.seen <- m
		return nil
	})
	f.mux = http.NewServeMux()
	f.mux.Handle("POST /webhooks/{account}", f.h)
	return f
}

// send delivers f.body to account, signed with the sig of its id and the
// clock's time, and returns the status.
func (f *acFixture) send(t testing.TB, account, id string, sign func(id string, ts int64, body []byte) string) int {
	t.Helper()
	ts := f.clock.read().Unix()
	r := httptest.NewRequest(http.MethodPost, "/webhooks/"+account, bytes.NewReader(f.body))
	r.Header = vtHeaders(id, strconv.FormatInt(ts, 10), sign(id, ts, f.body))
	rec := httptest.NewRecorder()
	f.mux.ServeHTTP(rec, r)
	return rec.Code
}

// dispatch delivers f.body to account as send does, through
// DispatchAccount, and returns its error.
func (f *acFixture) dispatch(t testing.TB, account, id string, sign func(id string, ts int64, body []byte) string) error {
	t.Helper()
	ts := f.clock.read().Unix()
	return f.h.DispatchAccount(context.Background(), account, f.body, vtHeaders(id, strconv.FormatInt(ts, 10), sign(id, ts, f.body)))
}

// got returns the Message of the callback the last delivery ran, and fails
// if it ran none: callbacks run before ServeHTTP answers.
func (f *acFixture) got(t testing.TB) Message {
	t.Helper()
	select {
	case m := <-f.seen:
		return m
	default:
		t.Fatal("no callback ran")
		return Message{}
	}
}

// handled returns the error the last delivery was refused with, and
// fails if it was not.
func (f *acFixture) handled(t testing.TB) error {
	t.Helper()
	select {
	case err := <-f.errs:
		return err
	default:
		t.Fatal("no error handled")
		return nil
	}
}

// acHMAC signs with a whsec_ secret.
func acHMAC(t testing.TB, secret string) func(string, int64, []byte) string {
	v := vtNew(t, secret)
	return func(id string, ts int64, body []byte) string { return v.Sign(id, time.Unix(ts, 0), body) }
}

func acEd25519(seed byte) (whpk string, sign func(string, int64, []byte) string) {
	sk, pub := edNewKey(seed)
	return pub, func(id string, ts int64, body []byte) string { return edkey.Sign(sk, id, ts, body) }
}

func TestAccountHandler(t *testing.T) {
	f := newACFixture(t)
	secretA, secretB := vtSecretOf(vtKey(80, 24)), vtSecretOf(vtKey(81, 24))
	pubC, signC := acEd25519(82)
	f.src.set("a", secretA)
	f.src.set("b", secretB)
	f.src.set("c", pubC, secretA) // a migration: either scheme
	f.src.set("bad-key", "whsk_"+vtSecretOf(vtKey(83, 64))[len("whsec_"):])
	for _, c := range []struct {
		name    string
		account string
		sign    func(string, int64, []byte) string
		status  int
		err     error
	}{
		{"its own secret", "a", acHMAC(t, secretA), 200, nil},
		{"another account's secret", "a", acHMAC(t, secretB), 401, ErrNoMatchingSignature},
		{"that other account's own", "b", acHMAC(t, secretB), 200, nil},
		{"ed25519 key", "c", signC, 200, nil},
		{"secret during the migration", "c", acHMAC(t, secretA), 200, nil},
		{"ed25519 key of another account", "a", signC, 401, ErrNoMatchingSignature},
		{"unknown account", "nobody", acHMAC(t, secretA), 401, ErrUnknownAccount},
		{"lookup panics", "panics", acHMAC(t, secretA), 503, ErrKeyLookup},
		{"private key in the source", "bad-key", acHMAC(t, secretA), 503, ErrPrivateKey},
	} {
		t.Run(c.name, func(t *testing.T) {
			id := "msg_" + fmt.Sprint(time.Now().UnixNano())
			require.Equal(t, c.status, f.send(t, c.account, id, c.sign))
			if c.err != nil {
				err := f.handled(t)
				require.ErrorIs(t, err, c.err)
				assert.Equal(t, c.status, StatusCode(err))
				return
			}
			m := f.got(t)
			assert.Equal(t, c.account, m.Account)
			assert.Equal(t, id, m.ID)
		})
		// The same delivery, not through net/http (an AWS Lambda
		// function's, say): the same outcome.
		t.Run("DispatchAccount/"+c.name, func(t *testing.T) {
			id := "msg_d" + fmt.Sprint(time.Now().UnixNano())
			err := f.dispatch(t, c.account, id, c.sign)
			assert.Equal(t, c.status, StatusCode(err))
			if c.err != nil {
				require.ErrorIs(t, err, c.err)
				return
			}
			require.NoError(t, err)
			m := f.got(t)
			assert.Equal(t, c.account, m.Account)
			assert.Equal(t, id, m.ID)
		})
	}
}

// TestAccountHandlerLookupFailure checks that a failed lookup answers 503
// and is not kept: the next delivery looks up again.
func TestAccountHandlerLookupFailure(t *testing.T) {
	f := newACFixture(t)
	secret := vtSecretOf(vtKey(84, 24))
	f.src.set("a", secret)
	f.src.mu.Lock()
	f.src.err = errors.New("database down")
	f.src.mu.Unlock()
	require.Equal(t, 503, f.send(t, "a", "msg_1", acHMAC(t, secret)))
	err := f.handled(t)
	require.ErrorIs(t, err, ErrKeyLookup)
	assert.Contains(t, err.Error(), "database down")
	f.src.mu.Lock()
	f.src.err = nil
	f.src.mu.Unlock()
	require.Equal(t, 200, f.send(t, "a", "msg_2", acHMAC(t, secret)))
	assert.Equal(t, int64(2), f.src.calls.Load())
}

// TestAccountHandlerThousandAccounts sends three deliveries to each of
// 1,000 accounts: one lookup each, every delivery checked against its
// own account's secret alone.
func TestAccountHandlerThousandAccounts(t *testing.T) {
	f := newACFixture(t)
	const n = 1000
	signers := make([]func(string, int64, []byte) string, n)
	for i := range n {
		secret := vtSecretOf(vtKey(byte(i), 24)) + "" // keys repeat every 256 accounts: same bytes, different accounts
		if i >= 256 {
			secret = vtSecretOf(append(vtKey(byte(i), 24), byte(i>>8)))
		}
		f.src.set("acct"+strconv.Itoa(i), secret)
		signers[i] = acHMAC(t, secret)
	}
	for round := range 3 {
		for i := range n {
			account := "acct" + strconv.Itoa(i)
			require.Equal(t, 200, f.send(t, account, fmt.Sprintf("msg_%d_%d", round, i), signers[i]), account)
			require.Equal(t, account, (f.got(t)).Account)
			// The next account's secret is refused here.
			require.Equal(t, 401, f.send(t, account, "msg_x", signers[(i+1)%n]), account)
			require.ErrorIs(t, f.handled(t), ErrNoMatchingSignature)
		}
	}
	assert.Equal(t, int64(n), f.src.calls.Load(), "one lookup per account")
}

// TestAccountHandlerCacheBound checks that the cache keeps at most its
// size, and that what it dropped is looked up again.
func TestAccountHandlerCacheBound(t *testing.T) {
	f := newACFixture(t, WithKeyCache(10, time.Hour))
	secret := vtSecretOf(vtKey(85, 24))
	for i := range 100 {
		f.src.set("acct"+strconv.Itoa(i), secret)
	}
	for i := range 100 {
		require.Equal(t, 200, f.send(t, "acct"+strconv.Itoa(i), "msg_"+strconv.Itoa(i), acHMAC(t, secret)))
		f.got(t)
		f.h.accounts.mu.Lock()
		size := len(f.h.accounts.entries)
		f.h.accounts.mu.Unlock()
		require.LessOrEqual(t, size, 10)
	}
	assert.Equal(t, int64(100), f.src.calls.Load())
	// 90 were dropped: sending to all again looks most of them up again.
	for i := range 100 {
		require.Equal(t, 200, f.send(t, "acct"+strconv.Itoa(i), "msg_again_"+strconv.Itoa(i), acHMAC(t, secret)))
		f.got(t)
	}
	assert.GreaterOrEqual(t, f.src.calls.Load(), int64(190))
}

// TestAccountHandlerRotation rotates an account's secret in the source:
// the old one is accepted and the new one refused until the TTL passes,
// then the other way round. An unknown account is kept as unknown for the
// TTL too.
func TestAccountHandlerRotation(t *testing.T) {
	f := newACFixture(t, WithKeyCache(100, time.Minute))
	oldS, newS := vtSecretOf(vtKey(86, 24)), vtSecretOf(vtKey(87, 24))
	f.src.set("a", oldS)
	require.Equal(t, 200, f.send(t, "a", "msg_1", acHMAC(t, oldS)))
	f.got(t)
	require.Equal(t, 401, f.send(t, "late", "msg_1", acHMAC(t, oldS)))
	require.ErrorIs(t, f.handled(t), ErrUnknownAccount)

	f.src.set("a", newS)
	f.src.set("late", newS)
	f.clock.advance(59 * time.Second)
	require.Equal(t, 200, f.send(t, "a", "msg_2", acHMAC(t, oldS)), "the cached secret holds within the TTL")
	f.got(t)
	require.Equal(t, 401, f.send(t, "a", "msg_3", acHMAC(t, newS)))
	f.handled(t)
	require.Equal(t, 401, f.send(t, "late", "msg_3", acHMAC(t, newS)))
	f.handled(t)

	f.clock.advance(time.Second)
	require.Equal(t, 200, f.send(t, "a", "msg_4", acHMAC(t, newS)), "the new secret once the TTL has passed")
	f.got(t)
	require.Equal(t, 401, f.send(t, "a", "msg_5", acHMAC(t, oldS)))
	f.handled(t)
	require.Equal(t, 200, f.send(t, "late", "msg_5", acHMAC(t, newS)))
	f.got(t)
	assert.Equal(t, int64(4), f.src.calls.Load())
}

// TestAccountHandlerSingleFlight sends 32 concurrent deliveries to an
// account not in the cache while its lookup is held: one lookup serves
// them all.
func TestAccountHandlerSingleFlight(t *testing.T) {
	f := newACFixture(t)
	secret := vtSecretOf(vtKey(88, 24))
	f.src.set("a", secret)
	release := make(chan struct{})
	inner := f.h.accounts.lookup
	f.h.accounts.lookup = func(ctx context.Context, account string) ([]string, error) {
		<-release
		return inner(ctx, account)
	}
	const n = 32
	var wg sync.WaitGroup
	var started sync.WaitGroup
	started.Add(n)
	codes := make([]int, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			started.Done()
			codes[i] = f.send(t, "a", "msg_"+strconv.Itoa(i), acHMAC(t, secret))
		}()
	}
	started.Wait()
	close(release)
	wg.Wait()
	for i, c := range codes {
		assert.Equal(t, 200, c, "delivery %d", i)
	}
	assert.Equal(t, int64(1), f.src.calls.Load())
}

// TestAccountHandlerIdempotencyPerAccount delivers one message id to two
// accounts, as Svix does for one message to two endpoints: both run, and
// a redelivery to either is a duplicate.
func TestAccountHandlerIdempotencyPerAccount(t *testing.T) {
	f := newACFixture(t, WithIdempotency(NewMemoryStore(100, time.Hour)))
	secret := vtSecretOf(vtKey(89, 24))
	f.src.set("staging", secret)
	f.src.set("production", secret)
	for _, account := range []string{"staging", "production"} {
		require.Equal(t, 200, f.send(t, account, "msg_same", acHMAC(t, secret)))
		assert.Equal(t, account, (f.got(t)).Account)
	}
	for _, account := range []string{"staging", "production"} {
		require.Equal(t, 200, f.send(t, account, "msg_same", acHMAC(t, secret)))
	}
	assert.Empty(t, f.seen, "a redelivery ran its callback again")
}

// TestAccountHandlerObserver checks that the Observer sees the account.
func TestAccountHandlerObserver(t *testing.T) {
	var accounts []string
	var mu sync.Mutex
	f := newACFixture(t, WithObserver(acObserver(func(d Delivery) {
		if d.Stage == StageReceive && d.Message != nil {
			mu.Lock()
			accounts = append(accounts, d.Message.Account)
			mu.Unlock()
		}
	})))
	secret := vtSecretOf(vtKey(90, 24))
	f.src.set("a", secret)
	require.Equal(t, 200, f.send(t, "a", "msg_1", acHMAC(t, secret)))
	f.got(t)
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, []string{"a"}, accounts)
}

// acQueue is a Queue that takes everything and keeps nothing.
type acQueue struct{}

func (acQueue) Enqueue(context.Context, Message) error { return nil }

// acAccountQueue is an acQueue that says it keeps accounts.
type acAccountQueue struct{ acQueue }

func (acAccountQueue) KeepsAccounts() {}

type acObserver func(Delivery)

func (o acObserver) Start(ctx context.Context, _ Delivery) context.Context { return ctx }
func (o acObserver) End(_ context.Context, d Delivery)                     { o(d) }

func TestAccountHandlerRefusals(t *testing.T) {
	lookup := func(context.Context, string) ([]string, error) { return nil, nil }
	byHeader := func(r *http.Request) string { return r.Header.Get("X-Account") }
	for _, c := range []struct {
		name    string
		account func(*http.Request) string
		lookup  KeyLookup
		opts    []Option
	}{
		{"no account function", nil, lookup, nil},
		{"no lookup", byHeader, nil, nil},
		{"WithSecrets", byHeader, lookup, []Option{WithSecrets(vtSecret)}},
		{"cache of size 0", byHeader, lookup, []Option{WithKeyCache(0, time.Minute)}},
		{"cache of TTL 0", byHeader, lookup, []Option{WithKeyCache(10, 0)}},
		{"WithQueue", byHeader, lookup, []Option{WithQueue(acQueue{})}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := NewAccountHandler(c.account, c.lookup, c.opts...)
			require.ErrorIs(t, err, errInvalidOption)
		})
	}

	_, err := NewAccountHandler(byHeader, lookup, WithQueue(acAccountQueue{}))
	require.NoError(t, err, "an AccountQueue is taken")
	h, err := NewAccountHandler(byHeader, lookup)
	require.NoError(t, err)
	assert.Nil(t, h.Verifier())
	err = h.Dispatch(context.Background(), []byte(vtBody), vtHeaders(vtID, vtTSText, vtSig))
	require.ErrorIs(t, err, ErrUnknownAccount)
	assert.Contains(t, err.Error(), "DispatchAccount")
	plain, err := NewHandler(vtSecret)
	require.NoError(t, err)
	err = plain.DispatchAccount(context.Background(), "acme", []byte(vtBody), vtHeaders(vtID, vtTSText, vtSig))
	require.ErrorIs(t, err, ErrUnknownAccount, "an account given to a Handler without accounts")
	for _, account := range []string{"", "has space", "tab\t", string(make([]byte, MaxMessageIDLength+1))} {
		r := httptest.NewRequest(http.MethodPost, "/", io.NopCloser(bytes.NewReader([]byte(vtBody))))
		r.Header = vtHeaders(vtID, vtTSText, vtSig)
		r.Header.Set("X-Account", account)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		assert.Equal(t, 401, rec.Code, "account %q", account)
		err := h.DispatchAccount(context.Background(), account, []byte(vtBody), vtHeaders(vtID, vtTSText, vtSig))
		require.ErrorIs(t, err, ErrUnknownAccount, "DispatchAccount, account %q", account)
	}
}

// TestAccountHandlerExpiredAndLookupFails checks that keys past their TTL
// are not used when the new lookup fails: 503, and 200 again once the
// source answers.
func TestAccountHandlerExpiredAndLookupFails(t *testing.T) {
	f := newACFixture(t, WithKeyCache(100, time.Minute))
	secret := vtSecretOf(vtKey(91, 24))
	f.src.set("a", secret)
	require.Equal(t, 200, f.send(t, "a", "msg_1", acHMAC(t, secret)))
	f.got(t)
	f.src.mu.Lock()
	f.src.err = errors.New("database down")
	f.src.mu.Unlock()
	require.Equal(t, 200, f.send(t, "a", "msg_2", acHMAC(t, secret)), "within the TTL the source is not asked")
	f.got(t)
	f.clock.advance(time.Minute)
	require.Equal(t, 503, f.send(t, "a", "msg_3", acHMAC(t, secret)))
	require.ErrorIs(t, f.handled(t), ErrKeyLookup)
	f.src.mu.Lock()
	f.src.err = nil
	f.src.mu.Unlock()
	require.Equal(t, 200, f.send(t, "a", "msg_4", acHMAC(t, secret)))
	f.got(t)
	assert.Equal(t, int64(3), f.src.calls.Load())
}
