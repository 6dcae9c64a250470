package nectarhookstest

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nectarhooks/nectarhooks"
)

// StoreOptions is what TestIdempotencyStore asks of a store it makes.
type StoreOptions struct {
	// Namespace: stores made with the same Namespace within one test share
	// their data, as replicas of one service do; different namespaces share
	// nothing. Map it to a table name or key prefix. It is fresh for each
	// subtest, at most 16 bytes of lowercase ASCII letters and digits
	// starting with a letter, so it can be used as it is in an SQL
	// identifier or a key.
	Namespace string
	// TTL: how long the store remembers a completed message (the store's
	// WithTTL). Always positive.
	TTL time.Duration
	// Dial, when not nil, is how the store must make every connection to
	// its server: the gray-failure scenarios pass a FaultProxy's Dial here
	// to freeze, slow down and cut the store's link. It fits pgx
	// (pgxpool.Config.ConnConfig.DialFunc) and go-redis
	// (redis.Options.Dialer). A store that makes no connection through it
	// has those scenarios skipped.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Timings of the suite. Leases and TTLs are real time, short enough for a
// quick run and long enough for stores whose clocks are coarse (Redis PX,
// PostgreSQL now()).
const (
	confLease    = 300 * time.Millisecond // the short lease that expiry tests wait out
	confLong     = time.Hour              // a lease or TTL that never ends within a test
	confTTL      = time.Second            // the short TTL that expiry tests wait out
	confPatience = 15 * time.Second       // how long to wait for what must happen
	confPoll     = 25 * time.Millisecond  // how often to look
	// confSkew is how much earlier than asked a lease or TTL may seem to
	// end: the store's clock and the test's may disagree by a little.
	confSkew = 100 * time.Millisecond
)

// TestIdempotencyStore checks that the stores newStore makes keep the
// nectarhooks.IdempotencyStore contract: claims, completion and release;
// leases that expire on their own; fencing tokens; the TTL of completed
// messages; Forget; ids of every shape; concurrent claims; several
// instances on one namespace acting as replicas of one service, and a new
// instance (a restarted replica) seeing what earlier ones recorded. It then
// runs Handlers on the stores, as replicas over loopback HTTP: Svix-like
// redeliveries and retries run each callback to success exactly once, a
// hung callback is taken over after its lease without its late failure
// freeing the new holder's claim, and Forget or an expired TTL makes a
// message run again. Last come gray failures, on a FaultProxy between the
// store and its server (StoreOptions.Dial): calls on a black-holed link
// return an error once their context ends; settles cut after the server
// did the work, or before, stay fenced; leases hold on a slow link; and a
// Handler on a store that stops answering still answers within Svix's 15
// seconds.
//
// A store author calls it from a test of the store's own package:
//
//	func TestConformance(t *testing.T) {
//		nectarhookstest.TestIdempotencyStore(t, func(t *testing.T, opts nectarhookstest.StoreOptions) nectarhooks.IdempotencyStore {
//			// A table or key prefix named after opts.Namespace, on
//			// connections of this store's own; t.Cleanup drops the table
//			// and closes the connections.
//		})
//	}
//
// newStore must honour StoreOptions.Dial when it is set, making every
// connection of the store through it; stores without a server ignore it,
// and the gray-failure scenarios then skip. newStore is called many times
// in each subtest, with the subtest's t; a
// store that needs cleaning up registers it with t.Cleanup. It must return
// an instance of its own on each call, with connections of its own where
// the store has any, so that the replica tests mean something. Each
// subtest has a namespace of its own, so the server may be shared with
// other tests. The suite takes 10 to 20 seconds, mostly waiting for leases
// and TTLs to run out; it does not call t.Parallel.
func TestIdempotencyStore(t *testing.T, newStore func(t *testing.T, opts StoreOptions) nectarhooks.IdempotencyStore) {
	t.Helper()
	tests := []struct {
		name string
		run  func(t *testing.T, c conf)
	}{
		{"ClaimCompleteRelease", confClaimCompleteRelease},
		{"LeaseExpiry", confLeaseExpiry},
		{"Fencing", confFencing},
		{"TTL", confTTLExpiry},
		{"Forget", confForget},
		{"IDs", confIDs},
		{"ConcurrentClaimsOfOneID", confConcurrentOne},
		{"ConcurrentClaimsOfManyIDs", confConcurrentMany},
		{"Replicas", confReplicas},
		{"Restart", confRestart},
		{"HandlerReplicasRunOnce", confHandlerReplicas},
		{"HandlerHungCallback", confHandlerHung},
		{"HandlerForget", confHandlerForget},
		{"HandlerTTL", confHandlerTTL},
		{"GrayFrozenLink", confGrayFrozen},
		{"GrayCutMidCall", confGrayCut},
		{"GraySlowLink", confGraySlow},
		{"GrayHandlerAnswersInTime", confGrayHandler},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.run(t, conf{t: t, newStore: newStore, namespace: newNamespace()})
		})
	}
}

// conf makes the stores of one subtest.
type conf struct {
	t         *testing.T
	newStore  func(t *testing.T, opts StoreOptions) nectarhooks.IdempotencyStore
	namespace string
}

// store returns a new instance on the subtest's namespace that remembers
// completed messages for an hour.
func (c conf) store() nectarhooks.IdempotencyStore { return c.storeTTL(confLong) }

// storeTTL returns a new instance on the subtest's namespace with ttl.
func (c conf) storeTTL(ttl time.Duration) nectarhooks.IdempotencyStore {
	c.t.Helper()
	s := c.newStore(c.t, StoreOptions{Namespace: c.namespace, TTL: ttl})
	if s == nil {
		c.t.Fatal("newStore returned nil")
	}
	return s
}

// other returns a conf on a namespace of its own.
func (c conf) other() conf {
	c.namespace = newNamespace()
	return c
}

// newNamespace returns "nh" and 14 random base-36 characters.
func newNamespace() string {
	const alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	b[0], b[1] = 'n', 'h'
	for i := 2; i < len(b); i++ {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

func claimName(c nectarhooks.Claim) string {
	switch c {
	case nectarhooks.ClaimAcquired:
		return "ClaimAcquired"
	case nectarhooks.ClaimDone:
		return "ClaimDone"
	case nectarhooks.ClaimInFlight:
		return "ClaimInFlight"
	}
	return fmt.Sprintf("Claim(%d)", int(c))
}

// claim asks s for id with lease, failing t on an error or on a token that
// does not go with the answer (one for ClaimAcquired, none otherwise).
func claim(t testing.TB, s nectarhooks.IdempotencyStore, id string, lease time.Duration) (nectarhooks.Claim, string) {
	t.Helper()
	got, token, err := s.Claim(context.Background(), id, lease)
	if err != nil {
		t.Fatalf("Claim(%q, %s): %v", short(id), lease, err)
	}
	if (got == nectarhooks.ClaimAcquired) != (token != "") {
		t.Fatalf("Claim(%q, %s) = %s with token %q: want a token with ClaimAcquired and none otherwise", short(id), lease, claimName(got), token)
	}
	return got, token
}

// expect claims id for an hour and fails t unless the answer is want. It
// returns the token of an acquired claim.
func expect(t testing.TB, s nectarhooks.IdempotencyStore, id string, want nectarhooks.Claim, why string) string {
	t.Helper()
	got, token := claim(t, s, id, confLong)
	if got != want {
		t.Fatalf("Claim(%q) = %s, want %s: %s", short(id), claimName(got), claimName(want), why)
	}
	return token
}

// acquire claims id for lease and fails t unless it is acquired.
func acquire(t testing.TB, s nectarhooks.IdempotencyStore, id string, lease time.Duration) string {
	t.Helper()
	got, token := claim(t, s, id, lease)
	if got != nectarhooks.ClaimAcquired {
		t.Fatalf("Claim(%q) of a free id = %s, want ClaimAcquired", short(id), claimName(got))
	}
	return token
}

func complete(t testing.TB, s nectarhooks.IdempotencyStore, id, token string) {
	t.Helper()
	if err := s.Complete(context.Background(), id, token); err != nil {
		t.Fatalf("Complete(%q, %q): %v", short(id), token, err)
	}
}

func release(t testing.TB, s nectarhooks.IdempotencyStore, id, token string) {
	t.Helper()
	if err := s.Release(context.Background(), id, token); err != nil {
		t.Fatalf("Release(%q, %q): %v", short(id), token, err)
	}
}

func forget(t testing.TB, s nectarhooks.IdempotencyStore, id string) {
	t.Helper()
	if err := s.Forget(context.Background(), id); err != nil {
		t.Fatalf("Forget(%q): %v", short(id), err)
	}
}

// takeOver claims id, which another holder has for a short lease, until
// the lease has run out and the claim is acquired, for lease. It fails t
// if that happens sooner than the holder's lease allows, counted from
// before, a time before the holder's claim, or not within confPatience.
func takeOver(t testing.TB, s nectarhooks.IdempotencyStore, id string, before time.Time, held, lease time.Duration) string {
	t.Helper()
	for {
		got, token := claim(t, s, id, lease)
		switch {
		case got == nectarhooks.ClaimAcquired:
			if waited := time.Since(before); waited < held-confSkew {
				t.Fatalf("Claim(%q) acquired %s after a claim for %s: leases must hold for as long as asked", short(id), waited, held)
			}
			return token
		case got != nectarhooks.ClaimInFlight:
			t.Fatalf("Claim(%q) while another claim's lease runs out = %s, want ClaimInFlight, then ClaimAcquired", short(id), claimName(got))
		case time.Since(before) > confPatience:
			t.Fatalf("Claim(%q) still ClaimInFlight %s after a claim for %s: leases must expire on their own", short(id), confPatience, held)
		}
		time.Sleep(confPoll)
	}
}

// short shortens long ids in messages.
func short(id string) string {
	if len(id) > 40 {
		return fmt.Sprintf("%s…(%d bytes)", id[:32], len(id))
	}
	return id
}

func confClaimCompleteRelease(t *testing.T, c conf) {
	s := c.store()
	tokA := expect(t, s, "a", nectarhooks.ClaimAcquired, "a new id")
	expect(t, s, "a", nectarhooks.ClaimInFlight, "claimed for an hour")
	complete(t, s, "a", tokA)
	expect(t, s, "a", nectarhooks.ClaimDone, "completed")
	expect(t, s, "a", nectarhooks.ClaimDone, "completed, asked again")
	complete(t, s, "a", tokA)
	expect(t, s, "a", nectarhooks.ClaimDone, "completed twice")
	release(t, s, "a", tokA)
	expect(t, s, "a", nectarhooks.ClaimDone, "a Release after Complete leaves it done")

	expect(t, s, "b", nectarhooks.ClaimAcquired, "ids are independent")
	release(t, s, "never-claimed", "no-such-token")
	expect(t, s, "never-claimed", nectarhooks.ClaimAcquired, "a Release of an unknown id does nothing")

	// Release lets the retry run, under a token never seen before.
	seen := map[string]bool{tokA: true}
	for i := range 5 {
		token := expect(t, s, "cycle", nectarhooks.ClaimAcquired, fmt.Sprintf("released %d times", i))
		if seen[token] {
			t.Fatalf("Claim(%q) handed out token %q again: each claim needs a token of its own", "cycle", token)
		}
		seen[token] = true
		release(t, s, "cycle", token)
	}
	token := expect(t, s, "cycle", nectarhooks.ClaimAcquired, "released")
	complete(t, s, "cycle", token)
	expect(t, s, "cycle", nectarhooks.ClaimDone, "completed after releases")
}

func confLeaseExpiry(t *testing.T, c conf) {
	s := c.store()
	held := acquire(t, s, "held", confLong)
	before := time.Now()
	tokA := acquire(t, s, "a", confLease)
	got, _ := claim(t, s, "a", confLong)
	if time.Since(before) < confLease-confSkew && got != nectarhooks.ClaimInFlight {
		t.Fatalf("Claim(%q) within its lease = %s, want ClaimInFlight", "a", claimName(got))
	}
	tokB := takeOver(t, s, "a", before, confLease, confLong)
	if tokB == tokA {
		t.Fatalf("the claim after an expired lease has the expired one's token %q", tokA)
	}
	expect(t, s, "a", nectarhooks.ClaimInFlight, "taken over for an hour")
	expect(t, s, "held", nectarhooks.ClaimInFlight, "an hour's lease outlives a short one")
	complete(t, s, "held", held)
	expect(t, s, "held", nectarhooks.ClaimDone, "completed within its lease")
	complete(t, s, "a", tokB)
	expect(t, s, "a", nectarhooks.ClaimDone, "completed by the holder that took over")
}

func confFencing(t *testing.T, c conf) {
	s := c.store()
	t.Run("stale holder after a takeover", func(t *testing.T) {
		before := time.Now()
		tokA := acquire(t, s, "x", confLease)
		tokB := takeOver(t, s, "x", before, confLease, confLong)
		release(t, s, "x", tokA)
		expect(t, s, "x", nectarhooks.ClaimInFlight, "a stale Release must not free the newer claim")
		complete(t, s, "x", tokA)
		expect(t, s, "x", nectarhooks.ClaimInFlight, "a stale Complete must not end the newer claim")
		complete(t, s, "x", tokB)
		expect(t, s, "x", nectarhooks.ClaimDone, "completed by the current holder")
		release(t, s, "x", tokA)
		expect(t, s, "x", nectarhooks.ClaimDone, "a stale Release leaves a done id done")
	})
	t.Run("late complete with nobody holding a newer claim", func(t *testing.T) {
		tokA := acquire(t, s, "y", confLease)
		time.Sleep(confLease + confSkew)
		complete(t, s, "y", tokA)
		expect(t, s, "y", nectarhooks.ClaimDone, "the holder's work is recorded even after its lease ran out")
	})
	t.Run("late complete after the newer claim was released", func(t *testing.T) {
		before := time.Now()
		tokA := acquire(t, s, "w", confLease)
		tokB := takeOver(t, s, "w", before, confLease, confLong)
		release(t, s, "w", tokB)
		complete(t, s, "w", tokA)
		expect(t, s, "w", nectarhooks.ClaimDone, "no live claim: the late Complete records done")
	})
	t.Run("late release with nobody holding a newer claim", func(t *testing.T) {
		tokA := acquire(t, s, "z", confLease)
		time.Sleep(confLease + confSkew)
		release(t, s, "z", tokA)
		expect(t, s, "z", nectarhooks.ClaimAcquired, "free after its lease and a Release")
	})
	t.Run("made-up tokens", func(t *testing.T) {
		tok := acquire(t, s, "v", confLong)
		for _, bad := range []string{"", "not-a-token", tok + "0", strings.ToUpper(tok) + "x"} {
			release(t, s, "v", bad)
			expect(t, s, "v", nectarhooks.ClaimInFlight, fmt.Sprintf("Release with token %q", bad))
			complete(t, s, "v", bad)
			expect(t, s, "v", nectarhooks.ClaimInFlight, fmt.Sprintf("Complete with token %q", bad))
		}
		// A token belongs to its id.
		other := acquire(t, s, "u", confLong)
		release(t, s, "v", other)
		expect(t, s, "v", nectarhooks.ClaimInFlight, "Release with another id's token")
		release(t, s, "v", tok)
		expect(t, s, "v", nectarhooks.ClaimAcquired, "released by its holder")
	})
}

func confTTLExpiry(t *testing.T, c conf) {
	s := c.storeTTL(confTTL)
	long := c.other().store()
	held := acquire(t, s, "held", confLong)
	complete(t, long, "kept", acquire(t, long, "kept", confLong))

	tok := acquire(t, s, "a", confLong)
	before := time.Now()
	complete(t, s, "a", tok)
	got, _ := claim(t, s, "a", confLong)
	if time.Since(before) < confTTL-confSkew && got != nectarhooks.ClaimDone {
		t.Fatalf("Claim(%q) within the TTL of its completion = %s, want ClaimDone", "a", claimName(got))
	}
	for {
		got, _ := claim(t, s, "a", confLong)
		if got == nectarhooks.ClaimAcquired {
			if waited := time.Since(before); waited < confTTL-confSkew {
				t.Fatalf("completed message forgotten after %s, before its TTL of %s", waited, confTTL)
			}
			break
		}
		if got != nectarhooks.ClaimDone {
			t.Fatalf("Claim(%q) of a completed message = %s, want ClaimDone until its TTL, then ClaimAcquired", "a", claimName(got))
		}
		if time.Since(before) > confPatience {
			t.Fatalf("completed message still remembered %s after its completion, with a TTL of %s", confPatience, confTTL)
		}
		time.Sleep(confPoll)
	}
	expect(t, s, "held", nectarhooks.ClaimInFlight, "a claim holds for its lease, however short the TTL")
	complete(t, s, "held", held)
	expect(t, s, "held", nectarhooks.ClaimDone, "completed")
	expect(t, long, "kept", nectarhooks.ClaimDone, "a store with a longer TTL still remembers")
}

func confForget(t *testing.T, c conf) {
	s := c.store()
	forget(t, s, "unknown")
	expect(t, s, "unknown", nectarhooks.ClaimAcquired, "Forget of an unknown id does nothing")

	complete(t, s, "done", acquire(t, s, "done", confLong))
	complete(t, s, "kept", acquire(t, s, "kept", confLong))
	forget(t, s, "done")
	forget(t, s, "done")
	tok := expect(t, s, "done", nectarhooks.ClaimAcquired, "forgotten after it was done")
	complete(t, s, "done", tok)
	expect(t, s, "done", nectarhooks.ClaimDone, "done again")
	expect(t, s, "kept", nectarhooks.ClaimDone, "Forget of one id leaves the others")

	// Forget of a message in flight: the next delivery claims it, and the
	// first holder is stale from then on.
	first := acquire(t, s, "flight", confLong)
	forget(t, s, "flight")
	second := expect(t, s, "flight", nectarhooks.ClaimAcquired, "forgotten while in flight")
	if second == first {
		t.Fatalf("the claim after Forget has the forgotten claim's token %q", first)
	}
	release(t, s, "flight", first)
	expect(t, s, "flight", nectarhooks.ClaimInFlight, "the forgotten holder's Release must not free the newer claim")
	complete(t, s, "flight", first)
	expect(t, s, "flight", nectarhooks.ClaimInFlight, "the forgotten holder's Complete must not end the newer claim")
	complete(t, s, "flight", second)
	expect(t, s, "flight", nectarhooks.ClaimDone, "completed by the newer holder")

	// Forget of a message in flight that nobody claims again: its holder's
	// Release does nothing, and its Complete records it, there being no
	// live claim to fence (as after a lease that ran out).
	lone := acquire(t, s, "lone", confLong)
	forget(t, s, "lone")
	release(t, s, "lone", lone)
	complete(t, s, "lone", lone)
	expect(t, s, "lone", nectarhooks.ClaimDone, "the forgotten holder's Complete records it when no newer claim exists")
}

// confOddIDs are ids that a store must keep apart and store as they are:
// empty, long, unicode, with the characters of key separators, patterns
// and quoting, differing only in case, prefixes of one another, and one
// svix-id under two accounts as NewAccountHandler keys it.
func confOddIDs() []string {
	return []string{
		"", "msg_2KWPBgLlAfxdpx2AI54pPJ85f1W", "msg_2KWPBgLlAfxdpx2AI54pPJ85f1w",
		"a", "A", "a:", "a:b", "a*", "a?", "%", "_", "*", "[a]", "{a}",
		"with space", "tab\there", "'quote", "\"double\"", `back\slash`, "semi;colon", "--",
		"ünïcødé", "日本語のメッセージ", "emoji 🙂", "nectarhooks:msg_1", "../../etc",
		strings.Repeat("x", 1000), strings.Repeat("x", 999) + "y",
		// The keys of NewAccountHandler: one svix-id for two accounts.
		"acme msg_2KWPBgLlAfxdpx2AI54pPJ85f1W", "globex msg_2KWPBgLlAfxdpx2AI54pPJ85f1W",
	}
}

func confIDs(t *testing.T, c conf) {
	s := c.store()
	ids := confOddIDs()
	tokens := make([]string, len(ids))
	for i, id := range ids {
		tokens[i] = expect(t, s, id, nectarhooks.ClaimAcquired, "each id is its own: a claim of one must not hold another")
	}
	for i, id := range ids {
		expect(t, s, id, nectarhooks.ClaimInFlight, "claimed")
		complete(t, s, id, tokens[i])
	}
	for i, id := range ids {
		expect(t, s, id, nectarhooks.ClaimDone, "completed")
		if i%2 == 0 {
			forget(t, s, id)
		}
	}
	for i, id := range ids {
		if i%2 == 0 {
			expect(t, s, id, nectarhooks.ClaimAcquired, "forgotten")
		} else {
			expect(t, s, id, nectarhooks.ClaimDone, "Forget of a similar id leaves this one")
		}
	}
}

// confInstances is how many store instances the concurrency tests share
// their goroutines among.
const confInstances = 4

func confConcurrentOne(t *testing.T, c conf) {
	const goroutines = 32
	stores := make([]nectarhooks.IdempotencyStore, confInstances)
	for i := range stores {
		stores[i] = c.store()
	}
	var acquired, inFlight atomic.Int32
	errs := make(chan error, goroutines)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			got, token, err := stores[g%len(stores)].Claim(context.Background(), "contended", confLong)
			switch {
			case err != nil:
				errs <- err
			case got == nectarhooks.ClaimAcquired && token != "":
				acquired.Add(1)
			case got == nectarhooks.ClaimInFlight && token == "":
				inFlight.Add(1)
			default:
				errs <- fmt.Errorf("claim answered %s with token %q, want ClaimAcquired or ClaimInFlight", claimName(got), token)
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if acquired.Load() != 1 || inFlight.Load() != goroutines-1 {
		t.Fatalf("%d goroutines claimed one id at once: %d acquired it and %d were told it was in flight, want 1 and %d",
			goroutines, acquired.Load(), inFlight.Load(), goroutines-1)
	}
}

func confConcurrentMany(t *testing.T, c conf) {
	const goroutines, ids = 8, 100
	stores := make([]nectarhooks.IdempotencyStore, confInstances)
	for i := range stores {
		stores[i] = c.store()
	}
	var holders, completed, acquired [ids]atomic.Int32
	var overlaps atomic.Int32
	errs := make(chan error, goroutines)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := stores[g%len(stores)]
			ctx := context.Background()
			for k := range ids {
				i := (k*7 + g*13) % ids // each goroutine its own order
				id := fmt.Sprintf("m%03d", i)
				got, token, err := s.Claim(ctx, id, confLong)
				if err != nil {
					errs <- err
					return
				}
				if got != nectarhooks.ClaimAcquired {
					continue
				}
				if !holders[i].CompareAndSwap(0, 1) {
					overlaps.Add(1)
				}
				first := acquired[i].Add(1) == 1
				holders[i].Store(0)
				// The first holder of every third id fails, and releases.
				if first && i%3 == 0 {
					err = s.Release(ctx, id, token)
				} else {
					completed[i].Add(1)
					err = s.Complete(ctx, id, token)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := overlaps.Load(); n > 0 {
		t.Errorf("%d times an id was acquired while another goroutine held it", n)
	}
	check := c.store()
	for i := range ids {
		id := fmt.Sprintf("m%03d", i)
		switch completed[i].Load() {
		case 0: // released by its only holder
			expect(t, check, id, nectarhooks.ClaimAcquired, "released and not claimed again")
		case 1:
			expect(t, check, id, nectarhooks.ClaimDone, "completed once")
		default:
			t.Errorf("id %s completed %d times", id, completed[i].Load())
		}
	}
}

func confReplicas(t *testing.T, c conf) {
	one, two := c.store(), c.store()
	elsewhere := c.other().store()
	tok := acquire(t, one, "a", confLong)
	expect(t, two, "a", nectarhooks.ClaimInFlight, "claimed through another instance on the namespace")
	elsewhere1 := expect(t, elsewhere, "a", nectarhooks.ClaimAcquired, "namespaces share nothing")
	complete(t, one, "a", tok)
	expect(t, two, "a", nectarhooks.ClaimDone, "completed through another instance")
	expect(t, elsewhere, "a", nectarhooks.ClaimInFlight, "still claimed in its own namespace")
	complete(t, elsewhere, "a", elsewhere1)

	forget(t, two, "a")
	tok = expect(t, one, "a", nectarhooks.ClaimAcquired, "forgotten through another instance")
	release(t, two, "a", tok)
	expect(t, one, "a", nectarhooks.ClaimAcquired, "released through another instance with the holder's token")
	expect(t, elsewhere, "a", nectarhooks.ClaimDone, "Forget in one namespace leaves the others")
}

func confRestart(t *testing.T, c conf) {
	first := c.store()
	complete(t, first, "done", acquire(t, first, "done", confLong))
	acquire(t, first, "held", confLong)
	restarted := c.store()
	expect(t, restarted, "done", nectarhooks.ClaimDone, "a restarted replica still knows what was processed")
	expect(t, restarted, "held", nectarhooks.ClaimInFlight, "a restarted replica still sees claims in flight")
	expect(t, restarted, "new", nectarhooks.ClaimAcquired, "and claims new ids")
}
