// Package riverqueue keeps verified Nectar webhooks in PostgreSQL with River
// (github.com/riverqueue/river) between the 2xx answer and the callback, so
// that a delivery Svix counts as delivered is on disk and runs until its
// callback succeeds, whatever happens to the process that took it.
//
// The intake side is a [Queue], given to nectarhooks.WithQueue: the Handler
// verifies and decodes each delivery, the Queue inserts one River job for it
// ([Args]) and commits, and only then does the Handler answer 202. When the
// insert fails the Handler answers 503 and Svix delivers again later. The
// work side is a [Worker], registered with river.AddWorker: River fetches
// each job and the Worker passes its message to Handler.DispatchVerified,
// which decodes it and runs the callback. A failing or panicking callback
// makes the job fail, and River retries it with its backoff.
//
//	workers := river.NewWorkers()
//	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
//		Queues:                      map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 10}},
//		Workers:                     workers,
//		CompletedJobRetentionPeriod: riverqueue.CompletedJobRetention,
//	})
//	h, err := nectarhooks.NewHandler(secret, nectarhooks.WithQueue(riverqueue.New(client)))
//	river.AddWorker(workers, riverqueue.NewWorker(h))
//	err = client.Start(ctx)
//
// A replica that only takes deliveries uses an insert-only client (a Config
// without Queues and Workers); the workers may run anywhere that reaches the
// same database.
//
// # One job per message
//
// Svix may deliver one message (one svix-id) several times. Args makes
// River's unique jobs key on the message id (and, under
// nectarhooks.NewAccountHandler, its account: Svix sends one svix-id to
// every endpoint, and each account's message is a job of its own, run by
// the Worker with Message.Account set), in River's default unique
// states (available, pending, scheduled, running, retryable and completed):
// a redelivery finds the job already there and is acknowledged without a
// second one. Enqueue then returns an error matching
// nectarhooks.ErrAlreadyQueued, which the Handler answers 202, as it did
// the first delivery, and reports to its Observer as OutcomeDuplicate
// rather than OutcomeQueued: with otelhooks, redeliveries count in
// nectarhooks.duplicates, and the deliveries counted queued are the jobs
// inserted. River deletes completed jobs after
// river.Config.CompletedJobRetentionPeriod (24 hours by default); a delivery
// of the same message after that makes a new job. Svix retries for about 28
// hours and its portal resends whenever asked, so set the retention to at
// least [CompletedJobRetention] (48 hours, nectarhooks.DefaultIdempotencyTTL),
// or give the worker's Handler an idempotency store
// (nectarhooks.WithIdempotency), which also covers River's own at-least-once
// execution (a job whose worker died after the callback but before River
// recorded it runs again). A job discarded after its last attempt, or
// cancelled, no longer blocks a new one: a later resend runs again.
//
// # Exactly-once effects
//
// River runs a job at least once. A callback whose writes go to River's
// database closes that gap with [CompleteTx] (an interactive transaction)
// or [CompleteBatch] (writes that need no reads, in one round trip): the
// callback's writes and a marker row keyed by the job's id commit
// together, so of all the attempts of one job at most one commits, and a
// later attempt that finds the marker is acknowledged as a duplicate
// ([nectarhooks.ErrAlreadyProcessed]). River completes the job as usual,
// and the workers' Handler needs no idempotency store. The markers' table
// is made by [Migrate] ([EffectsTableSQL]) and emptied by River's cleaner,
// with the jobs.
//
// # When the database is slow or gone
//
// A delivery that arrives while every insert is busy (WithConcurrentInserts)
// waits for one to take it, in a batch with the others waiting, for at most
// the insert timeout (WithInsertTimeout, 5 seconds by default); at most
// WithMaxPending deliveries wait (512 by default), and one past them is
// answered 503 at once. Each insert, waiting for a pooled connection
// included, is bounded by the insert timeout too, so every Enqueue returns
// within twice the insert timeout (10 seconds by default, inside the 15
// Svix waits), whether the database refuses connections, answers slowly or
// not at all. Svix delivers again whatever was answered 503. When
// PostgreSQL refuses a batch for its contents (a *pgconn.PgError), each of
// its deliveries is inserted alone in the time left, so that a message the
// database cannot store fails alone.
//
// # Schema
//
// River's tables must exist before the first insert: run River's CLI
// (`river migrate-up --database-url "$DATABASE_URL"`) when deploying, or
// [Migrate] at start, which takes a PostgreSQL advisory lock first so that
// replicas starting together on a fresh database do not race (see
// examples/durable and examples/production in this repository).
//
// # Tracing
//
// A job can carry the trace context of the delivery that inserted it
// (Args.Trace), so that the callback's span, on whichever worker runs it,
// links to the delivery's: [WithTraceInjector] on the Queue writes it, and
// [WithTraceExtractor] on the Worker reads it. Both take plain functions;
// with the otelhooks module they are its Observer's Inject and Extract over
// a propagation.MapCarrier.
package riverqueue
