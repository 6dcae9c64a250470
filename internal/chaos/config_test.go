package chaos

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The soak's knobs, read from the environment so that CI and a developer
// chasing a failure run the same test.
const (
	// durationEnv sets each mode's run: how long the faults go on and
	// over which the messages are first sent (a Go duration).
	durationEnv = "NECTARHOOKS_SOAK_DURATION"
	// messagesEnv sets the messages per mode; default messagesPerSecond a
	// second of run.
	messagesEnv = "NECTARHOOKS_SOAK_MESSAGES"
	// seedEnv replays a run's faults and traffic from the seed it logged.
	seedEnv = "NECTARHOOKS_SOAK_SEED"
)

const (
	// defaultDuration keeps the three modes at about a minute in CI.
	defaultDuration = 20 * time.Second
	// messagesPerSecond: 300 messages in the default run, a few every
	// fault, so that every fault meets statements of all kinds.
	messagesPerSecond = 15
	// replicas of the receiver, each with a database link of its own.
	replicas = 3
	// senders bounds the deliveries in flight at once, as Svix's
	// concurrency per endpoint does.
	senders = 12
	// svixWait is how long Svix waits for an answer: the product's promise
	// is to answer every delivery within it, whatever the database does.
	svixWait = 15 * time.Second
	// clientTimeout is the senders' own bound, past svixWait, so that an
	// answer that breaks the promise is measured rather than cut short.
	clientTimeout = 20 * time.Second
	// retryWindow is how long after the run senders keep retrying a
	// message before giving up on it: far more than any fault lasts (the
	// longest, a 4 s freeze, plus a 12 s lease left behind by a lost
	// answer), far less than Svix's 28 hours.
	retryWindow = 60 * time.Second
)

// config is one soak's settings.
type config struct {
	duration time.Duration
	messages int
	seed     uint64
}

// loadConfig reads the environment; a value that does not parse fails the
// test rather than running something other than what was asked.
func loadConfig(t *testing.T) config {
	t.Helper()
	c := config{duration: defaultDuration, seed: uint64(time.Now().UnixNano())}
	if v := os.Getenv(durationEnv); v != "" {
		d, err := time.ParseDuration(v)
		require.NoError(t, err, durationEnv)
		require.Positive(t, d, durationEnv)
		c.duration = d
	}
	c.messages = max(1, int(c.duration.Seconds()*messagesPerSecond))
	if v := os.Getenv(messagesEnv); v != "" {
		n, err := strconv.Atoi(v)
		require.NoError(t, err, messagesEnv)
		require.Positive(t, n, messagesEnv)
		c.messages = n
	}
	if v := os.Getenv(seedEnv); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		require.NoError(t, err, seedEnv)
		c.seed = s
	}
	return c
}

// randomHex returns 2n random hex digits, to keep the soak's tables,
// prefixes and databases apart from those of tests sharing the servers.
func randomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return hex.EncodeToString(b)
}
