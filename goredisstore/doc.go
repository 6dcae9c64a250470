// Package goredisstore is a nectarhooks.IdempotencyStore on Redis, through
// github.com/redis/go-redis/v9, for services that receive Nectar's
// webhooks on several replicas: Svix redelivers a message to any replica,
// and the replicas that share a Store's database and prefix run its
// callback once between them.
//
//	store := goredisstore.New(redis.NewClient(&redis.Options{
//		Addr:                  "127.0.0.1:6379",
//		ContextTimeoutEnabled: true, // see "When Redis is down"
//	}))
//	h, err := nectarhooks.NewHandler(secret, nectarhooks.WithIdempotency(store))
//
// # Keys and values
//
// Each message has one key, the prefix (WithPrefix, default
// "nectarhooks:") followed by its svix-id, e.g.
// "nectarhooks:msg_2OK8RpjBjgNMzZ0QSTNf4k4FS3q". It holds one of two
// strings:
//
//   - "inflight:" and a token, while a delivery processes the message. The
//     token is 26 random base32 characters (crypto/rand), new for each
//     claim. The key expires after the lease that the Handler asks for: its
//     callback deadline (nectarhooks.WithCallbackTimeout) plus
//     nectarhooks.LeaseGrace, 12 seconds by default.
//   - "done", once the message was processed. The key expires after the
//     store's TTL (WithTTL, default nectarhooks.DefaultIdempotencyTTL, 48
//     hours).
//
// An absent key is a message never seen, released after a failure, expired,
// or forgotten (Store.Forget): its next delivery runs the callback.
//
// # Leases, fencing and TTL
//
// Every step is atomic on the server and takes one round trip. Claim is
// SET key "inflight:<token>" NX PX lease GET: it sets the key, with the
// lease as its expiry, only if it is absent, and otherwise answers what it
// holds: "done" is nectarhooks.ClaimDone, a claim is
// nectarhooks.ClaimInFlight. Complete and Release are compare-and-set Lua
// scripts on the claim's token: Release deletes the key only while it holds
// the token; Complete writes "done" while the key holds the token or is
// absent (a holder whose lease ran out, with nobody claiming the message
// since, still did the work, so it is recorded). A holder that hung past
// its lease and was taken over holds a stale token: its late Complete or
// Release leaves the new holder's claim alone.
//
// go-redis sends a command again, on a new connection, when the first one
// broke or timed out before the reply arrived (redis.Options.MaxRetries, 3
// by default), also when the server had run it. Every step takes that: a
// Claim whose retry finds the key holding its own token (no other claim has
// it) has acquired the message, rather than reporting it in flight, which
// would refuse its deliveries until the lease ran out; a Complete, Release
// or Forget run twice does what it did once.
//
// Leases and TTLs are expiries counted by the Redis server (PX), never by
// the replicas, so the clocks of the replicas do not matter; both are
// rounded up to whole milliseconds.
//
// The scripts go out with EVALSHA and fall back to EVAL, which caches them
// again, after a SCRIPT FLUSH, a restart or a failover. SET with NX and GET
// together needs Redis 7.0 (or a compatible server, such as Valkey); on an
// older server, which refuses it, the Store claims with a Lua script that
// does the same from the first refusal on (that one Claim takes two round
// trips), so Redis 2.6.12 and newer will do. Scripting must be allowed; no
// module or particular configuration is needed.
//
// # When Redis is down
//
// A Claim that fails (server unreachable, timeout), or does not answer
// within the Handler's store deadline (nectarhooks.WithStoreTimeout, 1
// second by default), makes the Handler answer 503 without running
// anything, and Svix retries the delivery later. A Complete or Release that
// fails is logged by the Handler: the claim then expires with its lease,
// after which a redelivery runs the callback again.
//
// Make the client with ContextTimeoutEnabled: true, so that go-redis ends
// its reads and writes at the deadline of the context the Handler passes.
// Without it go-redis ignores that deadline while it waits for a reply: on
// a link that goes silent without closing (a black-holed network, a frozen
// server) the Handler stops waiting at its deadline, but the call runs on
// for the client's ReadTimeout (5 seconds by default), holding a pooled
// connection meanwhile: under a burst of deliveries those calls pile up
// and can empty the pool. Keep DialTimeout, ReadTimeout and WriteTimeout a
// few seconds at most as well, for calls without a deadline.
//
// Redis replicates asynchronously: after a failover (Sentinel, Cluster) the
// new primary may miss the last writes of the old one, so a message claimed
// or processed just before it may run once more. Persistence (RDB snapshots,
// AOF) decides, likewise, what a restarted server still remembers; a server
// without it forgets every processed message.
//
// # Memory
//
// A processed message takes about 180 bytes of Redis memory with Svix's
// 31-character ids (measured with INFO used_memory over 100,000 "done" keys
// with a 20-byte prefix: key, value, expiry and hash-table overhead), so a
// service that processes a million messages within the TTL needs about
// 180 MB for them. The keys expire on their own: nothing needs cleaning up.
// Keep the database's maxmemory-policy at noeviction, Redis's default: every
// key of the store has an expiry, so the volatile-* policies pick them, and
// an evicted "done" key lets a redelivery run again, an evicted claim a
// second delivery at the same time.
//
// # Redis Cluster, Sentinel and the other clients
//
// New takes any redis.UniversalClient. Every command and script touches
// one key, the message's own, so each message lives on one cluster slot
// and the store works on Redis Cluster with no hash tags (WithPrefix
// refuses '{' and '}', which would make one and put every message on the
// same slot). Every command of the store writes, so go-redis sends it to the
// primary even with ReadOnly or RouteByLatency. Through Sentinel (redis.NewFailoverClient,
// or redis.NewUniversalClient with a MasterName) the store follows the
// primary. The tests of this package run against a single node.
package goredisstore
