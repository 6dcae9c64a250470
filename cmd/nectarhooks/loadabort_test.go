package main

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
)

// TestLoadRetryHonoursAbortMessage: against a Handler that aborts every
// document.created.v2 message (a Permanent error, recorded as a dead
// letter) and fails every connection.updated.v2 message, load -retry
// makes one attempt of each aborted message, as Svix does, and counts it
// aborted, not lost, in -json and in the text report; the others are
// retried eight times and lost.
func TestLoadRetryHonoursAbortMessage(t *testing.T) {
	secret := nectarhookstest.NewSecret()
	dead := nectarhooks.NewMemoryDeadLetters(0)
	h, err := nectarhooks.NewHandler(secret, nectarhooks.WithDeadLetters(dead),
		nectarhooks.WithErrorHandler(func(context.Context, int, error) {}))
	require.NoError(t, err)
	var mu sync.Mutex
	runs := map[string]int{}
	count := func(ctx context.Context) {
		m, _ := nectarhooks.MessageFromContext(ctx)
		mu.Lock()
		runs[m.ID]++
		mu.Unlock()
	}
	h.OnDocumentCreated(func(ctx context.Context, _ *nectarhooks.DocumentCreated) error {
		count(ctx)
		return nectarhooks.Permanent(errors.New("refused"))
	})
	h.OnConnectionUpdated(func(ctx context.Context, _ *nectarhooks.ConnectionUpdated) error {
		count(ctx)
		return errors.New("bug")
	})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	args := []string{"-url", srv.URL, "-n", "6", "-c", "2", "-retry", "-retry-scale", "0.000001",
		"document.created.v2", "connection.updated.v2"}

	code, r, _ := loadRun(t, secret, args...)
	assert.Equal(t, exitRefused, code, "the failing messages are lost")
	requireConsistent(t, r)
	assert.Equal(t, 3, r.Aborted)
	assert.Len(t, r.AbortedIDs, 3)
	assert.Equal(t, 3, r.Unacknowledged)
	assert.Equal(t, int64(3*(svixAttempts-1)), r.Retries, "only the messages not aborted are retried")
	letters, err := dead.List(t.Context(), nectarhooks.DeadLetterFilter{})
	require.NoError(t, err)
	assert.Len(t, letters, 3)
	mu.Lock()
	for _, id := range r.AbortedIDs {
		assert.Equal(t, 1, runs[id], "attempts of aborted %s", id)
	}
	for _, id := range r.UnacknowledgedIDs {
		assert.Equal(t, svixAttempts, runs[id], "attempts of %s", id)
	}
	mu.Unlock()

	text := runCLI(t, invocation{vars: map[string]string{secretEnv: secret}}, append([]string{"load"}, args...)...)
	assert.Contains(t, text.stdout, "3 aborted by the receiver (webhook-delivery: abort-message), not retried: ")
	assert.True(t, strings.Contains(text.stdout, "3 never acknowledged"), text.stdout)
}
