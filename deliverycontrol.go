package nectarhooks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"
)

// Svix's delivery control: a receiver's answer may carry
// "webhook-delivery: abort-message", after which Svix makes no further
// attempt of that message, or "webhook-delivery: disable", which disables
// the endpoint. The Handler sends the first only for a message it has
// recorded as a dead letter (WithDeadLetters), so that nothing it tells
// Svix to drop is lost, and only where a retry cannot help: a callback's
// Permanent error, or a verified payload that does not decode. It never
// sends it for a 401 (a secret rotated on this side is fixed by the next
// attempt), a 409 or a 5xx of its own (all passing troubles), nor for the
// requests it refuses before verification (anyone can send those).
//
// It never sends "disable": an endpoint Svix disables stops receiving every
// message, including the ones a fix would have processed, and only a person
// in Nectar's portal can enable it again. A bug in one callback, or a
// store that is down, is not a reason to lose the endpoint; a service that
// wants such a switch for itself can answer with it from its own
// middleware.

// DeliveryHeader is the response header of Svix's delivery control, and
// AbortMessage the value that stops the retries of the message answered.
const (
	DeliveryHeader = "webhook-delivery"
	AbortMessage   = "abort-message"
)

// ErrPermanent is matched (errors.Is) by every error Permanent returns.
var ErrPermanent = errors.New("nectarhooks: permanent failure")

// ErrDeadLettered is matched by the error of a message the Handler gave up
// on and recorded as a dead letter (WithDeadLetters): a delivery answered
// with "webhook-delivery: abort-message" (a callback's Permanent error, 500,
// or a verified payload that does not decode, 400), or a callback that
// failed after a WithAsync Handler answered 202. It wraps the cause, which
// StatusCode reads; alone it maps to 500. Code that answers Dispatch's
// errors itself (AWS Lambda) adds the header when errors.Is(err,
// ErrDeadLettered).
var ErrDeadLettered = errors.New("nectarhooks: given up and recorded as a dead letter")

// ErrDeadLetterStore is matched by the error of a message the Handler
// would have given up on but could not record as a dead letter: the
// delivery is answered as it would be without WithDeadLetters, with its
// own status and without "webhook-delivery: abort-message", so Svix retries
// it; after a WithAsync answer, the error handler gets it with status 0
// and the Message in its context, the last place it is seen. It wraps the
// cause and the store's error; alone it maps to 500.
var ErrDeadLetterStore = errors.New("nectarhooks: recording the dead letter failed")

// Permanent marks err as a failure that no retry of the message can cure,
// such as a payload the service's rules refuse: a callback returns
// Permanent(err) so that, with WithDeadLetters, the message is recorded as
// a dead letter and Svix is told to stop retrying it. errors.Is and
// errors.As see through it to err, and it matches ErrPermanent. Without
// WithDeadLetters it is answered 500, as any other error, and Svix retries.
// Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

type permanentError struct{ err error }

func (e *permanentError) Error() string        { return "permanent: " + e.err.Error() }
func (e *permanentError) Unwrap() error        { return e.err }
func (e *permanentError) Is(target error) bool { return target == ErrPermanent }

// deadLettered is an error that matches ErrDeadLettered and its cause.
type deadLettered struct{ err error }

func (e *deadLettered) Error() string        { return e.err.Error() + " (recorded as a dead letter)" }
func (e *deadLettered) Unwrap() error        { return e.err }
func (e *deadLettered) Is(target error) bool { return target == ErrDeadLettered }

// abortable reports whether err is one that no retry of the verified
// message can cure: a callback's Permanent error, or a payload that does
// not decode.
func abortable(err error) bool {
	return errors.Is(err, ErrPermanent) || errors.Is(err, ErrInvalidPayload)
}

// giveUp records msg as a dead letter when err calls for it, and returns
// the error to answer with: err wrapped to match ErrDeadLettered once
// recorded, or ErrDeadLetterStore when the store failed. After an answer
// (afterAnswer) every failure is recorded, since nobody retries it; before,
// only the abortable ones, which Svix's retries cannot cure. Without a
// dead-letter store, err is returned as it is.
func (h *Handler) giveUp(ctx context.Context, msg *Message, err error, afterAnswer bool) error {
	store := h.opts.deadLetters
	if store == nil || err == nil {
		return err
	}
	if _, ack := acknowledged(err, msg); ack || !(afterAnswer || abortable(err)) {
		return err
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), h.opts.storeTimeout)
	defer cancel()
	if serr := store.Record(sctx, failedNow(*msg, err)); serr != nil {
		return fmt.Errorf("%w; %w: %w", err, ErrDeadLetterStore, serr)
	}
	h.opts.log().LogAttrs(ctx, slog.LevelWarn, "nectarhooks: message recorded as a dead letter",
		slog.String("message_id", msg.ID), slog.String("event_type", string(msg.EventType)), slog.Any("error", err))
	return &deadLettered{err: err}
}

// failedNow is the record of one failed attempt of msg, now: what
// DeadLetterStore.Record takes, and adds to an earlier record of msg.
func failedNow(msg Message, err error) DeadLetter {
	now := time.Now().UTC()
	return DeadLetter{Message: msg, Error: err.Error(), Attempts: 1, FirstFailedAt: now, LastFailedAt: now}
}

// afterCall records the failure of a callback that ran after a WithAsync
// answer (detached) as a dead letter; a callback that ran before the answer
// is left to the delivery, which records it (giveUp) if it aborts it.
func (h *Handler) afterCall(ctx context.Context, msg *Message, err error, detached bool) error {
	if !detached {
		return err
	}
	return h.giveUp(ctx, msg, err, true)
}

// markAborted adds the delivery-control header to the answer of a message
// recorded as a dead letter.
func markAborted(w http.ResponseWriter, err error) {
	if errors.Is(err, ErrDeadLettered) {
		w.Header().Set(DeliveryHeader, AbortMessage)
	}
}

// ReplayResult counts what Handler.ReplayDeadLetters did.
type ReplayResult struct {
	// Replayed counts dead letters whose message ran to success (or was
	// found processed already by the idempotency store) and were removed.
	Replayed int
	// Failed counts those that failed again and were recorded again, with
	// one more attempt.
	Failed int
	// Skipped counts those another replay held, or that were gone by the
	// time this one came to them.
	Skipped int
}

// ReplayDeadLetters runs the dead letters f selects through h's callbacks
// again, one at a time and oldest first, under h's idempotency store if
// any, as DispatchVerified does (WithAsync aside: each runs before the
// next is taken). Each is taken from the store (DeadLetterStore.Take), so
// that two replays running at once never run one message twice; a message
// that succeeds leaves the store, one that fails again is recorded again
// with its attempts counted on. It needs WithDeadLetters, and returns the
// first error of the store, having stopped there; a callback's failure is
// counted, not returned.
func (h *Handler) ReplayDeadLetters(ctx context.Context, f DeadLetterFilter) (ReplayResult, error) {
	var res ReplayResult
	store := h.opts.deadLetters
	if store == nil {
		return res, fmt.Errorf("%w: ReplayDeadLetters needs WithDeadLetters", errInvalidOption)
	}
	list, err := store.List(ctx, f)
	if err != nil {
		return res, err
	}
	// Long enough for the callback, its claim and its settling.
	lease := h.opts.callbackTimeout + 2*h.opts.storeTimeout + LeaseGrace
	for _, listed := range list {
		d, token, ok, err := store.Take(ctx, listed.Message.Account, listed.Message.ID, lease)
		if err != nil {
			return res, err
		}
		if !ok {
			res.Skipped++
			continue
		}
		if cerr := h.DispatchVerified(ctx, d.Message); cerr != nil {
			if err := store.Record(ctx, failedNow(d.Message, cerr)); err != nil {
				return res, err
			}
			res.Failed++
			continue
		}
		if err := store.Remove(ctx, d.Message.Account, d.Message.ID, token); err != nil {
			return res, err
		}
		res.Replayed++
	}
	return res, nil
}

// Reprocess runs msg's callback again although it succeeded before, as
// after a bug that corrupted what the callback stored: it removes msg
// from the idempotency store (IdempotencyStore.Forget; msg.ID, or under
// NewAccountHandler the key of msg.Account and msg.ID), if any, and then
// runs msg as DispatchVerified does, returning what that returns. msg must
// have been verified when it arrived (from MessageFromContext, a
// DeadLetter, or the service's own copy).
func (h *Handler) Reprocess(ctx context.Context, msg Message) error {
	if s := h.opts.idempotency; s != nil {
		sctx, cancel := context.WithTimeout(ctx, h.opts.storeTimeout)
		err := s.Forget(sctx, msg.storeKey())
		cancel()
		if err != nil {
			return fmt.Errorf("%w: forgetting %s: %w", ErrStoreUnavailable, msg.ID, err)
		}
	}
	return h.DispatchVerified(ctx, msg)
}
