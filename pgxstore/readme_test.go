package pgxstore_test

// The fragments of docs/dead-letters.md that need this module, compiled
// and run.

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
	"github.com/nectarhooks/nectarhooks/pgxstore"
)

// docs/dead-letters.md "Dead letters": the table.
func deadLetterSetup(ctx context.Context, pool *pgxpool.Pool, secret string, store nectarhooks.IdempotencyStore, out **nectarhooks.Handler) error {
	deadLetters, err := pgxstore.NewDeadLetters(ctx, pool, "")
	if err != nil {
		return err
	}
	h, err := nectarhooks.NewHandler(secret,
		nectarhooks.WithIdempotency(store),
		nectarhooks.WithDeadLetters(deadLetters))

	*out = h
	return err
}

// TestDeadLetterSetupFragment runs the fragment in a schema of its own, so
// that the default table name it uses is the test's alone.
func TestDeadLetterSetupFragment(t *testing.T) {
	ctx := context.Background()
	admin, err := pgxpool.New(ctx, nectarhookstest.PostgresURL(t))
	require.NoError(t, err)
	t.Cleanup(admin.Close)
	schema := "nectarhooks_test_" + strings.ToLower(nectarhookstest.NewMessageID()[4:20])
	_, err = admin.Exec(ctx, "CREATE SCHEMA "+pgx.Identifier{schema}.Sanitize())
	require.NoError(t, err)
	t.Cleanup(func() {
		_, err := admin.Exec(context.Background(), "DROP SCHEMA "+pgx.Identifier{schema}.Sanitize()+" CASCADE")
		require.NoError(t, err)
	})
	cfg, err := pgxpool.ParseConfig(nectarhookstest.PostgresURL(t))
	require.NoError(t, err)
	cfg.ConnConfig.RuntimeParams["search_path"] = schema
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	defer pool.Close()
	var h *nectarhooks.Handler
	require.NoError(t, deadLetterSetup(ctx, pool, nectarhookstest.NewSecret(), nectarhooks.NewMemoryStore(0, 0), &h))
	require.NotNil(t, h)
	var n int
	require.NoError(t, admin.QueryRow(ctx, "SELECT count(*) FROM "+pgx.Identifier{schema, pgxstore.DefaultDeadLetterTable}.Sanitize()).Scan(&n))
}
