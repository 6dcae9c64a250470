// Package nectarhooks receives Nectar's webhooks in Go: it verifies Svix
// signatures on the raw body, decodes the five v2 event types into typed
// structs, and routes each delivery to the callback registered for it,
// answering Svix as its retries expect.
//
// A receiver is a [Handler] with a callback per event it cares about:
//
//	h, err := nectarhooks.NewHandler(os.Getenv("NECTAR_WEBHOOK_SECRET"))
//	if err != nil {
//		log.Fatal(err)
//	}
//	h.OnConnectionUpdated(func(ctx context.Context, e *nectarhooks.ConnectionUpdated) error {
//		if e.Old.Status != nil {
//			log.Printf("connection %s: %s -> %s", e.ID, *e.Old.Status, e.Status)
//		}
//		return nil
//	})
//	http.Handle("POST /webhooks/nectar", h)
//
// The Handler answers as Svix expects: 2xx once the callback has returned
// nil (or when no callback is registered for the event type: a retry could
// not help), 401 for a message that fails verification, and 5xx when a
// callback fails, so that Svix delivers it again. Svix retries over about 28
// hours and may deliver one message more than once: [Message.ID], from
// [MessageFromContext], is the key to make callbacks idempotent, and
// [WithIdempotency] does it for you.
//
// Services that route requests themselves can use [Verifier.Middleware],
// which only verifies; [Verifier.Verify] and [Parse] are the two steps on
// their own, and [Handler.Dispatch] with [StatusCode] serves deliveries that
// do not arrive through net/http (AWS Lambda). One route can receive for
// many endpoints, each checked against its own keys: [NewAccountHandler].
// An endpoint that signs with ed25519 gives the receiver a "whpk_" public
// key, which NewHandler takes in place of the "whsec_" secret.
//
// The repository's README is a guide from installation to production, and
// its docs/ folder the manual; this documentation is the reference.
//
// # Callbacks
//
//	event type               callback               payload type
//	connection.created.v2    OnConnectionCreated    *ConnectionCreated
//	connection.updated.v2    OnConnectionUpdated    *ConnectionUpdated (ProtectedChanges, Old)
//	connection.validated.v2  OnConnectionValidated  *ConnectionValidated
//	document.created.v2      OnDocumentCreated      *DocumentCreated
//	document.updated.v2      OnDocumentUpdated      *DocumentUpdated (Old)
//	anything else            OnUnhandled            Message (id, timestamp, event type, raw payload)
//
// Each typed payload keeps the body as received in its Raw field. Nectar's
// timestamps carry no time zone; [Time] reads them as UTC.
//
// # Status policy
//
// What [Handler.ServeHTTP] answers, checked in this order, and what Svix
// does then:
//
//	the delivery                                          answer                                     Svix then
//	is not a POST                                         405, Allow: POST                           retries
//	has a body over WithMaxBodyBytes                      413, and the connection is closed          retries
//	has a body shorter than its Content-Length            400 (ErrReadBody)                          retries
//	fails verification                                    401; nothing is decoded or called          retries
//	has a svix-id not 1-256 bytes of printable ASCII      400 (ErrInvalidMessageID)                  retries
//	is not a valid payload                                400 (ErrInvalidPayload)                    retries
//	  and was recorded as a dead letter (WithDeadLetters)  400, webhook-delivery: abort-message       stops
//	arrives while WithMaxOverrunning callbacks overrun    503 at once, nothing run (ErrOverrunning)  retries
//	finds the store failing or silent (WithStoreTimeout)  503, nothing run (ErrStoreUnavailable)     retries
//	is still being processed by an earlier delivery       409 (ErrInFlight)                          retries
//	was processed already (WithIdempotency)               200, callback not run                      stops
//	has no callback for its event type                    200, not queued with WithAsync             stops
//	makes the callback fail, panic or call Goexit         500 (*CallbackError)                       retries
//	makes the callback return Permanent(err), recorded    500, webhook-delivery: abort-message       stops
//	as a dead letter (WithDeadLetters)
//	makes the callback return ErrStale (ordering guard)   200, recorded processed                    stops
//	finds its effects committed by an earlier run         200, recorded processed                    stops
//	(the callback returns ErrAlreadyProcessed)
//	makes the callback overrun its deadline               503 by 0.5 s past it (ErrCallbackTimeout)  retries
//	finds the queue full (WithAsync, WithQueue)           503 (ErrQueueFull)                         retries
//	finds its message queued already (WithQueue)          202, not queued again (ErrAlreadyQueued)   stops
//	otherwise                                             200, or 202 with WithAsync or WithQueue    stops
//
// Only those two rows carry "webhook-delivery: abort-message", Svix's
// delivery control, and only once [WithDeadLetters] recorded the message:
// never a 401 (a secret rotated on this side is fixed by a retry), a 409 or
// a 5xx of the Handler's own, and "webhook-delivery: disable" never at all.
//
// Svix counts any 2xx as delivered and anything else, or no answer within 15
// seconds, as failed, and retries immediately, then after 5 s, 5 min, 30
// min, 2 h, 5 h, 10 h and 10 h.
//
// # Answered in time
//
// Every delivery is answered within 12.5 seconds with the defaults, whatever
// the idempotency store does: the Claim takes at most [WithStoreTimeout]
// ([DefaultStoreTimeout], 1 s), the callback [WithCallbackTimeout]
// ([DefaultCallbackTimeout], 10 s) plus half a second of grace, and settling
// the claim (Complete or Release) 1 s more; a store that has not answered by
// then is left to finish in the background, and the callback's outcome is
// the answer. Keep WithCallbackTimeout + 2 × WithStoreTimeout + 0.5 s under
// 15 s when changing them.
//
// A callback that ignores its context is not waited for: it is left running
// on its goroutine, its claim held by its lease (the callback deadline plus
// [LeaseGrace]). [WithMaxOverrunning] ([DefaultMaxOverrunning], 64) caps how
// many may be left running at once: at the cap, deliveries are answered 503
// ([ErrOverrunning]) until some return. [Handler.Overrunning] reports the
// count.
//
// # Errors
//
// Every error matches a sentinel with [errors.Is] or a type with
// [errors.As]. A Handler answers each with the status below, which
// [StatusCode] returns too, and passes it to the error handler
// ([WithErrorHandler]) or, when none is set, to the log ([WithLogger]).
//
//	error                              means                                                          status
//	ErrVerification                    matched by each of the six below                               401
//	ErrMissingHeaders                  no complete set of svix-* (or webhook-*) headers               401
//	ErrInvalidHeaders                  timestamp not an integer, or no version,signature entry        401
//	ErrNoMatchingSignature             no v1 signature matches a secret, nor v1a a public key         401
//	ErrMessageTooOld                   timestamp older than the tolerance (5 minutes)                 401
//	ErrMessageTooNew                   timestamp further ahead than the tolerance                     401
//	ErrUnknownAccount                  NewAccountHandler: the account is unknown, or none is named    401
//	ErrInvalidMessageID                svix-id not 1-256 bytes of printable ASCII without spaces      400
//	ErrInvalidPayload, *PayloadError   malformed JSON, not an object, or a field of the wrong type    400
//	ErrReadBody                        body unreadable or shorter than Content-Length                 400
//	ErrMethodNotAllowed                not a POST                                                     405
//	ErrBodyTooLarge                    body over WithMaxBodyBytes (1 MiB); the connection is closed   413
//	ErrInFlight                        an earlier delivery of the message is still running            409
//	ErrCallbackTimeout                 the callback failed past its deadline, or ran 0.5 s past it     503
//	ErrOverrunning                     WithMaxOverrunning callbacks run past their deadline           503
//	ErrQueueFull                       the queue of WithAsync or WithQueue is full                    503
//	ErrShuttingDown                    arrived after Handler.Shutdown began                           503
//	ErrStoreUnavailable                the store's Claim failed or was silent for WithStoreTimeout    503
//	ErrKeyLookup                       NewAccountHandler: the KeyLookup failed or gave a bad key      503
//	*CallbackError                     the callback returned an error, panicked (*PanicError) or
//	                                   called runtime.Goexit                                          500
//	ErrInvalidSecret                   NewHandler or NewVerifier got an unusable secret; never
//	                                   answered, since no Handler is made                             500
//	ErrPermanent                       a callback's Permanent(err): no retry can cure it; with
//	                                   WithDeadLetters the message is recorded and aborted            500
//	ErrDeadLettered                    given up and recorded as a dead letter: answered with
//	                                   abort-message (or failed after a WithAsync answer)             500
//	ErrDeadLetterStore                 the dead letter could not be recorded: not aborted, so
//	                                   Svix retries                                                   500
//	ErrDeadLettersFull                 MemoryDeadLetters holds its size of records: Record refuses,
//	                                   the Handler answers as for ErrDeadLetterStore                  500
//	ErrPrivateKey                      a whsk_ private key given to a receiver (ErrInvalidSecret too) 500
//	ErrAlreadyQueued                   not a failure: the Queue holds the message already; answered
//	                                   as the first delivery was, counted as a duplicate              202
//	ErrStale                           not a failure: an ordering guard found a newer version of the
//	                                   event's entity applied; acknowledged, OutcomeStale             200
//	ErrAlreadyProcessed                not a failure: an earlier run of the message committed its
//	                                   effects; acknowledged, OutcomeDuplicate                        200
//
// Answers other than 2xx carry a one-line plain-text reason: the error itself
// for the sender's mistakes (4xx), a fixed phrase for the service's own
// failures (5xx). Requests refused before they were verified are logged as
// at most one warning per [RefusalLogInterval], since anyone can send them.
//
// # Duplicates, replicas and slow work
//
// [WithIdempotency] runs each message's callback once, with a
// [MemoryStore] in one process or, across replicas, a shared
// [IdempotencyStore]: the pgxstore (PostgreSQL) and goredisstore (Redis)
// modules. [WithAsync] answers 202 once a delivery is queued in memory and
// runs callbacks on background workers; [WithQueue] hands verified messages
// to a durable [Queue] instead, such as the riverqueue module's, whose
// consumer calls [Handler.DispatchVerified]. [WithObserver] sees every
// delivery; the otelhooks module records them as OpenTelemetry spans and
// metrics. [WithDeadLetters] keeps every message the Handler gives up on
// (a callback's [Permanent] error, answered with Svix's "webhook-delivery:
// abort-message"; a failure after a WithAsync answer), and
// [Handler.ReplayDeadLetters] runs them again once fixed.
//
// # Modules
//
// This module, and its test helpers in nectarhookstest, import nothing but
// the standard library. What needs a driver is a module of its own:
//
//	github.com/nectarhooks/nectarhooks/pgxstore          IdempotencyStore on PostgreSQL (pgx v5)
//	github.com/nectarhooks/nectarhooks/goredisstore      IdempotencyStore on Redis (go-redis v9)
//	github.com/nectarhooks/nectarhooks/riverqueue        a durable Queue on River and PostgreSQL
//	github.com/nectarhooks/nectarhooks/otelhooks         an Observer for OpenTelemetry
//	github.com/nectarhooks/nectarhooks/cmd/nectarhooks   the CLI: send, load, sign, verify, samples, dead
package nectarhooks
