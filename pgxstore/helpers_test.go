package pgxstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
	"github.com/stretchr/testify/require"
)

// testTimeout bounds each database call of a test: generous, since the
// machine may be busy, but short of hanging the run.
const testTimeout = time.Minute

// newPool returns a pool on the test server, closed when the test ends;
// configure, if not nil, adjusts its configuration first.
func newPool(t testing.TB, configure func(*pgxpool.Config)) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(nectarhookstest.PostgresURL(t))
	require.NoError(t, err)
	if configure != nil {
		configure(cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return pool
}

// randomSuffix returns 16 random hex digits, to keep each test's table
// apart from those of tests running at the same time on the same server.
func randomSuffix(t testing.TB) string {
	t.Helper()
	b := make([]byte, 8)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return hex.EncodeToString(b)
}

// testTable returns the name of a table of the test's own, which is
// dropped when the test ends.
func testTable(t testing.TB) string {
	t.Helper()
	name := "nectarhooks_test_" + randomSuffix(t)
	dropAtEnd(t, "DROP TABLE IF EXISTS "+pgx.Identifier{name}.Sanitize())
	return name
}

// testSchema creates a schema of the test's own, dropped with everything in
// it when the test ends.
func testSchema(t testing.TB) string {
	t.Helper()
	name := "nectarhooks_test_" + randomSuffix(t)
	pool := newPool(t, nil)
	_, err := pool.Exec(context.Background(), "CREATE SCHEMA "+pgx.Identifier{name}.Sanitize())
	require.NoError(t, err)
	dropAtEnd(t, "DROP SCHEMA IF EXISTS "+pgx.Identifier{name}.Sanitize()+" CASCADE")
	return name
}

// dropAtEnd runs statement on a connection of its own when the test ends,
// after the test's pools have closed.
func dropAtEnd(t testing.TB, statement string) {
	t.Helper()
	url := nectarhookstest.PostgresURL(t)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Errorf("cleanup: %v", err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, statement); err != nil {
			t.Errorf("cleanup: %s: %v", statement, err)
		}
	})
}

// newTestStore returns a Store on a table of the test's own, with a pool
// of its own.
func newTestStore(t testing.TB, opts ...Option) *Store {
	t.Helper()
	opts = append([]Option{WithTable(testTable(t))}, opts...)
	s, err := New(testContext(t), newPool(t, nil), opts...)
	require.NoError(t, err)
	return s
}

// testContext returns a context that ends with the test or after
// testTimeout.
func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// countRows counts the rows of the store's table that match where.
func countRows(t testing.TB, s *Store, where string) int {
	t.Helper()
	var n int
	err := s.pool.QueryRow(testContext(t), "SELECT count(*) FROM "+s.table.sql()+" WHERE "+where).Scan(&n)
	require.NoError(t, err)
	return n
}
