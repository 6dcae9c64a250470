package otelhooks

import (
	"errors"

	"go.opentelemetry.io/otel/attribute"

	"github.com/nectarhooks/nectarhooks"
)

// The attributes of this package's own, beside OpenTelemetry's semantic
// conventions. Their values are short and bounded: nothing from a payload
// or a secret, and event types only of verified messages.
const (
	// EventTypeKey is the event type of a verified message, such as
	// "connection.updated.v2".
	EventTypeKey = attribute.Key("nectarhooks.event.type")
	// OutcomeKey is how a delivery or callback ended: a
	// nectarhooks.Outcome's String, such as "processed" or "rejected".
	OutcomeKey = attribute.Key("nectarhooks.outcome")
	// AccountKey is the account a Handler of nectarhooks.NewAccountHandler
	// verified the delivery for (Message.Account), on spans only: as a
	// metric attribute its values would be as many as the accounts.
	AccountKey = attribute.Key("nectarhooks.account")
	// VerificationReasonKey is why a delivery failed verification:
	// "missing_headers", "invalid_headers", "no_matching_signature",
	// "message_too_old" or "message_too_new".
	VerificationReasonKey = attribute.Key("nectarhooks.verification.reason")
)

// messagingSystem is the messaging.system of every span: Svix delivers
// Nectar's webhooks.
const messagingSystem = "svix"

// verificationReason names the reason of a verification error, or returns
// "" for other errors.
func verificationReason(err error) string {
	switch {
	case !errors.Is(err, nectarhooks.ErrVerification):
		return ""
	case errors.Is(err, nectarhooks.ErrMissingHeaders):
		return "missing_headers"
	case errors.Is(err, nectarhooks.ErrInvalidHeaders):
		return "invalid_headers"
	case errors.Is(err, nectarhooks.ErrNoMatchingSignature):
		return "no_matching_signature"
	case errors.Is(err, nectarhooks.ErrMessageTooOld):
		return "message_too_old"
	case errors.Is(err, nectarhooks.ErrMessageTooNew):
		return "message_too_new"
	}
	return "other"
}

// errorType is the error.type of err, a short name of its class, as the
// semantic conventions want: never its text, which may carry a callback's
// or a store's words.
func errorType(err error) string {
	if reason := verificationReason(err); reason != "" {
		return reason
	}
	var p *nectarhooks.PanicError
	switch {
	case errors.As(err, &p):
		return "panic"
	case errors.Is(err, nectarhooks.ErrCallbackTimeout):
		return "callback_timeout"
	case errors.Is(err, nectarhooks.ErrMethodNotAllowed):
		return "method_not_allowed"
	case errors.Is(err, nectarhooks.ErrBodyTooLarge):
		return "body_too_large"
	case errors.Is(err, nectarhooks.ErrReadBody):
		return "read_body"
	case errors.Is(err, nectarhooks.ErrInvalidPayload):
		return "invalid_payload"
	case errors.Is(err, nectarhooks.ErrInFlight):
		return "in_flight"
	case errors.Is(err, nectarhooks.ErrQueueFull):
		return "queue_full"
	case errors.Is(err, nectarhooks.ErrShuttingDown):
		return "shutting_down"
	case errors.Is(err, nectarhooks.ErrStoreUnavailable):
		return "store_unavailable"
	}
	var ce *nectarhooks.CallbackError
	if errors.As(err, &ce) {
		return "callback_error"
	}
	return "_OTHER"
}
