package pgxstore

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// faultGuard bounds the wait for a call that must return on its own (by
// its context, or because its connection was cut): generous, since the
// machine may be busy. It only keeps a hung call from hanging the run.
const faultGuard = 10 * time.Second

// faultyStore returns a Store whose pool reaches the test server only
// through a FaultProxy, with one connection (so that the test knows which
// one it breaks), on table; and a Store on the same
// table with a direct pool of its own: another replica, or the test
// looking at the table past the proxy.
func faultyStore(t *testing.T, table string, configure func(*pgxpool.Config)) (s, direct *Store, proxy *nectarhookstest.FaultProxy) {
	t.Helper()
	proxy = nectarhookstest.NewFaultProxy(t, "")
	pool := newPool(t, func(c *pgxpool.Config) {
		c.MaxConns = 1
		c.ConnConfig.DialFunc = proxy.Dial
		if configure != nil {
			configure(c)
		}
	})
	s, err := New(testContext(t), pool, WithTable(table))
	require.NoError(t, err)
	direct, err = New(testContext(t), newPool(t, nil), WithTable(table))
	require.NoError(t, err)
	return s, direct, proxy
}

// answer is what a call running in the background returned.
type answer struct {
	claim nectarhooks.Claim
	err   error
}

// await returns the answer of a call running in the background, failing
// the test if none comes within faultGuard.
func await(t *testing.T, answers <-chan answer, what string) answer {
	t.Helper()
	select {
	case a := <-answers:
		return a
	case <-time.After(faultGuard):
		require.FailNow(t, what+" did not return", "after %v", faultGuard)
		return answer{}
	}
}

// TestClaimFrozenLink: a Claim over a link that went silent, neither
// answering nor closing, returns its context's error once the context
// ends, rather than waiting for TCP to give up (many minutes), whether its
// connection was open already or has to be made; and the Store works
// again once the link is back.
func TestClaimFrozenLink(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// reset closes the pool's connections first, so that the Claim has
		// to dial a new one (which the frozen proxy does not answer).
		reset bool
	}{
		{name: "open connection"},
		{name: "new connection", reset: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, _, proxy := faultyStore(t, testTable(t), nil)
			claim(t, s, "before", longLease, nectarhooks.ClaimAcquired)
			if tt.reset {
				s.pool.Reset()
			}

			proxy.Freeze()
			answers := make(chan answer, 1)
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				defer cancel()
				c, _, err := s.Claim(ctx, "frozen", longLease)
				answers <- answer{c, err}
			}()
			a := await(t, answers, "Claim on a frozen link")
			require.Error(t, a.err)
			var netErr net.Error
			assert.True(t, errors.Is(a.err, context.DeadlineExceeded) || errors.As(a.err, &netErr) && netErr.Timeout(),
				"want the context's deadline or a timeout, got %v", a.err)

			proxy.Thaw()
			claim(t, s, "after", longLease, nectarhooks.ClaimAcquired)
		})
	}
}

// TestCompleteCut: a Complete whose connection is cut mid-statement
// returns an error, and the message is then in one of the two states the
// holder must expect, the same for every replica: done (the statement ran,
// only its answer was lost) or still claimed under the holder's token (it
// never reached the server), in which case the holder can complete it
// again. Nobody acquires it a second time.
func TestCompleteCut(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// hold stops the link before the Complete: FreezeReplies lets the
		// statement through and loses its answer, Freeze loses both.
		hold func(p *nectarhookstest.FaultProxy)
		cut  func(p *nectarhookstest.FaultProxy)
		ran  bool // the statement reached the server
	}{
		{"answer lost, then cut", (*nectarhookstest.FaultProxy).FreezeReplies, (*nectarhookstest.FaultProxy).Cut, true},
		{"answer lost, then reset", (*nectarhookstest.FaultProxy).FreezeReplies, (*nectarhookstest.FaultProxy).Reset, true},
		{"statement lost, then cut", (*nectarhookstest.FaultProxy).Freeze, (*nectarhookstest.FaultProxy).Cut, false},
		{"statement lost, then reset", (*nectarhookstest.FaultProxy).Freeze, (*nectarhookstest.FaultProxy).Reset, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			started := &queryStarts{c: make(chan string, 16)}
			s, direct, proxy := faultyStore(t, testTable(t), func(c *pgxpool.Config) { c.ConnConfig.Tracer = started })
			s.cleanupEvery = 1 << 62 // the Complete's own statement only
			// Both statements prepared on the connection first: preparing
			// waits for an answer, and with answers held the Complete would
			// never be sent.
			tok := claim(t, s, "warm-up", longLease, nectarhooks.ClaimAcquired)
			require.NoError(t, s.Complete(testContext(t), "warm-up", tok))
			const id = "msg"
			tok = claim(t, s, id, longLease, nectarhooks.ClaimAcquired)
			drain(started.c)

			tt.hold(proxy)
			answers := make(chan answer, 1)
			go func() { answers <- answer{err: s.Complete(testContext(t), id, tok)} }()
			select {
			case <-started.c:
			case <-time.After(faultGuard):
				require.FailNow(t, "Complete did not start")
			}
			if tt.ran {
				// Cut once the server has run it, as seen past the proxy.
				require.Eventually(t, func() bool { return countRows(t, direct, "id = 'msg' AND done") == 1 },
					faultGuard, 5*time.Millisecond, "the Complete did not reach the server")
			} else {
				time.Sleep(100 * time.Millisecond) // let the statement reach the proxy, which holds it
			}
			tt.cut(proxy)
			a := await(t, answers, "Complete on a cut link")
			require.Error(t, a.err, "Complete whose connection was cut")
			proxy.Thaw()

			want := nectarhooks.ClaimDone
			if !tt.ran {
				want = nectarhooks.ClaimInFlight
			}
			for _, r := range []*Store{s, direct} {
				assert.Equal(t, want, claimOf(t, r, id, longLease), "Claim after the cut")
			}
			if !tt.ran {
				// The holder, told nothing, completes it again.
				require.NoError(t, s.Complete(testContext(t), id, tok))
				claim(t, direct, id, longLease, nectarhooks.ClaimDone)
			}
		})
	}
}

// queryStarts is a pgx tracer that sends the text of each statement as it
// starts, dropping it when nobody is listening.
type queryStarts struct{ c chan string }

func (q *queryStarts) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	select {
	case q.c <- data.SQL:
	default:
	}
	return ctx
}

func (q *queryStarts) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// drain empties c.
func drain(c chan string) {
	for {
		select {
		case <-c:
		default:
			return
		}
	}
}

// TestClaimSlowLink: on a slow link, or one that delivers in small pieces,
// a Claim's lease is still counted from when the database grants it, by
// the database's clock: the time the answer takes to come back does not
// shorten it for anyone else, and another replica's Claim right after it
// is answered in flight.
func TestClaimSlowLink(t *testing.T) {
	t.Parallel()
	const lease = 2 * time.Second
	tests := []struct {
		name  string
		slown func(p *nectarhookstest.FaultProxy)
	}{
		{"latency 200ms", func(p *nectarhookstest.FaultProxy) { p.SetLatency(200 * time.Millisecond) }},
		{"writes of 7 bytes", func(p *nectarhookstest.FaultProxy) { p.SetSlice(7) }},
		{"both", func(p *nectarhookstest.FaultProxy) { p.SetLatency(200 * time.Millisecond); p.SetSlice(7) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, direct, proxy := faultyStore(t, testSchema(t)+".messages", nil)
			recordStatementTime(t, s)
			claim(t, s, "warm-up", longLease, nectarhooks.ClaimAcquired)
			tt.slown(proxy)

			answers := make(chan answer, 1)
			go func() {
				c, _, err := s.Claim(testContext(t), "msg", lease)
				answers <- answer{c, err}
			}()
			a := await(t, answers, "Claim on a slow link")
			require.NoError(t, a.err)
			require.Equal(t, nectarhooks.ClaimAcquired, a.claim)
			// By the database's clock, the lease runs from no earlier than
			// the statement's start there. (Read first: the Claims below
			// rewrite stmt_now when they lock the row.)
			var micros int64
			require.NoError(t, direct.pool.QueryRow(testContext(t),
				"SELECT (extract(epoch FROM expires_at - stmt_now) * 1000000)::bigint FROM "+s.table.sql()+" WHERE id = 'msg'").Scan(&micros))
			assert.GreaterOrEqual(t, micros, lease.Microseconds(), "expires_at - now() in µs")

			assert.Equal(t, nectarhooks.ClaimInFlight, claimOf(t, direct, "msg", lease), "another replica's Claim right after")
			assert.Equal(t, nectarhooks.ClaimInFlight, claimOf(t, s, "msg", lease), "a Claim on the slow link right after")
		})
	}
}
