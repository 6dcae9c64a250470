package pgxstore

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nectarhooks/nectarhooks"
)

var orderT0 = time.Date(2024, 9, 7, 12, 30, 0, 0, time.UTC)

func connUpdate(id string, us int) *nectarhooks.ConnectionUpdated {
	return &nectarhooks.ConnectionUpdated{Connection: nectarhooks.Connection{ID: id,
		Updated: nectarhooks.Time{Time: orderT0.Add(time.Duration(us) * time.Microsecond)}}}
}

// newTestOrder returns an Order on a table of the test's own, and a
// status table its callbacks write to (connection id, version applied).
func newTestOrder(t *testing.T) (*Order, string) {
	t.Helper()
	pool := newPool(t, nil)
	o, err := NewOrder(testContext(t), pool, testTable(t))
	require.NoError(t, err)
	status := "nectarhooks_status_" + randomSuffix(t)
	quoted := pgx.Identifier{status}.Sanitize()
	_, err = pool.Exec(testContext(t), `CREATE TABLE `+quoted+` (id text PRIMARY KEY, us integer NOT NULL)`)
	require.NoError(t, err)
	dropAtEnd(t, "DROP TABLE IF EXISTS "+quoted)
	return o, quoted
}

// applyStatus is a callback's transaction: the guard, then its write.
func applyStatus(ctx context.Context, pool interface {
	Begin(context.Context) (pgx.Tx, error)
}, o *Order, status, id string, us int, fail error) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if err := o.ApplyTx(ctx, tx, connUpdate(id, us)); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO `+status+` (id, us) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET us = excluded.us`, id, us); err != nil {
			return err
		}
		return fail
	})
}

func TestOrder(t *testing.T) {
	o, status := newTestOrder(t)
	pool := newPool(t, nil)
	errFail := errors.New("failing on purpose")
	steps := []struct {
		name      string
		us        int
		fail      bool
		wantStale bool
		want      int // the status after the step
	}{
		{"first applied", 10, false, false, 10},
		{"older: stale", 5, false, true, 10},
		{"tie: applied", 10, false, false, 10},
		{"newer, fails: rolled back, not recorded", 20, true, false, 10},
		{"between: applied", 15, false, false, 15},
		{"the failed one's retry: applied", 20, false, false, 20},
		{"older again: stale", 19, false, true, 20},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			var fail error
			if st.fail {
				fail = errFail
			}
			err := applyStatus(testContext(t), pool, o, status, "c1", st.us, fail)
			switch {
			case st.wantStale:
				require.ErrorIs(t, err, nectarhooks.ErrStale)
			case st.fail:
				require.ErrorIs(t, err, errFail)
			default:
				require.NoError(t, err)
			}
			var us int
			require.NoError(t, pool.QueryRow(testContext(t), `SELECT us FROM `+status+` WHERE id = 'c1'`).Scan(&us))
			assert.Equal(t, st.want, us)
		})
	}
	t.Run("unordered events: no statement", func(t *testing.T) {
		err := pgx.BeginFunc(testContext(t), pool, func(tx pgx.Tx) error {
			return o.ApplyTx(testContext(t), tx, &nectarhooks.UnknownEvent{})
		})
		require.NoError(t, err)
	})
}

// Updates of 20 connections, applied in random order by 8 transactions at
// a time: every connection ends at its newest update.
func TestOrderConcurrent(t *testing.T) {
	const entities, updates = 20, 30
	o, status := newTestOrder(t)
	pool := newPool(t, nil)
	type ev struct {
		id string
		us int
	}
	var all []ev
	for e := range entities {
		for u := range updates {
			all = append(all, ev{string(rune('a' + e)), u})
		}
	}
	rand.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	work := make(chan ev)
	var wg sync.WaitGroup
	var mu sync.Mutex
	stale := 0
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for e := range work {
				err := applyStatus(context.Background(), pool, o, status, e.id, e.us, nil)
				if errors.Is(err, nectarhooks.ErrStale) {
					mu.Lock()
					stale++
					mu.Unlock()
				} else if err != nil {
					t.Error(err)
				}
			}
		}()
	}
	for _, e := range all {
		work <- e
	}
	close(work)
	wg.Wait()
	rows, err := pool.Query(testContext(t), `SELECT id, us FROM `+status)
	require.NoError(t, err)
	got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[struct {
		ID string
		US int
	}])
	require.NoError(t, err)
	require.Len(t, got, entities)
	for _, r := range got {
		assert.Equal(t, updates-1, r.US, "connection %s", r.ID)
	}
	assert.Positive(t, stale, "shuffled updates: some were stale")
	t.Logf("%d updates, %d stale", len(all), stale)
}

// Under NewAccountHandler the guard keeps each account's entities apart:
// an older c1 of account b is applied after a newer c1 of account a, and
// stale within b once b applied a newer one.
func TestOrderPerAccount(t *testing.T) {
	o, _ := newTestOrder(t)
	pool := newPool(t, nil)
	apply := func(account string, us int) error {
		ctx := nectarhooks.ContextWithMessage(testContext(t), nectarhooks.Message{ID: "msg_1", Account: account})
		return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return o.ApplyTx(ctx, tx, connUpdate("c1", us)) })
	}
	require.NoError(t, apply("a", 20))
	require.NoError(t, apply("b", 10), "another account's entity of the same id")
	require.NoError(t, apply("", 5), "without an account: its own")
	require.ErrorIs(t, apply("b", 5), nectarhooks.ErrStale)
	require.ErrorIs(t, apply("a", 15), nectarhooks.ErrStale)
}
