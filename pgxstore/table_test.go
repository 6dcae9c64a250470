package pgxstore

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseTable(t *testing.T) {
	t.Parallel()
	long51 := strings.Repeat("t", 51)
	long63 := strings.Repeat("s", 63)
	tests := []struct {
		in      string
		wantSQL string // "" when invalid
	}{
		{"nectarhooks_messages", `"nectarhooks_messages"`},
		{"Messages", `"Messages"`},
		{"_x1", `"_x1"`},
		{"app.webhooks", `"app"."webhooks"`},
		{long51, `"` + long51 + `"`},
		{long63 + "." + long51, `"` + long63 + `"."` + long51 + `"`},

		{"", ""},
		{".", ""},
		{"app.", ""},
		{".webhooks", ""},
		{"a.b.c", ""},
		{long51 + "t", ""},
		{long63 + "s.t", ""},
		{"1table", ""},
		{"my-table", ""},
		{"my table", ""},
		{`x"; DROP TABLE users; --`, ""},
		{"tablé", ""},
		{"t\x00", ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseTable(tt.in)
			if tt.wantSQL == "" {
				require.ErrorIs(t, err, ErrInvalidTable)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.wantSQL, got.sql())
			assert.Equal(t, pgx.Identifier{got.name + "_expires_idx"}.Sanitize(), got.index())
		})
	}
}

// TestNewInvalidTable: New refuses a bad name before it touches the
// database, so this needs no server: the pool's address is never dialled.
func TestNewInvalidTable(t *testing.T) {
	t.Parallel()
	pool, err := pgxpool.New(context.Background(), "postgres://nobody@127.0.0.1:1/none")
	require.NoError(t, err)
	defer pool.Close()
	_, err = New(context.Background(), pool, WithTable("no-dashes"))
	require.ErrorIs(t, err, ErrInvalidTable)
	_, err = New(context.Background(), nil)
	require.Error(t, err)
}

func TestNewCreatesTableAndIndex(t *testing.T) {
	t.Parallel()
	schema := testSchema(t)
	tests := []struct {
		name         string
		table        func() string
		schema, bare string
	}{
		{"default schema", func() string { return testTable(t) }, "", ""},
		{"schema-qualified", func() string { return schema + ".webhooks" }, schema, "webhooks"},
		{"mixed case", func() string { return schema + ".WebHooks" }, schema, "WebHooks"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testContext(t)
			pool := newPool(t, nil)
			table := tt.table()
			s, err := New(ctx, pool, WithTable(table))
			require.NoError(t, err)
			bare := tt.bare
			if bare == "" {
				bare = table
			}
			var (
				gotSchema string
				columns   []string
			)
			require.NoError(t, pool.QueryRow(ctx, `SELECT n.nspname, array_agg(a.attname::text || ' ' || format_type(a.atttypid, a.atttypmod) ORDER BY a.attnum)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_attribute a ON a.attrelid = c.oid
WHERE c.oid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped GROUP BY n.nspname`, s.table.sql()).Scan(&gotSchema, &columns))
			if tt.schema != "" {
				assert.Equal(t, tt.schema, gotSchema)
			}
			assert.Equal(t, []string{"id text", "token bigint", "done boolean", "expires_at timestamp with time zone"}, columns)
			var indexdef string
			require.NoError(t, pool.QueryRow(ctx, "SELECT indexdef FROM pg_indexes WHERE schemaname = $1 AND indexname = $2",
				gotSchema, bare+"_expires_idx").Scan(&indexdef))
			assert.Contains(t, indexdef, "(expires_at)")

			// A second New finds the table and keeps what it holds.
			tok := claim(t, s, "a", longLease, nectarhooks.ClaimAcquired)
			require.NoError(t, s.Complete(ctx, "a", tok))
			s2, err := New(ctx, pool, WithTable(table))
			require.NoError(t, err)
			claim(t, s2, "a", longLease, nectarhooks.ClaimDone)
		})
	}
}

// TestNewConcurrently: replicas starting at once, each with a pool of its
// own, all create the same table; none fails.
func TestNewConcurrently(t *testing.T) {
	t.Parallel()
	const replicas = 12
	schema := testSchema(t)
	for _, table := range []string{testTable(t), schema + ".concurrent"} {
		pools := make([]*pgxpool.Pool, replicas)
		for i := range pools {
			pools[i] = newPool(t, func(c *pgxpool.Config) { c.MaxConns = 1 })
		}
		ctx := testContext(t)
		start := make(chan struct{})
		errs := make([]error, replicas)
		stores := make([]*Store, replicas)
		var wg sync.WaitGroup
		for i := range pools {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				stores[i], errs[i] = New(ctx, pools[i], WithTable(table))
			}()
		}
		close(start)
		wg.Wait()
		for i, err := range errs {
			require.NoError(t, err, "replica %d, table %s", i, table)
		}
		tok := claim(t, stores[0], "a", longLease, nectarhooks.ClaimAcquired)
		require.NoError(t, stores[0].Complete(ctx, "a", tok))
		for _, s := range stores {
			claim(t, s, "a", longLease, nectarhooks.ClaimDone)
		}
	}
}

func TestNewRefusesForeignTable(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	pool := newPool(t, nil)
	table := testTable(t)
	_, err := pool.Exec(ctx, "CREATE TABLE "+pgx.Identifier{table}.Sanitize()+" (id text PRIMARY KEY, payload jsonb)")
	require.NoError(t, err)
	_, err = New(ctx, pool, WithTable(table))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "lacks the columns")
}

// TestNewWithoutCreatePrivilege: a role that may only read and write a
// table created beforehand (by a migration) can use it; New does not try
// to create it.
func TestNewWithoutCreatePrivilege(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	admin := newPool(t, nil)
	role := "nectarhooks_test_" + randomSuffix(t)
	_, err := admin.Exec(ctx, "CREATE ROLE "+pgx.Identifier{role}.Sanitize()+" LOGIN")
	require.NoError(t, err)
	dropAtEnd(t, "DROP ROLE IF EXISTS "+pgx.Identifier{role}.Sanitize())

	schema := testSchema(t) // dropped before the role, so nothing is left granted
	table := schema + ".migrated"
	_, err = New(ctx, admin, WithTable(table))
	require.NoError(t, err)
	_, err = admin.Exec(ctx, "GRANT USAGE ON SCHEMA "+pgx.Identifier{schema}.Sanitize()+" TO "+pgx.Identifier{role}.Sanitize()+
		"; GRANT SELECT, INSERT, UPDATE, DELETE ON "+pgx.Identifier{schema, "migrated"}.Sanitize()+" TO "+pgx.Identifier{role}.Sanitize())
	require.NoError(t, err)

	u, err := url.Parse(nectarhookstest.PostgresURL(t))
	require.NoError(t, err)
	u.User = url.User(role)
	cfg, err := pgxpool.ParseConfig(u.String())
	require.NoError(t, err)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	defer pool.Close()

	s, err := New(ctx, pool, WithTable(table))
	require.NoError(t, err)
	tok := claim(t, s, "a", noLease, nectarhooks.ClaimAcquired)
	require.NoError(t, s.Release(ctx, "a", tok))
	tok = claim(t, s, "a", noLease, nectarhooks.ClaimAcquired)
	require.NoError(t, s.Complete(ctx, "a", tok))
	require.NoError(t, s.Forget(ctx, "a"))
	_, err = s.DeleteExpired(ctx)
	require.NoError(t, err)

	// The same role cannot create a table of its own there.
	_, err = New(ctx, pool, WithTable(schema+".other"))
	require.Error(t, err)
	assert.False(t, errors.Is(err, ErrInvalidTable))
}
