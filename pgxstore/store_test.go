package pgxstore

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nectarhooks/nectarhooks"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	longLease = time.Hour        // outlives any test
	noLease   = time.Microsecond // over by the next statement
)

// claim claims id and checks the answer.
func claim(t *testing.T, s *Store, id string, lease time.Duration, want nectarhooks.Claim) string {
	t.Helper()
	got, token, err := s.Claim(testContext(t), id, lease)
	require.NoError(t, err)
	require.Equal(t, want, got, "Claim(%q)", id)
	if want == nectarhooks.ClaimAcquired {
		require.NotEmpty(t, token)
	} else {
		require.Empty(t, token)
	}
	return token
}

// expire waits until leases of noLease are over by the database's clock
// too (a few milliseconds more than they need).
func expire() { time.Sleep(5 * time.Millisecond) }

func TestStoreContract(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tests := []struct {
		name string
		run  func(t *testing.T, s *Store)
	}{
		{"new id is acquired, then in flight", func(t *testing.T, s *Store) {
			claim(t, s, "a", longLease, nectarhooks.ClaimAcquired)
			claim(t, s, "a", longLease, nectarhooks.ClaimInFlight)
			claim(t, s, "b", longLease, nectarhooks.ClaimAcquired)
		}},
		{"completed is done", func(t *testing.T, s *Store) {
			tok := claim(t, s, "a", longLease, nectarhooks.ClaimAcquired)
			require.NoError(t, s.Complete(ctx, "a", tok))
			claim(t, s, "a", longLease, nectarhooks.ClaimDone)
			claim(t, s, "a", noLease, nectarhooks.ClaimDone)
		}},
		{"released is acquired again with a new token", func(t *testing.T, s *Store) {
			tok := claim(t, s, "a", longLease, nectarhooks.ClaimAcquired)
			require.NoError(t, s.Release(ctx, "a", tok))
			tok2 := claim(t, s, "a", longLease, nectarhooks.ClaimAcquired)
			assert.NotEqual(t, tok, tok2)
		}},
		{"expired lease is taken over", func(t *testing.T, s *Store) {
			tok := claim(t, s, "a", noLease, nectarhooks.ClaimAcquired)
			expire()
			tok2 := claim(t, s, "a", longLease, nectarhooks.ClaimAcquired)
			assert.NotEqual(t, tok, tok2)
		}},
		{"stale release leaves the newer claim", func(t *testing.T, s *Store) {
			old := claim(t, s, "a", noLease, nectarhooks.ClaimAcquired)
			expire()
			claim(t, s, "a", longLease, nectarhooks.ClaimAcquired)
			require.NoError(t, s.Release(ctx, "a", old))
			claim(t, s, "a", longLease, nectarhooks.ClaimInFlight)
		}},
		{"stale complete leaves the newer claim", func(t *testing.T, s *Store) {
			old := claim(t, s, "a", noLease, nectarhooks.ClaimAcquired)
			expire()
			cur := claim(t, s, "a", longLease, nectarhooks.ClaimAcquired)
			require.NoError(t, s.Complete(ctx, "a", old))
			claim(t, s, "a", longLease, nectarhooks.ClaimInFlight)
			// and the newer holder can still complete it
			require.NoError(t, s.Complete(ctx, "a", cur))
			claim(t, s, "a", longLease, nectarhooks.ClaimDone)
		}},
		{"complete after the lease, not taken over, records done", func(t *testing.T, s *Store) {
			tok := claim(t, s, "a", noLease, nectarhooks.ClaimAcquired)
			expire()
			require.NoError(t, s.Complete(ctx, "a", tok))
			claim(t, s, "a", longLease, nectarhooks.ClaimDone)
		}},
		{"release of a done message does nothing", func(t *testing.T, s *Store) {
			tok := claim(t, s, "a", longLease, nectarhooks.ClaimAcquired)
			require.NoError(t, s.Complete(ctx, "a", tok))
			require.NoError(t, s.Release(ctx, "a", tok))
			claim(t, s, "a", longLease, nectarhooks.ClaimDone)
		}},
		{"forget a done message", func(t *testing.T, s *Store) {
			tok := claim(t, s, "a", longLease, nectarhooks.ClaimAcquired)
			require.NoError(t, s.Complete(ctx, "a", tok))
			require.NoError(t, s.Forget(ctx, "a"))
			claim(t, s, "a", longLease, nectarhooks.ClaimAcquired)
		}},
		{"forget a message in flight; its holder's complete then records done", func(t *testing.T, s *Store) {
			tok := claim(t, s, "a", longLease, nectarhooks.ClaimAcquired)
			require.NoError(t, s.Forget(ctx, "a"))
			require.NoError(t, s.Complete(ctx, "a", tok))
			claim(t, s, "a", longLease, nectarhooks.ClaimDone)
		}},
		{"forget a message in flight; its holder's late release leaves the next claim", func(t *testing.T, s *Store) {
			tok := claim(t, s, "a", longLease, nectarhooks.ClaimAcquired)
			require.NoError(t, s.Forget(ctx, "a"))
			claim(t, s, "a", longLease, nectarhooks.ClaimAcquired)
			require.NoError(t, s.Release(ctx, "a", tok))
			claim(t, s, "a", longLease, nectarhooks.ClaimInFlight)
		}},
		{"forget an unknown id", func(t *testing.T, s *Store) {
			require.NoError(t, s.Forget(ctx, "never"))
			claim(t, s, "never", longLease, nectarhooks.ClaimAcquired)
		}},
		{"made-up tokens affect no claim", func(t *testing.T, s *Store) {
			claim(t, s, "a", longLease, nectarhooks.ClaimAcquired)
			for _, tok := range []string{"", "0", "-1", "not a token", "zzzzzzzzzzzzzzzzzzzzzzzz"} {
				require.NoError(t, s.Release(ctx, "a", tok))
				require.NoError(t, s.Complete(ctx, "a", tok))
			}
			claim(t, s, "a", longLease, nectarhooks.ClaimInFlight)
		}},
		{"a second complete keeps the first", func(t *testing.T, s *Store) {
			tok := claim(t, s, "a", longLease, nectarhooks.ClaimAcquired)
			require.NoError(t, s.Complete(ctx, "a", tok))
			var first time.Time
			require.NoError(t, s.pool.QueryRow(ctx, "SELECT expires_at FROM "+s.table.sql()+" WHERE id = 'a'").Scan(&first))
			expire()
			require.NoError(t, s.Complete(ctx, "a", tok))
			var second time.Time
			require.NoError(t, s.pool.QueryRow(ctx, "SELECT expires_at FROM "+s.table.sql()+" WHERE id = 'a'").Scan(&second))
			assert.True(t, first.Equal(second), "expires_at moved from %v to %v", first, second)
		}},
		{"complete over an expired newer claim records done", func(t *testing.T, s *Store) {
			old := claim(t, s, "a", noLease, nectarhooks.ClaimAcquired)
			expire()
			claim(t, s, "a", noLease, nectarhooks.ClaimAcquired)
			expire()
			require.NoError(t, s.Complete(ctx, "a", old))
			claim(t, s, "a", longLease, nectarhooks.ClaimDone)
		}},
		{"ids are compared byte for byte", func(t *testing.T, s *Store) {
			long := strings.Repeat("m", 100_000)
			ids := []string{
				"msg_A", "msg_a", "msg_a ", "msg_\u00e9", "msg_e\u0301", "",
				"\xff", "\xfe", "a\x00b", "a\x00c", "\x01", "tab\t",
				long + "1", long + "2", strings.Repeat("x", maxPlainID), strings.Repeat("x", maxPlainID+1),
				key(long + "1"), // an id spelled like the stored form of another
			}
			for _, id := range ids {
				claim(t, s, id, longLease, nectarhooks.ClaimAcquired)
			}
			for _, id := range ids {
				claim(t, s, id, longLease, nectarhooks.ClaimInFlight)
			}
			require.NoError(t, s.Forget(ctx, long+"1"))
			claim(t, s, long+"1", longLease, nectarhooks.ClaimAcquired)
			claim(t, s, long+"2", longLease, nectarhooks.ClaimInFlight)
			for _, id := range []string{"done\x00", long + "done"} {
				tok := claim(t, s, id, longLease, nectarhooks.ClaimAcquired)
				require.NoError(t, s.Complete(ctx, id, tok))
				claim(t, s, id, longLease, nectarhooks.ClaimDone)
			}
			for _, id := range []string{"released\xff", long + "released"} {
				tok := claim(t, s, id, longLease, nectarhooks.ClaimAcquired)
				require.NoError(t, s.Release(ctx, id, tok))
				claim(t, s, id, longLease, nectarhooks.ClaimAcquired)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.run(t, newTestStore(t))
		})
	}
}

func TestTTL(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	short := newTestStore(t, WithTTL(time.Millisecond))
	// A store with the default TTL, on the same table.
	long, err := New(ctx, short.pool, WithTable(short.table.name))
	require.NoError(t, err)
	require.Equal(t, nectarhooks.DefaultIdempotencyTTL.Microseconds(), long.ttl)

	tok := claim(t, short, "short", longLease, nectarhooks.ClaimAcquired)
	require.NoError(t, short.Complete(ctx, "short", tok))
	tok = claim(t, long, "long", longLease, nectarhooks.ClaimAcquired)
	require.NoError(t, long.Complete(ctx, "long", tok))
	time.Sleep(20 * time.Millisecond)

	claim(t, long, "short", longLease, nectarhooks.ClaimAcquired) // past its TTL: runs again
	claim(t, short, "long", longLease, nectarhooks.ClaimDone)     // the TTL is the completer's

	var left time.Duration
	require.NoError(t, short.pool.QueryRow(ctx,
		"SELECT extract(epoch FROM expires_at - now())::float8 * 1e9 FROM "+short.table.sql()+" WHERE id = 'long'").Scan(&left))
	assert.InDelta(t, nectarhooks.DefaultIdempotencyTTL.Hours(), left.Hours(), 0.1)
}

func TestWithTTLDefaults(t *testing.T) {
	t.Parallel()
	for _, d := range []time.Duration{0, -time.Second} {
		c := defaultConfig()
		WithTTL(d)(&c)
		assert.Equal(t, nectarhooks.DefaultIdempotencyTTL, c.ttl, "WithTTL(%v)", d)
	}
	c := defaultConfig()
	WithTTL(time.Hour)(&c)
	assert.Equal(t, time.Hour, c.ttl)
}

// TestRestart: a replica that restarts, with a new pool and a new Store,
// still acknowledges what it processed before.
func TestRestart(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	table := testTable(t)
	pool := newPool(t, nil)
	s, err := New(ctx, pool, WithTable(table))
	require.NoError(t, err)
	done := claim(t, s, "done", longLease, nectarhooks.ClaimAcquired)
	require.NoError(t, s.Complete(ctx, "done", done))
	claim(t, s, "held", longLease, nectarhooks.ClaimAcquired)
	pool.Close()

	s2, err := New(ctx, newPool(t, nil), WithTable(table))
	require.NoError(t, err)
	claim(t, s2, "done", longLease, nectarhooks.ClaimDone)
	claim(t, s2, "held", longLease, nectarhooks.ClaimInFlight)
}

// TestConcurrentClaims: many goroutines on several pools claim the same
// ids at once, as replicas receiving duplicates do; exactly one claim of
// each id is acquired.
func TestConcurrentClaims(t *testing.T) {
	t.Parallel()
	const (
		stores     = 4
		goroutines = 8 // per store
		ids        = 20
	)
	table := testTable(t)
	var ss []*Store
	for range stores {
		s, err := New(testContext(t), newPool(t, func(c *pgxpool.Config) { c.MaxConns = goroutines / 2 }), WithTable(table))
		require.NoError(t, err)
		ss = append(ss, s)
	}
	var (
		mu       sync.Mutex
		acquired = map[string]int{}
		wg       sync.WaitGroup
	)
	ctx := testContext(t)
	for _, s := range ss {
		for range goroutines {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range ids {
					id := fmt.Sprintf("msg_%d", i)
					c, _, err := s.Claim(ctx, id, longLease)
					if !assert.NoError(t, err) {
						return
					}
					assert.NotEqual(t, nectarhooks.ClaimDone, c)
					if c == nectarhooks.ClaimAcquired {
						mu.Lock()
						acquired[id]++
						mu.Unlock()
					}
				}
			}()
		}
	}
	wg.Wait()
	require.Len(t, acquired, ids)
	for id, n := range acquired {
		assert.Equal(t, 1, n, "acquisitions of %s", id)
	}
}

// TestOneStatementPerCall counts the statements each call sends, through a
// pgx tracer: one each, so that nothing can come between a read and a
// write.
func TestOneStatementPerCall(t *testing.T) {
	t.Parallel()
	tracer := &statementCounter{}
	pool := newPool(t, func(c *pgxpool.Config) { c.ConnConfig.Tracer = tracer })
	s, err := New(testContext(t), pool, WithTable(testTable(t)))
	require.NoError(t, err)
	s.cleanupEvery = 1 << 62 // this test counts Complete's own statement
	ctx := testContext(t)

	var tok string
	calls := []struct {
		name string
		call func() error
	}{
		{"Claim acquired", func() (err error) { _, tok, err = s.Claim(ctx, "a", longLease); return err }},
		{"Claim in flight", func() error { _, _, err := s.Claim(ctx, "a", longLease); return err }},
		{"Release", func() error { return s.Release(ctx, "a", tok) }},
		{"Claim again", func() (err error) { _, tok, err = s.Claim(ctx, "a", longLease); return err }},
		{"Complete", func() error { return s.Complete(ctx, "a", tok) }},
		{"Claim done", func() error { _, _, err := s.Claim(ctx, "a", longLease); return err }},
		{"Forget", func() error { return s.Forget(ctx, "a") }},
	}
	for _, c := range calls {
		before := tracer.count()
		require.NoError(t, c.call(), c.name)
		assert.Equal(t, 1, tracer.count()-before, "statements sent by %s", c.name)
	}
}

type statementCounter struct {
	mu sync.Mutex
	n  int
}

func (c *statementCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	c.mu.Lock()
	c.n++
	c.mu.Unlock()
	return ctx
}

func (c *statementCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (c *statementCounter) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// TestQueryExecModes: the statements work in each of pgx's ways of sending
// them, the simple protocol (PgBouncer in transaction mode) included.
func TestQueryExecModes(t *testing.T) {
	t.Parallel()
	table := testTable(t)
	modes := []pgx.QueryExecMode{
		pgx.QueryExecModeCacheStatement, pgx.QueryExecModeCacheDescribe,
		pgx.QueryExecModeDescribeExec, pgx.QueryExecModeExec, pgx.QueryExecModeSimpleProtocol,
	}
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			ctx := testContext(t)
			pool := newPool(t, func(c *pgxpool.Config) { c.ConnConfig.DefaultQueryExecMode = mode })
			s, err := New(ctx, pool, WithTable(table))
			require.NoError(t, err)
			id := "msg_" + mode.String()
			tok := claim(t, s, id, noLease, nectarhooks.ClaimAcquired)
			expire()
			tok2 := claim(t, s, id, longLease, nectarhooks.ClaimAcquired)
			require.NoError(t, s.Release(ctx, id, tok))
			claim(t, s, id, longLease, nectarhooks.ClaimInFlight)
			require.NoError(t, s.Release(ctx, id, tok2))
			tok = claim(t, s, id, longLease, nectarhooks.ClaimAcquired)
			require.NoError(t, s.Complete(ctx, id, tok))
			claim(t, s, id, longLease, nectarhooks.ClaimDone)
			require.NoError(t, s.Forget(ctx, id))
			claim(t, s, id, longLease, nectarhooks.ClaimAcquired)
			_, err = s.DeleteExpired(ctx)
			require.NoError(t, err)
		})
	}
}
