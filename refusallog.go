package nectarhooks

import (
	"sync/atomic"
	"time"
)

// RefusalLogInterval is the least time between two warnings a Handler or
// Verifier.Middleware logs for refusing requests it could not verify (see
// WithLogger). Such requests come from anyone who can reach the endpoint,
// so without a bound whoever sends them would decide how much the service
// logs.
const RefusalLogInterval = 10 * time.Second

// refusalLog decides which refusals of unverified requests are logged as
// warnings: the first after RefusalLogInterval of quiet. The others are
// logged at debug level and counted, and the next warning says how many
// there were.
//
// The interval is measured on the monotonic clock, not the wall clock (nor
// WithClock's): a wall clock stepped back by NTP, or by an operator, would
// otherwise silence the warnings of a wrong secret for as long as the step.
type refusalLog struct {
	start      time.Time            // when the options were made, with a monotonic reading
	elapsed    func() time.Duration // since start; nil for time.Since(start), set by tests
	next       atomic.Int64         // time since start before which refusals are not warned of
	suppressed atomic.Int64         // refusals logged at debug level since the last warning
}

// admit reports whether a refusal now is to be warned of and, if so, how
// many refusals were logged at debug level only since the previous
// warning.
func (l *refusalLog) admit() (warn bool, suppressed int64) {
	var t int64
	if l.elapsed != nil {
		t = int64(l.elapsed())
	} else {
		t = int64(time.Since(l.start))
	}
	next := l.next.Load()
	if t < next || !l.next.CompareAndSwap(next, t+int64(RefusalLogInterval)) {
		l.suppressed.Add(1)
		return false, 0
	}
	return true, l.suppressed.Swap(0)
}
