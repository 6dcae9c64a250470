package goredisstore

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/nectarhooks/nectarhooks"
)

// Order is an ordering guard (see nectarhooks.EventVersion) on Redis,
// shared by every replica whose Order has the same client database and
// prefix: one key per entity, prefix + "order:" + the entity, holding the
// newest version applied in microseconds, kept for
// nectarhooks.DefaultIdempotencyTTL (48 hours) after its last change, which
// covers Svix's retries of about 28 hours.
//
// Its guarantee is weaker than pgxstore.Order's, whose check commits with
// the callback's writes. Apply raises the entity's version before the
// callback writes, atomically across replicas (a Lua compare-and-set), but
// the writes are elsewhere and cannot join it:
//
//   - a callback that fails after Apply let its event through has raised
//     the version without writing, and the event's retry is then stale:
//     its update is lost unless a newer one follows;
//   - two events let through in order can still write out of order when
//     the first one's writes are slower.
//
// Use it for writes that are quick and do not fail once started (a cache,
// a Redis hash of statuses), and pgxstore.Order where the writes are in
// PostgreSQL. It is safe for concurrent use.
type Order struct {
	client redis.UniversalClient
	prefix string
	ttl    time.Duration
}

// NewOrder returns an Order keeping its keys in client's database under
// prefix + "order:" (prefix "" takes DefaultPrefix). It does not contact
// the server and never closes the client.
func NewOrder(client redis.UniversalClient, prefix string) *Order {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	return &Order{client: client, prefix: prefix + "order:", ttl: nectarhooks.DefaultIdempotencyTTL}
}

// orderScript raises KEYS[1] to ARGV[1] (microseconds) unless it holds a
// newer version, and keeps it for ARGV[2] milliseconds; it returns 1 when
// the event is to be applied (newer or a tie), 0 when it is stale. Versions
// are under 2^53 microseconds until the year 2255, so Lua's doubles compare
// them exactly.
var orderScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v and tonumber(v) > tonumber(ARGV[1]) then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
`)

// Apply raises the version of ev's entity to ev's, and returns nil when ev
// is to be applied (no newer version seen, a tie included), an error
// matching nectarhooks.ErrStale when a newer one was applied already, or
// Redis's error. Call it before the callback's writes and return its
// error; events nectarhooks.EventVersion cannot order are applied without
// a call. See Order for what it does not guarantee.
func (o *Order) Apply(ctx context.Context, ev nectarhooks.Event) error {
	v, ok := nectarhooks.EventVersion(ctx, ev)
	if !ok {
		return nil
	}
	us := strconv.FormatInt(v.Updated.UnixMicro(), 10)
	n, err := orderScript.Run(ctx, o.client, []string{o.prefix + v.Entity}, us, o.ttl.Milliseconds()).Int()
	switch {
	case err != nil:
		return fmt.Errorf("goredisstore: order: %w", err)
	case n == 0:
		return fmt.Errorf("%w: %s at %s", nectarhooks.ErrStale, v.Entity, v.Updated.Format(nectarhooks.TimeLayout))
	}
	return nil
}
