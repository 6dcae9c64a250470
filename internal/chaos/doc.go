// Package chaos holds a soak test (go test in this directory) that runs
// three replicas of a receiver against real PostgreSQL and Redis servers
// while their links to the database misbehave, and checks the promises
// the SDK makes to Svix and to the service behind it. It has no code of its
// own: it is a module of its own so that the SDK's modules (the core,
// pgxstore, goredisstore, riverqueue) need no dependency on each other to
// be tested together.
//
// # What runs
//
// For each of three modes, as subtests of TestSoak:
//
//   - pgxstore: three Handlers sharing one pgxstore table
//     (nectarhooks.WithIdempotency), callbacks run before the answer;
//   - goredisstore: the same on one goredisstore prefix;
//   - river: three Handlers with nectarhooks.WithQueue(riverqueue.New(...))
//     for intake, and three River clients working the jobs with
//     riverqueue.Worker, on one database.
//
// Each replica is an httptest.Server with a Handler and a connection pool
// (or go-redis client) of its own, and each pool dials the database through
// a nectarhookstest.FaultProxy of its own, so that one replica's link fails
// while the others' work, as in a real network.
//
// Senders play Svix: signed deliveries of a few hundred messages, spread
// over the run, each to a random replica; a delivery not answered 2xx is
// retried on a compressed Svix schedule (100 ms, 250 ms, 500 ms, 1 s, 2 s,
// then every 2 s), to a random replica, with the same message id and a
// fresh timestamp and signature, until acknowledged.
//
// Meanwhile a scheduler, every 300 ms to 1.5 s, picks a replica's proxy and
// applies one fault: a frozen link (no answer, no close) for 0.5 to 4 s; a
// statement that runs but whose answer is lost, then the connection cut
// (the client cannot know whether its work happened); a cut; a TCP reset;
// 50 to 400 ms of latency for 1 to 4 s; writes sliced to 1 to 16 bytes for
// 1 to 3 s.
//
// # What it proves
//
// After the run, with every fault healed and every sender done:
//
//  1. every message was acknowledged 2xx in the end: no fault loses a
//     message for good;
//  2. every answer came within 15 seconds, the time Svix waits, whatever
//     the database did (WithStoreTimeout, WithCallbackTimeout and the
//     Queue's insert timeout bound the Handler's wait);
//  3. with an idempotency store, each message's callback succeeded exactly
//     once, across replicas and through lost answers, cut statements and
//     lease takeovers; with River, each message has exactly one job and
//     every job completes (the callbacks run at least once each: River may
//     run a job again when its completion was lost, which the soak counts
//     and reports);
//  4. nothing is left running once the servers, River clients, pools and
//     proxies are shut down (goleak).
//
// # Running it
//
//	cd internal/chaos && go test -race -count=1 -v ./...
//
// It needs the servers nectarhookstest.PostgresURL and RedisAddr find
// (NECTARHOOKS_POSTGRES_URL, NECTARHOOKS_REDIS_ADDR), and skips under
// go test -short. NECTARHOOKS_SOAK_DURATION sets each mode's run (a Go
// duration, default 20s), NECTARHOOKS_SOAK_MESSAGES the messages per mode
// (default 15 a second of run), and NECTARHOOKS_SOAK_SEED replays a logged
// seed: the same faults, in the same order, at the same offsets, and the
// same traffic; the interleaving with the servers is the machine's.
package chaos
