package nectarhooks

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Reprocess forgets the message under the key its account's delivery was
// remembered by, so that it runs again, and leaves another account's
// record of the same svix-id alone.
func TestAccountHandlerReprocess(t *testing.T) {
	store := NewMemoryStore(100, time.Hour)
	f := newACFixture(t, WithIdempotency(store))
	secret := vtSecretOf(vtKey(91, 24))
	f.src.set("staging", secret)
	f.src.set("production", secret)
	var msg Message
	for _, account := range []string{"staging", "production"} {
		require.Equal(t, 200, f.send(t, account, "msg_reprocess", acHMAC(t, secret)))
		msg = f.got(t)
	}
	require.Equal(t, "production", msg.Account)
	require.NoError(t, f.h.Reprocess(context.Background(), msg))
	assert.Equal(t, "production", f.got(t).Account, "Reprocess ran the account's message again")
	// staging's record of the id is still processed: a redelivery runs nothing.
	require.Equal(t, 200, f.send(t, "staging", "msg_reprocess", acHMAC(t, secret)))
	assert.Empty(t, f.seen, "Reprocess of production's forgot staging's")
}
