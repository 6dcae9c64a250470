package nectarhooks_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
)

// TestMemoryDeadLettersConformance holds MemoryDeadLetters to the
// DeadLetterStore contract. Instances share nothing, so the suite's
// instances on one namespace are one store.
func TestMemoryDeadLettersConformance(t *testing.T) {
	stores := map[string]*nectarhooks.MemoryDeadLetters{}
	nectarhookstest.TestDeadLetterStore(t, func(t *testing.T, opts nectarhookstest.StoreOptions) nectarhooks.DeadLetterStore {
		s, ok := stores[opts.Namespace]
		if !ok {
			s = nectarhooks.NewMemoryDeadLetters(0)
			stores[opts.Namespace] = s
		}
		return s
	})
}

// letter is a dead letter of id with a payload of n bytes.
func letter(id string, n int) nectarhooks.DeadLetter {
	return nectarhooks.DeadLetter{
		Message:  nectarhooks.Message{ID: id, EventType: "document.created.v2", Payload: make([]byte, n)},
		Error:    "boom",
		Attempts: 1,
	}
}

// TestMemoryDeadLettersBound: a full MemoryDeadLetters refuses a record
// (and keeps nothing of it) rather than growing without end or dropping
// an older one; a record again of the same message counts only what it
// adds, and a replayed record's room is given back.
func TestMemoryDeadLettersBound(t *testing.T) {
	ctx := context.Background()
	const payload = 10_000
	tests := []struct {
		name string
		run  func(t *testing.T, s *nectarhooks.MemoryDeadLetters)
		want []string // the ids kept, by last failure then id
	}{
		{"refuses past its size", func(t *testing.T, s *nectarhooks.MemoryDeadLetters) {
			require.NoError(t, s.Record(ctx, letter("msg_1", payload)))
			require.NoError(t, s.Record(ctx, letter("msg_2", payload)))
			err := s.Record(ctx, letter("msg_3", payload))
			require.ErrorIs(t, err, nectarhooks.ErrDeadLettersFull)
			assert.Contains(t, err.Error(), "msg_3")
		}, []string{"msg_1", "msg_2"}},
		{"a record again counts only the difference", func(t *testing.T, s *nectarhooks.MemoryDeadLetters) {
			require.NoError(t, s.Record(ctx, letter("msg_1", payload)))
			require.NoError(t, s.Record(ctx, letter("msg_2", payload)))
			require.NoError(t, s.Record(ctx, letter("msg_1", payload)))
			got, err := s.List(ctx, nectarhooks.DeadLetterFilter{ID: "msg_1"})
			require.NoError(t, err)
			require.Len(t, got, 1)
			assert.Equal(t, 2, got[0].Attempts)
		}, []string{"msg_1", "msg_2"}},
		{"a replayed record gives its room back", func(t *testing.T, s *nectarhooks.MemoryDeadLetters) {
			require.NoError(t, s.Record(ctx, letter("msg_1", payload)))
			require.NoError(t, s.Record(ctx, letter("msg_2", payload)))
			_, token, ok, err := s.Take(ctx, "", "msg_1", time.Minute)
			require.NoError(t, err)
			require.True(t, ok)
			require.NoError(t, s.Remove(ctx, "", "msg_1", token))
			require.NoError(t, s.Record(ctx, letter("msg_3", payload)))
		}, []string{"msg_2", "msg_3"}},
		{"one record larger than the store", func(t *testing.T, s *nectarhooks.MemoryDeadLetters) {
			require.ErrorIs(t, s.Record(ctx, letter("msg_big", 3*payload)), nectarhooks.ErrDeadLettersFull)
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Room for two records of the payload with their ids and
			// error text, not three.
			s := nectarhooks.NewMemoryDeadLetters(2*payload + 1024)
			tt.run(t, s)
			got, err := s.List(ctx, nectarhooks.DeadLetterFilter{})
			require.NoError(t, err)
			var ids []string
			for _, d := range got {
				ids = append(ids, d.Message.ID)
			}
			assert.ElementsMatch(t, tt.want, ids)
		})
	}
	assert.Panics(t, func() { nectarhooks.NewMemoryDeadLetters(-1) })
}

// TestFullDeadLettersAreNotAborted: a Permanent failure that a full
// MemoryDeadLetters cannot record is answered 500 without abort-message,
// so that Svix keeps the message and retries it.
func TestFullDeadLettersAreNotAborted(t *testing.T) {
	f := newDispFixture(t)
	var got error
	store := nectarhooks.NewMemoryDeadLetters(1) // smaller than any record
	h, err := nectarhooks.NewHandler(f.secret, nectarhooks.WithClock(nectarhookstest.FixedClock(dispT0)),
		nectarhooks.WithDeadLetters(store),
		nectarhooks.WithErrorHandler(func(_ context.Context, _ int, err error) { got = err }))
	require.NoError(t, err)
	h.OnDocumentCreated(func(context.Context, *nectarhooks.DocumentCreated) error {
		return nectarhooks.Permanent(errors.New("no such site"))
	})
	rr := httptest.NewRecorder()
	h.ServeHTTP(rr, f.request(t, "msg_full", nectarhookstest.Sample(nectarhooks.EventDocumentCreated)))
	require.Equal(t, http.StatusInternalServerError, rr.Code)
	assert.Empty(t, rr.Header().Values(nectarhooks.DeliveryHeader))
	assert.ErrorIs(t, got, nectarhooks.ErrDeadLetterStore)
	assert.ErrorIs(t, got, nectarhooks.ErrDeadLettersFull)
	left, err := store.List(context.Background(), nectarhooks.DeadLetterFilter{})
	require.NoError(t, err)
	assert.Empty(t, left)
}
