package pgxstore

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
)

// effectsTable creates a table of the test's own that a callback writes
// one row per message into, and returns its quoted name.
func effectsTable(t *testing.T, pool *pgxpool.Pool) string {
	t.Helper()
	name := "nectarhooks_effects_" + randomSuffix(t)
	quoted := pgx.Identifier{name}.Sanitize()
	_, err := pool.Exec(testContext(t), `CREATE TABLE `+quoted+` (message_id text NOT NULL)`)
	require.NoError(t, err)
	dropAtEnd(t, "DROP TABLE IF EXISTS "+quoted)
	return quoted
}

// TestCompleteTx runs a callback that writes one effect row and completes
// its message in the same transaction, with something done to its claim
// between the claim and CompleteTx, and checks what was written and what
// the store holds afterwards.
func TestCompleteTx(t *testing.T) {
	tests := []struct {
		name string
		// meanwhile acts on the message's row while the callback runs,
		// before its CompleteTx.
		meanwhile  func(t *testing.T, s *Store, id string)
		wantErr    error
		wantEffect int
	}{
		{name: "claim held", meanwhile: func(*testing.T, *Store, string) {}, wantEffect: 1},
		{name: "lease over, nobody took over", meanwhile: func(t *testing.T, s *Store, id string) {
			endLease(t, s, id)
		}, wantEffect: 1},
		{name: "taken over", meanwhile: func(t *testing.T, s *Store, id string) {
			endLease(t, s, id)
			claim, _, err := s.Claim(testContext(t), id, time.Hour)
			require.NoError(t, err)
			require.Equal(t, nectarhooks.ClaimAcquired, claim)
		}, wantErr: ErrClaimLost},
		{name: "taken over and completed", meanwhile: func(t *testing.T, s *Store, id string) {
			endLease(t, s, id)
			claim, token, err := s.Claim(testContext(t), id, time.Hour)
			require.NoError(t, err)
			require.Equal(t, nectarhooks.ClaimAcquired, claim)
			require.NoError(t, s.Complete(testContext(t), id, token))
		}, wantErr: ErrClaimLost},
		{name: "forgotten: no live claim to fence", meanwhile: func(t *testing.T, s *Store, id string) {
			require.NoError(t, s.Forget(testContext(t), id))
		}, wantEffect: 1},
	}
	for _, api := range []string{"pgx", "database/sql"} {
		for _, tt := range tests {
			t.Run(api+"/"+tt.name, func(t *testing.T) {
				pool := newPool(t, nil)
				s, err := New(testContext(t), pool, WithTable(testTable(t)))
				require.NoError(t, err)
				effects := effectsTable(t, pool)
				db := stdlib.OpenDBFromPool(pool)
				t.Cleanup(func() { db.Close() })

				h, err := nectarhooks.NewHandler(nectarhookstest.NewSecret(),
					nectarhooks.WithIdempotency(s), nectarhooks.WithLogger(discardLogger()))
				require.NoError(t, err)
				h.OnDocumentCreated(func(ctx context.Context, _ *nectarhooks.DocumentCreated) error {
					m, _ := nectarhooks.MessageFromContext(ctx)
					tt.meanwhile(t, s, m.ID)
					insert := `INSERT INTO ` + effects + ` (message_id) VALUES ($1)`
					if api == "pgx" {
						return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
							if _, err := tx.Exec(ctx, insert, m.ID); err != nil {
								return err
							}
							return s.CompleteTx(ctx, tx)
						})
					}
					tx, err := db.BeginTx(ctx, nil)
					if err != nil {
						return err
					}
					defer tx.Rollback()
					if _, err := tx.ExecContext(ctx, insert, m.ID); err != nil {
						return err
					}
					if err := s.CompleteSQLTx(ctx, tx); err != nil {
						return err
					}
					return tx.Commit()
				})

				id := nectarhookstest.NewMessageID()
				err = h.DispatchVerified(testContext(t), nectarhooks.Message{ID: id,
					Payload: nectarhookstest.Sample(nectarhooks.EventDocumentCreated)})
				if tt.wantErr != nil {
					require.ErrorIs(t, err, tt.wantErr)
				} else {
					require.NoError(t, err)
					// Processed: a redelivery runs nothing.
					claim, _, err := s.Claim(testContext(t), id, time.Hour)
					require.NoError(t, err)
					assert.Equal(t, nectarhooks.ClaimDone, claim)
				}
				var n int
				require.NoError(t, pool.QueryRow(testContext(t),
					`SELECT count(*) FROM `+effects+` WHERE message_id = $1`, id).Scan(&n))
				assert.Equal(t, tt.wantEffect, n, "effect rows")
			})
		}
	}
}

// endLease ends the lease of id's row now, as if its holder had hung.
func endLease(t *testing.T, s *Store, id string) {
	t.Helper()
	_, err := s.pool.Exec(testContext(t), `UPDATE `+s.table.sql()+` SET expires_at = now() - interval '1 second' WHERE id = $1`, key(id))
	require.NoError(t, err)
}

// Outside a callback under WithIdempotency there is no claim to complete.
func TestCompleteTxNoClaim(t *testing.T) {
	s := newTestStore(t)
	err := pgx.BeginFunc(testContext(t), s.pool, func(tx pgx.Tx) error { return s.CompleteTx(testContext(t), tx) })
	require.ErrorIs(t, err, ErrNoClaim)
	db := stdlib.OpenDBFromPool(s.pool)
	defer db.Close()
	tx, err := db.Begin()
	require.NoError(t, err)
	defer tx.Rollback()
	require.ErrorIs(t, s.CompleteSQLTx(testContext(t), tx), ErrNoClaim)

}

// A redelivery that arrives while the first delivery's transaction has
// completed the message but not yet committed waits for the row, then
// finds the message done: its callback does not run, and one effect row
// is written.
func TestCompleteTxRedeliveryWaitsForCommit(t *testing.T) {
	pool := newPool(t, nil)
	s, err := New(testContext(t), pool, WithTable(testTable(t)))
	require.NoError(t, err)
	effects := effectsTable(t, pool)
	h, err := nectarhooks.NewHandler(nectarhookstest.NewSecret(), nectarhooks.WithIdempotency(s),
		nectarhooks.WithLogger(discardLogger()), nectarhooks.WithStoreTimeout(time.Minute))
	require.NoError(t, err)

	completed := make(chan struct{}) // the first transaction ran CompleteTx
	commit := make(chan struct{})    // it may commit now
	var release sync.Once
	letCommit := func() { release.Do(func() { close(commit) }) }
	t.Cleanup(letCommit) // before the pool closes, also when the test fails
	runs := 0
	h.OnDocumentCreated(func(ctx context.Context, _ *nectarhooks.DocumentCreated) error {
		runs++
		m, _ := nectarhooks.MessageFromContext(ctx)
		return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `INSERT INTO `+effects+` (message_id) VALUES ($1)`, m.ID); err != nil {
				return err
			}
			if err := s.CompleteTx(ctx, tx); err != nil {
				return err
			}
			close(completed)
			<-commit
			return nil
		})
	})
	msg := nectarhooks.Message{ID: nectarhookstest.NewMessageID(), Payload: nectarhookstest.Sample(nectarhooks.EventDocumentCreated)}
	first := make(chan error, 1)
	go func() { first <- h.DispatchVerified(context.Background(), msg) }()
	<-completed
	second := make(chan error, 1)
	go func() { second <- h.DispatchVerified(context.Background(), msg) }()
	// The redelivery's Claim waits for the row the open transaction
	// holds (without CompleteTx in it, the Claim would find the message
	// in flight and answer ErrInFlight).
	var waiting int
	require.Eventually(t, func() bool {
		err := pool.QueryRow(testContext(t), `SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'INSERT INTO %'`+
			` AND query LIKE '%`+s.table.name+`%'`).Scan(&waiting)
		return err == nil && waiting == 1
	}, testTimeout, 10*time.Millisecond, "the redelivery's Claim waits for the first transaction's row")
	letCommit()
	require.NoError(t, <-first)
	require.NoError(t, <-second, "acknowledged as processed")
	assert.Equal(t, 1, runs, "callback runs")
	var n int
	require.NoError(t, pool.QueryRow(testContext(t), `SELECT count(*) FROM `+effects).Scan(&n))
	assert.Equal(t, 1, n, "effect rows")
}
