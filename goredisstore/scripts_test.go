package goredisstore

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestScriptReload empties the server's script cache (as a restart or a
// failover to a fresh server does) between the steps: each script is sent
// again with EVAL, does its work, and is cached again.
func TestScriptReload(t *testing.T) {
	s, c := testStoreMode(t, true)
	ctx := context.Background()
	scripts := []*redis.Script{claimScript, completeScript, releaseScript}
	flush := func() {
		t.Helper()
		require.NoError(t, c.ScriptFlush(ctx).Err())
		for _, sc := range scripts {
			require.Equal(t, []bool{false}, sc.Exists(ctx, c).Val(), "flushed")
		}
	}
	cached := func(sc *redis.Script, what string) {
		t.Helper()
		assert.Equal(t, []bool{true}, sc.Exists(ctx, c).Val(), what+" is cached again")
	}

	flush()
	claim, token, err := s.Claim(ctx, "msg_flush", time.Hour)
	require.NoError(t, err)
	require.Equal(t, acquired, claim)
	cached(claimScript, "claim")

	flush()
	require.NoError(t, s.Release(ctx, "msg_flush", token))
	assert.Zero(t, c.Exists(ctx, s.key("msg_flush")).Val(), "released")
	cached(releaseScript, "release")

	_, token, err = s.Claim(ctx, "msg_flush", time.Hour)
	require.NoError(t, err)
	flush()
	require.NoError(t, s.Complete(ctx, "msg_flush", token))
	assert.Equal(t, "done", c.Get(ctx, s.key("msg_flush")).Val(), "completed")
	cached(completeScript, "complete")
}
