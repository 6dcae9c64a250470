package nectarhooks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// Errors the Handler answers with, beside the verification errors (401) and
// ErrInvalidPayload (400). StatusCode maps each to its HTTP status.
var (
	// ErrMethodNotAllowed: the request was not a POST (405).
	ErrMethodNotAllowed = errors.New("nectarhooks: method not allowed, want POST")
	// ErrBodyTooLarge: the body is longer than WithMaxBodyBytes allows (413).
	ErrBodyTooLarge = errors.New("nectarhooks: request body too large")
	// ErrReadBody: the body could not be read, as when the client went away (400).
	ErrReadBody = errors.New("nectarhooks: reading the request body")
	// ErrCallbackTimeout: a callback returned an error after its deadline
	// (WithCallbackTimeout) had passed, or had not returned shortly after
	// it (503).
	ErrCallbackTimeout = errors.New("nectarhooks: callback deadline exceeded")
	// ErrOverrunning: as many callbacks as WithMaxOverrunning allows are
	// running past their deadline, and no more are started until some
	// return (503).
	ErrOverrunning = errors.New("nectarhooks: too many callbacks running past their deadline")
)

// CallbackError is the error of a callback that returned an error,
// panicked, called runtime.Goexit or overran its deadline. Err is the
// callback's error, a *PanicError, an error saying it called
// runtime.Goexit, or, for an overrun, an error matching ErrCallbackTimeout
// and the callback's own error (or context.DeadlineExceeded when the
// callback had not returned; see WithCallbackTimeout).
type CallbackError struct {
	EventType EventType // the event type the callback was chosen by
	MessageID string    // the message's svix-id
	Err       error     // the cause (see the type's doc)
}

// Error says which message and event type failed, and why.
func (e *CallbackError) Error() string {
	return fmt.Sprintf("nectarhooks: callback for %s (message %s): %v", e.EventType, e.MessageID, e.Err)
}

// Unwrap returns the cause.
func (e *CallbackError) Unwrap() error { return e.Err }

// PanicError is a panic recovered from a callback, with the stack of the
// goroutine that panicked.
type PanicError struct {
	Value any    // the value passed to panic
	Stack []byte // from runtime/debug.Stack
}

// Error describes the panic value; the stack is left to loggers.
func (e *PanicError) Error() string { return fmt.Sprintf("panic: %v", e.Value) }

// Unwrap returns the panic value when it is an error, so that errors.Is
// and errors.As see through the panic to it.
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}

// StatusCode returns the HTTP status a Handler answers for err, as returned
// by Handler.Dispatch or passed to the error handler: 200 for nil and for
// ErrStale (an ordering guard's acknowledgement, see EventVersion) and
// ErrAlreadyProcessed (effects committed by an earlier run), 202 for
// ErrAlreadyQueued (a Queue's redelivery, acknowledged), 405, 413,
// 401 for verification errors, 400 for invalid payloads and message ids,
// 409 for a message still being processed by an earlier delivery, 503 for a
// full queue, a callback timeout, too many callbacks overrunning theirs,
// an unavailable idempotency store or a failed key lookup, and 500 for other callback failures. It lets code that does not use net/http, such as an
// AWS Lambda function, answer as the Handler would.
func StatusCode(err error) int {
	switch {
	case err == nil, errors.Is(err, ErrStale), errors.Is(err, ErrAlreadyProcessed):
		return http.StatusOK
	case errors.Is(err, ErrAlreadyQueued):
		return http.StatusAccepted
	case errors.Is(err, ErrMethodNotAllowed):
		return http.StatusMethodNotAllowed
	case errors.Is(err, ErrBodyTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, ErrVerification):
		return http.StatusUnauthorized
	case errors.Is(err, ErrInvalidPayload), errors.Is(err, ErrReadBody), errors.Is(err, ErrInvalidMessageID):
		return http.StatusBadRequest
	case errors.Is(err, ErrInFlight):
		return http.StatusConflict
	case errors.Is(err, ErrQueueFull), errors.Is(err, ErrCallbackTimeout),
		errors.Is(err, ErrStoreUnavailable), errors.Is(err, ErrShuttingDown), errors.Is(err, ErrOverrunning),
		errors.Is(err, ErrKeyLookup):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// Message is a verified delivery: what Svix sent, before or beside its
// decoding. MessageFromContext finds it in every callback's context and in
// the request context Verifier.Middleware passes on.
type Message struct {
	// ID is the svix-id header: the same for every delivery attempt of one
	// message, so the key for making callbacks idempotent.
	ID string
	// Timestamp is when Svix signed this attempt, from svix-timestamp, in
	// UTC.
	Timestamp time.Time
	// EventType is the payload's event type, as Parse resolves it; empty
	// when it could not be told.
	EventType EventType
	// Account is the account the delivery was verified for, by a Handler
	// of NewAccountHandler; empty otherwise.
	Account string
	// Payload is the request body exactly as received and verified. Treat
	// it as read-only.
	Payload []byte
}

type messageKey struct{}

// MessageFromContext returns the verified Message that ctx carries, and
// whether it carries one.
func MessageFromContext(ctx context.Context) (Message, bool) {
	m, ok := ctx.Value(messageKey{}).(*Message)
	if !ok {
		return Message{}, false
	}
	return *m, true
}

// ContextWithMessage returns a copy of ctx that carries m, for code that
// calls callbacks itself, such as tests.
func ContextWithMessage(ctx context.Context, m Message) context.Context {
	return &msgContext{Context: ctx, msg: m}
}

// msgContext is context.WithValue(parent, messageKey{}, &msg) in one
// allocation instead of two (the Message and the context), on every
// delivery. Like the context package's own value context it embeds its
// parent, so cancellation, deadlines and other values are the parent's and
// contexts derived from it find the parent's cancellation directly.
type msgContext struct {
	context.Context
	msg Message
}

func (c *msgContext) Value(key any) any {
	if key == (messageKey{}) {
		return &c.msg
	}
	return c.Context.Value(key)
}

func (c *msgContext) String() string {
	return fmt.Sprintf("%v.WithMessage(%s)", c.Context, c.msg.ID)
}

// Handler is an http.Handler that verifies each delivery, decodes it and
// calls the callback registered for its event type. Register callbacks
// with the On methods, before or while serving: registration is safe for
// concurrent use, and a later registration replaces an earlier one.
//
// ServeHTTP answers, in this order:
//
//	not a POST                          405, with Allow: POST
//	body over WithMaxBodyBytes          413 (checked before reading, and while reading); the connection is closed
//	body shorter than Content-Length    400 (a middleware may have read it first)
//	verification fails                  401; nothing is decoded or called
//	svix-id not a valid message id      400 (ErrInvalidMessageID)
//	body is not a valid payload         400 (see Parse); with abort-message once recorded (WithDeadLetters)
//	too many callbacks overrunning      503, at once (see WithMaxOverrunning)
//	idempotency store fails or is slow  503, with WithIdempotency (see WithStoreTimeout)
//	same message still being processed  409, with WithIdempotency
//	message processed already           200, with WithIdempotency; the callback is not run again
//	no callback for the event type      200: acknowledged, since a retry cannot help (not queued, with WithAsync)
//	callback returns an error           500, so that Svix retries
//	callback returns Permanent(err)     500 with webhook-delivery: abort-message once recorded (WithDeadLetters)
//	callback returns ErrStale           200: an ordering guard refused an older event; recorded processed (see EventVersion)
//	effects committed by an earlier run 200: the callback returned ErrAlreadyProcessed; recorded processed, a duplicate
//	callback panics or calls Goexit     500; a panic is recovered, its stack kept in a *PanicError
//	callback overruns its deadline      503; its context is cancelled at the deadline (see WithCallbackTimeout)
//	queue full, with WithAsync          503
//	queue fails, with WithQueue         503
//	queue has the message, WithQueue    202: the Queue returned ErrAlreadyQueued; counted as a duplicate
//	otherwise                           200 (202 with WithAsync or WithQueue)
//
// Svix stops retrying a message answered with "webhook-delivery:
// abort-message"; the Handler sends it only on the two rows that say so,
// after the dead-letter store recorded the message, and never for a 401,
// 409 or 5xx of its own. A store that fails leaves the answer without it
// (ErrDeadLetterStore), so that Svix retries. It never sends "disable".
//
// The body of an answer is a short plain-text reason, never secret
// material. Every answer other than 2xx reaches the error handler
// (WithErrorHandler), or else the log (where refusals of requests that were
// not verified are bounded; see WithLogger), with an error that StatusCode
// maps to its status.
type Handler struct {
	verifier *Verifier    // nil for NewAccountHandler
	accounts *accountKeys // NewAccountHandler's, or nil
	opts     *options
	async    *asyncQueue // nil unless WithAsync

	onConnectionCreated   atomic.Pointer[func(context.Context, *ConnectionCreated) error]
	onConnectionUpdated   atomic.Pointer[func(context.Context, *ConnectionUpdated) error]
	onConnectionValidated atomic.Pointer[func(context.Context, *ConnectionValidated) error]
	onDocumentCreated     atomic.Pointer[func(context.Context, *DocumentCreated) error]
	onDocumentUpdated     atomic.Pointer[func(context.Context, *DocumentUpdated) error]
	onUnhandled           atomic.Pointer[func(context.Context, Message) error]

	overrunning atomic.Int64 // callbacks left running past their deadline
}

// NewHandler returns a Handler for an endpoint's signing secret, which
// follows the rules of NewVerifier. Every Option applies; the defaults are
// those each Option documents.
func NewHandler(secret string, opts ...Option) (*Handler, error) {
	v, err := NewVerifier(secret, opts...)
	if err != nil {
		return nil, err
	}
	return newHandler(v, v.opts)
}

func newHandler(v *Verifier, o *options) (*Handler, error) {
	h := &Handler{verifier: v, opts: o}
	if o.async != nil && o.queue != nil {
		return nil, fmt.Errorf("%w: WithAsync and WithQueue cannot be combined", errInvalidOption)
	}
	if o.async != nil {
		h.async = newAsyncQueue(h, *o.async)
	}
	return h, nil
}

// Verifier returns the Verifier the Handler checks signatures with; nil
// for a Handler of NewAccountHandler, which has one per account.
func (h *Handler) Verifier() *Verifier { return h.verifier }

// OnConnectionCreated sets the callback for connection.created.v2 events,
// replacing any earlier one; nil removes it.
func (h *Handler) OnConnectionCreated(fn func(context.Context, *ConnectionCreated) error) {
	register(&h.onConnectionCreated, fn)
}

// OnConnectionUpdated sets the callback for connection.updated.v2 events,
// replacing any earlier one; nil removes it.
func (h *Handler) OnConnectionUpdated(fn func(context.Context, *ConnectionUpdated) error) {
	register(&h.onConnectionUpdated, fn)
}

// OnConnectionValidated sets the callback for connection.validated.v2
// events, replacing any earlier one; nil removes it.
func (h *Handler) OnConnectionValidated(fn func(context.Context, *ConnectionValidated) error) {
	register(&h.onConnectionValidated, fn)
}

// OnDocumentCreated sets the callback for document.created.v2 events,
// replacing any earlier one; nil removes it.
func (h *Handler) OnDocumentCreated(fn func(context.Context, *DocumentCreated) error) {
	register(&h.onDocumentCreated, fn)
}

// OnDocumentUpdated sets the callback for document.updated.v2 events,
// replacing any earlier one; nil removes it.
func (h *Handler) OnDocumentUpdated(fn func(context.Context, *DocumentUpdated) error) {
	register(&h.onDocumentUpdated, fn)
}

// OnUnhandled sets the callback for every verified message no typed
// callback takes: event types without a callback, and event types this
// version does not know. Without it such messages are acknowledged with 200
// and logged. nil removes it.
func (h *Handler) OnUnhandled(fn func(context.Context, Message) error) {
	register(&h.onUnhandled, fn)
}

// register stores fn, or clears the slot for nil.
func register[A any](p *atomic.Pointer[func(context.Context, A) error], fn func(context.Context, A) error) {
	if fn == nil {
		p.Store(nil)
		return
	}
	p.Store(&fn)
}

// ServeHTTP handles one delivery as the Handler's doc comment describes.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ob := h.observe(r.Context(), Delivery{Stage: StageReceive})
	body, err := readBody(w, r, h.opts.maxBodyBytes)
	ob.lap(&ob.d.Read)
	if err != nil {
		h.opts.fail(w, ob.request(r), err)
		ob.end(StatusCode(err), err)
		return
	}
	account := ""
	if h.accounts != nil {
		account = h.accounts.account(r)
	}
	ctx, ev, err := h.open(ob.ctx, account, body, r.Header, &ob)
	if err == nil {
		queued := h.queued()
		if queued {
			err = h.enqueue(ctx, &ctx.msg, ev)
		} else {
			err = h.process(ctx, &ctx.msg, ev)
		}
		if status := deliveryStatus(queued, err, &ctx.msg); status < 300 {
			answer(w, status, successText(status, err, &ctx.msg))
			ob.end(status, err)
			return
		}
	}
	if ctx != nil {
		// Verified: the error handler gets the Message.
		r = r.WithContext(ctx)
		err = h.giveUp(ctx, &ctx.msg, err, false)
		markAborted(w, err)
	} else {
		r = ob.request(r)
	}
	h.opts.fail(w, r, err)
	ob.end(StatusCode(err), err)
}

// deliveryStatus is the status ServeHTTP answers for a verified, decoded
// delivery that enqueue (queued) or process returned err for: 202 or 200,
// 202 for a message the Queue had already, 200 for one of process's
// acknowledgements, and otherwise StatusCode(err).
// Dispatch and the Observer take the status from it too, so that what they
// report cannot drift from what was answered.
func deliveryStatus(queued bool, err error, msg *Message) int {
	switch {
	case err == nil && queued, err == ErrAlreadyQueued:
		return http.StatusAccepted
	case err == nil:
		return http.StatusOK
	}
	if _, ack := acknowledged(err, msg); ack {
		return http.StatusOK
	}
	return StatusCode(err)
}

// successText is the line of a 2xx answer (see deliveryStatus): constant
// text for a delivery processed or queued, the acknowledgement's otherwise.
func successText(status int, err error, msg *Message) string {
	if err != nil {
		text, _ := acknowledged(err, msg)
		return text
	}
	if status == http.StatusAccepted {
		return "accepted\n"
	}
	return "ok\n"
}

// queued reports whether the Handler answers before running callbacks.
func (h *Handler) queued() bool { return h.async != nil || h.opts.queue != nil }

// enqueue hands a verified message to the in-memory queue or to the
// Queue of WithQueue.
func (h *Handler) enqueue(ctx context.Context, msg *Message, ev Event) error {
	if h.async != nil {
		if !h.hasCallback(ev) {
			// Acknowledged at once, as without WithAsync: queued, it would
			// take a slot only to find no callback.
			h.logUnhandled(ctx, msg)
			return errUnhandled
		}
		return h.async.enqueue(ctx, msg, ev)
	}
	if err := h.opts.queue.Enqueue(ctx, *msg); err != nil {
		switch {
		case errors.Is(err, ErrAlreadyQueued):
			h.opts.log().LogAttrs(ctx, slog.LevelDebug, "nectarhooks: message queued already; acknowledged",
				slog.String("message_id", msg.ID), slog.String("event_type", string(msg.EventType)), slog.Any("queue", err))
			// The sentinel itself, which acknowledged recognizes.
			return ErrAlreadyQueued
		case errors.Is(err, ErrQueueFull):
			return err
		}
		return fmt.Errorf("%w: %w", ErrQueueFull, err)
	}
	return nil
}

// errUnhandled and errDuplicate are process's reports of a message it
// acknowledged without running a callback: none was registered for it, or
// the idempotency store had it as processed already.
var (
	errUnhandled = errors.New("nectarhooks: no callback")
	errDuplicate = errors.New("nectarhooks: already processed")
)

// acknowledged reports whether err is one of process's acknowledgements,
// or enqueue's ErrAlreadyQueued, and the line to answer with.
func acknowledged(err error, msg *Message) (string, bool) {
	switch err {
	case ErrAlreadyQueued:
		return "accepted: already queued\n", true
	case errUnhandled:
		if msg.EventType == "" {
			return "acknowledged: unknown event type\n", true
		}
		return "acknowledged: no callback for " + string(msg.EventType) + "\n", true
	case errDuplicate:
		return "acknowledged: message already processed\n", true
	case errStale:
		return "acknowledged: stale event\n", true
	}
	return "", false
}

// Dispatch handles a delivery that did not arrive through net/http, such as
// one taken from a queue or passed to an AWS Lambda function: it verifies
// payload against header, decodes it and calls the callback, exactly as
// ServeHTTP would. It returns nil when ServeHTTP would answer 2xx, and
// otherwise the error ServeHTTP would answer for (StatusCode gives the
// status). Dispatch neither logs its errors nor calls the error handler:
// the caller has the error, and a *PanicError in it has the stack. With
// WithAsync it queues the message as ServeHTTP does.
func (h *Handler) Dispatch(ctx context.Context, payload []byte, header http.Header) error {
	if h.accounts != nil {
		return fmt.Errorf("%w: an account Handler takes the account from the request, and Dispatch has none: use DispatchAccount", ErrUnknownAccount)
	}
	return h.dispatch(ctx, "", payload, header)
}

// DispatchAccount is Dispatch for a Handler of NewAccountHandler: account
// is the account whose keys verify the delivery, as the Handler's account
// function would have taken it from the request (a path segment, say, of
// an AWS Lambda function's event). The message is then that account's
// (Message.Account), remembered by the idempotency store under it. On a
// Handler of NewHandler, account must be "", and DispatchAccount is
// Dispatch; any other account is refused with ErrUnknownAccount.
func (h *Handler) DispatchAccount(ctx context.Context, account string, payload []byte, header http.Header) error {
	if h.accounts == nil && account != "" {
		return fmt.Errorf("%w: account %q given to a Handler of NewHandler, which has no accounts", ErrUnknownAccount, account)
	}
	return h.dispatch(ctx, account, payload, header)
}

// dispatch is Dispatch and DispatchAccount.
func (h *Handler) dispatch(ctx context.Context, account string, payload []byte, header http.Header) error {
	ob := h.observe(ctx, Delivery{Stage: StageReceive})
	mctx, ev, err := h.open(ob.ctx, account, payload, header, &ob)
	if err != nil {
		if mctx != nil {
			err = h.giveUp(mctx, &mctx.msg, err, false)
		}
		ob.end(StatusCode(err), err)
		return err
	}
	queued := h.queued()
	if queued {
		err = h.enqueue(mctx, &mctx.msg, ev)
	} else {
		err = h.process(mctx, &mctx.msg, ev)
	}
	err = h.giveUp(mctx, &mctx.msg, err, false) // as ServeHTTP does for a failure
	ob.end(deliveryStatus(queued, err, &mctx.msg), err)
	return unlessAcknowledged(err, &mctx.msg)
}

// unlessAcknowledged is err, or nil for one of process's acknowledgements,
// which ServeHTTP answers with 200.
func unlessAcknowledged(err error, msg *Message) error {
	if _, ack := acknowledged(err, msg); ack {
		return nil
	}
	return err
}

// DispatchVerified decodes msg.Payload and calls the callback, without
// verifying a signature (it does refuse an invalid msg.ID, with
// ErrInvalidMessageID): for messages verified earlier, such as those
// Verifier.Middleware passed on and a service stored to process later, or
// replays from such storage, whose timestamps are long past the tolerance.
// Never pass it a payload that was not verified. It ignores WithAsync and
// returns what Dispatch would.
func (h *Handler) DispatchVerified(ctx context.Context, msg Message) error {
	if err := CheckMessageID(msg.ID); err != nil {
		return err
	}
	ev, err := Parse(msg.Payload)
	if err != nil {
		return err
	}
	msg.EventType = ev.Type()
	mctx := &msgContext{Context: ctx, msg: msg}
	return unlessAcknowledged(h.process(mctx, &mctx.msg, ev), &mctx.msg)
}

// open checks the signature, then decodes the payload. Once the signature
// is verified it returns a context over parent carrying the Message, also
// when the payload then fails to decode, so that the error handler can
// tell which message it was.
func (h *Handler) open(parent context.Context, account string, payload []byte, header http.Header, ob *observation) (*msgContext, Event, error) {
	v := h.verifier
	if h.accounts != nil {
		var err error
		if v, err = h.accounts.verifier(parent, account); err != nil {
			ob.lap(&ob.d.Verify)
			return nil, nil, err
		}
	}
	id, ts, err := v.verifyDelivery(payload, header)
	ob.lap(&ob.d.Verify)
	if err != nil {
		return nil, nil, err
	}
	ctx := &msgContext{Context: parent, msg: Message{ID: id, Timestamp: time.Unix(ts, 0).UTC(), Payload: payload, Account: account}}
	ob.verified(&ctx.msg)
	ev, err := Parse(payload)
	ob.lap(&ob.d.Decode)
	if err != nil {
		// What can still be told, as the Message documents.
		ctx.msg.EventType = PeekEventType(payload)
		return ctx, nil, err
	}
	ctx.msg.EventType = ev.Type()
	return ctx, ev, nil
}

// process runs the callback for one verified message under the idempotency
// store, if any. It returns errUnhandled or errDuplicate when it
// acknowledged the message without a callback.
func (h *Handler) process(ctx context.Context, msg *Message, ev Event) error {
	if err := h.overrunLimit(); err != nil {
		return err
	}
	token, err := h.claim(ctx, msg)
	if err != nil {
		return err
	}
	// runCallback settles the claim when the callback returns, which may
	// be after this delivery is answered (see callbackrun.go).
	return h.observedCall(ctx, msg, ev, token, false, time.Time{})
}

// claim asks the idempotency store, if any, whether msg may be processed
// now: the claim's token if so, errDuplicate if it was processed already,
// ErrInFlight if an earlier delivery of it is being processed, and an
// error matching ErrStoreUnavailable if the store failed or did not answer
// within WithStoreTimeout.
func (h *Handler) claim(ctx context.Context, msg *Message) (string, error) {
	if h.opts.idempotency == nil {
		return "", nil
	}
	claim, token, err := h.storeClaim(ctx, msg)
	switch {
	case err != nil:
		return "", err
	case claim == ClaimDone:
		h.opts.log().LogAttrs(ctx, slog.LevelDebug, "nectarhooks: message already processed; acknowledged",
			slog.String("message_id", msg.ID), slog.String("event_type", string(msg.EventType)))
		return "", errDuplicate
	case claim == ClaimInFlight:
		return "", ErrInFlight
	}
	return token, nil
}

// lease is how long a claim holds: the callback deadline and LeaseGrace.
func (h *Handler) lease() time.Duration { return h.opts.callbackTimeout + LeaseGrace }

// settle records the outcome of a claimed message in the idempotency store:
// processed when err is nil or an acknowledgement, released for a retry
// otherwise. It waits for the store no longer than WithStoreTimeout, and
// logs a failure (see callStore).
func (h *Handler) settle(ctx context.Context, msg *Message, token string, err error) {
	if h.opts.idempotency == nil {
		return
	}
	op := opComplete
	if _, ack := acknowledged(err, msg); err != nil && !ack {
		op = opRelease
	}
	h.callStore(ctx, op, msg, token)
}

// call runs the callback for ev with ctx, which carries the callback
// deadline, turning a returned error, a panic or an overrun into a
// *CallbackError.
func (h *Handler) call(ctx context.Context, msg *Message, ev Event) (err error) {
	defer func() {
		// Every panic is recovered, http.ErrAbortHandler too: a callback is
		// not a net/http handler, its panic must not skip settling the
		// idempotency claim, and on an async worker nothing above would
		// recover it.
		if v := recover(); v != nil {
			perr := &PanicError{Value: v, Stack: debug.Stack()}
			err = &CallbackError{EventType: msg.EventType, MessageID: msg.ID, Err: perr}
		}
	}()
	handled, err := h.callTyped(ctx, msg, ev)
	if !handled {
		if handled, err = callback(ctx, &h.onUnhandled, *msg); !handled {
			h.logUnhandled(ctx, msg)
			return errUnhandled
		}
	}
	if err == nil {
		return nil
	}
	if errors.Is(err, ErrStale) {
		h.logStale(ctx, msg, err) // order.go
		return errStale
	}
	if errors.Is(err, ErrAlreadyProcessed) {
		h.opts.log().LogAttrs(ctx, slog.LevelDebug, "nectarhooks: message's effects committed by an earlier run; acknowledged",
			slog.String("message_id", msg.ID), slog.String("event_type", string(msg.EventType)), slog.String("reason", err.Error()))
		return errDuplicate
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		err = fmt.Errorf("%w after %s: %w", ErrCallbackTimeout, h.opts.callbackTimeout, err)
	}
	return &CallbackError{EventType: msg.EventType, MessageID: msg.ID, Err: err}
}

// callTyped runs the typed callback registered for ev, if there is one.
func (h *Handler) callTyped(ctx context.Context, msg *Message, ev Event) (bool, error) {
	switch e := ev.(type) {
	case *ConnectionCreated:
		return callback(ctx, &h.onConnectionCreated, e)
	case *ConnectionUpdated:
		return callback(ctx, &h.onConnectionUpdated, e)
	case *ConnectionValidated:
		return callback(ctx, &h.onConnectionValidated, e)
	case *DocumentCreated:
		return callback(ctx, &h.onDocumentCreated, e)
	case *DocumentUpdated:
		return callback(ctx, &h.onDocumentUpdated, e)
	}
	return false, nil
}

// hasCallback reports whether a callback is registered that would take
// ev: its typed one, or OnUnhandled's.
func (h *Handler) hasCallback(ev Event) bool {
	if h.onUnhandled.Load() != nil {
		return true
	}
	switch ev.(type) {
	case *ConnectionCreated:
		return h.onConnectionCreated.Load() != nil
	case *ConnectionUpdated:
		return h.onConnectionUpdated.Load() != nil
	case *ConnectionValidated:
		return h.onConnectionValidated.Load() != nil
	case *DocumentCreated:
		return h.onDocumentCreated.Load() != nil
	case *DocumentUpdated:
		return h.onDocumentUpdated.Load() != nil
	}
	return false
}

func callback[A any](ctx context.Context, p *atomic.Pointer[func(context.Context, A) error], e A) (bool, error) {
	fn := p.Load()
	if fn == nil {
		return false, nil
	}
	return true, (*fn)(ctx, e)
}

func (h *Handler) logUnhandled(ctx context.Context, msg *Message) {
	level, what := slog.LevelDebug, "nectarhooks: no callback for event type; acknowledged"
	if !msg.EventType.Known() {
		level, what = slog.LevelInfo, "nectarhooks: event type this version does not know; acknowledged"
	}
	h.opts.log().LogAttrs(ctx, level, what,
		slog.String("message_id", msg.ID), slog.String("event_type", string(msg.EventType)))
}

// Middleware returns a handler that verifies each request and passes only
// authentic ones to next, for services that route and decode deliveries
// themselves. next reads the same body bytes from r.Body and finds the
// Message in r.Context() (MessageFromContext). A request that fails answers
// as a Handler would (405, 413, 400 or 401), reaches the error handler, and
// never reaches next.
func (v *Verifier) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := readBody(w, r, v.opts.maxBodyBytes)
		if err == nil {
			var id string
			var ts int64
			if id, ts, err = v.verifyDelivery(body, r.Header); err == nil {
				r = r.WithContext(&msgContext{Context: r.Context(), msg: Message{
					ID: id, Timestamp: time.Unix(ts, 0).UTC(), EventType: PeekEventType(body), Payload: body,
				}})
				r.Body = io.NopCloser(bytes.NewReader(body))
				next.ServeHTTP(w, r)
				return
			}
		}
		v.opts.fail(w, r, err)
	})
}

// readBody reads a POST request's body, refusing other methods and bodies
// over max bytes.
func readBody(w http.ResponseWriter, r *http.Request, max int64) ([]byte, error) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return nil, ErrMethodNotAllowed
	}
	if r.ContentLength > max {
		return nil, ErrBodyTooLarge
	}
	switch {
	case r.ContentLength > 0:
		return readAnnounced(r.Body, r.ContentLength)
	case r.Body == nil || r.Body == http.NoBody:
		return []byte{}, nil
	}
	// A chunked body, or a request built by hand whose ContentLength of 0
	// means unknown, as it does for http.NewRequest with an io.Reader of
	// its own.
	return readUnannounced(r.Body, max)
}

// bodyStart is the most memory a body's first read reserves: Nectar's
// payloads are a few KiB, and a sender gets more only by sending more. A
// Content-Length is a claim, not bytes: reserving all it announces at once
// would let stalled connections that each claim a megabyte and send a byte
// hold a megabyte of memory each.
const bodyStart = 8 << 10

// readAnnounced reads a body of Content-Length n (at most the limit, which
// readBody checked). Bodies of up to bodyStart bytes, every payload Nectar
// sends, take one allocation of their exact size, as before; larger ones
// start at bodyStart and double as their bytes arrive, up to n, so that
// what is held is never more than twice what was received. net/http stops
// the body at Content-Length, so it cannot run over.
func readAnnounced(body io.Reader, n int64) ([]byte, error) {
	buf := make([]byte, min(n, bodyStart))
	got := 0
	for {
		m, err := io.ReadFull(body, buf[got:])
		got += m
		if err != nil {
			return nil, shortBody(err, got, n)
		}
		if int64(got) == n {
			return buf, nil
		}
		grown := make([]byte, min(n, 2*int64(len(buf))))
		copy(grown, buf)
		buf = grown
	}
}

// shortBody is the error of a body that could not be read to its
// announced length n after got bytes. A body that simply ends early was
// most often read already, by a middleware that logs or binds bodies
// before the Handler: the error says so, since "EOF" alone leaves the
// reader guessing.
func shortBody(err error, got int, n int64) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return fmt.Errorf("%w: the body ended after %d of the %d bytes its Content-Length announced; did a middleware read the body first? (%w)",
			ErrReadBody, got, n, err)
	}
	return fmt.Errorf("%w: %w", ErrReadBody, err)
}

// scratchPool holds the buffers bodies of unknown length are first read
// into, so that such a body costs one allocation of its exact size.
var scratchPool = sync.Pool{New: func() any { return new([bodyStart]byte) }}

// readUnannounced reads a body of unknown length, up to max bytes: into a
// pooled buffer, copied out at its exact size once it ends; a body that
// outgrows the buffer continues in one that doubles as bytes arrive, up to
// one byte over max, which is how it is found too large without reading
// further.
func readUnannounced(body io.Reader, max int64) ([]byte, error) {
	scratch := scratchPool.Get().(*[bodyStart]byte)
	defer scratchPool.Put(scratch)
	limit := max + 1
	buf, pooled := scratch[:0], true
	for {
		room := int64(cap(buf))
		if room > limit {
			room = limit
		}
		if int64(len(buf)) == room {
			if room == limit {
				return nil, ErrBodyTooLarge
			}
			grown := make([]byte, len(buf), min(limit, 2*int64(cap(buf))))
			copy(grown, buf)
			buf, pooled = grown, false
			continue
		}
		m, err := body.Read(buf[len(buf):room])
		buf = buf[:len(buf)+m]
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrReadBody, err)
		}
	}
	if int64(len(buf)) > max {
		return nil, ErrBodyTooLarge
	}
	if pooled {
		// The scratch buffer goes back to the pool: copy the body out.
		return append(make([]byte, 0, len(buf)), buf...), nil
	}
	return buf, nil
}

// fail answers a refused delivery and reports it.
func (o *options) fail(w http.ResponseWriter, r *http.Request, err error) {
	status := StatusCode(err)
	if status == http.StatusRequestEntityTooLarge && !r.ProtoAtLeast(2, 0) {
		// HTTP/2 ends the one stream, not the connection its others share.
		refuseRestOfBody(w)
	}
	answer(w, status, reason(status, err)+"\n")
	o.report(r.Context(), status, err)
}

// report hands a failed delivery to the error handler or, without one, to
// the log: a refusal (4xx) at warning level, a failure of the service's own
// (5xx, or status 0 for a callback that failed after the answer) at error
// level, with the Message's id and event type when ctx has them and the
// stack of a panic. Refusals of requests that were not verified are
// warned of at most once per RefusalLogInterval, and logged at debug level
// in between (see WithLogger).
func (o *options) report(ctx context.Context, status int, err error) {
	if o.onError != nil {
		o.onError(ctx, status, err)
		return
	}
	m, verified := ctx.Value(messageKey{}).(*Message)
	level, what, suppressed := slog.LevelWarn, "nectarhooks: delivery refused", int64(0)
	switch {
	case status == 0:
		level, what = slog.LevelError, "nectarhooks: callback failed after the delivery was acknowledged"
	case status >= 500:
		level, what = slog.LevelError, "nectarhooks: delivery failed"
	case !verified:
		var warn bool
		if warn, suppressed = o.refusals.admit(); !warn {
			level = slog.LevelDebug
		}
	}
	logger := o.log()
	if !logger.Enabled(ctx, level) {
		return
	}
	attrs := []slog.Attr{slog.Int("status", status), slog.Any("error", err)}
	if suppressed > 0 {
		// Refusals since the previous warning, logged at debug level only.
		attrs = append(attrs, slog.Int64("suppressed", suppressed))
	}
	if verified {
		attrs = append(attrs, slog.String("message_id", m.ID), slog.String("event_type", string(m.EventType)))
	}
	var p *PanicError
	if errors.As(err, &p) {
		attrs = append(attrs, slog.String("stack", string(p.Stack)))
	}
	logger.LogAttrs(ctx, level, what, attrs...)
}

// refuseRestOfBody makes the answer to a body over the limit the last on
// its HTTP/1 connection, and keeps net/http from reading the rest of the
// body. By
// default net/http reads up to 256 KiB of an unread body before it sends
// the answer, to keep the connection for another request: a sender that
// trickles an endless chunked body would get no answer at all.
func refuseRestOfBody(w http.ResponseWriter) {
	w.Header().Set("Connection", "close")
	// A MaxBytesReader that runs over its limit is net/http's own signal
	// for this: it marks the connection to be closed after the answer,
	// gracefully (the answer is sent and the connection half-closed before
	// it is closed, so that the sender is not reset before reading it).
	// Running one over a limit of 0 gives that signal without reading a
	// byte of the request.
	var b [1]byte
	http.MaxBytesReader(w, io.NopCloser(bytes.NewReader(b[:])), 0).Read(b[:])
	// net/http still reads up to 256 KiB of the body while closing it,
	// after the answer: a read deadline already past stops that at once.
	// ResponseWriters that cannot (recorders, some wrappers) say so, and
	// nothing is lost.
	_ = http.NewResponseController(w).SetReadDeadline(time.Now())
}

// reason is the text of a refusal: the error's own words where they help
// the sender and reveal nothing of the service (verification, payload,
// method and size errors), and fixed phrases for the rest, whose errors
// may carry a callback's, a store's or a queue's own words.
func reason(status int, err error) string {
	switch {
	case errors.Is(err, ErrDeadLetterStore) && status < 500:
		// The store's own words stay in the service.
		return "invalid payload; not recorded as a dead letter, so not aborted"
	case status < 500 && status != http.StatusConflict:
		return err.Error()
	case errors.Is(err, ErrInFlight):
		return "message is being processed by an earlier delivery; retry later"
	case errors.Is(err, ErrCallbackTimeout):
		return "callback deadline exceeded"
	case errors.Is(err, ErrQueueFull):
		return "queue full; retry later"
	case errors.Is(err, ErrShuttingDown):
		return "shutting down; retry later"
	case errors.Is(err, ErrStoreUnavailable):
		return "idempotency store unavailable; retry later"
	case errors.Is(err, ErrOverrunning):
		return "too many callbacks overrunning their deadline; retry later"
	}
	return "callback failed"
}

// plainText holds the header values of every answer.
var plainText = [...]string{"text/plain; charset=utf-8", "nosniff"}

// answer writes a plain-text answer: line, which ends in a newline. The
// callers add it, to constant text where they can, so that the answers of
// successful deliveries cost no allocation for it.
func answer(w http.ResponseWriter, status int, line string) {
	h := w.Header()
	// Shared, read-only values instead of the two allocations Set makes on
	// every answer; capped at their length, so Add copies rather than
	// writing into them.
	h["Content-Type"] = plainText[0:1:1]
	h["X-Content-Type-Options"] = plainText[1:2:2]
	w.WriteHeader(status)
	io.WriteString(w, line)
}
