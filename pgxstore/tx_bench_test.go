package pgxstore

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
)

// BenchmarkCompleteTx measures messages per second through a Handler with
// this Store, 24 at a time on a pool of 16 connections, whose callback
// writes one row, three ways, in alternating rounds of one run (so that
// the machine's drift slows all alike), and reports each one's rate and
// the ratios:
//
//   - separate: the row in an autocommit INSERT, then the Handler's
//     Complete (Claim, INSERT, Complete: three statements);
//
//   - separate-tx: the row in a transaction of its own (BEGIN, INSERT,
//     COMMIT), then Complete, as a callback whose writes need a
//     transaction anyway does it;
//
//   - completetx: BEGIN, INSERT, CompleteTx, COMMIT, and no Complete.
//
//     go test -run '^$' -bench CompleteTx -benchtime 12000x ./pgxstore
func BenchmarkCompleteTx(b *testing.B) {
	const round, senders = 400, 24
	pool := newPool(b, func(c *pgxpool.Config) { c.MaxConns = 16 })
	s, err := New(testContext(b), pool, WithTable(testTable(b)))
	require.NoError(b, err)
	effects := "nectarhooks_effects_" + randomSuffix(b)
	quoted := pgx.Identifier{effects}.Sanitize()
	_, err = pool.Exec(testContext(b), `CREATE TABLE `+quoted+` (message_id text NOT NULL)`)
	require.NoError(b, err)
	dropAtEnd(b, "DROP TABLE IF EXISTS "+quoted)
	insert := `INSERT INTO ` + quoted + ` (message_id) VALUES ($1)`

	h, err := nectarhooks.NewHandler(nectarhookstest.NewSecret(), nectarhooks.WithIdempotency(s),
		nectarhooks.WithStoreTimeout(10*time.Second))
	require.NoError(b, err)
	variants := []struct {
		name string
		fn   func(ctx context.Context, id string) error
	}{
		{"separate", func(ctx context.Context, id string) error {
			_, err := pool.Exec(ctx, insert, id)
			return err
		}},
		{"separate-tx", func(ctx context.Context, id string) error {
			return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
				_, err := tx.Exec(ctx, insert, id)
				return err
			})
		}},
		{"completetx", func(ctx context.Context, id string) error {
			return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
				if _, err := tx.Exec(ctx, insert, id); err != nil {
					return err
				}
				return s.CompleteTx(ctx, tx)
			})
		}},
	}
	var current atomic.Int32
	h.OnDocumentCreated(func(ctx context.Context, _ *nectarhooks.DocumentCreated) error {
		m, _ := nectarhooks.MessageFromContext(ctx)
		return variants[current.Load()].fn(ctx, m.ID)
	})
	payload := nectarhookstest.Sample(nectarhooks.EventDocumentCreated)
	prefix := "msg_" + randomSuffix(b) + "_"
	var seq atomic.Int64
	run := func() time.Duration {
		var left atomic.Int64
		left.Store(round)
		var wg sync.WaitGroup
		start := time.Now()
		for range senders {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for left.Add(-1) >= 0 {
					msg := nectarhooks.Message{ID: fmt.Sprintf("%s%d", prefix, seq.Add(1)), Payload: payload}
					if err := h.DispatchVerified(context.Background(), msg); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		return time.Since(start)
	}
	for v := range variants { // warm up: connections, prepared statements
		current.Store(int32(v))
		run()
	}
	elapsed := make([]time.Duration, len(variants))
	rounds := 0
	b.ResetTimer()
	for done := 0; done < b.N; done += round * len(variants) {
		for v := range variants {
			current.Store(int32(v))
			elapsed[v] += run()
		}
		rounds++
	}
	b.StopTimer()
	rate := func(v int) float64 { return float64(rounds*round) / elapsed[v].Seconds() }
	for v, variant := range variants {
		b.ReportMetric(rate(v), variant.name+"/s")
	}
	b.ReportMetric(rate(2)/rate(0), "completetx/separate")
	b.ReportMetric(rate(2)/rate(1), "completetx/separate-tx")
}
