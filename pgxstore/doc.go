// Package pgxstore is a nectarhooks.IdempotencyStore in a PostgreSQL table,
// through github.com/jackc/pgx/v5: the replicas of a service that share the
// table run each webhook message's callback once between them.
//
//	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
//	...
//	store, err := pgxstore.New(ctx, pool)
//	...
//	h, err := nectarhooks.NewHandler(secret, nectarhooks.WithIdempotency(store))
//
// # The table
//
// New creates the table (default "nectarhooks_messages", see WithTable) and
// its index when they are missing, as
//
//	CREATE TABLE nectarhooks_messages (
//		id         text COLLATE "C" PRIMARY KEY, -- the svix-id
//		token      bigint NOT NULL,              -- fencing token of the latest claim
//		done       boolean NOT NULL,             -- processed (true) or in flight (false)
//		expires_at timestamptz NOT NULL          -- end of the lease, or of the TTL when done
//	);
//	CREATE INDEX nectarhooks_messages_expires_idx ON nectarhooks_messages (expires_at);
//
// A row means nothing once expires_at has passed: the message may be
// claimed again, as if the row were absent.
//
// The id column holds the svix-id as it is, so that the table reads
// plainly (and a message can be forgotten by hand, DELETE … WHERE id =
// 'msg_…'), unless text cannot hold or index it: an id longer than 1024
// bytes, not UTF-8, or with a control byte is kept as the byte 0x01
// followed by the hex SHA-256 of the id. Ids are told apart byte for byte
// either way.
//
// You may create the table and its index yourself (in a migration) as
// above; New then leaves the table as it is and only checks that it can
// read its columns. Replicas that start at once do not trip over each
// other: New creates the table under a transaction-level advisory lock
// (pg_advisory_xact_lock), so one creates it and the others find it.
//
// # Leases, fencing and TTL
//
// Claim is one INSERT … ON CONFLICT (id) DO UPDATE statement: it inserts
// an in-flight row, or takes over a row whose expires_at has passed (a
// lease whose holder hung or died, or a processed message past its TTL),
// and otherwise leaves the row as it is and reports it as done or in
// flight. Every claim writes a new random 63-bit token into the row and
// hands it to its holder. Release is one statement that deletes the row
// only while it holds that token in flight. Complete is one statement that
// marks the row done, with expires_at = now + TTL (WithTTL, default
// nectarhooks.DefaultIdempotencyTTL), while it holds that token in flight
// or while no live claim is there (no row, or one past its expires_at: a
// holder that hung past its lease and then succeeded still records its
// work when nobody took the message over). So a holder whose message was
// taken over can neither complete nor release the newer claim. A row done
// within its TTL stays as it is: its first completion counts.
//
// Every time is taken from the database's clock, never from the
// replicas': replicas' clocks drift apart, and a replica whose clock ran
// ahead would take over leases that have not expired yet, while one that
// ran behind would refuse messages whose holder died. With one clock, the
// database's, every replica agrees on when a lease ends. A new expires_at
// is counted from when the row is written (clock_timestamp()), so a
// statement that first waited for a lock (DDL, VACUUM FULL or pg_repack
// holding the table, a transaction holding the row) still grants the
// whole lease or TTL; whether a row has expired is judged by the time the
// statement began (now()), which can only judge it late, never take a
// lease over early. Leases and TTLs are rounded up to whole microseconds,
// PostgreSQL's unit.
//
// # Exactly-once effects and event order
//
// A callback whose writes go to the same database can complete its message
// in its own transaction, [Store.CompleteTx] (or [Store.CompleteSQLTx]),
// fenced by its claim's token: the writes and the completion commit
// together, and a callback whose claim was taken over writes nothing
// ([ErrClaimLost]). [Order] keeps each entity's newest version in a table
// of its own, checked in the same transaction. See docs/effects.md in the
// repository.
//
// # Cleanup
//
// Rows past their expires_at are deleted without a job of yours: every
// 256th Complete on a Store also deletes up to 1024 expired rows, oldest
// first, through the expires_at index (FOR UPDATE SKIP LOCKED, so that
// replicas cleaning at once do not wait on each other). Each Complete
// adds at most one row and the cleanups can delete four per Complete, so
// they keep up with any rate of deliveries. DeleteExpired does the same on demand, for
// a service that wants to run it on a schedule of its own.
//
// # Privileges
//
// The role needs SELECT, INSERT, UPDATE and DELETE on the table. The first
// New, when the table is missing, also needs CREATE on its schema; create
// the table beforehand to run without it.
//
// # When the database is down
//
// Claim then returns the error; a nectarhooks.Handler answers the delivery
// 503 without running its callback, and Svix retries it later. A failed
// Complete or Release is logged by the Handler: the message is then
// processed again on redelivery (Complete) or refused until its lease
// expires (Release).
package pgxstore
