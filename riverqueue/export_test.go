package riverqueue

// Hooks into the Queue's internals for the tests of package
// riverqueue_test; compiled only with the tests.

// ErrBacklog and ErrNoSlot are wrapped by the errors of deliveries refused
// at once (WithMaxPending) and of those that waited for an insert in vain.
var ErrBacklog, ErrNoSlot = errBacklog, errNoSlot

// PendingLen reports how many deliveries wait for an insert now.
func PendingLen[TTx any](q *Queue[TTx]) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.pending)
}

// PeakPending reports the most deliveries that waited for an insert at
// once, since q was made.
func PeakPending[TTx any](q *Queue[TTx]) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.peakPending
}

// Inserting reports how many inserts are under way.
func Inserting[TTx any](q *Queue[TTx]) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.inserting
}
