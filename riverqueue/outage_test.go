package riverqueue_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
	"github.com/nectarhooks/nectarhooks/riverqueue"
)

// svixWait is how long Svix waits for an answer before counting a delivery
// as failed: the Handler's promise is to answer within it, whatever the
// database does.
const svixWait = 15 * time.Second

// TestDatabaseOutage takes the database away from a running intake (its
// connections go through a nectarhookstest.FaultProxy) and brings it back:
// while it is gone every delivery is answered 503, and Svix's retries of
// those deliveries get through once it is back, one job each. The database
// goes away in two ways: connections refused (a crashed server: the proxy
// closed, existing connections cut, new ones refused), and a link gone
// silent (a black hole: nothing answers, nothing closes, only the insert
// timeout ends the wait).
func TestDatabaseOutage(t *testing.T) {
	cases := []struct {
		name string
		// down takes the database away from dial's connections, up brings
		// it back.
		down, up func(t *testing.T, current *atomic.Pointer[nectarhookstest.FaultProxy])
	}{
		{
			name: "refused connections",
			down: func(t *testing.T, current *atomic.Pointer[nectarhookstest.FaultProxy]) {
				require.NoError(t, current.Load().Close())
			},
			up: func(t *testing.T, current *atomic.Pointer[nectarhookstest.FaultProxy]) {
				current.Store(nectarhookstest.NewFaultProxy(t, ""))
			},
		},
		{
			name: "frozen link",
			down: func(t *testing.T, current *atomic.Pointer[nectarhookstest.FaultProxy]) { current.Load().Freeze() },
			up:   func(t *testing.T, current *atomic.Pointer[nectarhookstest.FaultProxy]) { current.Load().Thaw() },
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dbURL := newDatabase(t)
			var current atomic.Pointer[nectarhookstest.FaultProxy]
			current.Store(nectarhookstest.NewFaultProxy(t, ""))
			pool := newDialPool(t, dbURL, 4, func(ctx context.Context, network, addr string) (net.Conn, error) {
				return current.Load().Dial(ctx, network, addr)
			})
			// Before the pool closes (cleanups run last first): a frozen
			// proxy would hold the pool's last cancel requests.
			t.Cleanup(func() { current.Load().Close() })

			secret := nectarhookstest.NewSecret()
			var errs errorLog
			h, err := nectarhooks.NewHandler(secret,
				nectarhooks.WithQueue(riverqueue.New(newInsertClient(t, pool),
					riverqueue.WithInsertTimeout(time.Second))),
				nectarhooks.WithErrorHandler(errs.record))
			require.NoError(t, err)
			srv := httptest.NewServer(h)
			defer srv.Close()
			d := newDeliverer(t, secret)

			before := nectarhookstest.NewMessageID()
			status, err := d.deliver(srv.URL, before, samples[0])
			require.NoError(t, err)
			require.Equal(t, http.StatusAccepted, status, "database up")

			tc.down(t, &current)
			during := make([]string, 5)
			for i := range during {
				during[i] = nectarhookstest.NewMessageID()
				status, err := d.deliver(srv.URL, during[i], samples[i%len(samples)])
				require.NoError(t, err)
				assert.Equal(t, http.StatusServiceUnavailable, status, "database down: delivery %d", i)
			}
			reports := errs.all()
			require.Len(t, reports, len(during))
			for _, r := range reports {
				assert.Equal(t, http.StatusServiceUnavailable, r.status)
				assert.ErrorIs(t, r.err, nectarhooks.ErrQueueFull)
			}
			check := newPool(t, dbURL, 2) // straight to the database
			assert.Equal(t, 1, total(jobStates(t, check)), "nothing of the refused deliveries is stored")

			tc.up(t, &current)
			// Svix's retries, attempt after attempt until answered 2xx: the
			// pool may first hand out a connection that died meanwhile. A
			// statement the frozen link held may also arrive now, its job
			// then found by the retry.
			for i, id := range during {
				var got int
				for attempt := 1; attempt <= 5; attempt++ {
					got, err = d.deliver(srv.URL, id, samples[i%len(samples)])
					require.NoError(t, err)
					if got == http.StatusAccepted {
						break
					}
				}
				assert.Equal(t, http.StatusAccepted, got, "retry of delivery %d once the database is back", i)
			}
			assert.Equal(t, map[rivertype.JobState]int{rivertype.JobStateAvailable: 1 + len(during)}, jobStates(t, check))
		})
	}
}

// TestBlackHoledDatabase sends 1,200 deliveries at once to an intake with
// the default options whose database link went silent (FaultProxy.Freeze:
// no answer, no close). Every one is answered 503 within the 15 seconds
// Svix waits; the deliveries past DefaultMaxPending are refused at once,
// without waiting; and no more than DefaultMaxPending deliveries ever wait
// for an insert, which bounds the memory they hold.
func TestBlackHoledDatabase(t *testing.T) {
	const deliveries = 1200
	dbURL := newDatabase(t)
	fp := nectarhookstest.NewFaultProxy(t, "")
	pool := newDialPool(t, dbURL, 4, fp.Dial)
	t.Cleanup(func() { fp.Close() }) // before the pool closes: see TestDatabaseOutage
	q := riverqueue.New(newInsertClient(t, pool))

	// Every delivery reaches the Queue before any goes on, so that all of
	// them find the first inserts under way, however slowly the machine
	// sends 1,200 requests: the test then knows which are past the bound.
	var armed atomic.Bool
	var entered atomic.Int64
	var refusalTook atomic.Int64 // the longest Enqueue of a refused delivery, gate excluded
	all := make(chan struct{})
	var opened time.Time // when the last delivery reached the gate; set before all is closed
	gate := queueFunc(func(ctx context.Context, msg nectarhooks.Message) error {
		if !armed.Load() {
			return q.Enqueue(ctx, msg)
		}
		if entered.Add(1) == deliveries {
			opened = time.Now()
			close(all)
		}
		select {
		case <-all:
		case <-ctx.Done():
			return ctx.Err()
		}
		start := time.Now()
		err := q.Enqueue(ctx, msg)
		if errors.Is(err, riverqueue.ErrBacklog) {
			for took := int64(time.Since(start)); ; {
				if prev := refusalTook.Load(); took <= prev || refusalTook.CompareAndSwap(prev, took) {
					break
				}
			}
		}
		return err
	})
	secret := nectarhookstest.NewSecret()
	var errs errorLog
	h, err := nectarhooks.NewHandler(secret, nectarhooks.WithQueue(gate), nectarhooks.WithErrorHandler(errs.record))
	require.NoError(t, err)
	srv := httptest.NewServer(h)
	defer srv.Close()
	d := newDeliverer(t, secret)

	// A delivery while the link is up, so that the pool holds a connection
	// that goes silent, as well as making new ones that hang.
	status, err := d.deliver(srv.URL, nectarhookstest.NewMessageID(), samples[0])
	require.NoError(t, err)
	require.Equal(t, http.StatusAccepted, status, "database up")
	errs.mu.Lock()
	errs.reports = nil
	errs.mu.Unlock()

	fp.Freeze()
	armed.Store(true)
	type answer struct {
		status     int
		start, end time.Time
		took       time.Duration // from sending, or from the gate's opening if later: the receiver's own time
		err        error
	}
	ids := make([]string, deliveries)
	for i := range ids {
		ids[i] = nectarhookstest.NewMessageID()
	}
	answers := make([]answer, deliveries)
	var wg sync.WaitGroup
	for i := range answers {
		wg.Go(func() {
			start := time.Now()
			status, err := d.deliver(srv.URL, ids[i], samples[i%len(samples)])
			answers[i] = answer{status: status, start: start, end: time.Now(), err: err}
		})
	}
	wg.Wait()
	// The gate held every delivery until the last was sent, which takes a
	// loaded machine seconds: that wait is the test's, not the receiver's.
	<-all
	for i, a := range answers {
		answers[i].took = a.end.Sub(a.start)
		if opened.After(a.start) {
			answers[i].took = a.end.Sub(opened)
		}
	}

	var slowest, slowestRefusal time.Duration
	byID := make(map[string]answer, deliveries)
	for i, a := range answers {
		byID[ids[i]] = a
	}
	statuses := map[int]int{}
	late := 0
	for i, a := range answers {
		require.NoError(t, a.err, "delivery %d", i)
		statuses[a.status]++
		slowest = max(slowest, a.took)
		if a.took >= svixWait {
			late++
		}
	}
	assert.Zero(t, late, "deliveries answered after the 15 s Svix waits (slowest: %s)", slowest)
	assert.Equal(t, map[int]int{http.StatusServiceUnavailable: deliveries}, statuses)

	reports := errs.all()
	require.Len(t, reports, deliveries)
	refused := 0
	for _, r := range reports {
		assert.ErrorIs(t, r.err, nectarhooks.ErrQueueFull)
		if errors.Is(r.err, riverqueue.ErrBacklog) {
			refused++
			slowestRefusal = max(slowestRefusal, byID[r.msg.ID].took)
		}
	}
	// The first DefaultConcurrentInserts deliveries insert (and hang), the
	// next DefaultMaxPending wait, and the rest find no room.
	assert.Equal(t, deliveries-riverqueue.DefaultConcurrentInserts-riverqueue.DefaultMaxPending, refused,
		"deliveries refused at once, past DefaultMaxPending")
	peak := riverqueue.PeakPending(q)
	assert.LessOrEqual(t, peak, riverqueue.DefaultMaxPending, "deliveries waiting at once")
	assert.Equal(t, riverqueue.DefaultMaxPending, peak, "the bound was reached")
	t.Logf("%d deliveries to a black-holed database, all answered 503: %d refused at once (Enqueue at most %s; answered within %s of the gate's opening), slowest answer %s from the gate's opening, at most %d waiting",
		deliveries, refused, time.Duration(refusalTook.Load()), slowestRefusal.Round(time.Millisecond), slowest.Round(time.Millisecond), peak)
}
