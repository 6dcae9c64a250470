package nectarhooks_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
)

// Dead letters meet event order: an update given up on (Permanent) while
// a newer update of its connection was applied is stale when replayed.
// The replay acknowledges it (replayed, and removed), does not record it
// again, and does not apply the old state; a stale event is never a dead
// letter in the first place.
func TestReplayOfStaleDeadLetter(t *testing.T) {
	dead := nectarhooks.NewMemoryDeadLetters(0)
	secret := nectarhookstest.NewSecret()
	signer, err := nectarhookstest.NewSigner(secret)
	require.NoError(t, err)
	h, err := nectarhooks.NewHandler(secret, nectarhooks.WithDeadLetters(dead),
		nectarhooks.WithIdempotency(nectarhooks.NewMemoryStore(0, 0)), nectarhooks.WithErrorHandler(func(context.Context, int, error) {}))
	require.NoError(t, err)
	order := nectarhooks.NewMemoryOrder()
	broken := true
	status := ""
	h.OnConnectionUpdated(func(ctx context.Context, e *nectarhooks.ConnectionUpdated) error {
		return order.Apply(ctx, e, func() error {
			if broken && e.Status == "PENDING" {
				return nectarhooks.Permanent(errors.New("PENDING refused"))
			}
			status = string(e.Status)
			return nil
		})
	})
	older := nectarhooks.Message{ID: "msg_older", Timestamp: time.Now(), Payload: connectionUpdate(t, "c1", "PENDING", at(5))}
	newer := nectarhooks.Message{ID: "msg_newer", Timestamp: time.Now(), Payload: connectionUpdate(t, "c1", "CONNECTED", at(10))}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, signer.RequestFor("/", older.ID, older.Timestamp, older.Payload))
	require.Equal(t, nectarhooks.AbortMessage, rec.Header().Get(nectarhooks.DeliveryHeader))
	require.NoError(t, h.DispatchVerified(context.Background(), newer))
	// Delivered again now, the older one is stale: acknowledged, no dead letter.
	require.NoError(t, h.DispatchVerified(context.Background(), nectarhooks.Message{ID: "msg_older_again",
		Timestamp: time.Now(), Payload: older.Payload}))
	letters, err := dead.List(context.Background(), nectarhooks.DeadLetterFilter{})
	require.NoError(t, err)
	require.Len(t, letters, 1)

	broken = false
	res, err := h.ReplayDeadLetters(context.Background(), nectarhooks.DeadLetterFilter{})
	require.NoError(t, err)
	assert.Equal(t, nectarhooks.ReplayResult{Replayed: 1}, res)
	assert.Equal(t, "CONNECTED", status, "the stale replay did not apply the old state")
	letters, err = dead.List(context.Background(), nectarhooks.DeadLetterFilter{})
	require.NoError(t, err)
	assert.Empty(t, letters)
}
