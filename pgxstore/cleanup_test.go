package pgxstore

import (
	"fmt"
	"testing"
	"time"

	"github.com/nectarhooks/nectarhooks"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestCleanupPiggyBacksOnComplete: Completes delete expired rows as they
// go, leaving rows that still count.
func TestCleanupPiggyBacksOnComplete(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	s := newTestStore(t, WithTTL(time.Millisecond))
	s.cleanupEvery, s.cleanupBatch = 5, 3

	// Three expired rows: two done past the TTL, one lease over.
	for _, id := range []string{"done1", "done2"} {
		tok := claim(t, s, id, longLease, nectarhooks.ClaimAcquired)
		require.NoError(t, s.Complete(ctx, id, tok))
	}
	claim(t, s, "lease", noLease, nectarhooks.ClaimAcquired)
	// Two that must stay: a lease in force, and a row done under a long TTL.
	claim(t, s, "held", longLease, nectarhooks.ClaimAcquired)
	keep, err := New(ctx, s.pool, WithTable(s.table.name))
	require.NoError(t, err)
	keep.cleanupEvery = 1 << 62
	tok := claim(t, keep, "kept", longLease, nectarhooks.ClaimAcquired)
	require.NoError(t, keep.Complete(ctx, "kept", tok))
	time.Sleep(20 * time.Millisecond)
	require.Equal(t, 5, countRows(t, s, "true"))

	// Two more Completes bring s to its 4th, whose rows expire too.
	for i := range 2 {
		id := fmt.Sprintf("more%d", i)
		tok := claim(t, s, id, longLease, nectarhooks.ClaimAcquired)
		require.NoError(t, s.Complete(ctx, id, tok))
	}
	time.Sleep(20 * time.Millisecond)
	assert.Equal(t, 5, countRows(t, s, "expires_at <= now()"), "no cleanup before the 5th Complete")
	// The 5th Complete (of a made-up id and token, recorded as done)
	// cleans one batch of 3, oldest first: the first three expired rows.
	require.NoError(t, s.Complete(ctx, "fifth", "made-up"))
	assert.Equal(t, 0, countRows(t, s, "id IN ('done1', 'done2', 'lease')"))
	assert.Equal(t, 5, countRows(t, s, "id IN ('more0', 'more1', 'fifth', 'held', 'kept')"))
	claim(t, s, "held", longLease, nectarhooks.ClaimInFlight)
	claim(t, s, "kept", longLease, nectarhooks.ClaimDone)
}

func TestDeleteExpired(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	s := newTestStore(t)
	const expired, live = 2*defaultCleanupBatch + 100, 50
	_, err := s.pool.Exec(ctx, "INSERT INTO "+s.table.sql()+` (id, token, done, expires_at)
SELECT 'old' || i, i, i % 2 = 0, now() - i * interval '1 second' FROM generate_series(1, $1) i
UNION ALL
SELECT 'new' || i, i, i % 2 = 0, now() + interval '1 hour' FROM generate_series(1, $2) i`, expired, live)
	require.NoError(t, err)

	n, err := s.DeleteExpired(ctx)
	require.NoError(t, err)
	assert.EqualValues(t, expired, n)
	assert.Equal(t, live, countRows(t, s, "true"))
	assert.Equal(t, live, countRows(t, s, "id LIKE 'new%'"))

	n, err = s.DeleteExpired(ctx)
	require.NoError(t, err)
	assert.Zero(t, n)
}

// TestCleanupUsesIndex: the cleanup's scan goes through the expires_at
// index, so it costs the rows it deletes, not the table's size.
func TestCleanupUsesIndex(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	s := newTestStore(t)
	_, err := s.pool.Exec(ctx, "INSERT INTO "+s.table.sql()+` (id, token, done, expires_at)
SELECT 'new' || i, i, true, now() + interval '1 hour' FROM generate_series(1, 20000) i`)
	require.NoError(t, err)
	_, err = s.pool.Exec(ctx, "ANALYZE "+s.table.sql())
	require.NoError(t, err)
	var plan string
	rows, err := s.pool.Query(ctx, "EXPLAIN "+s.cleanupSQL, s.cleanupBatch)
	require.NoError(t, err)
	for rows.Next() {
		var line string
		require.NoError(t, rows.Scan(&line))
		plan += line + "\n"
	}
	require.NoError(t, rows.Err())
	assert.Contains(t, plan, s.table.name+"_expires_idx", plan)
}

// TestCleanupFailureRetried: a failed cleanup does not fail its Complete,
// and the next Complete tries again rather than waiting for its turn.
func TestCleanupFailureRetried(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	s := newTestStore(t, WithTTL(time.Millisecond))
	s.cleanupEvery = 2
	cleanupSQL := s.cleanupSQL
	s.cleanupSQL = "SELECT no_such_function($1)"

	complete := func(id string) {
		t.Helper()
		tok := claim(t, s, id, longLease, nectarhooks.ClaimAcquired)
		require.NoError(t, s.Complete(ctx, id, tok))
	}
	complete("a")
	complete("b") // its cleanup fails
	s.cleanupSQL = cleanupSQL
	time.Sleep(20 * time.Millisecond)
	require.Equal(t, 2, countRows(t, s, "expires_at <= now()"))
	complete("c") // tries again
	assert.Equal(t, 0, countRows(t, s, "id IN ('a', 'b')"))
}
