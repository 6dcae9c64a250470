package nectarhookstest

import (
	"context"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nectarhooks/nectarhooks"
)

// The gray-failure scenarios of TestIdempotencyStore. Stores seldom fail by
// refusing connections: a network black-holes, a primary freezes, a
// failover takes seconds, an answer is lost after the server did the work.
// Each scenario puts a FaultProxy between the store and its server (through
// StoreOptions.Dial) and checks what a receiver relies on: calls return
// once their context ends, a lost answer leaves a state the fencing rules
// still govern, leases hold on a slow link, and a Handler on a store that
// does not answer still answers Svix in time.

// Timings of the gray scenarios.
const (
	grayDeadline = 500 * time.Millisecond // the context deadline of a call on a frozen link
	// graySlack is how long after its context's deadline a call may take
	// to return: a store's client notices the deadline, closes or
	// abandons its connection, and the machine may be busy.
	graySlack = 5 * time.Second
	// grayAnswer is what Svix waits for an answer: every delivery must be
	// answered within it, whatever the store does.
	grayAnswer = 15 * time.Second
	// grayInFlight is how long a cut statement is left to reach the server
	// before the link is cut.
	grayInFlight = 200 * time.Millisecond
)

// grayLink is a FaultProxy that the stores of one scenario dial through,
// with a count of their dials to tell whether they use it.
type grayLink struct {
	*FaultProxy
	dials atomic.Int64
}

// grayStore returns a new instance on the subtest's namespace whose
// connections go through a new grayLink, and skips the test when the store
// makes none through it (a store without a server, such as
// nectarhooks.MemoryStore, has no link to break).
func (c conf) grayStore(t *testing.T) (nectarhooks.IdempotencyStore, *grayLink) {
	t.Helper()
	link := &grayLink{FaultProxy: NewFaultProxy(t, "")}
	s := c.newStore(t, StoreOptions{Namespace: c.namespace, TTL: confLong,
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			link.dials.Add(1)
			return link.Dial(ctx, network, addr)
		}})
	if s == nil {
		t.Fatal("newStore returned nil")
	}
	// A first call makes the store connect, if it connects at all.
	acquire(t, s, "connect", confLong)
	if link.dials.Load() == 0 {
		t.Skip("the store made no connection through StoreOptions.Dial: no link to break")
	}
	return s, link
}

// bounded runs call with a context ending after grayDeadline, and fails t
// unless it returns within graySlack after that, with an error.
func bounded(t *testing.T, what string, call func(ctx context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), grayDeadline)
	defer cancel()
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- call(ctx) }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatalf("%s on a frozen link returned nil after %s: a store that cannot reach its server must say so", what, time.Since(start))
		}
	case <-time.After(grayDeadline + graySlack):
		t.Fatalf("%s on a frozen link had not returned %s after its context's deadline of %s: store calls must return once their context ends (go-redis: set ContextTimeoutEnabled)",
			what, graySlack, grayDeadline)
	}
}

// confGrayFrozen: every call on a black-holed link returns an error once
// its context ends, and the store works again, consistently, once the link
// comes back. (The request of a call given up on may still reach the
// server after the link heals, as TCP retransmits it: the holder's
// Complete may or may not have taken effect.)
func confGrayFrozen(t *testing.T, c conf) {
	s, link := c.grayStore(t)
	token := acquire(t, s, "held", confLong)
	link.Freeze()
	bounded(t, "Claim", func(ctx context.Context) error { _, _, err := s.Claim(ctx, "new", confLong); return err })
	bounded(t, "Complete", func(ctx context.Context) error { return s.Complete(ctx, "held", token) })
	bounded(t, "Release", func(ctx context.Context) error { return s.Release(ctx, "held", token) })
	link.Thaw()
	// The requests given up on may reach the server now. Whichever did,
	// the claim was never handed to anyone else: it is in flight (none
	// did), done (the Complete did) or free (only the holder's own Release
	// did); the holder's retried Complete then records it.
	if got, _ := claimSoon(t, s, "held"); got == nectarhooks.ClaimAcquired {
		t.Logf("only the holder's late Release reached the server")
	} else {
		complete(t, s, "held", token)
		expect(t, s, "held", nectarhooks.ClaimDone, "completed once the link is back")
	}
	expect(t, s, "after", nectarhooks.ClaimAcquired, "the store works once the link is back")
}

// claimSoon claims id for an hour, retrying while the store still reports
// errors from the link that just came back (a pool may hand out a
// connection that died while frozen once).
func claimSoon(t *testing.T, s nectarhooks.IdempotencyStore, id string) (nectarhooks.Claim, string) {
	t.Helper()
	deadline := time.Now().Add(confPatience)
	for {
		got, token, err := s.Claim(context.Background(), id, confLong)
		if err == nil {
			return got, token
		}
		if time.Now().After(deadline) {
			t.Fatalf("Claim(%q) still failing %s after the link came back: %v", id, confPatience, err)
		}
		time.Sleep(confPoll)
	}
}

// cutMidCall runs call, cuts the link once its request has had time to
// reach the server (whose answer is held), and returns call's error.
func cutMidCall(t *testing.T, link *grayLink, call func(ctx context.Context) error) error {
	t.Helper()
	link.FreezeReplies()
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), confPatience)
		defer cancel()
		done <- call(ctx)
	}()
	time.Sleep(grayInFlight)
	link.Cut()
	link.Thaw()
	select {
	case err := <-done:
		return err
	case <-time.After(confPatience + graySlack):
		t.Fatalf("a call whose connection was cut had not returned after %s", confPatience+graySlack)
		return nil
	}
}

// confGrayCut: settles whose connection is cut after the server did the
// work, or before, stay fenced: a stale holder's Release or Complete never
// frees or ends the newer claim, and a holder's own Complete, cut and
// retried, records the message once.
func confGrayCut(t *testing.T, c conf) {
	s, link := c.grayStore(t)

	t.Run("stale holder's settles", func(t *testing.T) {
		before := time.Now()
		stale := acquire(t, s, "taken", confLease)
		newer := takeOver(t, s, "taken", before, confLease, confLong)
		_ = cutMidCall(t, link, func(ctx context.Context) error { return s.Release(ctx, "taken", stale) })
		if got, _ := claimSoon(t, s, "taken"); got != nectarhooks.ClaimInFlight {
			t.Fatalf("Claim after a stale holder's cut Release = %s, want ClaimInFlight: the newer claim must hold", claimName(got))
		}
		_ = cutMidCall(t, link, func(ctx context.Context) error { return s.Complete(ctx, "taken", stale) })
		if got, _ := claimSoon(t, s, "taken"); got != nectarhooks.ClaimInFlight {
			t.Fatalf("Claim after a stale holder's cut Complete = %s, want ClaimInFlight: the newer claim must hold", claimName(got))
		}
		complete(t, s, "taken", newer)
		expect(t, s, "taken", nectarhooks.ClaimDone, "completed by the newer holder")
	})

	t.Run("holder's Complete cut and retried", func(t *testing.T) {
		token := acquire(t, s, "cut", confLong)
		if err := cutMidCall(t, link, func(ctx context.Context) error { return s.Complete(ctx, "cut", token) }); err == nil {
			t.Logf("Complete survived the cut (its client retried on a new connection)")
		}
		if got, _ := claimSoon(t, s, "cut"); got == nectarhooks.ClaimAcquired {
			t.Fatalf("Claim after the holder's cut Complete = ClaimAcquired: the claim, done or not, must not be handed to another")
		}
		complete(t, s, "cut", token) // the retry
		expect(t, s, "cut", nectarhooks.ClaimDone, "completed once, however the cut fell")
	})

	t.Run("Claim cut", func(t *testing.T) {
		var got nectarhooks.Claim
		var token string
		err := cutMidCall(t, link, func(ctx context.Context) (err error) {
			got, token, err = s.Claim(ctx, "lost", confLong)
			return err
		})
		again, againToken := claimSoon(t, s, "lost")
		switch {
		case err == nil && got == nectarhooks.ClaimAcquired && again != nectarhooks.ClaimInFlight:
			t.Fatalf("Claim after an acquired (retried) Claim = %s, want ClaimInFlight: two holders", claimName(again))
		case again == nectarhooks.ClaimDone:
			t.Fatalf("Claim after a cut Claim = ClaimDone: nothing completed it")
		}
		if again == nectarhooks.ClaimAcquired {
			token = againToken
		}
		if token != "" {
			complete(t, s, "lost", token)
		}
	})
}

// confGraySlow: on a slow link, in small slices, the store still works and
// its leases hold for as long as asked, counted from no earlier than the
// call.
func confGraySlow(t *testing.T, c conf) {
	s, link := c.grayStore(t)
	link.SetLatency(50 * time.Millisecond)
	link.SetSlice(7)
	before := time.Now()
	holder := acquire(t, s, "slow", confLease)
	newer := takeOver(t, s, "slow", before, confLease, confLong)
	release(t, s, "slow", holder)
	expect(t, s, "slow", nectarhooks.ClaimInFlight, "a stale Release on a slow link must not free the newer claim")
	complete(t, s, "slow", newer)
	expect(t, s, "slow", nectarhooks.ClaimDone, "completed on a slow link")
}

// confGrayHandler: a Handler whose store stops answering still answers
// every delivery inside Svix's 15 seconds: 503 when the link is frozen
// before the delivery (nothing runs), the callback's own 200 when it
// freezes while the callback runs. Once the link is back, the message that
// was answered 200 is not run again.
func confGrayHandler(t *testing.T, c conf) {
	var link *grayLink
	var freezeInCallback atomic.Bool
	cl := c.cluster(1, func() nectarhooks.IdempotencyStore {
		s, l := c.grayStore(t)
		link = l
		return s
	}, func(int) []nectarhooks.Option {
		return []nectarhooks.Option{nectarhooks.WithStoreTimeout(300 * time.Millisecond)}
	}, func(context.Context, int, string, int) error {
		if freezeInCallback.Load() {
			link.Freeze()
		}
		return nil
	})
	deliver := func(id string, want int, why string) {
		t.Helper()
		start := time.Now()
		got := cl.deliver(0, id)
		if took := time.Since(start); took >= grayAnswer {
			t.Fatalf("%s: answered after %s, past the %s Svix waits", why, took, grayAnswer)
		}
		if got != want {
			t.Fatalf("%s: answered %d, want %d", why, got, want)
		}
	}

	before := NewMessageID()
	link.Freeze()
	deliver(before, http.StatusServiceUnavailable, "link frozen before the delivery")
	cl.expectRuns(before, 0, 0, "nothing runs without a claim")
	link.Thaw()

	during := NewMessageID()
	freezeInCallback.Store(true)
	deliver(during, http.StatusOK, "link frozen while the callback runs")
	freezeInCallback.Store(false)
	link.Thaw()
	cl.expectRuns(during, 1, 1, "ran once")

	// Svix retries the 503 once the link is back, and it runs once. (It
	// does not redeliver the 200.)
	deadline := time.Now().Add(confPatience)
	for got := cl.deliver(0, before); got != http.StatusOK; got = cl.deliver(0, before) {
		if time.Now().After(deadline) {
			t.Fatalf("the retry of the 503 still answered %d once the link was back", got)
		}
		time.Sleep(4 * confPoll)
	}
	cl.expectRuns(before, 1, 1, "the retry of the 503 ran it once")
	cl.checkNoOverlaps()
}
