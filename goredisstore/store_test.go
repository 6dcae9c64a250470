package goredisstore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	acquired = nectarhooks.ClaimAcquired
	done     = nectarhooks.ClaimDone
	inFlight = nectarhooks.ClaimInFlight
)

// step is one operation of a store scenario, by a named holder (a replica's
// delivery, with the token of its latest claim), and what the key must hold
// afterwards: "" (absent), "done", or a holder's name for its claim.
type step struct {
	op     string // claim, complete, release, forget, lapse (the lease runs out)
	holder string
	want   nectarhooks.Claim // for claim
	key    string
}

// TestStoreSteps runs the contract's scenarios step by step and checks the
// key's value after each: claims, completion, release, fencing of stale
// holders, and Forget.
func TestStoreSteps(t *testing.T) {
	tests := []struct {
		name  string
		steps []step
	}{
		{"claimed, then in flight for others", []step{
			{op: "claim", holder: "a", want: acquired, key: "a"},
			{op: "claim", holder: "b", want: inFlight, key: "a"},
		}},
		{"completed, then done", []step{
			{op: "claim", holder: "a", want: acquired, key: "a"},
			{op: "complete", holder: "a", key: "done"},
			{op: "claim", holder: "b", want: done, key: "done"},
		}},
		{"released, then claimed anew", []step{
			{op: "claim", holder: "a", want: acquired, key: "a"},
			{op: "release", holder: "a", key: ""},
			{op: "claim", holder: "b", want: acquired, key: "b"},
		}},
		{"a lapsed claim is taken over, and its holder fenced off", []step{
			{op: "claim", holder: "a", want: acquired, key: "a"},
			{op: "lapse", key: ""},
			{op: "claim", holder: "b", want: acquired, key: "b"},
			{op: "release", holder: "a", key: "b"},
			{op: "complete", holder: "a", key: "b"},
			{op: "claim", holder: "c", want: inFlight, key: "b"},
			{op: "complete", holder: "b", key: "done"},
			{op: "release", holder: "b", key: "done"},
			{op: "claim", holder: "c", want: done, key: "done"},
		}},
		{"a lapsed claim nobody took over still completes", []step{
			{op: "claim", holder: "a", want: acquired, key: "a"},
			{op: "lapse", key: ""},
			{op: "complete", holder: "a", key: "done"},
			{op: "claim", holder: "b", want: done, key: "done"},
		}},
		{"a lapsed claim nobody took over releases nothing", []step{
			{op: "claim", holder: "a", want: acquired, key: "a"},
			{op: "lapse", key: ""},
			{op: "release", holder: "a", key: ""},
			{op: "claim", holder: "b", want: acquired, key: "b"},
		}},
		{"release after complete keeps done", []step{
			{op: "claim", holder: "a", want: acquired, key: "a"},
			{op: "complete", holder: "a", key: "done"},
			{op: "release", holder: "a", key: "done"},
		}},
		{"a token never issued neither releases nor completes", []step{
			{op: "claim", holder: "a", want: acquired, key: "a"},
			{op: "release", holder: "nobody", key: "a"},
			{op: "complete", holder: "nobody", key: "a"},
		}},
		{"forget a processed message", []step{
			{op: "claim", holder: "a", want: acquired, key: "a"},
			{op: "complete", holder: "a", key: "done"},
			{op: "forget", key: ""},
			{op: "claim", holder: "b", want: acquired, key: "b"},
		}},
		{"forget a claim in flight: its holder cannot release the next", []step{
			{op: "claim", holder: "a", want: acquired, key: "a"},
			{op: "forget", key: ""},
			{op: "claim", holder: "b", want: acquired, key: "b"},
			{op: "release", holder: "a", key: "b"},
		}},
		{"forget an unknown message", []step{
			{op: "forget", key: ""},
			{op: "claim", holder: "a", want: acquired, key: "a"},
		}},
	}
	for _, mode := range claimModes {
		for _, tt := range tests {
			t.Run(mode.name+"/"+tt.name, func(t *testing.T) {
				testSteps(t, mode.byScript, tt.steps)
			})
		}
	}
}

func testSteps(t *testing.T, byScript bool, steps []step) {
	s, c := testStoreMode(t, byScript)
	ctx := context.Background()
	const id = "msg_steps"
	tokens := map[string]string{"nobody": "never-issued"}
	for i, st := range steps {
		what := fmt.Sprintf("step %d: %s %s", i, st.op, st.holder)
		switch st.op {
		case "claim":
			got, token, err := s.Claim(ctx, id, time.Hour)
			require.NoError(t, err, what)
			require.Equal(t, st.want, got, what)
			if got == acquired {
				require.NotEmpty(t, token, what)
				require.NotContains(t, tokens, st.holder, what+": one claim per holder")
				tokens[st.holder] = token
			} else {
				require.Empty(t, token, what)
			}
		case "complete":
			require.NoError(t, s.Complete(ctx, id, tokens[st.holder]), what)
		case "release":
			require.NoError(t, s.Release(ctx, id, tokens[st.holder]), what)
		case "forget":
			require.NoError(t, s.Forget(ctx, id), what)
		case "lapse":
			lapse(t, c, s.key(id))
		default:
			t.Fatalf("%s: unknown op", what)
		}
		want := st.key
		if tok, ok := tokens[want]; ok {
			want = inFlightPrefix + tok
		}
		got, err := c.Get(ctx, s.key(id)).Result()
		if err == redis.Nil {
			got, err = "", nil
		}
		require.NoError(t, err, what)
		require.Equal(t, want, got, what+": the key's value")
	}
	assert.Equal(t, byScript, s.claimByScript.Load(), "the claim mode stays")
}

// lapse makes key expire as a lease that runs out does, on the server, and
// waits until it has.
func lapse(t *testing.T, c *redis.Client, key string) {
	t.Helper()
	ctx := context.Background()
	require.NoError(t, c.PExpire(ctx, key, time.Millisecond).Err())
	require.Eventually(t, func() bool {
		n, err := c.Exists(ctx, key).Result()
		return err == nil && n == 0
	}, 30*time.Second, 5*time.Millisecond, "the key expires")
}

// TestKeyLayout checks the documented keys and values, and that leases and
// TTLs are set on the server (PX) as expiries of the right size.
func TestKeyLayout(t *testing.T) {
	ids := []struct{ name, id string }{
		{"svix id", "msg_2OK8RpjBjgNMzZ0QSTNf4k4FS3q"},
		{"hash tag", "{tag}"},
		{"spaces and unicode", "a b ✓"},
		{"glob characters", "m*?[x]"},
		{"empty", ""},
	}
	const lease, ttl = 90 * time.Second, 2 * time.Hour
	for _, mode := range claimModes {
		for _, tt := range ids {
			t.Run(mode.name+"/"+tt.name, func(t *testing.T) {
				s, c := testStoreMode(t, mode.byScript, WithTTL(ttl))
				ctx := context.Background()
				key := s.prefix + tt.id

				claim, token, err := s.Claim(ctx, tt.id, lease)
				require.NoError(t, err)
				require.Equal(t, acquired, claim)
				assert.Len(t, token, 26, "rand.Text: 26 base32 characters")
				assert.Equal(t, "inflight:"+token, c.Get(ctx, key).Val())
				assertExpiry(t, c, key, lease)

				require.NoError(t, s.Complete(ctx, tt.id, token))
				assert.Equal(t, "done", c.Get(ctx, key).Val())
				assertExpiry(t, c, key, ttl)

				keys, err := c.Keys(ctx, s.prefix+"*").Result()
				require.NoError(t, err)
				assert.Equal(t, []string{key}, keys, "one key per message")
			})
		}
	}
}

// assertExpiry checks that key expires within d, and not much earlier: the
// expiry was set from d, not from a default.
func assertExpiry(t *testing.T, c *redis.Client, key string, d time.Duration) {
	t.Helper()
	pttl, err := c.PTTL(context.Background(), key).Result()
	require.NoError(t, err)
	assert.LessOrEqual(t, pttl, d)
	assert.Greater(t, pttl, d/2, "set from %s (a stalled machine could only make this smaller by seconds)", d)
}

// TestTokensDiffer checks that the claims of one id get distinct tokens,
// so that fencing can tell their holders apart.
func TestTokensDiffer(t *testing.T) {
	s, _ := testStore(t)
	ctx := context.Background()
	seen := map[string]bool{}
	for range 50 {
		claim, token, err := s.Claim(ctx, "msg_tokens", time.Hour)
		require.NoError(t, err)
		require.Equal(t, acquired, claim)
		require.False(t, seen[token], "token %s issued twice", token)
		seen[token] = true
		require.NoError(t, s.Release(ctx, "msg_tokens", token))
	}
}

// TestLeaseExpiry lets a short lease run out on the server's clock: the
// message is then claimed anew.
func TestLeaseExpiry(t *testing.T) {
	for _, mode := range claimModes {
		t.Run(mode.name, func(t *testing.T) { testLeaseExpiry(t, mode.byScript) })
	}
}

func testLeaseExpiry(t *testing.T, byScript bool) {
	s, _ := testStoreMode(t, byScript)
	ctx := context.Background()
	claim, first, err := s.Claim(ctx, "msg_lease", 50*time.Millisecond)
	require.NoError(t, err)
	require.Equal(t, acquired, claim)

	var second string
	require.Eventually(t, func() bool {
		claim, second, err = s.Claim(ctx, "msg_lease", time.Hour)
		require.NoError(t, err)
		return claim == acquired
	}, 30*time.Second, 10*time.Millisecond, "the claim expires after its lease")
	assert.NotEqual(t, first, second)

	claim, _, err = s.Claim(ctx, "msg_lease", time.Hour)
	require.NoError(t, err)
	assert.Equal(t, inFlight, claim, "the new claim holds for its own, long lease")
}

// TestWithTTLExpiry: a processed message is forgotten after the store's
// TTL, and its next delivery runs.
func TestWithTTLExpiry(t *testing.T) {
	const ttl = 100 * time.Millisecond
	s, c := testStore(t, WithTTL(ttl))
	ctx := context.Background()
	_, token, err := s.Claim(ctx, "msg_ttl", time.Hour)
	require.NoError(t, err)
	require.NoError(t, s.Complete(ctx, "msg_ttl", token))
	pttl, err := c.PTTL(ctx, s.key("msg_ttl")).Result()
	require.NoError(t, err)
	assert.LessOrEqual(t, pttl, ttl, "done expires after WithTTL, not the default")
	assert.NotEqual(t, time.Duration(-1), pttl, "done has an expiry (-2: it has expired already, on a slow machine)")

	require.Eventually(t, func() bool {
		claim, _, err := s.Claim(ctx, "msg_ttl", time.Hour)
		require.NoError(t, err)
		return claim == acquired
	}, 30*time.Second, 10*time.Millisecond, "the message runs again once the TTL is over")
}

// TestCompleteKeepsFirstTTL: completing a processed message again (a
// lapsed holder after the new one finished) does not prolong its TTL.
func TestCompleteKeepsFirstTTL(t *testing.T) {
	s, c := testStore(t, WithTTL(time.Hour))
	ctx := context.Background()
	_, token, err := s.Claim(ctx, "msg_first", time.Hour)
	require.NoError(t, err)
	require.NoError(t, s.Complete(ctx, "msg_first", token))
	require.NoError(t, c.PExpire(ctx, s.key("msg_first"), time.Minute).Err())

	require.NoError(t, s.Complete(ctx, "msg_first", token))
	require.NoError(t, s.Complete(ctx, "msg_first", "stale"))
	assertExpiry(t, c, s.key("msg_first"), time.Minute)
	assert.Equal(t, "done", c.Get(ctx, s.key("msg_first")).Val())
}

// TestRestart: a replica that restarts (new client, new Store) still
// acknowledges what was processed before, and sees claims in flight.
func TestRestart(t *testing.T) {
	again := testClient(t) // the restarted replica's; it also cleans up
	prefix := testPrefix(t, again)
	before := redis.NewClient(&redis.Options{Addr: nectarhookstest.RedisAddr(t)})
	s := New(before, WithPrefix(prefix))
	ctx := context.Background()
	_, token, err := s.Claim(ctx, "msg_done", time.Hour)
	require.NoError(t, err)
	require.NoError(t, s.Complete(ctx, "msg_done", token))
	_, _, err = s.Claim(ctx, "msg_running", time.Hour)
	require.NoError(t, err)
	require.NoError(t, before.Close())

	restarted := New(again, WithPrefix(prefix))
	for id, want := range map[string]nectarhooks.Claim{"msg_done": done, "msg_running": inFlight, "msg_new": acquired} {
		claim, _, err := restarted.Claim(ctx, id, time.Hour)
		require.NoError(t, err, id)
		assert.Equal(t, want, claim, id)
	}
}

// TestForgetOnlyItsID: Forget removes its own message and no other.
func TestForgetOnlyItsID(t *testing.T) {
	s, _ := testStore(t)
	ctx := context.Background()
	for _, id := range []string{"msg_a", "msg_b"} {
		_, token, err := s.Claim(ctx, id, time.Hour)
		require.NoError(t, err)
		require.NoError(t, s.Complete(ctx, id, token))
	}
	require.NoError(t, s.Forget(ctx, "msg_a"))
	for id, want := range map[string]nectarhooks.Claim{"msg_a": acquired, "msg_b": done} {
		claim, _, err := s.Claim(ctx, id, time.Hour)
		require.NoError(t, err)
		assert.Equal(t, want, claim, id)
	}
}

// TestPrefixes: stores share messages exactly when they share a prefix.
func TestPrefixes(t *testing.T) {
	c := testClient(t)
	p1, p2 := testPrefix(t, c), testPrefix(t, c)
	ctx := context.Background()
	a, replicaOfA, b := New(c, WithPrefix(p1)), New(testClient(t), WithPrefix(p1)), New(c, WithPrefix(p2))
	_, token, err := a.Claim(ctx, "msg_shared", time.Hour)
	require.NoError(t, err)
	require.NoError(t, a.Complete(ctx, "msg_shared", token))

	claim, _, err := replicaOfA.Claim(ctx, "msg_shared", time.Hour)
	require.NoError(t, err)
	assert.Equal(t, done, claim, "same prefix, another client: shared")
	claim, _, err = b.Claim(ctx, "msg_shared", time.Hour)
	require.NoError(t, err)
	assert.Equal(t, acquired, claim, "another prefix: nothing shared")
}

// TestNewValidates: New refuses what would make a broken store, and keeps
// the documented defaults.
func TestNewValidates(t *testing.T) {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}) // never contacted
	t.Cleanup(func() { _ = c.Close() })
	tests := []struct {
		name      string
		client    redis.UniversalClient
		opts      []Option
		wantPanic string // a part of the panic's message; "" for none
		wantKey   string // the key of msg_x
		wantTTL   time.Duration
	}{
		{name: "defaults", client: c, wantKey: "nectarhooks:msg_x", wantTTL: 48 * time.Hour},
		{name: "prefix and TTL", client: c, opts: []Option{WithPrefix("svc:"), WithTTL(time.Minute)}, wantKey: "svc:msg_x", wantTTL: time.Minute},
		{name: "zero TTL takes the default", client: c, opts: []Option{WithTTL(0)}, wantKey: "nectarhooks:msg_x", wantTTL: nectarhooks.DefaultIdempotencyTTL},
		{name: "negative TTL takes the default", client: c, opts: []Option{WithTTL(-time.Second)}, wantKey: "nectarhooks:msg_x", wantTTL: nectarhooks.DefaultIdempotencyTTL},
		{name: "the last option wins", client: c, opts: []Option{WithPrefix(""), WithPrefix("b:")}, wantKey: "b:msg_x", wantTTL: 48 * time.Hour},
		{name: "empty prefix", client: c, opts: []Option{WithPrefix("")}, wantPanic: "empty prefix"},
		{name: "hash tag in prefix", client: c, opts: []Option{WithPrefix("{svc}:")}, wantPanic: "hash tag"},
		{name: "closing brace in prefix", client: c, opts: []Option{WithPrefix("svc}")}, wantPanic: "hash tag"},
		{name: "nil client", client: nil, wantPanic: "nil client"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s *Store
			var recovered any
			func() {
				defer func() { recovered = recover() }()
				s = New(tt.client, tt.opts...)
			}()
			if tt.wantPanic != "" {
				require.NotNil(t, recovered, "New must panic")
				assert.Contains(t, fmt.Sprint(recovered), tt.wantPanic)
				return
			}
			require.Nil(t, recovered)
			assert.Equal(t, tt.wantKey, s.key("msg_x"))
			assert.Equal(t, tt.wantTTL, s.ttl)
		})
	}
}

// TestForeignValue: a key under the prefix that the store did not write
// makes Claim fail (503, nothing runs) rather than guess, and is left
// alone by Complete and Release.
func TestForeignValue(t *testing.T) {
	tests := []struct {
		name       string
		set        func(c *redis.Client, key string) error
		wantErrIs  error
		wantErrMsg string
	}{
		{
			name: "a string",
			set: func(c *redis.Client, key string) error {
				return c.Set(context.Background(), key, "v1", time.Hour).Err()
			},
			wantErrIs: ErrForeignValue, wantErrMsg: `holds "v1"`,
		},
		{
			name:      "an empty string",
			set:       func(c *redis.Client, key string) error { return c.Set(context.Background(), key, "", time.Hour).Err() },
			wantErrIs: ErrForeignValue,
		},
		{
			name:       "a hash",
			set:        func(c *redis.Client, key string) error { return c.HSet(context.Background(), key, "f", "v").Err() },
			wantErrMsg: "WRONGTYPE",
		},
	}
	for _, mode := range claimModes {
		for _, tt := range tests {
			t.Run(mode.name+"/"+tt.name, func(t *testing.T) {
				s, c := testStoreMode(t, mode.byScript)
				ctx := context.Background()
				key := s.key("msg_foreign")
				require.NoError(t, tt.set(c, key))
				typ := c.Type(ctx, key).Val()

				claim, token, err := s.Claim(ctx, "msg_foreign", time.Hour)
				require.Error(t, err)
				assert.Equal(t, nectarhooks.Claim(0), claim)
				assert.Empty(t, token)
				if tt.wantErrIs != nil {
					assert.ErrorIs(t, err, tt.wantErrIs)
				} else {
					assert.NotErrorIs(t, err, ErrForeignValue)
				}
				assert.Contains(t, err.Error(), tt.wantErrMsg)
				assert.True(t, strings.HasPrefix(err.Error(), "goredisstore: "), err.Error())

				// Complete and Release compare first: a string is left alone,
				// another type makes them fail. Either way nothing changes.
				_ = s.Complete(ctx, "msg_foreign", "t")
				_ = s.Release(ctx, "msg_foreign", "t")
				assert.Equal(t, typ, c.Type(ctx, key).Val(), "the key is untouched")
				if typ == "string" {
					assert.NotEqual(t, "done", c.Get(ctx, key).Val())
				}
				assert.Equal(t, mode.byScript, s.claimByScript.Load(), "a WRONGTYPE error is not an old server's refusal")
			})
		}
	}
}

// TestConcurrentClaims: many deliveries of one message claim it at once,
// through one Store and through several replicas' clients: exactly one
// acquires it.
func TestConcurrentClaims(t *testing.T) {
	for _, mode := range claimModes {
		for _, replicas := range []int{1, 4} {
			t.Run(fmt.Sprintf("%s/%d replicas", mode.name, replicas), func(t *testing.T) {
				first, _ := testStoreMode(t, mode.byScript)
				stores := []*Store{first}
				for range replicas - 1 {
					replica := New(testClient(t), WithPrefix(first.prefix))
					replica.claimByScript.Store(mode.byScript)
					stores = append(stores, replica)
				}
				const goroutines = 48
				var wg sync.WaitGroup
				results := make(chan nectarhooks.Claim, goroutines)
				start := make(chan struct{})
				for i := range goroutines {
					wg.Add(1)
					go func() {
						defer wg.Done()
						<-start
						claim, _, err := stores[i%len(stores)].Claim(context.Background(), "msg_race", time.Hour)
						assert.NoError(t, err)
						results <- claim
					}()
				}
				close(start)
				wg.Wait()
				close(results)
				counts := map[nectarhooks.Claim]int{}
				for claim := range results {
					counts[claim]++
				}
				assert.Equal(t, map[nectarhooks.Claim]int{acquired: 1, inFlight: goroutines - 1}, counts)
			})
		}
	}
}

// TestMillis: leases and TTLs become whole milliseconds for PX, rounded up
// so that a lease never ends early, and never zero, which PX refuses.
func TestMillis(t *testing.T) {
	tests := []struct {
		in   time.Duration
		want int64
	}{
		{12 * time.Second, 12000},
		{time.Millisecond, 1},
		{time.Millisecond + 1, 2},
		{1500 * time.Microsecond, 2},
		{1, 1},
		{0, 1},
		{-time.Second, 1},
		{48 * time.Hour, 172_800_000},
		{time.Millisecond - 1, 1},
		{-1, 1},
		{math.MinInt64, 1},
		// The longest Duration, 292 years: rounded up past its last whole
		// millisecond, without overflowing.
		{math.MaxInt64, 9_223_372_036_855},
		{math.MaxInt64 - math.MaxInt64%time.Millisecond, 9_223_372_036_854},
	}
	for _, tt := range tests {
		t.Run(tt.in.String(), func(t *testing.T) {
			assert.Equal(t, tt.want, millis(tt.in))
		})
	}
}

// TestExtremeDurations takes leases and TTLs at both ends of
// time.Duration to the server: a nanosecond becomes a millisecond (PX
// refuses zero), and the longest Duration an expiry of 292 years that
// Redis accepts, neither cut to zero nor overflowed.
func TestExtremeDurations(t *testing.T) {
	const maxMillis = int64(math.MaxInt64/time.Millisecond) + 1 // rounded up
	tests := []struct {
		name       string
		lease, ttl time.Duration
		wantMillis int64 // the expiry set, before it runs down; 1: it may have run out
	}{
		{"a nanosecond", 1, 1, 1},
		{"just under a millisecond", time.Millisecond - 1, time.Millisecond - 1, 1},
		{"the longest Duration", math.MaxInt64, math.MaxInt64, maxMillis},
	}
	for _, mode := range claimModes {
		for _, tt := range tests {
			t.Run(mode.name+"/"+tt.name, func(t *testing.T) {
				s, c := testStoreMode(t, mode.byScript, WithTTL(tt.ttl))
				ctx := context.Background()
				key := s.key("msg_ends")

				claim, token, err := s.Claim(ctx, "msg_ends", tt.lease)
				require.NoError(t, err)
				require.Equal(t, acquired, claim)
				assertMillis(t, c, key, tt.wantMillis, "lease")

				require.NoError(t, s.Complete(ctx, "msg_ends", token))
				assertMillis(t, c, key, tt.wantMillis, "TTL")
			})
		}
	}
}

// assertMillis checks key's expiry, in the server's milliseconds (PTTL as a
// Duration would overflow for the longest), against want: at most want and,
// for a long one, not much less; a 1 ms expiry may have run out already.
func assertMillis(t *testing.T, c *redis.Client, key string, want int64, what string) {
	t.Helper()
	pttl, err := c.Do(context.Background(), "pttl", key).Int64()
	require.NoError(t, err)
	if want == 1 {
		assert.Contains(t, []int64{-2, 0, 1}, pttl, "%s: a 1 ms expiry (-2: it has run out)", what)
		return
	}
	assert.LessOrEqual(t, pttl, want, what)
	assert.Greater(t, pttl, want-int64(time.Hour/time.Millisecond), "%s: set from the Duration given", what)
}

// TestRefusesNXGet tells an old server's refusal of SET NX GET, which
// switches Claim to the script, from every other failure. The refusal is
// the server's own answer to a SET it cannot parse.
func TestRefusesNXGet(t *testing.T) {
	c := testClient(t)
	prefix := testPrefix(t, c)
	ctx := context.Background()
	require.NoError(t, c.HSet(ctx, prefix+"hash", "f", "v").Err())
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"syntax error", c.Do(ctx, "set", prefix+"k", "v", "nx", "xx").Err(), true},
		{"wrong type", c.Do(ctx, "set", prefix+"hash", "v", "nx", "get").Err(), false},
		{"nil reply", redis.Nil, false},
		{"no error", nil, false},
		{"connection refused", errors.New("dial tcp 127.0.0.1:1: connect: connection refused"), false},
		{"cancelled", context.Canceled, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, refusesNXGet(tt.err), "%v", tt.err)
		})
	}
}
