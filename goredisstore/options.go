package goredisstore

import (
	"fmt"
	"strings"
	"time"

	"github.com/nectarhooks/nectarhooks"
)

// DefaultPrefix is the key prefix of a Store made without WithPrefix.
const DefaultPrefix = "nectarhooks:"

// Option configures a Store made by New.
type Option func(*config)

type config struct {
	prefix string
	ttl    time.Duration
}

// WithPrefix sets the prefix of the store's keys: message id m is kept at
// key prefix+m. Default: DefaultPrefix ("nectarhooks:"). Give each service
// that receives Nectar's webhooks through its own endpoint a prefix of its
// own, since message ids are unique per endpoint only, and keep the
// replicas of one service on the same prefix, or they do not see each
// other's claims.
//
// New panics if prefix is empty, which would mix the store's keys with any
// other data in the database, or holds '{' or '}': a Redis Cluster hash tag
// in the prefix would put every message on one slot, and so on one shard.
func WithPrefix(prefix string) Option {
	return func(c *config) { c.prefix = prefix }
}

// WithTTL sets how long the store remembers a processed message, during
// which its redeliveries are acknowledged without running the callback.
// Default: nectarhooks.DefaultIdempotencyTTL (48 hours, longer than Svix's
// 28 hours of retries). Zero or negative takes the default; the TTL is
// rounded up to whole milliseconds, Redis's unit.
func WithTTL(d time.Duration) Option {
	return func(c *config) { c.ttl = d }
}

// newConfig applies opts over the defaults and checks the result.
func newConfig(opts []Option) config {
	c := config{prefix: DefaultPrefix, ttl: nectarhooks.DefaultIdempotencyTTL}
	for _, opt := range opts {
		opt(&c)
	}
	if c.ttl <= 0 {
		c.ttl = nectarhooks.DefaultIdempotencyTTL
	}
	if err := checkPrefix(c.prefix); err != nil {
		panic(err)
	}
	return c
}

// checkPrefix says what is wrong with a key prefix, if anything.
func checkPrefix(prefix string) error {
	switch {
	case prefix == "":
		return fmt.Errorf("goredisstore: WithPrefix: empty prefix; keys would mix with the database's other data")
	case strings.ContainsAny(prefix, "{}"):
		return fmt.Errorf("goredisstore: WithPrefix(%q): '{' or '}' would make a Redis Cluster hash tag and put every message on one slot", prefix)
	}
	return nil
}
