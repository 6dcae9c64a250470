package goredisstore

import (
	"context"
	"crypto/rand"
	"testing"

	"github.com/nectarhooks/nectarhooks/nectarhookstest"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// TestMain fails the run if a test leaves a goroutine behind: a client not
// closed, or a Handler still running a callback.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testClient returns a client of the test server (nectarhookstest.RedisAddr:
// the test skips, or fails under CI, when none answers), closed when the
// test ends.
func testClient(tb testing.TB) *redis.Client {
	tb.Helper()
	c := redis.NewClient(&redis.Options{Addr: nectarhookstest.RedisAddr(tb)})
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// testPrefix returns a key prefix of the test's own, on a server that other
// tests share, and deletes its keys when the test ends. Register it after
// the client it uses, so that the deletion runs before the client closes.
func testPrefix(tb testing.TB, c redis.UniversalClient) string {
	tb.Helper()
	prefix := "nectarhooks-test:" + rand.Text()[:12] + ":"
	deleteAtCleanup(tb, c, prefix)
	return prefix
}

// deleteAtCleanup deletes the keys under prefix, through c, when tb ends.
func deleteAtCleanup(tb testing.TB, c redis.UniversalClient, prefix string) {
	tb.Helper()
	tb.Cleanup(func() {
		ctx := context.Background()
		iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		var keys []string
		for iter.Next(ctx) {
			if keys = append(keys, iter.Val()); len(keys) == 1000 {
				require.NoError(tb, c.Unlink(ctx, keys...).Err())
				keys = keys[:0]
			}
		}
		require.NoError(tb, iter.Err())
		if len(keys) > 0 {
			require.NoError(tb, c.Unlink(ctx, keys...).Err())
		}
	})
}

// testStore returns a Store on a client and a prefix of the test's own,
// with opts after the prefix.
func testStore(tb testing.TB, opts ...Option) (*Store, *redis.Client) {
	tb.Helper()
	c := testClient(tb)
	return New(c, append([]Option{WithPrefix(testPrefix(tb, c))}, opts...)...), c
}

// claimModes are the two ways Claim reaches the server: SET NX GET on
// Redis 7.0 and newer, and the script that older servers get instead. The
// test server is new enough for both, so both are tested on it.
var claimModes = []struct {
	name     string
	byScript bool
}{
	{"SET NX GET", false},
	{"script for Redis before 7.0", true},
}

// testStoreMode is testStore with Claim going the given way.
func testStoreMode(tb testing.TB, byScript bool, opts ...Option) (*Store, *redis.Client) {
	tb.Helper()
	s, c := testStore(tb, opts...)
	s.claimByScript.Store(byScript)
	return s, c
}
