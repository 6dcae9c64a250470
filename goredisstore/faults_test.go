package goredisstore

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The gray failures of the link between the store's client and Redis, made
// by a nectarhookstest.FaultProxy: a server that ran a command whose reply
// was lost, a link that goes silent without closing. Stopping the server
// would only show "connection refused", which every client handles.

// faultRig is a Store whose client reaches the test server through a
// FaultProxy, and a direct client that sees the keys behind the proxy's
// back.
type faultRig struct {
	store  *Store
	client *redis.Client // the store's, through the proxy
	proxy  *nectarhookstest.FaultProxy
	direct *redis.Client
	dials  atomic.Int32 // connections the store's client made
}

// newFaultRig makes a faultRig whose client has opt's settings (Addr and
// Dialer are set here), its Claim going the given way, and one pooled
// connection already made: a test that freezes the link then exercises a
// command on a live connection, not the dial.
func newFaultRig(t *testing.T, opt *redis.Options, byScript bool) *faultRig {
	t.Helper()
	r := &faultRig{direct: testClient(t)}
	prefix := testPrefix(t, r.direct)
	// Made after the prefix so that, at cleanup, the proxy closes (and
	// drops what it holds) before the keys are deleted.
	r.proxy = nectarhookstest.NewFaultProxy(t, "")
	opt.Addr = nectarhookstest.RedisAddr(t)
	opt.Dialer = func(ctx context.Context, network, addr string) (net.Conn, error) {
		r.dials.Add(1)
		return r.proxy.Dial(ctx, network, addr)
	}
	r.client = redis.NewClient(opt)
	t.Cleanup(func() { _ = r.client.Close() })
	r.store = New(r.client, WithPrefix(prefix))
	r.store.claimByScript.Store(byScript)

	ctx := context.Background()
	require.NoError(t, r.client.Ping(ctx).Err(), "through the proxy")
	// Cached, so that the claim's EVALSHA runs the first time rather than
	// answering NOSCRIPT.
	require.NoError(t, claimScript.Load(ctx, r.direct).Err())
	return r
}

// claimResult is what a Claim run on a goroutine returned, and when.
type claimResult struct {
	claim   nectarhooks.Claim
	token   string
	err     error
	elapsed time.Duration
}

// goClaim runs s.Claim on a goroutine of its own; the result comes on the
// channel.
func goClaim(ctx context.Context, s *Store, id string, lease time.Duration) <-chan claimResult {
	ch := make(chan claimResult, 1)
	go func() {
		start := time.Now()
		claim, token, err := s.Claim(ctx, id, lease)
		ch <- claimResult{claim, token, err, time.Since(start)}
	}()
	return ch
}

// awaitClaim returns the result of goClaim. The bound only keeps a Claim
// that never returns from hanging the run; it is no measure of speed.
func awaitClaim(t *testing.T, ch <-chan claimResult, bound time.Duration) claimResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(bound):
		t.Fatalf("Claim has not returned after %s", bound)
		return claimResult{}
	}
}

// TestClaimRetrySeesOwnClaim: the server runs the Claim's SET (or claim
// script), the connection breaks before the reply arrives, and go-redis
// sends the command again on a new connection (MaxRetries, 3 by default).
// The retry finds the value the first attempt wrote, with this Claim's own
// token: the Claim has acquired the message. Answering "in flight" would
// have every delivery of the message refused (409) until the lease ran out,
// with nobody processing it.
func TestClaimRetrySeesOwnClaim(t *testing.T) {
	for _, mode := range claimModes {
		t.Run(mode.name, func(t *testing.T) {
			r := newFaultRig(t, &redis.Options{}, mode.byScript) // go-redis's default MaxRetries: 3
			ctx := context.Background()
			const id, lease = "msg_retry", time.Hour
			key := r.store.key(id)

			r.proxy.FreezeReplies()
			ch := goClaim(ctx, r.store, id, lease)
			require.Eventually(t, func() bool {
				return r.direct.Exists(ctx, key).Val() == 1
			}, 30*time.Second, 2*time.Millisecond, "the server ran the claim")
			// Cut first: the proxy drops the reply it holds for a closed
			// connection, so the first attempt never hears it. Thawing first
			// could deliver it.
			r.proxy.Cut()
			r.proxy.Thaw()
			res := awaitClaim(t, ch, time.Minute)

			require.NoError(t, res.err)
			assert.GreaterOrEqual(t, r.dials.Load(), int32(2), "go-redis retried on a new connection")
			assert.Equal(t, acquired, res.claim, "the retry found the claim's own token")
			stored := r.direct.Get(ctx, key).Val()
			assert.Equal(t, inFlightPrefix+res.token, stored, "the token returned is the one stored")
			pttl, err := r.direct.PTTL(ctx, key).Result()
			require.NoError(t, err)
			assert.Greater(t, pttl, lease/2, "the lease of the first attempt holds")

			require.NoError(t, r.store.Complete(ctx, id, res.token))
			assert.Equal(t, doneValue, r.direct.Get(ctx, key).Val(), "the token completes the message")
		})
	}
}

// TestClaimFrozenLink: a link that goes silent without closing (a
// black-holed network, a frozen server) holds a Claim as long as the
// client's timeouts let it, whatever the Claim's context says, unless the
// client follows the context (redis.Options.ContextTimeoutEnabled). The
// Handler stops waiting at its own deadline (nectarhooks.WithStoreTimeout)
// either way, but a client that ignores the context keeps the call, and
// its connection, for its ReadTimeout; doc.go tells users to set
// ContextTimeoutEnabled for that reason.
func TestClaimFrozenLink(t *testing.T) {
	const deadline = time.Second // a Handler's store deadline by default (WithStoreTimeout)
	tests := []struct {
		name    string
		opt     redis.Options
		follows bool // the read ends at the context's deadline
	}{
		// go-redis reads with a deadline of ReadTimeout (5 s by default)
		// and ignores the context's: the Claim outlives it by seconds. (The
		// retry that follows the read timeout finds the context ended.)
		{name: "go-redis defaults: ReadTimeout, not the context", opt: redis.Options{}},
		{name: "ContextTimeoutEnabled: the context's deadline", opt: redis.Options{ContextTimeoutEnabled: true}, follows: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newFaultRig(t, &tt.opt, false)
			atLeast := deadline
			if !tt.follows {
				atLeast = r.client.Options().ReadTimeout
				require.Greater(t, atLeast, deadline, "the client's ReadTimeout, with its default")
			}
			ctx, cancel := context.WithTimeout(context.Background(), deadline)
			defer cancel()

			r.proxy.Freeze()
			res := awaitClaim(t, goClaim(ctx, r.store, "msg_frozen", time.Hour), 10*time.Second+atLeast)
			t.Logf("Claim with a %s context on a frozen link returned after %s: %v", deadline, res.elapsed, res.err)

			require.Error(t, res.err)
			assert.ErrorIs(t, res.err, context.DeadlineExceeded)
			assert.Equal(t, nectarhooks.Claim(0), res.claim)
			assert.Empty(t, res.token)
			assert.GreaterOrEqual(t, res.elapsed, atLeast, "the Claim waited for the read's deadline")
			assert.Zero(t, r.direct.Exists(context.Background(), r.store.key("msg_frozen")).Val(), "nothing reached the server")
		})
	}
}
