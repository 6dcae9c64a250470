package nectarhooks_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
)

// errRefused is a callback's own error that no retry can cure.
var errRefused = errors.New("site 42 does not exist here")

// TestDeliveryControlEveryStatusRow runs every row of the status policy
// (TestHandlerStatusPolicy's) with a dead-letter store: the answer's status
// is the same as without one, and only a verified payload that does not
// decode is recorded and answered with "webhook-delivery: abort-message";
// 401s, 4xx before verification, 500s and 503s never are.
func TestDeliveryControlEveryStatusRow(t *testing.T) {
	aborted := 0
	for _, row := range dispStatusRows() {
		t.Run(row.name, func(t *testing.T) {
			f := newDispFixture(t)
			dead := nectarhooks.NewMemoryDeadLetters(0)
			opts := append([]nectarhooks.Option{
				nectarhooks.WithClock(nectarhookstest.FixedClock(dispT0)),
				nectarhooks.WithErrorHandler(func(context.Context, int, error) {}),
				nectarhooks.WithDeadLetters(dead),
			}, row.opts...)
			h, err := nectarhooks.NewHandler(f.secret, opts...)
			require.NoError(t, err)
			c := &dispCapture{}
			if row.setup != nil {
				row.setup(h, c)
			}
			rr := httptest.NewRecorder()
			h.ServeHTTP(rr, row.request(t, f))
			require.Equal(t, row.wantStatus, rr.Code, "answer: %q", rr.Body.String())

			letters, err := dead.List(t.Context(), nectarhooks.DeadLetterFilter{})
			require.NoError(t, err)
			if slices.Contains(row.wantIs, nectarhooks.ErrInvalidPayload) {
				aborted++
				assert.Equal(t, nectarhooks.AbortMessage, rr.Header().Get(nectarhooks.DeliveryHeader))
				require.Len(t, letters, 1)
				assert.Equal(t, "msg_body", letters[0].Message.ID)
				assert.Equal(t, 1, letters[0].Attempts)
				assert.Contains(t, letters[0].Error, "invalid payload")
				return
			}
			assert.Empty(t, rr.Header().Values(nectarhooks.DeliveryHeader), "delivery control on a %d", rr.Code)
			assert.Empty(t, letters, "dead letters recorded for a %d", rr.Code)
		})
	}
	assert.Positive(t, aborted, "no row of the policy aborts")
}

// deadStoreDown is a DeadLetterStore whose Record fails.
type deadStoreDown struct{ *nectarhooks.MemoryDeadLetters }

var errDeadDown = errors.New("dead-letter table is gone")

func (deadStoreDown) Record(context.Context, nectarhooks.DeadLetter) error { return errDeadDown }

// failingClaims is an IdempotencyStore whose Claim fails.
type failingClaims struct{ *nectarhooks.MemoryStore }

func (failingClaims) Claim(context.Context, string, time.Duration) (nectarhooks.Claim, string, error) {
	return 0, "", errors.New("store down")
}

// fullQueue is a Queue that is always full.
type fullQueue struct{}

func (fullQueue) Enqueue(context.Context, nectarhooks.Message) error { return nectarhooks.ErrQueueFull }

// TestDeliveryControlRows covers the rows TestDeliveryControlEveryStatusRow
// cannot reach with the policy table's own rows: a Permanent error with
// and without a store, and a store that cannot record it, and the rows
// that need an idempotency store or a Queue. Each says whether the answer
// carries abort-message and whether a dead letter was recorded.
func TestDeliveryControlRows(t *testing.T) {
	const id = "msg_dc"
	permanent := func(context.Context, *nectarhooks.ConnectionUpdated) error {
		return nectarhooks.Permanent(errRefused)
	}
	transient := func(context.Context, *nectarhooks.ConnectionUpdated) error { return errRefused }
	for _, row := range []struct {
		name       string
		dead       nectarhooks.DeadLetterStore // nil: no WithDeadLetters
		opts       []nectarhooks.Option
		callback   func(context.Context, *nectarhooks.ConnectionUpdated) error
		id         string
		before     func(t *testing.T, h *nectarhooks.Handler)
		wantStatus int
		wantAbort  bool
		wantIs     []error
	}{
		{name: "Permanent error is 500 with abort-message, recorded", dead: nectarhooks.NewMemoryDeadLetters(0),
			callback: permanent, wantStatus: 500, wantAbort: true,
			wantIs: []error{nectarhooks.ErrDeadLettered, nectarhooks.ErrPermanent, errRefused}},
		{name: "Permanent error without WithDeadLetters is 500, retried", callback: permanent, wantStatus: 500,
			wantIs: []error{nectarhooks.ErrPermanent, errRefused}},
		{name: "Permanent error the store cannot record is 500 without abort-message",
			dead:     deadStoreDown{nectarhooks.NewMemoryDeadLetters(0)},
			callback: permanent, wantStatus: 500,
			wantIs: []error{nectarhooks.ErrDeadLetterStore, errDeadDown, nectarhooks.ErrPermanent, errRefused}},
		{name: "other callback error is 500, retried, not recorded", dead: nectarhooks.NewMemoryDeadLetters(0),
			callback: transient, wantStatus: 500, wantIs: []error{errRefused}},
		{name: "invalid svix-id is 400, retried, not recorded", dead: nectarhooks.NewMemoryDeadLetters(0),
			callback: permanent, id: "msg with spaces", wantStatus: 400, wantIs: []error{nectarhooks.ErrInvalidMessageID}},
		{name: "store unavailable is 503, retried", dead: nectarhooks.NewMemoryDeadLetters(0),
			opts:     []nectarhooks.Option{nectarhooks.WithIdempotency(failingClaims{nectarhooks.NewMemoryStore(0, 0)})},
			callback: permanent, wantStatus: 503, wantIs: []error{nectarhooks.ErrStoreUnavailable}},
		{name: "in flight is 409, retried", dead: nectarhooks.NewMemoryDeadLetters(0),
			opts:     []nectarhooks.Option{nectarhooks.WithIdempotency(claimedStore(t, id))},
			callback: permanent, wantStatus: 409, wantIs: []error{nectarhooks.ErrInFlight}},
		{name: "queue full is 503, retried", dead: nectarhooks.NewMemoryDeadLetters(0),
			opts:     []nectarhooks.Option{nectarhooks.WithQueue(fullQueue{})},
			callback: permanent, wantStatus: 503, wantIs: []error{nectarhooks.ErrQueueFull}},
		{name: "processed already is 200", dead: nectarhooks.NewMemoryDeadLetters(0),
			opts:     []nectarhooks.Option{nectarhooks.WithIdempotency(doneStore(t, id))},
			callback: permanent, wantStatus: 200},
		{name: "queued with WithAsync is 202, whatever the callback does later", dead: nectarhooks.NewMemoryDeadLetters(0),
			opts:     []nectarhooks.Option{nectarhooks.WithAsync(1, 1)},
			callback: permanent, wantStatus: 202},
	} {
		t.Run(row.name, func(t *testing.T) {
			f := newDispFixture(t)
			var got []error
			opts := append([]nectarhooks.Option{
				nectarhooks.WithClock(nectarhookstest.FixedClock(dispT0)),
				nectarhooks.WithErrorHandler(func(_ context.Context, status int, err error) {
					if status != 0 {
						got = append(got, err)
					}
				}),
			}, row.opts...)
			if row.dead != nil {
				opts = append(opts, nectarhooks.WithDeadLetters(row.dead))
			}
			h, err := nectarhooks.NewHandler(f.secret, opts...)
			require.NoError(t, err)
			t.Cleanup(func() { require.NoError(t, h.Shutdown(context.Background())) })
			h.OnConnectionUpdated(row.callback)
			msgID := id
			if row.id != "" {
				msgID = row.id
			}
			body := dispSample(t, nectarhooks.EventConnectionUpdated)
			rr := httptest.NewRecorder()
			h.ServeHTTP(rr, f.request(t, msgID, body))

			require.Equal(t, row.wantStatus, rr.Code, "answer %q", rr.Body.String())
			if row.wantAbort {
				assert.Equal(t, []string{nectarhooks.AbortMessage}, rr.Header().Values(nectarhooks.DeliveryHeader))
			} else {
				assert.Empty(t, rr.Header().Values(nectarhooks.DeliveryHeader))
			}
			if row.wantStatus >= 300 {
				require.Len(t, got, 1)
				assert.Equal(t, row.wantStatus, nectarhooks.StatusCode(got[0]))
				for _, want := range row.wantIs {
					assert.ErrorIs(t, got[0], want)
				}
				if !row.wantAbort {
					assert.NotErrorIs(t, got[0], nectarhooks.ErrDeadLettered)
				}
			}
			if mem, ok := row.dead.(*nectarhooks.MemoryDeadLetters); ok && row.wantStatus != 202 {
				letters, err := mem.List(t.Context(), nectarhooks.DeadLetterFilter{})
				require.NoError(t, err)
				if row.wantAbort {
					require.Len(t, letters, 1)
					assert.Equal(t, body, letters[0].Message.Payload, "payload byte for byte")
					assert.Equal(t, dispT0, letters[0].Message.Timestamp)
					assert.Equal(t, nectarhooks.EventConnectionUpdated, letters[0].Message.EventType)
					assert.Contains(t, letters[0].Error, errRefused.Error())
				} else {
					assert.Empty(t, letters)
				}
			}
		})
	}
}

// claimedStore returns a MemoryStore in which id is claimed, in flight.
func claimedStore(t *testing.T, id string) *nectarhooks.MemoryStore {
	s := nectarhooks.NewMemoryStore(0, 0)
	c, _, err := s.Claim(context.Background(), id, time.Hour)
	require.NoError(t, err)
	require.Equal(t, nectarhooks.ClaimAcquired, c)
	return s
}

// doneStore returns a MemoryStore in which id was processed.
func doneStore(t *testing.T, id string) *nectarhooks.MemoryStore {
	s := nectarhooks.NewMemoryStore(0, 0)
	_, token, err := s.Claim(context.Background(), id, time.Hour)
	require.NoError(t, err)
	require.NoError(t, s.Complete(context.Background(), id, token))
	return s
}

// TestDispatchReportsDeadLettered: Dispatch, which answers nothing itself,
// returns an error matching ErrDeadLettered, which is how a Lambda function
// knows to add the header.
func TestDispatchReportsDeadLettered(t *testing.T) {
	f := newDispFixture(t)
	dead := nectarhooks.NewMemoryDeadLetters(0)
	h, err := nectarhooks.NewHandler(f.secret, nectarhooks.WithClock(nectarhookstest.FixedClock(dispT0)),
		nectarhooks.WithDeadLetters(dead))
	require.NoError(t, err)
	h.OnDocumentCreated(func(context.Context, *nectarhooks.DocumentCreated) error {
		return nectarhooks.Permanent(errRefused)
	})
	body := dispSample(t, nectarhooks.EventDocumentCreated)
	err = h.Dispatch(t.Context(), body, f.header(t, "msg_lambda", dispT0, body))
	require.ErrorIs(t, err, nectarhooks.ErrDeadLettered)
	assert.Equal(t, http.StatusInternalServerError, nectarhooks.StatusCode(err))
	var ce *nectarhooks.CallbackError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, "msg_lambda", ce.MessageID)
	letters, err := dead.List(t.Context(), nectarhooks.DeadLetterFilter{ID: "msg_lambda"})
	require.NoError(t, err)
	require.Len(t, letters, 1)
}

func TestPermanent(t *testing.T) {
	assert.NoError(t, nectarhooks.Permanent(nil))
	err := nectarhooks.Permanent(errRefused)
	assert.ErrorIs(t, err, nectarhooks.ErrPermanent)
	assert.ErrorIs(t, err, errRefused)
	assert.NotErrorIs(t, errRefused, nectarhooks.ErrPermanent)
	var target *testErr
	assert.ErrorAs(t, nectarhooks.Permanent(&testErr{"x"}), &target)
	assert.Contains(t, err.Error(), errRefused.Error())
	assert.Equal(t, http.StatusInternalServerError, nectarhooks.StatusCode(err))
}

type testErr struct{ s string }

func (e *testErr) Error() string { return e.s }

// TestDeadLetterStoreFailureStaysInside: a payload that does not decode,
// whose dead letter cannot be recorded, is answered 400 without
// abort-message, and the answer does not carry the store's error.
func TestDeadLetterStoreFailureStaysInside(t *testing.T) {
	f := newDispFixture(t)
	var got error
	h, err := nectarhooks.NewHandler(f.secret, nectarhooks.WithClock(nectarhookstest.FixedClock(dispT0)),
		nectarhooks.WithDeadLetters(deadStoreDown{nectarhooks.NewMemoryDeadLetters(0)}),
		nectarhooks.WithErrorHandler(func(_ context.Context, _ int, err error) { got = err }))
	require.NoError(t, err)
	rr := httptest.NewRecorder()
	h.ServeHTTP(rr, f.request(t, "msg_bad", []byte(`{"eventType":"document.created.v2","id":7}`)))
	require.Equal(t, http.StatusBadRequest, rr.Code)
	assert.Empty(t, rr.Header().Values(nectarhooks.DeliveryHeader))
	assert.NotContains(t, rr.Body.String(), errDeadDown.Error())
	assert.ErrorIs(t, got, nectarhooks.ErrDeadLetterStore)
	assert.ErrorIs(t, got, errDeadDown)
	assert.ErrorIs(t, got, nectarhooks.ErrInvalidPayload)
}
