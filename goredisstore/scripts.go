package goredisstore

import "github.com/redis/go-redis/v9"

// The store's three compare-and-set steps, each on the one key of its
// message (KEYS[1]) so that a script never spans Redis Cluster slots. Each
// runs atomically on the server: no other command sees the key between the
// GET and the write. redis.Script sends them with EVALSHA and falls back to
// EVAL (which caches the script again) after a SCRIPT FLUSH or a failover
// to a server that never saw them.
//
// Claim itself is a plain SET ... NX PX ... GET on Redis 7.0 and newer;
// claimScript stands in for it on older servers, which refuse NX and GET
// together.

// claimScript sets the key to ARGV[1] ("inflight:" and the new token) for
// ARGV[2] milliseconds if it is absent, and returns 0; otherwise it leaves
// the key alone and returns its value, which Claim reads as done or in
// flight, or, when it is ARGV[1] itself, as its own claim: go-redis ran the
// script again after losing the reply of a run that set the key.
var claimScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v then
  return v
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 0
`)

// completeScript sets the key to "done" for ARGV[2] milliseconds if it is
// still ARGV[1] (the caller's own claim) or absent (the claim's lease ran
// out, or it was forgotten, and nobody claimed the message since: the work
// was done all the same, so it is recorded). A newer claim, or a done
// record whose TTL must not be prolonged, is left alone. It returns 1 when
// it recorded the message, 0 otherwise.
var completeScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] or not v then
  redis.call('SET', KEYS[1], 'done', 'PX', ARGV[2])
  return 1
end
return 0
`)

// releaseScript deletes the key if it is still ARGV[1], the caller's own
// claim, and returns how many keys it deleted.
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`)
