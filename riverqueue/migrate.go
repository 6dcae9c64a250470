package riverqueue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
)

// MigrateLockKey is the key of the PostgreSQL session advisory lock under
// which Migrate runs River's migrations: the bigint whose eight bytes are
// "nhriverm" in ASCII (0x6e6872697665726d). pg_locks shows it held as
// locktype advisory, classid 1852338793 (0x6e687269), objid 1986359917
// (0x7665726d), objsubid 1. Only Migrate takes it: River's own CLI and
// rivermigrate do not, so a deployment that also migrates with them runs
// those one at a time by other means.
const MigrateLockKey int64 = 0x6e6872697665726d

// unlockTimeout bounds the release of the lock, which runs even when the
// caller's context has ended, so that a pooled connection is never handed
// back still holding it.
const unlockTimeout = 5 * time.Second

// A MigrateOption configures Migrate.
type MigrateOption func(*migrateOptions)

type migrateOptions struct {
	logger *slog.Logger
}

// WithMigrateLogger has Migrate, and River's migrator under it, log to
// logger: each migration applied at Info, with its version and duration.
// nil logs nothing. Default: slog.Default().
func WithMigrateLogger(logger *slog.Logger) MigrateOption {
	return func(o *migrateOptions) {
		if logger == nil {
			logger = slog.New(slog.DiscardHandler)
		}
		o.logger = logger
	}
}

// Migrate applies River's migrations that pool's database lacks, up to the
// latest this version of River has, as `river migrate-up` does, then
// creates the table of CompleteTx's markers if it is missing
// (EffectsTableSQL), and returns once the tables are ready.
//
// Replicas that start together on a fresh database may all call it at
// once: it first takes a PostgreSQL session advisory lock
// (pg_advisory_lock(MigrateLockKey)) on a connection of pool's own, so one
// replica migrates while the others wait, then find nothing left to do.
// Without the lock they would run the same CREATE statements at once, and
// all but one would fail (duplicate key value violates unique constraint
// "pg_type_typname_nsp_index"). The lock is held for the whole run and
// released before Migrate returns; should the release fail, the
// connection is closed, which releases it too, rather than returned to the
// pool still holding it.
//
// Migrate waits for the lock as long as ctx allows (a replica started
// while another migrates waits for it to finish), and needs two of pool's
// connections at once: one holding the lock and one migrating; a pool
// whose MaxConns is 1 gets an error. River's tables go where pool's
// search_path puts them, as River's clients look for them.
//
// Deployments that migrate in a step of their own, before the replicas
// start, need not call it.
func Migrate(ctx context.Context, pool *pgxpool.Pool, opts ...MigrateOption) error {
	o := migrateOptions{logger: slog.Default()}
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	if pool == nil {
		return errors.New("riverqueue: Migrate: nil pool")
	}
	if n := pool.Config().MaxConns; n < 2 {
		return fmt.Errorf("riverqueue: Migrate needs two connections from the pool (one holds the lock), its MaxConns is %d", n)
	}
	migrator, err := rivermigrate.New(riverpgxv5.New(pool), &rivermigrate.Config{Logger: o.logger})
	if err != nil {
		return fmt.Errorf("riverqueue: River's migrations: %w", err)
	}

	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("riverqueue: a connection for the migration lock: %w", err)
	}
	defer conn.Release() // destroyed by the pool when closed below
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", MigrateLockKey); err != nil {
		// A cancelled wait may still have taken the lock as the
		// cancellation crossed the answer: end the session to be sure.
		conn.Conn().Close(context.WithoutCancel(ctx))
		return fmt.Errorf("riverqueue: taking the migration lock: %w", err)
	}
	defer func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), unlockTimeout)
		defer cancel()
		var released bool
		if uerr := conn.QueryRow(uctx, "SELECT pg_advisory_unlock($1)", MigrateLockKey).Scan(&released); uerr != nil || !released {
			conn.Conn().Close(uctx)
		}
	}()

	res, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil)
	if err != nil {
		return fmt.Errorf("riverqueue: River's migrations: %w", err)
	}
	if _, err := pool.Exec(ctx, EffectsTableSQL); err != nil {
		return fmt.Errorf("riverqueue: the effects markers' table: %w", err)
	}
	versions := make([]int, len(res.Versions))
	for i, v := range res.Versions {
		versions[i] = v.Version
	}
	o.logger.InfoContext(ctx, "riverqueue: River's schema is up to date", slog.Any("applied_versions", versions))
	return nil
}
