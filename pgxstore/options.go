package pgxstore

import (
	"time"

	"github.com/nectarhooks/nectarhooks"
)

// DefaultTable is the table a Store keeps its messages in unless WithTable
// names another.
const DefaultTable = "nectarhooks_messages"

// Option configures a Store made by New.
type Option func(*config)

type config struct {
	table string
	ttl   time.Duration
}

func defaultConfig() config {
	return config{table: DefaultTable, ttl: nectarhooks.DefaultIdempotencyTTL}
}

// WithTable names the table the Store keeps its messages in: a name or a
// schema-qualified "schema.name", each part made of ASCII letters, digits
// and underscores, not starting with a digit, the name at most 51 bytes
// long (so that its index's name fits in PostgreSQL's 63). The name is
// quoted, so it is used exactly as given, letter case included. Replicas
// that share duplicate suppression must use the same table. Default:
// DefaultTable, "nectarhooks_messages", in the connection's search_path.
func WithTable(name string) Option {
	return func(c *config) { c.table = name }
}

// WithTTL sets how long a processed message is remembered, so that its
// redeliveries are acknowledged without running its callback again. Svix
// retries for about 28 hours, so anything shorter lets late retries run
// again. Zero or negative: the default, nectarhooks.DefaultIdempotencyTTL
// (48 hours). It is rounded up to whole microseconds, PostgreSQL's unit,
// so that a completion is never forgotten early.
func WithTTL(d time.Duration) Option {
	return func(c *config) {
		if d <= 0 {
			d = nectarhooks.DefaultIdempotencyTTL
		}
		c.ttl = d
	}
}
