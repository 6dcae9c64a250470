package riverqueue_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

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

	t.Run("a redelivery is acknowledged without a second job", func(t *testing.T) {
		q := riverqueue.New(client)
		id := nectarhookstest.NewMessageID()
		first := nectarhooks.Message{ID: id, Timestamp: signed, EventType: nectarhooks.EventDocumentCreated, Payload: samples[3]}
		again := first
		again.Timestamp = signed.Add(5 * time.Second) // Svix re-signs each attempt
		require.NoError(t, q.Enqueue(ctx, first))
		require.NoError(t, q.Enqueue(ctx, again))
		require.NoError(t, riverqueue.New(client, riverqueue.WithMaxAttempts(3)).Enqueue(ctx, again),
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
		{"zero and nil options keep the defaults", []riverqueue.Option{nil, riverqueue.WithMaxAttempts(0), riverqueue.WithInsertTimeout(0)}, "default", 25},
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
			var failed int
			for err := range errs {
				if tc.wantErr == nil {
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
			assert.Equal(t, messages, total(jobStates(t, pool)))
			for _, id := range ids[:10] {
				assert.Equal(t, 1, stored(t, pool, id).count)
			}
		})
	}
}
