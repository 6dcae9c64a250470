package pgxstore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nectarhooks/nectarhooks"
)

// Store is a nectarhooks.IdempotencyStore in a PostgreSQL table (see the
// package documentation for the table and the rules it keeps). It is safe
// for concurrent use, and any number of Stores, in any number of
// processes, may share one table. It needs no Close: it starts no
// goroutine and holds no connection of its own, only the pool it was given,
// which stays the caller's to close.
type Store struct {
	pool  *pgxpool.Pool
	table tableName
	ttl   int64 // microseconds, the unit of PostgreSQL's intervals

	// The statements' text, built once: pgx prepares each text on a
	// connection's first use of it and reuses it after (its default
	// statement cache), so a call costs one round trip.
	claimSQL, completeSQL, completeTxSQL, releaseSQL, forgetSQL, cleanupSQL string

	completes    atomic.Uint64 // Completes so far, to schedule cleanups
	cleanupEvery uint64        // a cleanup every this many Completes
	cleanupBatch int           // rows a cleanup deletes at most
}

var _ nectarhooks.IdempotencyStore = (*Store)(nil)

// Cleanup defaults: see the package documentation.
const (
	defaultCleanupEvery = 256
	defaultCleanupBatch = 1024
)

// New returns a Store keeping its messages in a table reached through
// pool, and creates the table and its index when they are missing (see
// the package documentation); it is safe for several replicas to call New
// at once. It fails when the table name is invalid (ErrInvalidTable), when
// the database cannot be reached, or when a table of that name exists
// without the store's columns. The pool stays the caller's: close it after
// the last use of the Store.
func New(ctx context.Context, pool *pgxpool.Pool, opts ...Option) (*Store, error) {
	if pool == nil {
		return nil, errors.New("pgxstore: New with a nil pool")
	}
	c := defaultConfig()
	for _, opt := range opts {
		opt(&c)
	}
	table, err := parseTable(c.table)
	if err != nil {
		return nil, err
	}
	if err := ensureTable(ctx, pool, table, "a store", "id, token, done, expires_at",
		`CREATE TABLE IF NOT EXISTS `+table.sql()+` (
	id         text COLLATE "C" PRIMARY KEY,
	token      bigint NOT NULL,
	done       boolean NOT NULL,
	expires_at timestamptz NOT NULL
)`,
		"CREATE INDEX IF NOT EXISTS "+table.index()+" ON "+table.sql()+" (expires_at)"); err != nil {
		return nil, err
	}
	return newStore(pool, table, c.ttl), nil
}

func newStore(pool *pgxpool.Pool, table tableName, ttl time.Duration) *Store {
	t := table.sql()
	// Every time is the database's clock, never the replicas': they drift
	// apart, and a replica whose clock ran ahead would take over leases
	// that have not ended yet. Two of its readings are used:
	//
	// now() decides whether a row has expired. It is the time the
	// statement's transaction began (each of these statements is a
	// transaction of its own) and stays the same throughout the statement,
	// so the CASEs below agree with each other. It may be well before the
	// statement gets its locks, when it waits for the table (DDL, VACUUM
	// FULL, pg_repack) or for the id's row; a row is then judged expired
	// late, never early, so a lease is never taken over before its end.
	//
	// clock_timestamp() starts each new expires_at: it is read when the row
	// is written, after those waits, so that a lease or TTL is counted from
	// when the claim or completion is granted. now() + lease would grant a
	// lease shortened by the wait, or over already after a wait longer
	// than the lease, and the next Claim would acquire the message too. In
	// the UPDATE branches it is read anew rather than taken from excluded,
	// whose VALUES were computed before the wait for the row's lock. (An
	// INSERT that waited for another transaction's uncommitted insert or
	// delete of the same id, and then inserts after all, still writes the
	// VALUES' reading: the statement has no later point to read the clock
	// at. The store's own statements hold a row only for their own short
	// transaction.)
	return &Store{
		pool:  pool,
		table: table,
		ttl:   microseconds(ttl),

		// One statement decides and reports: a new id is inserted in
		// flight; a row past expires_at (lease or TTL over) is taken over
		// with the new token; any other row is "updated" to itself, which
		// locks it for the statement so that RETURNING reports the state
		// that holds once concurrent claims of the id have committed. A
		// returned token equal to the one offered means acquired; another
		// token, done or in flight. (ON CONFLICT … DO UPDATE … WHERE would
		// return no row at all for done and in flight alike, and telling
		// them apart would take a second, racing, statement.)
		claimSQL: `INSERT INTO ` + t + ` AS m (id, token, done, expires_at)
VALUES ($1, $2, false, clock_timestamp() + $3 * interval '1 microsecond')
ON CONFLICT (id) DO UPDATE SET
	token      = CASE WHEN m.expires_at <= now() THEN excluded.token ELSE m.token END,
	done       = CASE WHEN m.expires_at <= now() THEN false ELSE m.done END,
	expires_at = CASE WHEN m.expires_at <= now() THEN clock_timestamp() + $3 * interval '1 microsecond' ELSE m.expires_at END
RETURNING token, done`,

		// Done under this token while it is the row's current claim,
		// whatever its lease; or recorded afresh when no live claim is
		// there to fence: no row (forgotten, or cleaned up), or a row past
		// its expires_at (a lease that ran out with nobody taking the
		// message over, or a done row past its TTL). A done row within its
		// TTL keeps its first completion time.
		completeSQL: `INSERT INTO ` + t + ` AS m (id, token, done, expires_at)
VALUES ($1, $2, true, clock_timestamp() + $3 * interval '1 microsecond')
ON CONFLICT (id) DO UPDATE SET token = excluded.token, done = true, expires_at = clock_timestamp() + $3 * interval '1 microsecond'
WHERE (m.token = excluded.token AND NOT m.done) OR m.expires_at <= now()`,

		// CompleteTx's: marks the claim done in the caller's transaction,
		// strictly fenced: unlike Complete, it never completes a message
		// that is done already, nor one another holder claims now. The
		// row's lock is then held until the caller's transaction ends, so
		// two transactions cannot both complete the message: the second
		// waits for the first, then finds the row done (READ COMMITTED
		// re-reads it) and completes nothing.
		completeTxSQL: `INSERT INTO ` + t + ` AS m (id, token, done, expires_at)
VALUES ($1, $2, true, clock_timestamp() + $3 * interval '1 microsecond')
ON CONFLICT (id) DO UPDATE SET token = excluded.token, done = true, expires_at = clock_timestamp() + $3 * interval '1 microsecond'
WHERE NOT m.done AND (m.token = excluded.token OR m.expires_at <= now())`,

		releaseSQL: `DELETE FROM ` + t + ` WHERE id = $1 AND token = $2 AND NOT done`,

		forgetSQL: `DELETE FROM ` + t + ` WHERE id = $1`,

		// The oldest expired rows, through the expires_at index. FOR
		// UPDATE locks each and re-checks that it is still expired (a
		// concurrent Claim may just have taken it over, and then it is
		// skipped); SKIP LOCKED lets replicas clean at once without
		// waiting on each other or on claims.
		cleanupSQL: `DELETE FROM ` + t + ` WHERE id IN (
	SELECT id FROM ` + t + ` WHERE expires_at <= now()
	ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED)`,

		cleanupEvery: defaultCleanupEvery,
		cleanupBatch: defaultCleanupBatch,
	}
}

// newToken returns a random claim token in [1, MaxInt64]. Tokens only need
// to differ between the claims of one id; 63 random bits make a repeat
// negligible, and unlike a per-id counter they stay unique when a row is
// forgotten and claimed again. 0 is never a token: unreadable tokens
// stand for it (see parseToken).
func newToken() int64 {
	return rand.Int64N(math.MaxInt64) + 1
}

// microseconds converts a lease or TTL to whole microseconds, the unit of
// PostgreSQL's intervals, rounding up, and to at least one: a lease or TTL
// never ends before it was asked to. (Duration.Microseconds truncates, so
// a TTL under a microsecond would forget a completion at once.) It cannot
// overflow: math.MaxInt64 nanoseconds is 9223372036854776 µs.
func microseconds(d time.Duration) int64 {
	if d <= 0 {
		return 1
	}
	n := int64(d / time.Microsecond)
	if d%time.Microsecond != 0 {
		n++
	}
	return n
}

// formatToken spells a token for the holder: base 36, lower case.
func formatToken(n int64) string { return strconv.FormatInt(n, 36) }

// parseToken reads a token made by formatToken. Anything else, other
// spellings of the same number included ("+", leading zeros, upper case),
// reads as 0, which no claim holds: Complete and Release with it then act
// as with a stale token.
func parseToken(token string) int64 {
	n, err := strconv.ParseInt(token, 36, 64)
	var buf [16]byte
	if err != nil || n <= 0 || string(strconv.AppendInt(buf[:0], n, 36)) != token {
		return 0
	}
	return n
}

// Claim implements nectarhooks.IdempotencyStore in one statement: see the
// package documentation. The lease is rounded up to whole microseconds.
// Its error is the database's or the pool's.
func (s *Store) Claim(ctx context.Context, id string, lease time.Duration) (nectarhooks.Claim, string, error) {
	mine := newToken()
	var (
		token int64
		done  bool
	)
	err := s.pool.QueryRow(ctx, s.claimSQL, key(id), mine, microseconds(lease)).Scan(&token, &done)
	switch {
	case err != nil:
		return 0, "", fmt.Errorf("pgxstore: claim: %w", err)
	case token == mine:
		return nectarhooks.ClaimAcquired, formatToken(mine), nil
	case done:
		return nectarhooks.ClaimDone, "", nil
	}
	return nectarhooks.ClaimInFlight, "", nil
}

// Complete implements nectarhooks.IdempotencyStore in one statement. Every
// 256th Complete of a Store then also deletes up to 1024 expired rows; that
// cleanup's failure is not reported, since the message was recorded, and
// the next Complete tries again.
func (s *Store) Complete(ctx context.Context, id, token string) error {
	if _, err := s.pool.Exec(ctx, s.completeSQL, key(id), parseToken(token), s.ttl); err != nil {
		return fmt.Errorf("pgxstore: complete: %w", err)
	}
	if n := s.completes.Add(1); n%s.cleanupEvery == 0 {
		if _, err := s.deleteExpired(ctx); err != nil {
			// Try again at the next Complete rather than in 256.
			s.completes.Add(^uint64(0))
		}
	}
	return nil
}

// Release implements nectarhooks.IdempotencyStore in one statement.
func (s *Store) Release(ctx context.Context, id, token string) error {
	if _, err := s.pool.Exec(ctx, s.releaseSQL, key(id), parseToken(token)); err != nil {
		return fmt.Errorf("pgxstore: release: %w", err)
	}
	return nil
}

// Forget implements nectarhooks.IdempotencyStore: it deletes id's row,
// processed or in flight, so that its next delivery runs the callback. A
// holder of a forgotten claim that completes it afterwards records the
// message as processed, as no newer claim is there to protect.
func (s *Store) Forget(ctx context.Context, id string) error {
	if _, err := s.pool.Exec(ctx, s.forgetSQL, key(id)); err != nil {
		return fmt.Errorf("pgxstore: forget: %w", err)
	}
	return nil
}
