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

// A callback runs on a goroutine of its own, so that a callback that
// ignores its context cannot hold the answer: at its deadline the
// Handler answers 503 without it (the ResponseWriter may only be used by
// the ServeHTTP goroutine, so that goroutine has to be free to answer; the
// callback cannot run on it).
//
// The trade-off, measured with BenchmarkCallbackRun (inline against own
// goroutine, same run): starting a goroutine, a pooled timer and handing
// the result back through a channel cost about 3 µs more per delivery on a
// loaded 2-core machine (median 5.3 µs against 2.2 µs, BenchmarkPipeline
// being 35-45 µs there) and no allocation (the run's state is pooled; 4
// allocations, 272 B, either way). Running the callback inline would save
// that, but a hung callback would then hold the request, its connection
// and, with WithIdempotency, its claim until it returned, and Svix would
// see no answer at all; a runtime.Goexit in it would end the request
// unanswered. A timer-driven answer cannot replace the goroutine: only the
// ServeHTTP goroutine may write the answer, and it would be the one hung.
//
// A callback that returns at its deadline, as one that watches its context
// does, is waited for a little (returnGrace), so that its own error and
// its claim are settled as usual. One that has not returned by then is left
// running: the delivery is answered 503, and the goroutine settles the
// claim (Complete or Release, fenced by its token) when the callback
// returns. Until then the claim's lease (WithCallbackTimeout + LeaseGrace)
// keeps redeliveries from running it twice, and after that a redelivery
// may run it beside the hung one. Each such callback keeps its goroutine and
// payload, so their number is capped (WithMaxOverrunning): at the cap a
// Handler refuses new deliveries with 503, and an async worker waits for
// its callback instead of leaving it.

// overrunLimit returns ErrOverrunning while as many callbacks as
// WithMaxOverrunning allows are running past their deadline.
func (h *Handler) overrunLimit() error {
	if h.overrunning.Load() >= int64(h.opts.maxOverrunning) {
		return ErrOverrunning
	}
	return nil
}

// Overrunning reports how many callbacks are running past their deadline
// now, left to finish on their own goroutines (see WithCallbackTimeout and
// WithMaxOverrunning), for a metric or a health check.
func (h *Handler) Overrunning() int { return int(h.overrunning.Load()) }

// returnGrace is how long past its deadline a callback is waited for
// before the delivery is answered without it. A callback that watches its
// context returns within microseconds of the deadline; the rest is room
// for a loaded scheduler. It is well inside LeaseGrace.
const returnGrace = 500 * time.Millisecond

// errGoexit is the cause of a callback that ended its goroutine with
// runtime.Goexit instead of returning.
var errGoexit = errors.New("the callback called runtime.Goexit (t.FailNow, t.Fatal or t.SkipNow in a callback?) instead of returning")

// The states of a callRun, which decide who settles its claim: the
// waiting goroutine while the callback returns in time, the callback's
// own goroutine once the waiter has given up on it.
const (
	runRunning int32 = iota
	runReturned
	runAbandoned
)

// callRun is one callback run on its own goroutine.
type callRun struct {
	h      *Handler
	parent context.Context // the message's context
	ctx    context.Context // the callback's, with its deadline
	cancel context.CancelFunc
	msg    *Message
	ev     Event
	token  string
	claim  *claimRun // the claim shared with the callback (effects.go); nil without one
	err    error     // the callback's outcome, once it has returned

	state atomic.Int32
	done  chan struct{} // one value once the callback returns in time
	timer *time.Timer   // fires returnGrace past the deadline; stopped in the pool
	start func()        // run, bound once: a go statement then allocates nothing
}

var callRuns = sync.Pool{New: func() any {
	c := &callRun{done: make(chan struct{}, 1), timer: time.NewTimer(time.Hour)}
	c.timer.Stop()
	c.start = c.run
	return c
}}

// runCallback runs the callback for ev under its deadline and settles the
// claim token with its outcome, as process does. It returns the callback's
// error (see call), or, for a callback that had not returned returnGrace
// after its deadline, a *CallbackError matching ErrCallbackTimeout and
// context.DeadlineExceeded, leaving the callback to finish and settle on
// its own goroutine.
func (h *Handler) runCallback(parent context.Context, msg *Message, ev Event, token string, detached bool) error {
	claimed, claim := withClaim(parent, msg, token)
	ctx, cancel := context.WithTimeout(claimed, h.opts.callbackTimeout)
	c := callRuns.Get().(*callRun)
	c.h, c.parent, c.ctx, c.cancel, c.msg, c.ev, c.token, c.claim = h, parent, ctx, cancel, msg, ev, token, claim
	c.state.Store(runRunning)
	go c.start()

	// The callback's context has a timer of its own, but waiting on its
	// Done would make the context allocate a channel the callback mostly
	// never asks for: a pooled timer is cheaper. It fires returnGrace
	// after the deadline, which may be an earlier one of the parent's,
	// even one already past.
	deadline, _ := ctx.Deadline()
	c.timer.Reset(max(0, time.Until(deadline)) + returnGrace)
	select {
	case <-c.done:
	case <-c.timer.C:
		if detached && h.overrunLimit() != nil {
			// An async worker at the cap holds on to its callback rather
			// than add to the overrunning ones: the queue then fills and
			// intake answers 503, instead of memory filling.
			<-c.done
			break
		}
		if c.state.CompareAndSwap(runRunning, runAbandoned) {
			h.overrunning.Add(1)
			// The goroutine owns c from here, and settles the claim.
			return &CallbackError{EventType: msg.EventType, MessageID: msg.ID, Err: fmt.Errorf(
				"%w after %s: the callback has not returned; it is left to finish: %w",
				ErrCallbackTimeout, h.opts.callbackTimeout, context.DeadlineExceeded)}
		}
		<-c.done // it returned just now
	}
	c.timer.Stop()
	cancel()
	err := c.err
	*c = callRun{done: c.done, start: c.start, timer: c.timer}
	callRuns.Put(c)
	h.settleRun(parent, msg, token, claim, err)
	return err
}

// run is the callback's goroutine.
func (c *callRun) run() {
	returned := false
	defer func() {
		if !returned {
			// call recovers panics, so this is runtime.Goexit.
			c.err = &CallbackError{EventType: c.msg.EventType, MessageID: c.msg.ID, Err: errGoexit}
		}
		if c.state.CompareAndSwap(runRunning, runReturned) {
			c.done <- struct{}{} // the waiter settles and answers
			return
		}
		c.finishAbandoned()
	}()
	c.err = c.h.call(c.ctx, c.msg, c.ev)
	returned = true
}

// finishAbandoned settles the claim of a callback that returned after its
// delivery was answered, and reports what it returned then, unless it is
// the deadline's own error, already reported with the 503.
func (c *callRun) finishAbandoned() {
	h, ctx, err := c.h, c.parent, c.err
	c.cancel()
	defer h.overrunning.Add(-1)
	// Nothing above this goroutine would recover a panic of the store,
	// the logger or the error handler: it would end the process.
	defer h.opts.recoverOffRequest(ctx, "after a callback overran its deadline")
	h.settleRun(ctx, c.msg, c.token, c.claim, err)
	switch _, ack := acknowledged(err, c.msg); {
	case err == nil || ack:
		h.opts.log().LogAttrs(ctx, slog.LevelWarn, "nectarhooks: callback returned after its delivery was answered 503; Svix delivers it again",
			slog.String("message_id", c.msg.ID), slog.String("event_type", string(c.msg.EventType)))
	case !errors.Is(err, context.DeadlineExceeded):
		h.opts.report(ctx, 0, err)
	}
}

// recoverOffRequest, deferred, recovers a panic of code of the service's
// (an error handler, an idempotency store, a logger) that the library ran
// off a request's goroutine, on an async worker or the goroutine of a
// callback that overran its deadline. Nothing above those would recover
// it, and the process would end, losing every message accepted and not yet
// processed. The panic is logged; where the logger itself panics, there is
// nothing left to tell.
func (o *options) recoverOffRequest(ctx context.Context, where string) {
	v := recover()
	if v == nil {
		return
	}
	stack := debug.Stack()
	defer func() { _ = recover() }()
	attrs := []slog.Attr{slog.Any("panic", v), slog.String("stack", string(stack))}
	if m, ok := ctx.Value(messageKey{}).(*Message); ok {
		attrs = append(attrs, slog.String("message_id", m.ID), slog.String("event_type", string(m.EventType)))
	}
	o.log().LogAttrs(ctx, slog.LevelError, "nectarhooks: recovered a panic "+where, attrs...)
}
