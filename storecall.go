package nectarhooks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// A Handler calls its idempotency store while Svix waits for the answer, and
// stores fail slowly more often than they refuse: a black-holed network, a
// frozen primary, a failover, a claim queued behind a table lock. A call
// that does not answer must not hold the answer past Svix's 15 seconds, and
// the store's own client cannot be trusted to give up in time (go-redis,
// by default, waits out its read timeout and retries whatever the
// context's deadline). So each call runs on a goroutine of its own, with a
// context that ends after WithStoreTimeout, and the delivery stops waiting
// for it at that deadline: a Claim is then answered 503, a Complete or
// Release leaves the answer to the callback's outcome. The call goes on
// until the store returns, and then cleans up after itself: a claim granted
// after its delivery gave up is released, so that Svix's retry runs the
// message, and a settle that failed late is logged.
//
// MemoryStore is called directly: it never waits, and the goroutine would
// only cost time.

// storeOp is the idempotency store method a storeCall runs.
type storeOp uint8

const (
	opClaim storeOp = iota
	opComplete
	opRelease
)

// The states of a storeCall: the waiter reads the outcome while the call
// returns in time, the call's own goroutine once the waiter has given up.
const (
	callRunning int32 = iota
	callReturned
	callAbandoned
)

// storeCall is one store call on a goroutine of its own.
type storeCall struct {
	h      *Handler
	parent context.Context
	op     storeOp
	msg    *Message
	key    string // msg.storeKey(), made once for the call and its clean-up
	token  string // for Complete and Release: the claim's; for Claim: the one granted

	claim Claim
	err   error

	state atomic.Int32
	done  chan struct{} // one value once the call returns in time
	timer *time.Timer   // fires at the store deadline; stopped in the pool
	start func()        // run, bound once: a go statement then allocates nothing
}

var storeCalls = sync.Pool{New: func() any {
	c := &storeCall{done: make(chan struct{}, 1), timer: time.NewTimer(time.Hour)}
	c.timer.Stop()
	return c
}}

// storeClaim asks the store for a claim on msg, waiting no longer than the
// store deadline. An error wraps ErrStoreUnavailable.
func (h *Handler) storeClaim(ctx context.Context, msg *Message) (Claim, string, error) {
	claim, token, err := h.callStore(ctx, opClaim, msg, "")
	if err != nil {
		return 0, "", fmt.Errorf("%w: %w", ErrStoreUnavailable, err)
	}
	return claim, token, nil
}

// callStore runs op for msg under the store deadline and returns its
// outcome, or an error saying it did not answer in time. Complete and
// Release run without ctx's cancellation: the outcome is recorded even when
// the request has ended, since an id left claimed would refuse every retry
// until its lease expires. Their failures are logged here, in time or late.
func (h *Handler) callStore(ctx context.Context, op storeOp, msg *Message, token string) (Claim, string, error) {
	store := h.opts.idempotency
	if op != opClaim {
		ctx = context.WithoutCancel(ctx)
	}
	key := msg.storeKey()
	if m, ok := store.(*MemoryStore); ok {
		claim, token, err := callOp(ctx, m, op, key, token, h.lease())
		h.logSettleFailure(ctx, op, msg, err)
		return claim, token, err
	}
	c := storeCalls.Get().(*storeCall)
	if c.start == nil {
		c.start = c.run // once per pooled call (set here: the pool's New may not refer to run)
	}
	c.h, c.parent, c.op, c.msg, c.key, c.token = h, ctx, op, msg, key, token
	c.state.Store(callRunning)
	go c.start()
	c.timer.Reset(h.opts.storeTimeout)
	select {
	case <-c.done:
	case <-c.timer.C:
		if c.state.CompareAndSwap(callRunning, callAbandoned) {
			// The goroutine owns c from here, cleans up after the call and
			// logs a Complete or Release that fails in the end.
			return 0, "", fmt.Errorf("%s %s: no answer within %s (WithStoreTimeout)", op, msg.ID, h.opts.storeTimeout)
		}
		<-c.done // it returned just now
	}
	c.timer.Stop()
	claim, token, err := c.claim, c.token, c.err
	c.recycle()
	if err != nil {
		err = fmt.Errorf("%s %s: %w", op, msg.ID, err)
		h.logSettleFailure(ctx, op, msg, err)
	}
	return claim, token, err
}

// run is the call's goroutine.
func (c *storeCall) run() {
	c.claim, c.token, c.err = c.invoke()
	if c.state.CompareAndSwap(callRunning, callReturned) {
		c.done <- struct{}{}
		return
	}
	c.finishAbandoned()
}

// invoke calls the store under the store deadline. A panic of the store is
// its error: nothing above this goroutine would recover it, and the process
// would end.
func (c *storeCall) invoke() (claim Claim, token string, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("the store panicked: %w", &PanicError{Value: v, Stack: debug.Stack()})
		}
	}()
	h := c.h
	ctx, cancel := context.WithTimeout(c.parent, h.opts.storeTimeout)
	defer cancel()
	return callOp(ctx, h.opts.idempotency, c.op, c.key, c.token, h.lease())
}

// finishAbandoned cleans up after a call its delivery stopped waiting for.
func (c *storeCall) finishAbandoned() {
	h, msg := c.h, c.msg
	ctx := context.WithoutCancel(c.parent)
	// Nothing above this goroutine would recover a panic of the store or
	// the logger: it would end the process.
	defer h.opts.recoverOffRequest(ctx, "after an idempotency store call overran its deadline")
	defer c.recycle()
	switch {
	case c.op == opClaim && c.err == nil && c.claim == ClaimAcquired:
		// Granted after the delivery was answered 503: nobody runs the
		// message under this claim, and Svix's retry would find it in
		// flight for the whole lease. Fenced by its token, the release
		// cannot free a newer claim.
		rctx, cancel := context.WithTimeout(ctx, h.opts.storeTimeout)
		err := h.opts.idempotency.Release(rctx, c.key, c.token)
		cancel()
		h.logSettleFailure(ctx, opRelease, msg, err)
	case c.op != opClaim && c.err != nil:
		h.logSettleFailure(ctx, c.op, msg, fmt.Errorf("%s %s: %w", c.op, msg.ID, c.err))
	}
}

// recycle puts c back in the pool.
func (c *storeCall) recycle() {
	*c = storeCall{done: c.done, timer: c.timer, start: c.start}
	storeCalls.Put(c)
}

// callOp runs op on s.
func callOp(ctx context.Context, s IdempotencyStore, op storeOp, id, token string, lease time.Duration) (Claim, string, error) {
	switch op {
	case opClaim:
		return s.Claim(ctx, id, lease)
	case opComplete:
		return 0, "", s.Complete(ctx, id, token)
	}
	return 0, "", s.Release(ctx, id, token)
}

// logSettleFailure logs a Complete or Release that failed or did not
// answer in time. Claim failures are the delivery's error instead.
func (h *Handler) logSettleFailure(ctx context.Context, op storeOp, msg *Message, err error) {
	if err == nil || op == opClaim {
		return
	}
	what := "nectarhooks: recording a processed message failed; a redelivery would run its callback again"
	if op == opRelease {
		what = "nectarhooks: releasing an idempotency claim failed; retries are refused until it expires"
	}
	attrs := []slog.Attr{slog.String("message_id", msg.ID), slog.Any("error", err)}
	var p *PanicError
	if errors.As(err, &p) {
		attrs = append(attrs, slog.String("stack", string(p.Stack)))
	}
	h.opts.log().LogAttrs(ctx, slog.LevelError, what, attrs...)
}

// String names the operation, for errors.
func (op storeOp) String() string {
	switch op {
	case opClaim:
		return "claim"
	case opComplete:
		return "complete"
	}
	return "release"
}
