package riverqueue_test

import (
	"bytes"
	"context"
	"log"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nectarhooks/nectarhooks/nectarhookstest"
	"github.com/nectarhooks/nectarhooks/riverqueue"
)

// riverVersions returns the migration versions applied in pool's database
// and all those this River has.
func riverVersions(t *testing.T, pool *pgxpool.Pool) (applied, all []int) {
	t.Helper()
	migrator, err := rivermigrate.New(riverpgxv5.New(pool), &rivermigrate.Config{Logger: quietLogger()})
	require.NoError(t, err)
	existing, err := migrator.ExistingVersions(context.Background())
	require.NoError(t, err)
	for _, m := range existing {
		applied = append(applied, m.Version)
	}
	for _, m := range migrator.AllVersions() {
		all = append(all, m.Version)
	}
	return applied, all
}

// migrateLocksHeld counts the sessions holding Migrate's advisory lock.
func migrateLocksHeld(t *testing.T, pool *pgxpool.Pool) int {
	t.Helper()
	var n int
	require.NoError(t, pool.QueryRow(context.Background(), `SELECT count(*) FROM pg_locks
		WHERE locktype = 'advisory' AND granted AND objsubid = 1
		AND classid::bigint = ($1::bigint >> 32) AND objid::bigint = ($1::bigint & 4294967295)`,
		riverqueue.MigrateLockKey).Scan(&n))
	return n
}

// TestMigrateReplicasAtOnce starts three replicas' migrations at the same
// moment, each with a pool of its own, on a database without River's
// tables: all succeed, and River's schema is complete once.
func TestMigrateReplicasAtOnce(t *testing.T) {
	const replicas = 3
	dbURL := newEmptyDatabase(t)
	pools := make([]*pgxpool.Pool, replicas)
	for i := range pools {
		pools[i] = newPool(t, dbURL, 4)
		require.NoError(t, pools[i].Ping(context.Background())) // connected before the start
	}

	start := make(chan struct{})
	errs := make([]error, replicas)
	logs := make([]bytes.Buffer, replicas)
	var wg sync.WaitGroup
	for i, pool := range pools {
		logger := slog.New(slog.NewJSONHandler(&logs[i], nil))
		wg.Go(func() {
			<-start
			errs[i] = riverqueue.Migrate(context.Background(), pool, riverqueue.WithMigrateLogger(logger))
		})
	}
	close(start)
	wg.Wait()
	migrated := 0
	for i, err := range errs {
		assert.NoError(t, err, "replica %d", i)
		if !bytes.Contains(logs[i].Bytes(), []byte(`"applied_versions":[]`)) {
			migrated++
		}
	}
	assert.Equal(t, 1, migrated, "one replica migrates, the others find nothing to do")

	applied, all := riverVersions(t, pools[0])
	assert.Equal(t, all, applied, "every River migration applied, each once")
	for _, table := range []string{"river_job", "river_leader", "river_migration", "river_queue", "nectarhooks_job_effects"} {
		var exists bool
		require.NoError(t, pools[0].QueryRow(context.Background(), "SELECT to_regclass($1) IS NOT NULL", table).Scan(&exists))
		assert.True(t, exists, table)
	}
	assert.Zero(t, migrateLocksHeld(t, pools[0]), "the lock is released")

	// River's tables work: a job goes in.
	client := newInsertClient(t, pools[1])
	_, err := client.Insert(context.Background(), riverqueue.Args{ID: nectarhookstest.NewMessageID(), EventType: "document.created", Payload: []byte(`{}`)}, nil)
	require.NoError(t, err)
}

// TestMigrateUpToDate: on a migrated database Migrate changes nothing, and
// says so.
func TestMigrateUpToDate(t *testing.T) {
	pool := newPool(t, newEmptyDatabase(t), 4)
	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, nil))
	require.NoError(t, riverqueue.Migrate(context.Background(), pool, riverqueue.WithMigrateLogger(logger)))
	assert.Contains(t, logs.String(), `Applied migration`)
	assert.Contains(t, logs.String(), `"applied_versions":[1,2,`)
	applied, all := riverVersions(t, pool)
	require.Equal(t, all, applied)

	logs.Reset()
	require.NoError(t, riverqueue.Migrate(context.Background(), pool, riverqueue.WithMigrateLogger(logger)))
	assert.NotContains(t, logs.String(), "Applied migration")
	assert.Contains(t, logs.String(), `"applied_versions":[]`)
	again, _ := riverVersions(t, pool)
	assert.Equal(t, applied, again)
	assert.Zero(t, migrateLocksHeld(t, pool))

	// A nil logger and a nil option are fine.
	require.NoError(t, riverqueue.Migrate(context.Background(), pool, riverqueue.WithMigrateLogger(nil), nil))
}

// TestMigrateWaitsForTheLock: while another session holds the lock,
// Migrate waits, until its context ends (and then migrates nothing and
// holds nothing) or the lock is released (and then migrates).
func TestMigrateWaitsForTheLock(t *testing.T) {
	dbURL := newEmptyDatabase(t)
	pool := newPool(t, dbURL, 4)
	holder, err := pgx.Connect(context.Background(), dbURL)
	require.NoError(t, err)
	t.Cleanup(func() { holder.Close(context.Background()) })
	_, err = holder.Exec(context.Background(), "SELECT pg_advisory_lock($1)", riverqueue.MigrateLockKey)
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err = riverqueue.Migrate(ctx, pool, riverqueue.WithMigrateLogger(quietLogger()))
	require.Error(t, err)
	assert.ErrorContains(t, err, "migration lock")
	applied, _ := riverVersions(t, pool)
	assert.Empty(t, applied, "nothing migrated without the lock")
	assert.Equal(t, 1, migrateLocksHeld(t, pool), "only the holder holds it")

	done := make(chan error, 1)
	go func() {
		done <- riverqueue.Migrate(context.Background(), pool, riverqueue.WithMigrateLogger(quietLogger()))
	}()
	select {
	case err := <-done:
		t.Fatalf("Migrate returned while the lock was held: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	_, err = holder.Exec(context.Background(), "SELECT pg_advisory_unlock($1)", riverqueue.MigrateLockKey)
	require.NoError(t, err)
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(wait):
		t.Fatal("Migrate still waits after the lock was released")
	}
	applied, all := riverVersions(t, pool)
	assert.Equal(t, all, applied)
	assert.Zero(t, migrateLocksHeld(t, pool))
}

// TestMigrateRefusesOneConnection: with one connection the lock would
// leave none for the migrations, and Migrate would wait forever.
func TestMigrateRefusesOneConnection(t *testing.T) {
	pool := newPool(t, newEmptyDatabase(t), 1)
	err := riverqueue.Migrate(context.Background(), pool)
	require.ErrorContains(t, err, "MaxConns is 1")
	require.ErrorContains(t, riverqueue.Migrate(context.Background(), nil), "nil pool")
}

// Each replica migrates at start; those that start together wait for the
// first.
func ExampleMigrate() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	if err := riverqueue.Migrate(ctx, pool, riverqueue.WithMigrateLogger(slog.Default())); err != nil {
		log.Fatal(err)
	}
	// river.NewClient(riverpgxv5.New(pool), ...) and so on.
}
