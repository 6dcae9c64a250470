package riverqueue_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
	"github.com/nectarhooks/nectarhooks/riverqueue"
)

// storedJob is what PostgreSQL holds for one message.
type storedJob struct {
	args        riverqueue.Args
	queue       string
	maxAttempts int
	count       int
}

func stored(t *testing.T, pool *pgxpool.Pool, id string) storedJob {
	t.Helper()
	var j storedJob
	var raw []byte
	err := pool.QueryRow(context.Background(),
		`SELECT min(args::text), min(queue), min(max_attempts), count(*) FROM river_job WHERE kind = $1 AND args->>'id' = $2`,
		riverqueue.Kind, id).Scan(&raw, &j.queue, &j.maxAttempts, &j.count)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(raw, &j.args))
	return j
}

// jobs counts the jobs of message id.
func jobs(t *testing.T, pool *pgxpool.Pool, id string) int {
	t.Helper()
	var n int
	require.NoError(t, pool.QueryRow(context.Background(),
		`SELECT count(*) FROM river_job WHERE kind = $1 AND args->>'id' = $2`, riverqueue.Kind, id).Scan(&n))
	return n
}

func TestQueue(t *testing.T) {
	dbURL := newDatabase(t)
	pool := newPool(t, dbURL, 5)
	client := newInsertClient(t, pool)
	ctx := context.Background()
	signed := time.Unix(1764633600, 0).UTC()

	t.Run("payloads are stored byte for byte", func(t *testing.T) {
		q := riverqueue.New(client)
		for name, payload := range awkwardPayloads {
			t.Run(name, func(t *testing.T) {
				id := nectarhookstest.NewMessageID()
				require.NoError(t, q.Enqueue(ctx, nectarhooks.Message{ID: id, Timestamp: signed,
					EventType: nectarhooks.EventDocumentCreated, Payload: payload}))
				j := stored(t, pool, id)
				assert.Equal(t, string(payload), string(j.args.Payload))
				assert.Equal(t, id, j.args.ID)
				assert.True(t, signed.Equal(j.args.Timestamp))
				assert.Equal(t, nectarhooks.EventDocumentCreated, j.args.EventType)
			})
		}
	})

	t.Run("a redelivery is turned away as already queued, without a second job", func(t *testing.T) {
		q := riverqueue.New(client)
		id := nectarhookstest.NewMessageID()
		first := nectarhooks.Message{ID: id, Timestamp: signed, EventType: nectarhooks.EventDocumentCreated, Payload: samples[3]}
		again := first
		again.Timestamp = signed.Add(5 * time.Second) // Svix re-signs each attempt
		require.NoError(t, q.Enqueue(ctx, first))
		err := q.Enqueue(ctx, again)
		require.ErrorIs(t, err, nectarhooks.ErrAlreadyQueued)
		assert.False(t, errors.Is(err, nectarhooks.ErrQueueFull))
		assert.ErrorContains(t, err, "message "+id)
		assert.ErrorContains(t, err, "available", "the job's state")
		require.ErrorIs(t, riverqueue.New(client, riverqueue.WithMaxAttempts(3)).Enqueue(ctx, again), nectarhooks.ErrAlreadyQueued,
			"insert options do not change the unique key")
		j := stored(t, pool, id)
		assert.Equal(t, 1, j.count)
		assert.True(t, signed.Equal(j.args.Timestamp), "the first attempt's job is kept")
	})

	options := []struct {
		name            string
		opts            []riverqueue.Option
		wantQueue       string
		wantMaxAttempts int
	}{
		{"defaults: River's default queue and max attempts", nil, "default", 25},
		{"WithQueueName and WithMaxAttempts", []riverqueue.Option{riverqueue.WithQueueName("webhooks"), riverqueue.WithMaxAttempts(7)}, "webhooks", 7},
		{"zero and nil options keep the defaults", []riverqueue.Option{nil, riverqueue.WithMaxAttempts(0), riverqueue.WithInsertTimeout(0), riverqueue.WithConcurrentInserts(0), riverqueue.WithMaxPending(0)}, "default", 25},
	}
	for _, tc := range options {
		t.Run(tc.name, func(t *testing.T) {
			id := nectarhookstest.NewMessageID()
			require.NoError(t, riverqueue.New(client, tc.opts...).Enqueue(ctx,
				nectarhooks.Message{ID: id, Timestamp: signed, Payload: samples[0]}))
			j := stored(t, pool, id)
			assert.Equal(t, tc.wantQueue, j.queue)
			assert.Equal(t, tc.wantMaxAttempts, j.maxAttempts)
		})
	}
}

// TestQueueRefusals checks that an insert that cannot be committed is
// answered 503, so that Svix delivers again, and reaches the error handler.
func TestQueueRefusals(t *testing.T) {
	cases := []struct {
		name    string
		setup   func(t *testing.T) *riverqueue.Queue[pgxTx]
		wantErr error // also matched, beside nectarhooks.ErrQueueFull
	}{
		{
			name: "River's tables are missing",
			setup: func(t *testing.T) *riverqueue.Queue[pgxTx] {
				// A database of its own, without River's schema.
				dbURL := newDatabase(t)
				pool := newPool(t, dbURL, 2)
				_, err := pool.Exec(context.Background(), "DROP TABLE river_job CASCADE")
				require.NoError(t, err)
				return riverqueue.New(newInsertClient(t, pool))
			},
		},
		{
			name: "pool exhausted past the insert timeout",
			setup: func(t *testing.T) *riverqueue.Queue[pgxTx] {
				pool := newPool(t, newDatabase(t), 1)
				held, err := pool.Acquire(context.Background())
				require.NoError(t, err)
				t.Cleanup(held.Release)
				return riverqueue.New(newInsertClient(t, pool), riverqueue.WithInsertTimeout(200*time.Millisecond))
			},
			wantErr: context.DeadlineExceeded,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			secret := nectarhookstest.NewSecret()
			var errs errorLog
			h, err := nectarhooks.NewHandler(secret, nectarhooks.WithQueue(tc.setup(t)),
				nectarhooks.WithErrorHandler(errs.record))
			require.NoError(t, err)
			signer, err := nectarhookstest.NewSigner(secret)
			require.NoError(t, err)

			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, signer.Request("/webhooks/nectar", samples[1]))

			assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
			assert.Equal(t, "queue full; retry later\n", rec.Body.String(), "the database's words stay inside")
			reports := errs.all()
			require.Len(t, reports, 1)
			assert.Equal(t, http.StatusServiceUnavailable, reports[0].status)
			assert.ErrorIs(t, reports[0].err, nectarhooks.ErrQueueFull)
			if tc.wantErr != nil {
				assert.ErrorIs(t, reports[0].err, tc.wantErr)
			}
			assert.True(t, reports[0].hasMsg)
			assert.False(t, errors.Is(reports[0].err, nectarhooks.ErrVerification))
		})
	}
}

// TestQueueBatches enqueues from many goroutines at once through a Queue
// that runs one insert at a time, so that deliveries wait and are inserted
// in batches, duplicates of one message among them: every call returns,
// and each message has one job.
func TestQueueBatches(t *testing.T) {
	const messages, copies, callers = 120, 3, 40
	cases := []struct {
		name    string
		held    bool // the pool's only connection is taken: every insert times out
		wantErr error
	}{
		{name: "database answers"},
		{name: "pool exhausted", held: true, wantErr: context.DeadlineExceeded},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pool := newPool(t, newDatabase(t), 1)
			if tc.held {
				conn, err := pool.Acquire(context.Background())
				require.NoError(t, err)
				defer conn.Release()
			}
			q := riverqueue.New(newInsertClient(t, pool), riverqueue.WithConcurrentInserts(1),
				riverqueue.WithInsertTimeout(500*time.Millisecond))
			ids := make([]string, messages)
			for i := range ids {
				ids[i] = nectarhookstest.NewMessageID()
			}
			work := make(chan string)
			errs := make(chan error, messages*copies)
			var wg sync.WaitGroup
			for range callers {
				wg.Go(func() {
					for id := range work {
						errs <- q.Enqueue(context.Background(), nectarhooks.Message{ID: id, Timestamp: time.Now().UTC(), Payload: samples[2]})
					}
				})
			}
			for _, id := range ids {
				for range copies {
					work <- id
				}
			}
			close(work)
			wg.Wait()
			close(errs)
			var failed, duplicates int
			for err := range errs {
				if tc.wantErr == nil {
					// One delivery of each message queued it; the others
					// found it, in the database or in their batch.
					if errors.Is(err, nectarhooks.ErrAlreadyQueued) {
						duplicates++
						continue
					}
					assert.NoError(t, err)
					continue
				}
				assert.ErrorIs(t, err, tc.wantErr)
				failed++
			}
			if tc.held {
				assert.Equal(t, messages*copies, failed, "every call fails, none hangs")
				return
			}
			assert.Equal(t, messages*(copies-1), duplicates, "deliveries turned away as already queued")
			assert.Equal(t, messages, total(jobStates(t, pool)))
			for _, id := range ids[:10] {
				assert.Equal(t, 1, stored(t, pool, id).count)
			}
		})
	}
}

// TestQueueBadRowInBatch puts one message PostgreSQL refuses in a batch of
// 40: its event type, decoded from a payload whose "type" holds \u0000,
// carries a NUL character, which jsonb cannot store (the payload itself is
// stored base64-encoded, and so cannot be refused). Only that delivery
// fails; the 39 that shared its batch are committed.
func TestQueueBadRowInBatch(t *testing.T) {
	const batch, bad = 40, 17
	pool := newPool(t, newDatabase(t), 1)
	// One insert at a time, the pool's only connection held: the first
	// delivery's insert waits for it, and the next 40 wait for that insert,
	// then go in one batch. The timeout only guards against a hang.
	q := riverqueue.New(newInsertClient(t, pool), riverqueue.WithConcurrentInserts(1),
		riverqueue.WithInsertTimeout(wait/3))
	held, err := pool.Acquire(context.Background())
	require.NoError(t, err)
	msg := func(id string) nectarhooks.Message {
		return nectarhooks.Message{ID: id, Timestamp: time.Now().UTC(), EventType: nectarhooks.EventDocumentCreated, Payload: samples[3]}
	}

	first := make(chan error, 1)
	go func() { first <- q.Enqueue(context.Background(), msg(nectarhookstest.NewMessageID())) }()
	require.Eventually(t, func() bool { return riverqueue.Inserting(q) == 1 }, wait, pollEvery)
	ids := make([]string, batch)
	errs := make([]error, batch)
	var wg sync.WaitGroup
	for i := range ids {
		ids[i] = nectarhookstest.NewMessageID()
		m := msg(ids[i])
		if i == bad {
			m.EventType = "document.created\x00"
		}
		wg.Go(func() { errs[i] = q.Enqueue(context.Background(), m) })
	}
	require.Eventually(t, func() bool { return riverqueue.PendingLen(q) == batch }, wait, pollEvery)
	held.Release()
	wg.Wait()
	require.NoError(t, <-first)

	var failed []error // of the innocent deliveries
	for i, err := range errs {
		if i == bad {
			var pgErr *pgconn.PgError
			require.ErrorAs(t, err, &pgErr, "the refused row's own error")
			assert.Equal(t, "22P05", pgErr.Code, "untranslatable_character: jsonb refuses \\u0000")
			assert.Zero(t, jobs(t, pool, ids[i]))
			continue
		}
		if err != nil {
			failed = append(failed, err)
			continue
		}
		assert.Equal(t, 1, jobs(t, pool, ids[i]), "delivery %d stored", i)
	}
	if !assert.Zero(t, len(failed), "innocent deliveries (of %d) failed with the refused one", batch-1) {
		t.Logf("the first of them: %v", failed[0])
	}
	assert.Equal(t, batch, total(jobStates(t, pool)), "the first delivery's job and the batch's 39")
}

// TestQueueWaiters checks the deliveries that wait for an insert: past
// WithMaxPending one is refused at once, while the others still wait; one
// whose context ends leaves the queue, is not inserted and says why; the
// others are inserted once the insert under way ends.
func TestQueueWaiters(t *testing.T) {
	cases := []struct {
		name string
		// act runs while the first delivery's insert hangs and the next two
		// wait behind it, the second of them with ctx, cancelled by cancel.
		// It returns the ids that must not be stored.
		act func(t *testing.T, q *riverqueue.Queue[pgxTx], cancel context.CancelFunc, waiting []string) []string
		// lastErr is what the last waiter's Enqueue returns, beside
		// nectarhooks.ErrQueueFull; nil: it succeeds.
		lastErr []error
	}{
		{
			name: "past WithMaxPending, refused at once",
			act: func(t *testing.T, q *riverqueue.Queue[pgxTx], _ context.CancelFunc, _ []string) []string {
				id := nectarhookstest.NewMessageID()
				err := q.Enqueue(context.Background(), nectarhooks.Message{ID: id, Timestamp: time.Now().UTC(), Payload: samples[0]})
				assert.ErrorIs(t, err, nectarhooks.ErrQueueFull)
				assert.ErrorIs(t, err, riverqueue.ErrBacklog)
				// Returned without waiting: everything else is as it was.
				assert.Equal(t, 2, riverqueue.PendingLen(q), "the others still wait")
				assert.Equal(t, 1, riverqueue.Inserting(q), "the first insert is still under way")
				return []string{id}
			},
		},
		{
			name: "a waiter whose context ends leaves",
			act: func(t *testing.T, q *riverqueue.Queue[pgxTx], cancel context.CancelFunc, waiting []string) []string {
				cancel()
				require.Eventually(t, func() bool { return riverqueue.PendingLen(q) == 1 }, wait, pollEvery)
				return waiting[1:]
			},
			lastErr: []error{riverqueue.ErrNoSlot, context.Canceled},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pool := newPool(t, newDatabase(t), 1)
			q := riverqueue.New(newInsertClient(t, pool), riverqueue.WithConcurrentInserts(1),
				riverqueue.WithMaxPending(2), riverqueue.WithInsertTimeout(wait/3))
			held, err := pool.Acquire(context.Background())
			require.NoError(t, err)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()

			ids := make([]string, 3)
			errs := make([]error, len(ids))
			var wg sync.WaitGroup
			for i := range ids {
				ids[i] = nectarhookstest.NewMessageID()
				m := nectarhooks.Message{ID: ids[i], Timestamp: time.Now().UTC(), Payload: samples[1]}
				ctx := ctx
				if i < 2 {
					ctx = context.Background()
				}
				wg.Go(func() { errs[i] = q.Enqueue(ctx, m) })
				if i == 0 { // the first inserts, the others wait
					require.Eventually(t, func() bool { return riverqueue.Inserting(q) == 1 }, wait, pollEvery)
				}
			}
			require.Eventually(t, func() bool { return riverqueue.PendingLen(q) == 2 }, wait, pollEvery)
			absent := tc.act(t, q, cancel, ids[1:])
			held.Release()
			wg.Wait()

			assert.NoError(t, errs[0])
			assert.NoError(t, errs[1])
			if tc.lastErr == nil {
				assert.NoError(t, errs[2])
			} else {
				assert.ErrorIs(t, errs[2], nectarhooks.ErrQueueFull)
				for _, want := range tc.lastErr {
					assert.ErrorIs(t, errs[2], want)
				}
			}
			for _, id := range absent {
				assert.Zero(t, jobs(t, pool, id), "message %s is not stored", id)
			}
			want := 0
			for _, id := range ids {
				if !slices.Contains(absent, id) {
					want++
				}
			}
			assert.Equal(t, want, total(jobStates(t, pool)))
			assert.Zero(t, riverqueue.PendingLen(q))
			assert.Zero(t, riverqueue.Inserting(q))
		})
	}
}
