package pgxstore

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nectarhooks/nectarhooks"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestLeaseCountedFromGrant: a Claim or Complete that waits for a lock, on
// the table (LOCK TABLE … ACCESS EXCLUSIVE, as DDL, VACUUM FULL or
// pg_repack take) or on the id's row (a transaction holding it), counts
// its lease or TTL from when it gets the lock, not from when its
// statement began. Counted from the start, a wait longer than the lease
// grants a lease that has ended already, and the next Claim acquires the
// message too: two holders.
func TestLeaseCountedFromGrant(t *testing.T) {
	t.Parallel()
	// The blocked call waits for lease+1s, so a lease counted from its
	// statement's start would have ended a second before the lock is
	// released; counted from the grant, it holds for lease after it, which
	// leaves the next Claim plenty of time.
	const lease = 2 * time.Second
	tests := []struct {
		name string
		// expired: the id has a row already, whose lease has ended, so that
		// the blocked Claim takes it over (the statement's UPDATE branch).
		expired bool
		// block takes the lock in the blocking transaction: the statement
		// for the table's name and the id, and its arguments.
		block    func(table, id string) (string, []any)
		complete bool // the blocked call is a Complete of a held claim, not a Claim
	}{
		{name: "claim of a new id behind a table lock", block: lockTable},
		{name: "takeover behind a table lock", expired: true, block: lockTable},
		{name: "takeover behind a row lock", expired: true, block: lockRow},
		{name: "complete behind a table lock", complete: true, block: lockTable},
		{name: "complete behind a row lock", complete: true, block: lockRow},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := testContext(t)
			table := testTable(t)
			// One connection, so that its backend can be watched waiting,
			// and with the statements prepared on it before the lock is
			// taken: a statement that waits while being prepared starts
			// its transaction, now(), only after the wait.
			s, err := New(ctx, newPool(t, func(c *pgxpool.Config) { c.MaxConns = 1 }), WithTable(table), WithTTL(lease))
			require.NoError(t, err)
			tok := claim(t, s, "warm-up", longLease, nectarhooks.ClaimAcquired)
			require.NoError(t, s.Complete(ctx, "warm-up", tok))
			var pid uint32
			require.NoError(t, s.pool.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid))
			// Another replica, on a pool of its own.
			other, err := New(ctx, newPool(t, nil), WithTable(table))
			require.NoError(t, err)

			const id = "msg"
			switch {
			case tt.expired:
				claim(t, s, id, noLease, nectarhooks.ClaimAcquired)
				expire()
			case tt.complete:
				tok = claim(t, s, id, longLease, nectarhooks.ClaimAcquired)
			}

			tx, err := other.pool.Begin(ctx)
			require.NoError(t, err)
			defer func() { _ = tx.Rollback(context.Background()) }()
			statement, args := tt.block(s.table.sql(), id)
			_, err = tx.Exec(ctx, statement, args...)
			require.NoError(t, err)
			var blocker uint32
			require.NoError(t, tx.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&blocker))

			type result struct {
				claim nectarhooks.Claim
				err   error
			}
			blocked := make(chan result, 1)
			go func() {
				if tt.complete {
					blocked <- result{err: s.Complete(ctx, id, tok)}
					return
				}
				c, _, err := s.Claim(ctx, id, lease)
				blocked <- result{claim: c, err: err}
			}()
			waitBlocked(t, other.pool, pid, blocker, blocked)
			time.Sleep(lease + time.Second)
			var released time.Time
			require.NoError(t, tx.QueryRow(ctx, "SELECT clock_timestamp()").Scan(&released))
			require.NoError(t, tx.Commit(ctx))
			r := <-blocked
			require.NoError(t, r.err)
			want := nectarhooks.ClaimDone
			if !tt.complete {
				require.Equal(t, nectarhooks.ClaimAcquired, r.claim, "the blocked Claim")
				want = nectarhooks.ClaimInFlight
			}

			var expires time.Time
			require.NoError(t, other.pool.QueryRow(ctx,
				"SELECT expires_at FROM "+s.table.sql()+" WHERE id = $1", id).Scan(&expires))
			assert.False(t, expires.Before(released.Add(lease)),
				"expires_at %v is less than %v after the lock's release at %v", expires, lease, released)
			assert.Equal(t, want, claimOf(t, other, id, lease), "another replica's Claim right after")
		})
	}
}

// lockTable locks the whole table, as DDL, VACUUM FULL or pg_repack do.
func lockTable(table, _ string) (string, []any) {
	return "LOCK TABLE " + table + " IN ACCESS EXCLUSIVE MODE", nil
}

// lockRow locks id's row, as a transaction that updates it does.
func lockRow(table, id string) (string, []any) {
	return "SELECT 1 FROM " + table + " WHERE id = $1 FOR UPDATE", []any{key(id)}
}

// claimOf claims id and returns the answer.
func claimOf(t *testing.T, s *Store, id string, lease time.Duration) nectarhooks.Claim {
	t.Helper()
	c, _, err := s.Claim(testContext(t), id, lease)
	require.NoError(t, err)
	return c
}

// waitBlocked waits until backend pid waits for a lock that backend
// blocker holds, failing the test if the call running on pid answers
// first.
func waitBlocked[R any](t *testing.T, pool *pgxpool.Pool, pid, blocker uint32, answered <-chan R) {
	t.Helper()
	ctx := testContext(t)
	for {
		var waiting bool
		require.NoError(t, pool.QueryRow(ctx, "SELECT $1::int = ANY(pg_blocking_pids($2))", blocker, pid).Scan(&waiting))
		if waiting {
			return
		}
		select {
		case r := <-answered:
			require.FailNow(t, "the call did not wait for the lock", "it answered %+v", r)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// TestRoundedUp: leases and TTLs are stored rounded up to whole
// microseconds, PostgreSQL's unit, and to at least one: a lease or TTL
// never ends before what was asked. Truncated, a TTL under a microsecond
// would forget a completion at once and a lease of 1.5 µs would hold for
// one. Each row's expires_at is compared with its statement's now() (the
// time its transaction began, so no later than the grant), which a
// trigger copies into a column of the test's own.
func TestRoundedUp(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		d        time.Duration // the lease, or the TTL for a Complete
		complete bool
		want     time.Duration // expires_at - now() at least
	}{
		{name: "lease 1ns", d: time.Nanosecond, want: time.Microsecond},
		{name: "lease 999ns", d: 999 * time.Nanosecond, want: time.Microsecond},
		{name: "lease 1µs", d: time.Microsecond, want: time.Microsecond},
		{name: "lease 1.5µs", d: 1500 * time.Nanosecond, want: 2 * time.Microsecond},
		{name: "ttl 999ns", d: 999 * time.Nanosecond, complete: true, want: time.Microsecond},
		{name: "ttl 1µs+1ns", d: time.Microsecond + 1, complete: true, want: 2 * time.Microsecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := testContext(t)
			schema := testSchema(t)
			pool := newPool(t, nil)
			s, err := New(ctx, pool, WithTable(schema+".messages"), WithTTL(tt.d))
			require.NoError(t, err)
			recordStatementTime(t, s)

			lease := tt.d
			if tt.complete {
				lease = longLease
			}
			tok := claim(t, s, "a", lease, nectarhooks.ClaimAcquired)
			if tt.complete {
				require.NoError(t, s.Complete(ctx, "a", tok))
			}
			var done bool
			var micros int64
			require.NoError(t, pool.QueryRow(ctx, "SELECT done, (extract(epoch FROM expires_at - stmt_now) * 1000000)::bigint FROM "+
				s.table.sql()+" WHERE id = 'a'").Scan(&done, &micros))
			require.Equal(t, tt.complete, done)
			assert.GreaterOrEqual(t, micros, tt.want.Microseconds(), "expires_at - now() in µs")
		})
	}
}

// recordStatementTime adds the column stmt_now to s's table, set to now()
// by every statement that writes a row. s's table must be in a schema of
// the test's own, where the trigger's function goes too.
func recordStatementTime(t *testing.T, s *Store) {
	t.Helper()
	ctx := testContext(t)
	table := s.table.sql()
	fn := pgx.Identifier{s.table.schema, "record_now"}.Sanitize()
	for _, statement := range []string{
		"ALTER TABLE " + table + " ADD COLUMN stmt_now timestamptz",
		"CREATE FUNCTION " + fn + "() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN NEW.stmt_now := now(); RETURN NEW; END$$",
		"CREATE TRIGGER record_now BEFORE INSERT OR UPDATE ON " + table + " FOR EACH ROW EXECUTE FUNCTION " + fn + "()",
	} {
		_, err := s.pool.Exec(ctx, statement)
		require.NoError(t, err, statement)
	}
}

// TestMicroseconds: the conversion of leases and TTLs rounds up, to at
// least 1 µs, and does not overflow at the ends of Duration.
func TestMicroseconds(t *testing.T) {
	t.Parallel()
	tests := []struct {
		d    time.Duration
		want int64
	}{
		{math.MinInt64, 1},
		{-time.Second, 1},
		{0, 1},
		{1, 1},
		{999, 1},
		{time.Microsecond, 1},
		{time.Microsecond + 1, 2},
		{2*time.Microsecond - 1, 2},
		{time.Hour, 3_600_000_000},
		{math.MaxInt64 - 807, math.MaxInt64 / 1000},
		{math.MaxInt64, math.MaxInt64/1000 + 1},
	}
	for _, tt := range tests {
		t.Run(tt.d.String(), func(t *testing.T) {
			assert.Equal(t, tt.want, microseconds(tt.d))
		})
	}
}
