package readme_test

// The fragments of README.md's "When things go wrong" and of
// docs/dead-letters.md, compiled and run.

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
)

// README "When things go wrong": the Handler.
func deadLetterHandler(secret string, deadLetters nectarhooks.DeadLetterStore) (*nectarhooks.Handler, error) {
	h, err := nectarhooks.NewHandler(secret,
		nectarhooks.WithAsync(8, 1024),
		nectarhooks.WithDeadLetters(deadLetters))

	return h, err
}

// README "When things go wrong": a Permanent error.
func permanentCallback(h *nectarhooks.Handler, save func(context.Context, *nectarhooks.DocumentCreated) error) {
	h.OnDocumentCreated(func(ctx context.Context, e *nectarhooks.DocumentCreated) error {
		if e.Site.ID == "" {
			return nectarhooks.Permanent(fmt.Errorf("document %s has no site", e.ID))
		}
		return save(ctx, e)
	})
}

// docs/dead-letters.md "Replay": the Go API.
func replay(ctx context.Context, h *nectarhooks.Handler) error {
	res, err := h.ReplayDeadLetters(ctx, nectarhooks.DeadLetterFilter{EventType: nectarhooks.EventDocumentCreated})
	if err != nil {
		return err
	}
	log.Printf("replayed %d, failed again %d, skipped %d", res.Replayed, res.Failed, res.Skipped)

	return nil
}

// docs/dead-letters.md "Re-processing messages that succeeded".
func reprocess(ctx context.Context, h *nectarhooks.Handler, msg nectarhooks.Message) error {
	if err := h.Reprocess(ctx, msg); err != nil {
		return err
	}

	return nil
}

// docs/dead-letters.md "Delivery control": a Lambda function adds the
// header itself.
func lambdaAnswer(err error) (int, map[string]string) {
	headers := map[string]string{}
	if errors.Is(err, nectarhooks.ErrDeadLettered) {
		headers[nectarhooks.DeliveryHeader] = nectarhooks.AbortMessage
	}
	return nectarhooks.StatusCode(err), headers
}

// TestDeadLetterFragments runs the fragments: a document without a site is
// aborted and kept, an async failure kept, then replayed once fixed, and
// a processed message re-processed.
func TestDeadLetterFragments(t *testing.T) {
	secret := nectarhookstest.NewSecret()
	dead := nectarhooks.NewMemoryDeadLetters(0)
	h, err := deadLetterHandler(secret, dead)
	require.NoError(t, err)
	saved := 0
	fixed := false
	permanentCallback(h, func(context.Context, *nectarhooks.DocumentCreated) error {
		if !fixed {
			return errors.New("bug")
		}
		saved++
		return nil
	})
	signer, err := nectarhookstest.NewSigner(secret)
	require.NoError(t, err)
	noSite := []byte(`{"eventType":"document.created.v2","id":"doc-1"}`)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, signer.RequestFor("/", "msg_nosite", time.Now(), noSite))
	require.Equal(t, http.StatusAccepted, rec.Code, "WithAsync answers before the callback")
	good := nectarhookstest.Sample(nectarhooks.EventDocumentCreated)
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, signer.RequestFor("/", "msg_good", time.Now(), good))
	require.Equal(t, http.StatusAccepted, rec.Code)
	require.NoError(t, h.Shutdown(context.Background()))
	letters, err := dead.List(t.Context(), nectarhooks.DeadLetterFilter{})
	require.NoError(t, err)
	require.Len(t, letters, 2)

	fixed = true
	h, err = deadLetterHandler(secret, dead)
	require.NoError(t, err)
	permanentCallback(h, func(context.Context, *nectarhooks.DocumentCreated) error { saved++; return nil })
	require.NoError(t, replay(t.Context(), h))
	assert.Equal(t, 1, saved, "the good document is saved; the one without a site fails again")
	letters, err = dead.List(t.Context(), nectarhooks.DeadLetterFilter{})
	require.NoError(t, err)
	require.Len(t, letters, 1)
	assert.Equal(t, 2, letters[0].Attempts)

	require.NoError(t, reprocess(t.Context(), h, nectarhooks.Message{ID: "msg_good", Timestamp: time.Now(), Payload: good}))
	assert.Equal(t, 2, saved)
	require.NoError(t, h.Shutdown(context.Background()))

	status, headers := lambdaAnswer(fmt.Errorf("x: %w", nectarhooks.ErrDeadLettered))
	assert.Equal(t, 500, status)
	assert.Equal(t, map[string]string{"webhook-delivery": "abort-message"}, headers)
}
