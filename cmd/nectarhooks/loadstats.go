package main

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Latencies are recorded in microseconds, from 1 µs to an hour, to three
// significant digits: an open-loop run against a receiver that cannot keep
// up measures queueing as latency, which can grow well past -timeout.
const (
	latencyUnit    = time.Microsecond
	latencyHighest = int64(time.Hour / latencyUnit)
	latencyDigits  = 3
)

// maxReasons bounds the distinct refusal reasons kept: a receiver that
// puts an id or a time in each answer would otherwise grow the table with
// every delivery.
const maxReasons = 20

// outcome is what became of one delivery.
type outcome struct {
	kind        deliveryKind
	target      int // the index of the -url it went to
	latency     time.Duration
	status      int    // the answer's status; 0 without an answer
	reason      string // the start of the answer's body, escaped
	timedOut    bool   // no answer within -timeout
	interrupted bool   // cancelled by Ctrl-C or SIGTERM
	failure     string // no answer for another reason: refused connection, reset...
	connRefused bool   // the failure was a refused connection: nothing listens there
}

func (o outcome) accepted() bool { return o.status >= 200 && o.status < 300 }

// statusKey names an outcome in the status counts: the status code, or
// why there was none.
func (o outcome) statusKey() string {
	switch {
	case o.status != 0:
		return strconv.Itoa(o.status)
	case o.timedOut:
		return "timeout"
	case o.interrupted:
		return "interrupted"
	}
	return "no answer"
}

// refusalKey groups refusals: by what was delivered, the status and the
// reason the receiver gave.
type refusalKey struct {
	what   string // "genuine", "forged" or "stale"
	status string
	reason string
}

// kindCounts counts the deliveries of one kind.
type kindCounts struct {
	sent, accepted int64
}

// urlCounts counts the deliveries to one -url: what the report lists per
// URL, and what the hints are drawn from. A replica that is down, or
// configured with another secret, shows up here while the others pass.
type urlCounts struct {
	deliveries, answered2xx, refused, noAnswer int64

	genuineAnswered int64 // genuine deliveries that got an answer
	noSignature     int64 // of which 401 "no matching signature": the wrong secret
	badTimestamp    int64 // of which 401 for the timestamp: clocks apart
	connRefused     int64 // deliveries refused a connection
	timedOut        int64
}

// loadStats accumulates outcomes from every worker.
type loadStats struct {
	mu       sync.Mutex
	latency  *hdrhistogram.Histogram // genuine deliveries that were answered or timed out
	kinds    [kindStale + 1]kindCounts
	status   map[string]int64
	refusals map[refusalKey]int64
	failures map[string]int64 // deliveries without an answer, by error
	perURL   []urlCounts      // by index of -url
	start    time.Time
	stop     time.Time

	// For the live progress line, read without the lock.
	done, ok atomic.Int64
}

func newLoadStats(urls int) *loadStats {
	return &loadStats{
		perURL:   make([]urlCounts, urls),
		latency:  hdrhistogram.New(1, latencyHighest, latencyDigits),
		status:   make(map[string]int64),
		refusals: make(map[refusalKey]int64),
		failures: make(map[string]int64),
	}
}

func (s *loadStats) begin(t time.Time) {
	s.mu.Lock()
	s.start = t
	s.mu.Unlock()
}

func (s *loadStats) end(t time.Time) {
	s.mu.Lock()
	s.stop = t
	s.mu.Unlock()
}

func (s *loadStats) record(o outcome) {
	s.done.Add(1)
	if o.accepted() {
		s.ok.Add(1)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.kinds[o.kind].sent++
	if o.accepted() {
		s.kinds[o.kind].accepted++
	}
	s.status[o.statusKey()]++
	u := &s.perURL[o.target]
	u.deliveries++
	switch {
	case o.accepted():
		u.answered2xx++
	case o.status != 0:
		u.refused++
	default:
		u.noAnswer++
	}
	if o.connRefused {
		u.connRefused++
	}
	if o.timedOut {
		u.timedOut++
	}
	if o.kind.genuine() && o.status != 0 {
		u.genuineAnswered++
		if o.status == 401 && strings.Contains(o.reason, "no matching signature") {
			u.noSignature++
		}
		if o.status == 401 && strings.Contains(o.reason, "timestamp") {
			u.badTimestamp++
		}
	}
	if o.kind.genuine() && (o.status != 0 || o.timedOut) {
		us := max(int64(o.latency/latencyUnit), 1)
		// A value past the highest trackable is kept as the highest,
		// not dropped: it still counts at the tail.
		_ = s.latency.RecordValue(min(us, latencyHighest))
	}
	if o.failure != "" {
		s.countFailure(o.failure)
	}
	if !o.accepted() && o.status != 0 {
		what := "genuine"
		switch o.kind {
		case kindForged:
			what = "forged"
		case kindStale:
			what = "stale"
		}
		k := refusalKey{what: what, status: o.statusKey(), reason: o.reason}
		if _, seen := s.refusals[k]; !seen && len(s.refusals) >= maxReasons {
			k.reason = "(other reasons)"
		}
		s.refusals[k]++
	}
}

func (s *loadStats) countFailure(msg string) {
	if _, seen := s.failures[msg]; !seen && len(s.failures) >= maxReasons {
		msg = "(other errors)"
	}
	s.failures[msg]++
}

// loadReport is the result of a run, as -json prints it. Its fields are
// the schema CI scripts read; add to it, never rename.
type loadReport struct {
	URL         string  `json:"url"` // the first -url; PerURL has each
	Concurrency int     `json:"concurrency"`
	Rate        float64 `json:"rate"` // new messages per second; 0 for a closed loop
	Seconds     float64 `json:"seconds"`
	Deliveries  int64   `json:"deliveries"`
	// PerSecond counts every attempt, failed ones too: against nothing
	// listening it is at its highest. The throughput is Answered2xxPerSecond.
	PerSecond            float64     `json:"deliveries_per_second"`
	Answered2xx          int64       `json:"answered_2xx"`            // deliveries answered 2xx: acknowledged
	Answered2xxPerSecond float64     `json:"answered_2xx_per_second"` // the throughput: Answered2xx / Seconds
	Refused              int64       `json:"refused"`                 // deliveries answered, but not 2xx (forged and stale ones must be)
	NoAnswer             int64       `json:"no_answer"`               // deliveries without an answer: timed out, failed, interrupted
	PerURL               []urlReport `json:"per_url"`                 // by -url, in the order given
	// Hints name the likely cause of what failed: a receiver not running,
	// the wrong secret, clocks apart, a receiver slower than -timeout.
	Hints []string `json:"hints"`
	// Wait is what -wait-url found: whether the receiver's backlog
	// drained after the load, and how fast. Absent without -wait-url.
	Wait *waitReport `json:"wait,omitempty"`
	// Latency of genuine deliveries in milliseconds: from the scheduled
	// time in an open loop (-rate), from the send otherwise.
	Latency  latencyReport    `json:"latency_ms"`
	Status   map[string]int64 `json:"status"`   // deliveries by status code, or "timeout", "no answer", "interrupted"
	Refusals []refusalReport  `json:"refusals"` // non-2xx answers, by what was delivered and the reason given
	Failures []failureReport  `json:"failures"` // deliveries without an answer, by error

	Messages          int          `json:"messages"`           // genuine messages (svix-ids) started
	Acknowledged      int          `json:"acknowledged"`       // messages with at least one 2xx answer
	Unacknowledged    int          `json:"unacknowledged"`     // messages without: lost, as Svix would count them
	UnacknowledgedIDs []string     `json:"unacknowledged_ids"` // the first 20 of them
	Aborted           int          `json:"aborted"`            // messages the receiver aborted (webhook-delivery: abort-message): not retried, not lost
	AbortedIDs        []string     `json:"aborted_ids"`        // the first 20 of them
	Resent            int64        `json:"resent"`             // deliveries of a message again (-dup)
	ResentAccepted    int64        `json:"resent_accepted"`
	Retries           int64        `json:"retries"` // later attempts after a failure (-retry)
	Forged            sentAccepted `json:"forged"`
	Stale             sentAccepted `json:"stale"`
	Interrupted       bool         `json:"interrupted"`
	// Pass is true when every message was acknowledged, no forged or stale
	// delivery was accepted, and the run was not interrupted: the exit
	// status is 0 exactly when it is.
	Pass bool `json:"pass"`

	// curve is the latency percentile curve, for load -html.
	curve []percentilePoint
}

// urlReport is the deliveries to one -url.
type urlReport struct {
	URL         string `json:"url"`
	Deliveries  int64  `json:"deliveries"`
	Answered2xx int64  `json:"answered_2xx"`
	Refused     int64  `json:"refused"`
	NoAnswer    int64  `json:"no_answer"`
}

type latencyReport struct {
	Count int64   `json:"count"`
	Mean  float64 `json:"mean"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	P999  float64 `json:"p99_9"`
	Max   float64 `json:"max"`
}

type refusalReport struct {
	What   string `json:"what"` // "genuine", "forged" or "stale"
	Status string `json:"status"`
	Reason string `json:"reason"`
	Count  int64  `json:"count"`
}

type failureReport struct {
	Error string `json:"error"`
	Count int64  `json:"count"`
}

type sentAccepted struct {
	Sent     int64 `json:"sent"`
	Accepted int64 `json:"accepted"` // must be 0
}

// maxListedIDs bounds the unacknowledged ids listed.
const maxListedIDs = 20

// report summarises the run once it is over.
func (g *loadGen) report(interrupted bool) loadReport {
	s := g.stats
	s.mu.Lock()
	defer s.mu.Unlock()
	r := loadReport{
		URL:         g.cfg.urls[0],
		Concurrency: g.cfg.concurrency,
		Rate:        g.cfg.rate,
		Seconds:     s.stop.Sub(s.start).Seconds(),
		Status:      s.status,
		Refusals:    []refusalReport{},
		Failures:    []failureReport{},
		Interrupted: interrupted,
	}
	for _, k := range s.kinds {
		r.Deliveries += k.sent
	}
	for i, u := range s.perURL {
		r.PerURL = append(r.PerURL, urlReport{URL: g.cfg.urls[i], Deliveries: u.deliveries, Answered2xx: u.answered2xx, Refused: u.refused, NoAnswer: u.noAnswer})
		r.Answered2xx += u.answered2xx
		r.Refused += u.refused
		r.NoAnswer += u.noAnswer
	}
	if r.Seconds > 0 {
		r.PerSecond = float64(r.Deliveries) / r.Seconds
		r.Answered2xxPerSecond = float64(r.Answered2xx) / r.Seconds
	}
	r.Hints = hints(g.cfg, s.perURL)
	r.Latency = latencyReport{
		Count: s.latency.TotalCount(),
		Mean:  s.latency.Mean() * float64(latencyUnit) / float64(time.Millisecond),
		P50:   usToMS(s.latency.ValueAtPercentile(50)),
		P90:   usToMS(s.latency.ValueAtPercentile(90)),
		P99:   usToMS(s.latency.ValueAtPercentile(99)),
		P999:  usToMS(s.latency.ValueAtPercentile(99.9)),
		Max:   usToMS(s.latency.Max()),
	}
	r.curve = percentileCurve(s.latency)
	for k, n := range s.refusals {
		r.Refusals = append(r.Refusals, refusalReport{What: k.what, Status: k.status, Reason: k.reason, Count: n})
	}
	slices.SortFunc(r.Refusals, func(a, b refusalReport) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.What, b.What), cmp.Compare(a.Status, b.Status), cmp.Compare(a.Reason, b.Reason))
	})
	for msg, n := range s.failures {
		r.Failures = append(r.Failures, failureReport{Error: msg, Count: n})
	}
	slices.SortFunc(r.Failures, func(a, b failureReport) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.Error, b.Error))
	})

	g.mu.Lock()
	r.Messages = len(g.messages)
	g.mu.Unlock()
	lost, aborted := g.unacknowledged()
	r.Unacknowledged, r.Aborted = len(lost), len(aborted)
	r.Acknowledged = r.Messages - r.Unacknowledged - r.Aborted
	r.UnacknowledgedIDs, r.AbortedIDs = []string{}, []string{}
	for _, m := range lost[:min(len(lost), maxListedIDs)] {
		r.UnacknowledgedIDs = append(r.UnacknowledgedIDs, m.id)
	}
	for _, m := range aborted[:min(len(aborted), maxListedIDs)] {
		r.AbortedIDs = append(r.AbortedIDs, m.id)
	}
	r.Resent, r.ResentAccepted = s.kinds[kindDup].sent, s.kinds[kindDup].accepted
	r.Retries = s.kinds[kindRetry].sent
	r.Forged = sentAccepted{s.kinds[kindForged].sent, s.kinds[kindForged].accepted}
	r.Stale = sentAccepted{s.kinds[kindStale].sent, s.kinds[kindStale].accepted}
	r.Pass = r.Unacknowledged == 0 && r.Forged.Accepted == 0 && r.Stale.Accepted == 0 && !interrupted
	return r
}

// hints names the likely causes of deliveries that failed, one line each,
// in the terms of what to check: the numbers alone ("0/s", "401: 12439")
// leave the reader to guess. Each is drawn from one URL's counts, so that
// one replica down, or set up with another secret, is named among others
// that pass.
func hints(cfg loadConfig, perURL []urlCounts) []string {
	out := []string{}
	var timedOut int64
	for i, u := range perURL {
		url := cfg.urls[i]
		if u.connRefused > 0 {
			out = append(out, fmt.Sprintf("%d of %d deliveries to %s were refused a connection: is the receiver running at %s?",
				u.connRefused, u.deliveries, url, url))
		}
		// Every genuine answer a 401: a wrong secret or clocks apart
		// refuse everything, a receiver with a bug refuses some.
		switch {
		case u.genuineAnswered == 0 || u.answered2xx > 0:
		case u.noSignature == u.genuineAnswered:
			out = append(out, fmt.Sprintf("every delivery to %s was refused 401 \"no matching signature\": does -secret (or $%s) match the receiver's secret?",
				url, secretEnv))
		case u.badTimestamp == u.genuineAnswered:
			out = append(out, fmt.Sprintf("every delivery to %s was refused 401 for its timestamp: are this machine's and the receiver's clocks apart?", url))
		}
		timedOut += u.timedOut
	}
	if timedOut > 0 {
		out = append(out, fmt.Sprintf("%d deliveries were not answered within -timeout %s: is the receiver slower than -timeout, or stuck?",
			timedOut, cfg.timeout))
	}
	return out
}
