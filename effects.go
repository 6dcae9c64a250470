package nectarhooks

import (
	"context"
	"errors"
	"sync/atomic"
)

// Exactly-once effects. A Handler with WithIdempotency claims a message,
// runs its callback, then records it processed with the store's Complete:
// a process that dies between the callback's writes and Complete leaves
// the message to the next delivery, which runs it again. A store that
// lives in the callback's own database can close that window by
// completing the message in the callback's transaction (pgxstore's
// CompleteTx): the writes and the completion then commit together or not
// at all. For that the callback needs its claim (ClaimFromContext), and
// the Handler must not Complete again what the transaction completed
// (Claimed.MarkCompleted).

// ErrAlreadyProcessed is the error, wrapped, that a callback returns when
// it finds its message's effects committed already: a marker recorded in
// the callback's own transaction (riverqueue's CompleteTx and
// CompleteBatch) was there before it, so the transaction rolled back and
// wrote nothing. The run is then a retry of a message whose earlier run
// committed but did not live to say so (its process died after the
// commit, or the commit's reply was lost). That is not a failure: the
// delivery is acknowledged (200), the message recorded as processed by the
// idempotency store, if any, and the Observer sees OutcomeDuplicate.
var ErrAlreadyProcessed = errors.New("nectarhooks: the message's effects were committed already")

// Claimed is the idempotency claim a callback runs under: which message,
// under which fencing token (see IdempotencyStore). A store that can
// complete a message inside the callback's own transaction fences that
// completion with Token, so that a callback whose claim was taken over
// (its lease ran out and another delivery claimed the message) cannot
// commit its writes.
type Claimed struct {
	// MessageID is the message's svix-id (Message.ID), for errors and
	// logs.
	MessageID string
	// Key is what the message is claimed under in the idempotency store:
	// the id its IdempotencyStore methods were given. It is MessageID,
	// except under a Handler of NewAccountHandler, which keeps each
	// account's messages apart (Svix sends one svix-id to every endpoint):
	// there it is the account, a space and MessageID. A store that
	// completes the claim in a transaction of its own finds its row by Key.
	Key string
	// Token is the claim's fencing token, as the store's Claim returned it.
	Token string

	run *claimRun
}

// claimRun is the state one callback run shares with the Handler through
// its context.
type claimRun struct {
	claimed   Claimed
	completed atomic.Bool
}

type claimKey struct{}

// claimContext carries a claimRun. It is a value context of its own, like
// msgContext, so that the callback's context stays one allocation deeper
// than without WithIdempotency, not two.
type claimContext struct {
	context.Context
	run claimRun
}

func (c *claimContext) Value(key any) any {
	if key == (claimKey{}) {
		return &c.run
	}
	return c.Context.Value(key)
}

// withClaim returns a context over parent carrying the claim on msg under
// token, and the run's shared state; parent itself and nil without a
// token (no WithIdempotency).
func withClaim(parent context.Context, msg *Message, token string) (context.Context, *claimRun) {
	if token == "" {
		return parent, nil
	}
	c := &claimContext{Context: parent}
	c.run.claimed = Claimed{MessageID: msg.ID, Key: msg.storeKey(), Token: token, run: &c.run}
	return c, &c.run
}

// ClaimFromContext returns the idempotency claim the callback whose
// context ctx is (or derives from) runs under, and whether there is one:
// there is none without WithIdempotency, nor outside a callback.
func ClaimFromContext(ctx context.Context) (Claimed, bool) {
	r, ok := ctx.Value(claimKey{}).(*claimRun)
	if !ok {
		return Claimed{}, false
	}
	return r.claimed, true
}

// MarkCompleted tells the Handler that the claim's message was recorded as
// processed in the callback's own transaction, fenced by the claim's token
// (as pgxstore's Store.CompleteTx does, and calls MarkCompleted itself), so
// that the Handler skips its own Complete once the callback returns nil:
// one round trip to the store fewer. The callback must then return the
// error of that transaction's Commit: when the callback returns an error
// the mark is ignored and the Handler releases the claim as usual (a
// release fenced by the token, which does nothing to a message the
// transaction did complete). It does nothing on a Claimed that did not
// come from ClaimFromContext.
func (c Claimed) MarkCompleted() {
	if c.run != nil {
		c.run.completed.Store(true)
	}
}

// completedInTx reports whether the run's callback marked its claim
// completed (see MarkCompleted).
func (r *claimRun) completedInTx() bool { return r != nil && r.completed.Load() }

// settleRun settles a callback run's claim as settle does, except that a
// run whose callback succeeded after completing its claim in its own
// transaction (MarkCompleted) needs no Complete.
func (h *Handler) settleRun(ctx context.Context, msg *Message, token string, claim *claimRun, err error) {
	if err == nil && claim.completedInTx() {
		return
	}
	h.settle(ctx, msg, token, err)
}
