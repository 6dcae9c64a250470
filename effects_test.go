package nectarhooks_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
)

// countingStore is a MemoryStore that counts the calls the Handler makes.
type countingStore struct {
	*nectarhooks.MemoryStore
	mu    sync.Mutex
	calls map[string]int
}

func newCountingStore() *countingStore {
	return &countingStore{MemoryStore: nectarhooks.NewMemoryStore(0, 0), calls: map[string]int{}}
}

func (s *countingStore) count(op string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls[op]++
}

func (s *countingStore) Claim(ctx context.Context, id string, lease time.Duration) (nectarhooks.Claim, string, error) {
	s.count("claim")
	return s.MemoryStore.Claim(ctx, id, lease)
}

func (s *countingStore) Complete(ctx context.Context, id, token string) error {
	s.count("complete")
	return s.MemoryStore.Complete(ctx, id, token)
}

func (s *countingStore) Release(ctx context.Context, id, token string) error {
	s.count("release")
	return s.MemoryStore.Release(ctx, id, token)
}

// A callback finds its claim in its context, and a claim it marks
// completed (as a store completing it in the callback's transaction does)
// spares the Handler its Complete, unless the callback fails.
func TestClaimFromContext(t *testing.T) {
	errFail := errors.New("failing on purpose")
	tests := []struct {
		name       string
		idempotent bool
		mark       bool
		err        error
		wantClaim  bool
		wantCalls  map[string]int
	}{
		{name: "no store, no claim", wantCalls: map[string]int{}},
		{name: "not marked: the Handler completes", idempotent: true, wantClaim: true,
			wantCalls: map[string]int{"claim": 1, "complete": 1}},
		{name: "marked: no Complete", idempotent: true, mark: true, wantClaim: true,
			wantCalls: map[string]int{"claim": 1}},
		{name: "marked but failed: released", idempotent: true, mark: true, err: errFail, wantClaim: true,
			wantCalls: map[string]int{"claim": 1, "release": 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := newCountingStore()
			var opts []nectarhooks.Option
			if tt.idempotent {
				opts = append(opts, nectarhooks.WithIdempotency(store))
			}
			h, err := nectarhooks.NewHandler(nectarhookstest.NewSecret(), opts...)
			require.NoError(t, err)
			var got nectarhooks.Claimed
			var ok bool
			h.OnDocumentCreated(func(ctx context.Context, _ *nectarhooks.DocumentCreated) error {
				got, ok = nectarhooks.ClaimFromContext(ctx)
				if tt.mark {
					got.MarkCompleted()
				}
				return tt.err
			})
			id := nectarhookstest.NewMessageID()
			err = h.DispatchVerified(context.Background(), nectarhooks.Message{
				ID: id, Timestamp: time.Now(), Payload: nectarhookstest.Sample(nectarhooks.EventDocumentCreated)})
			if tt.err != nil {
				require.ErrorIs(t, err, tt.err)
			} else {
				require.NoError(t, err)
			}
			require.Equal(t, tt.wantClaim, ok)
			if tt.wantClaim {
				assert.Equal(t, id, got.MessageID)
				assert.Equal(t, id, got.Key, "a Handler without accounts claims the bare id")
				assert.NotEmpty(t, got.Token)
			}
			store.mu.Lock()
			defer store.mu.Unlock()
			assert.Equal(t, tt.wantCalls, store.calls)
		})
	}
	t.Run("outside a callback", func(t *testing.T) {
		_, ok := nectarhooks.ClaimFromContext(context.Background())
		require.False(t, ok)
		nectarhooks.Claimed{}.MarkCompleted() // does nothing, and does not panic
	})
}

// A callback that returns an error wrapping ErrAlreadyProcessed (an
// exactly-once marker found an earlier run's commit) is acknowledged as a
// duplicate, through ServeHTTP and DispatchVerified alike, and its message
// completed in the idempotency store rather than released.
func TestHandlerAlreadyProcessed(t *testing.T) {
	cases := []struct {
		name       string
		err        error
		wantStatus int
		wantBody   string
		wantStore  map[string]int
		wantOut    nectarhooks.Outcome
	}{
		{name: "wrapped ErrAlreadyProcessed", err: fmt.Errorf("%w: job 7's marker", nectarhooks.ErrAlreadyProcessed),
			wantStatus: http.StatusOK, wantBody: "acknowledged: message already processed\n",
			wantStore: map[string]int{"claim": 1, "complete": 1}, wantOut: nectarhooks.OutcomeDuplicate},
		{name: "another error", err: errors.New("boom"),
			wantStatus: http.StatusInternalServerError,
			wantStore:  map[string]int{"claim": 1, "release": 1}, wantOut: nectarhooks.OutcomeFailed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			secret := nectarhookstest.NewSecret()
			signer, err := nectarhookstest.NewSigner(secret)
			require.NoError(t, err)
			store := newCountingStore()
			obs := &outcomes{}
			h, err := nectarhooks.NewHandler(secret, nectarhooks.WithIdempotency(store), nectarhooks.WithObserver(obs),
				nectarhooks.WithLogger(slog.New(slog.DiscardHandler)))
			require.NoError(t, err)
			h.OnDocumentCreated(func(context.Context, *nectarhooks.DocumentCreated) error { return tc.err })
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, signer.Request("/", nectarhookstest.Sample(nectarhooks.EventDocumentCreated)))
			assert.Equal(t, tc.wantStatus, rec.Code)
			if tc.wantBody != "" {
				assert.Equal(t, tc.wantBody, rec.Body.String())
			}
			assert.Equal(t, tc.wantStatus, nectarhooks.StatusCode(tc.err), "StatusCode")
			store.mu.Lock()
			assert.Equal(t, tc.wantStore, store.calls)
			store.mu.Unlock()
			obs.mu.Lock()
			assert.Equal(t, []nectarhooks.Outcome{tc.wantOut}, obs.process)
			obs.mu.Unlock()

			// A queue's worker: DispatchVerified reports nil, so the job is done.
			msg := nectarhooks.Message{ID: nectarhookstest.NewMessageID(), Timestamp: time.Now().UTC(),
				EventType: nectarhooks.EventDocumentCreated, Payload: nectarhookstest.Sample(nectarhooks.EventDocumentCreated)}
			err = h.DispatchVerified(context.Background(), msg)
			if tc.wantStatus == http.StatusOK {
				assert.NoError(t, err)
			} else {
				assert.Error(t, err)
			}
		})
	}
}
