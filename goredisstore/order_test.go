package goredisstore

import (
	"context"
	"errors"
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nectarhooks/nectarhooks"
)

var orderT0 = time.Date(2024, 9, 7, 12, 30, 0, 0, time.UTC)

func connUpdate(id string, us int) *nectarhooks.ConnectionUpdated {
	return &nectarhooks.ConnectionUpdated{Connection: nectarhooks.Connection{ID: id,
		Updated: nectarhooks.Time{Time: orderT0.Add(time.Duration(us) * time.Microsecond)}}}
}

func TestOrder(t *testing.T) {
	c := testClient(t)
	o := NewOrder(c, testPrefix(t, c))
	ctx := context.Background()
	steps := []struct {
		name      string
		us        int
		wantStale bool
	}{
		{"first applied", 10, false},
		{"older: stale", 5, true},
		{"tie: applied", 10, false},
		{"newer: applied", 20, false},
		{"older than newest: stale", 15, true},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			err := o.Apply(ctx, connUpdate("c1", st.us))
			if st.wantStale {
				require.ErrorIs(t, err, nectarhooks.ErrStale)
			} else {
				require.NoError(t, err)
			}
		})
	}
	t.Run("kept for the TTL", func(t *testing.T) {
		ttl, err := c.PTTL(ctx, o.prefix+"connection:c1").Result()
		require.NoError(t, err)
		assert.Greater(t, ttl, 47*time.Hour)
	})
	t.Run("unordered events: no call", func(t *testing.T) {
		require.NoError(t, o.Apply(ctx, &nectarhooks.UnknownEvent{}))
	})
}

// Updates of 20 connections in random order from 8 goroutines: each
// connection's newest update is let through, and its version is the one
// that stays.
func TestOrderConcurrent(t *testing.T) {
	c := testClient(t)
	o := NewOrder(c, testPrefix(t, c))
	const entities, updates = 20, 30
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
	var mu sync.Mutex
	applied := map[string][]int{}
	work := make(chan ev)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for e := range work {
				err := o.Apply(context.Background(), connUpdate(e.id, e.us))
				if errors.Is(err, nectarhooks.ErrStale) {
					continue
				}
				if err != nil {
					t.Error(err)
					continue
				}
				mu.Lock()
				applied[e.id] = append(applied[e.id], e.us)
				mu.Unlock()
			}
		}()
	}
	for _, e := range all {
		work <- e
	}
	close(work)
	wg.Wait()
	require.Len(t, applied, entities)
	newest := strconv.FormatInt(orderT0.Add((updates-1)*time.Microsecond).UnixMicro(), 10)
	for id, seq := range applied {
		assert.Contains(t, seq, updates-1, "connection %s: its newest update let through", id)
		got, err := c.Get(context.Background(), o.prefix+"connection:"+id).Result()
		require.NoError(t, err)
		assert.Equal(t, newest, got, "connection %s: the newest version stays", id)
	}
}

// Under NewAccountHandler the guard keeps each account's entities apart:
// an older c1 of account b is applied after a newer c1 of account a, and
// stale within b once b applied a newer one.
func TestOrderPerAccount(t *testing.T) {
	c := testClient(t)
	o := NewOrder(c, testPrefix(t, c))
	apply := func(account string, us int) error {
		ctx := nectarhooks.ContextWithMessage(context.Background(), nectarhooks.Message{ID: "msg_1", Account: account})
		return o.Apply(ctx, connUpdate("c1", us))
	}
	require.NoError(t, apply("a", 20))
	require.NoError(t, apply("b", 10), "another account's entity of the same id")
	require.NoError(t, apply("", 5), "without an account: its own")
	require.ErrorIs(t, apply("b", 5), nectarhooks.ErrStale)
	require.ErrorIs(t, apply("a", 15), nectarhooks.ErrStale)
}
