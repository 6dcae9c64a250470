package main

import (
	"bytes"
	"container/heap"
	"context"
	"errors"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nectarhooks/nectarhooks/nectarhookstest"
)

// svixRetryDelays is the wait before each retry of a failed delivery, each
// counted from the previous failure, as Svix documents it: after the first
// attempt (made at once) come 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h,
// eight attempts in all over about 28 hours.
var svixRetryDelays = []time.Duration{
	5 * time.Second,
	5 * time.Minute,
	30 * time.Minute,
	2 * time.Hour,
	5 * time.Hour,
	10 * time.Hour,
	10 * time.Hour,
}

// svixAttempts is how many times Svix tries a message before giving up.
var svixAttempts = 1 + len(svixRetryDelays)

// deliveryKind says what a delivery is for.
type deliveryKind int

const (
	kindFirst  deliveryKind = iota // a message's first attempt
	kindRetry                      // a later attempt after a failure, as Svix retries
	kindDup                        // the same message again, as a resend from the portal
	kindForged                     // a forgery: the body changed after signing, or the wrong key
	kindStale                      // a genuine signature on a timestamp past the tolerance
)

// genuine reports whether a delivery is one a receiver must accept.
func (k deliveryKind) genuine() bool { return k <= kindDup }

// message is one svix-id with its payload. acked turns true when any of
// its deliveries is answered 2xx; it is read by the scheduler and set by
// workers.
type message struct {
	id      string
	payload *payload
	resend  resendPlan
	target  int // the index of the -url its first attempt goes to
	acked   atomic.Bool
	aborted atomic.Bool // a non-2xx answer carried webhook-delivery: abort-message
}

// resendPlan says whether and when a message is delivered again.
type resendPlan int

const (
	noResend          resendPlan = iota
	resendConcurrent             // at the same time as the first attempt
	resendAfterAnswer            // once the first attempt is answered
)

// delivery is one POST to make, at or after due.
type delivery struct {
	kind    deliveryKind
	msg     *message
	attempt int       // 1 for the first attempt, 2.. for retries; 0 for others
	forgery int       // for kindForged: which forgery (see forge)
	due     time.Time // when it is scheduled: the latency of an open-loop run is measured from here
	seq     int       // order of creation, to keep the heap stable among equal due times
}

// loadConfig is what a load run does.
type loadConfig struct {
	urls        []string // deliveries are spread over them (see target)
	signer      *nectarhookstest.Signer
	payloads    []payload
	messages    int           // messages to send; 0 when duration is set
	duration    time.Duration // how long to start new messages; 0 when messages is set
	concurrency int           // deliveries in flight at most
	rate        float64       // new messages per second; 0 for a closed loop
	timeout     time.Duration // past it a delivery has failed
	dup         float64       // fraction of messages delivered again
	tamper      float64       // forged deliveries per message
	stale       float64       // stale deliveries per message
	retry       bool          // retry failed messages on Svix's schedule
	retryScale  float64       // multiplies svixRetryDelays
	newID       func() string
	now         func() time.Time // the signing clock
}

// loadGen runs one load test: a scheduler goroutine hands deliveries to
// concurrency workers over an unbuffered channel, so that no more than
// that many are in flight, and keeps the follow-ups (retries, resends)
// in a heap ordered by due time.
type loadGen struct {
	cfg    loadConfig
	client *http.Client
	stats  *loadStats

	mu       sync.Mutex // guards messages
	messages []*message // the genuine messages, in order

	// Owned by the scheduler goroutine:
	seq       int // deliveries queued, for a stable order
	resends   int // messages with a resend planned
	forgeries int // forged deliveries planned
	extras    int // forged and stale messages made
}

func newLoadGen(cfg loadConfig) *loadGen {
	transport := http.DefaultTransport.(*http.Transport).Clone()
	// One connection per worker, kept alive: the default of 2 idle
	// connections per host would make most deliveries dial anew and
	// measure the TCP handshake instead of the receiver.
	transport.MaxIdleConnsPerHost = cfg.concurrency
	transport.MaxIdleConns = cfg.concurrency * len(cfg.urls)
	return &loadGen{
		cfg: cfg,
		client: &http.Client{
			Transport: transport,
			Timeout:   cfg.timeout,
			// Svix does not follow redirects: a 3xx is a failed delivery.
			CheckRedirect: noRedirect,
		},
		stats: newLoadStats(len(cfg.urls)),
	}
}

// finished is what a worker hands back to the scheduler once a delivery
// is over: the follow-ups it calls for (a resend, a retry), if any.
type finished struct {
	followUps []*delivery
}

// run makes the deliveries and returns when every one has been answered
// or has failed, including retries, or soon after ctx is cancelled.
func (g *loadGen) run(ctx context.Context) {
	defer g.client.CloseIdleConnections()
	work := make(chan *delivery)
	results := make(chan finished, g.cfg.concurrency)
	var workers sync.WaitGroup
	for range g.cfg.concurrency {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for d := range work {
				results <- finished{followUps: g.deliver(ctx, d)}
			}
		}()
	}

	start := time.Now()
	g.stats.begin(start)
	var (
		pending     deliveryHeap
		inFlight    int
		started     int       // messages started
		arrival     *delivery // the next message's first attempt, once made
		timer       = time.NewTimer(time.Hour)
		closeLoop   = g.cfg.rate <= 0
		interrupted = ctx.Done()
	)
	defer timer.Stop()
	generating := func(now time.Time) bool {
		switch {
		case ctx.Err() != nil:
			return false
		case g.cfg.messages > 0:
			return started < g.cfg.messages
		case closeLoop:
			return now.Sub(start) < g.cfg.duration
		default:
			// Every message due within the duration is sent, however
			// late: a receiver that falls behind leaves a backlog, and
			// dropping it would hide how far behind it fell.
			return float64(started)/g.cfg.rate < g.cfg.duration.Seconds()
		}
	}
	// arrivalDue is when message i is scheduled: at once in a closed loop,
	// on a fixed grid in an open one, whether or not earlier messages
	// have been answered, so that a slow receiver shows up as latency
	// instead of as fewer deliveries (no coordinated omission).
	arrivalDue := func(i int, now time.Time) time.Time {
		if closeLoop {
			return now
		}
		return start.Add(time.Duration(float64(i) / g.cfg.rate * float64(time.Second)))
	}

	for {
		now := time.Now()
		gen := generating(now)
		if ctx.Err() != nil {
			pending = nil // interrupted: nothing more is sent
		}
		if !gen && len(pending) == 0 && inFlight == 0 {
			break
		}
		// Retries of a message acknowledged since they were scheduled
		// are dropped: Svix stops once an attempt succeeds.
		for len(pending) > 0 && pending[0].kind == kindRetry && pending[0].msg.acked.Load() {
			heap.Pop(&pending)
		}

		var next *delivery
		wake := now.Add(time.Hour)
		if len(pending) > 0 {
			if !pending[0].due.After(now) {
				next = pending[0]
			} else {
				wake = pending[0].due
			}
		}
		if next == nil && gen {
			if arrival == nil {
				arrival = g.newMessage(started, arrivalDue(started, now))
			}
			if !arrival.due.After(now) {
				next = arrival
			} else if arrival.due.Before(wake) {
				wake = arrival.due
			}
		}
		if gen && closeLoop && g.cfg.duration > 0 {
			// Wake at the end, so that no message starts after it.
			if end := start.Add(g.cfg.duration); end.Before(wake) {
				wake = end
			}
		}
		var send chan<- *delivery
		if next != nil {
			send = work
		}
		timer.Reset(time.Until(wake))

		select {
		case send <- next:
			inFlight++
			if next == arrival {
				// A message counts from its first delivery: one made
				// but not yet due when the run ends was never sent.
				g.mu.Lock()
				g.messages = append(g.messages, next.msg)
				g.mu.Unlock()
				arrival = nil
				g.scheduleExtras(&pending, next, started)
				started++
			} else {
				heap.Pop(&pending)
			}
		case f := <-results:
			inFlight--
			for _, d := range f.followUps {
				g.push(&pending, d)
			}
		case <-timer.C:
		case <-interrupted:
			// Loop once more: generation stops and the pending
			// deliveries are dropped; those in flight are cancelled
			// and their results still come back. Not again: a closed
			// channel would make the loop spin until they do.
			interrupted = nil
		}
	}
	close(work)
	workers.Wait()
	g.stats.end(time.Now())
}

// newMessage makes message i and its first delivery.
func (g *loadGen) newMessage(i int, due time.Time) *delivery {
	m := &message{id: g.cfg.newID(), payload: &g.cfg.payloads[i%len(g.cfg.payloads)], target: i % len(g.cfg.urls)}
	if every(g.cfg.dup, i) {
		// Alternate, so that both races are exercised: a resend that
		// finds the first attempt still running (the receiver must not
		// run the callback twice), and one that finds it done.
		g.resends++
		m.resend = resendAfterAnswer
		if g.resends%2 == 1 {
			m.resend = resendConcurrent
		}
	}
	g.seq++
	return &delivery{kind: kindFirst, msg: m, attempt: 1, due: due, seq: g.seq}
}

// every reports whether the i-th item (from 0) is one of a fraction f of
// items spread evenly: exactly floor(n*f) of the first n are, for every n.
func every(f float64, i int) bool {
	return int(float64(i+1)*f) > int(float64(i)*f)
}

// scheduleExtras queues what comes with message i on its start: the
// concurrent resend if it has one, and the forged and stale deliveries
// that ride along with it.
func (g *loadGen) scheduleExtras(pending *deliveryHeap, first *delivery, i int) {
	if first.msg.resend == resendConcurrent {
		g.push(pending, &delivery{kind: kindDup, msg: first.msg, due: first.due})
	}
	if every(g.cfg.tamper, i) {
		g.forgeries++
		g.push(pending, &delivery{kind: kindForged, msg: g.extraMessage(first), forgery: g.forgeries, due: first.due})
	}
	if every(g.cfg.stale, i) {
		g.push(pending, &delivery{kind: kindStale, msg: g.extraMessage(first), due: first.due})
	}
}

// extraMessage is a message of its own for a forged or stale delivery:
// a new id, so that a receiver refusing it cannot be confused with one
// that remembers the genuine message. The extras take the URLs in turn
// on their own: every replica must refuse them, and following the
// genuine messages' turn could send them all to one.
func (g *loadGen) extraMessage(first *delivery) *message {
	g.extras++
	return &message{id: g.cfg.newID(), payload: first.msg.payload, target: g.extras % len(g.cfg.urls)}
}

// target returns the index of the -url a delivery goes to. Messages take
// the URLs in turn (round robin), and every later delivery of a message
// goes to the URL after the one before it: a retry's attempt n to the
// (n-1)th next, a resend to the next. With several replicas behind
// several URLs that is what Svix does, whose redeliveries reach whichever
// replica the load balancer picks; it is the case an idempotency store
// shared by the replicas is for, and a store local to each misses.
func (g *loadGen) target(d *delivery) int {
	n := len(g.cfg.urls)
	switch d.kind {
	case kindRetry:
		return (d.msg.target + d.attempt - 1) % n
	case kindDup:
		return (d.msg.target + 1) % n
	}
	return d.msg.target
}

func (g *loadGen) push(pending *deliveryHeap, d *delivery) {
	g.seq++
	d.seq = g.seq
	heap.Push(pending, d)
}

// deliver makes one delivery, records its outcome and returns the
// follow-ups it calls for: a sequential resend, or a retry.
func (g *loadGen) deliver(ctx context.Context, d *delivery) []*delivery {
	sentAt := time.Now()
	header, body := g.sign(d)
	target := g.target(d)
	status, reason, err := post(ctx, g.client, g.cfg.urls[target], header, body)
	answeredAt := time.Now()
	from := sentAt
	if g.cfg.rate > 0 {
		from = d.due
	}
	o := outcome{kind: d.kind, target: target, latency: answeredAt.Sub(from)}
	switch {
	case err == nil:
		o.status = status.code
		o.reason = reason
	case isTimeout(err):
		o.timedOut = true
	case ctx.Err() != nil:
		o.interrupted = true
	default:
		o.failure = escapeControl(err.Error())
		o.connRefused = errors.Is(err, syscall.ECONNREFUSED)
	}
	ok := o.status >= 200 && o.status < 300
	if ok && d.kind.genuine() {
		d.msg.acked.Store(true)
	}
	if err == nil && !ok && status.aborted && d.kind.genuine() {
		// As Svix: no further attempt of a message the receiver aborted.
		d.msg.aborted.Store(true)
	}
	g.stats.record(o)

	var followUps []*delivery
	if d.kind == kindFirst && d.msg.resend == resendAfterAnswer {
		followUps = append(followUps, &delivery{kind: kindDup, msg: d.msg, due: answeredAt})
	}
	if d.attempt > 0 && !ok {
		if g.cfg.retry && d.attempt < svixAttempts && !o.interrupted && !d.msg.aborted.Load() {
			wait := time.Duration(float64(svixRetryDelays[d.attempt-1]) * g.cfg.retryScale)
			followUps = append(followUps, &delivery{kind: kindRetry, msg: d.msg, attempt: d.attempt + 1, due: answeredAt.Add(wait)})
		}
	}
	return followUps
}

// sign returns the headers and body of a delivery: signed now, as Svix
// signs every attempt anew, or forged, or stale.
func (g *loadGen) sign(d *delivery) (http.Header, []byte) {
	body := d.msg.payload.body
	ts := g.cfg.now()
	switch d.kind {
	case kindStale:
		return g.cfg.signer.HeaderFor(d.msg.id, ts.Add(-staleAge), body), body
	case kindForged:
		if d.forgery%2 == 0 {
			// The body changed after signing: the same JSON with a
			// space appended, as when a proxy re-serialises it.
			return g.cfg.signer.HeaderFor(d.msg.id, ts, body), append(bytes.Clone(body), ' ')
		}
		// Signed with a key that is not the endpoint's.
		return forger.HeaderFor(d.msg.id, ts, body), body
	}
	return g.cfg.signer.HeaderFor(d.msg.id, ts, body), body
}

// forger signs with a random secret of its own, which no receiver has.
var forger = func() *nectarhookstest.Signer {
	s, err := nectarhookstest.NewSigner(nectarhookstest.NewSecret())
	if err != nil {
		panic(err) // NewSecret makes valid secrets
	}
	return s
}()

// unacknowledged returns the messages no delivery of which was answered
// 2xx, in the order they were started, and apart from them those the
// receiver aborted (webhook-delivery: abort-message): given up on by the
// receiver, which keeps them, not lost.
func (g *loadGen) unacknowledged() (lost, aborted []*message) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, m := range g.messages {
		switch {
		case m.acked.Load():
		case m.aborted.Load():
			aborted = append(aborted, m)
		default:
			lost = append(lost, m)
		}
	}
	return lost, aborted
}

func isTimeout(err error) bool {
	var uerr *url.Error
	return errors.As(err, &uerr) && uerr.Timeout()
}

// deliveryHeap orders deliveries by due time, then by creation.
type deliveryHeap []*delivery

func (h deliveryHeap) Len() int { return len(h) }
func (h deliveryHeap) Less(i, j int) bool {
	if !h[i].due.Equal(h[j].due) {
		return h[i].due.Before(h[j].due)
	}
	return h[i].seq < h[j].seq
}
func (h deliveryHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *deliveryHeap) Push(x any)   { *h = append(*h, x.(*delivery)) }
func (h *deliveryHeap) Pop() any {
	old := *h
	d := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return d
}
