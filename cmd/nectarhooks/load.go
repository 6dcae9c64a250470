package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// defaultLoadMessages is -n when neither -n nor -duration is given: a few
// seconds against a receiver on a laptop.
const defaultLoadMessages = 1000

// maxSchedule is the furthest from the start an open loop can schedule a
// message: the longest time.Duration.
const maxSchedule = time.Duration(math.MaxInt64)

// urlList is load's -url: each occurrence adds a URL, so that one run
// spreads its deliveries over the replicas of a receiver.
type urlList []string

func (l *urlList) String() string {
	if l == nil {
		return ""
	}
	return strings.Join(*l, " ")
}

func (l *urlList) Set(s string) error {
	*l = append(*l, s)
	return nil
}

func (l *urlList) repeatable() {}

type loadFlags struct {
	urls       urlList
	secret     string
	messages   int
	duration   time.Duration
	conc       int
	rate       float64
	timeout    time.Duration
	dup        float64
	retry      bool
	retryScale float64
	tamper     float64
	stale      float64
	json       bool
	html       string

	waitURL     string
	waitMetric  string
	waitTimeout time.Duration
}

func loadCommand() *command {
	return &command{
		name:     "load",
		synopsis: "load -url URL [-url URL...] [-n N | -duration D] [-c N] [-rate R] [-dup F] [-retry] [-tamper F] [-stale F] [-wait-url URL [-wait-metric NAME] [-wait-timeout D]] [-json] [-html FILE] [EVENT|all|FILE...]",
		help: `Deliver many signed messages to URL, concurrently, as Svix would, and say
how many deliveries per second the receiver took, how slow it got at the
tail, and whether every message was acknowledged exactly as it should be.

Each message has its own svix-id and is signed anew for every attempt.
The payloads are the EVENT|FILE arguments in turn (default: all five
samples). -n sets how many messages, or -duration how long to keep
starting new ones; -c how many deliveries are in flight at most.

Without -rate the run is a closed loop: each of the -c senders starts a
delivery when its last one is answered, which measures the most the
receiver takes. With -rate R, messages start R times a second whether or
not earlier ones were answered (an open loop, as webhooks arrive), and
latency counts from when each was due, so a receiver that falls behind
shows it as latency instead of hiding it (no coordinated omission).
-c caps the open loop too: give it more than the rate times the
receiver's latency, or the sender's own limit is what gets measured.
A delivery not answered within -timeout (15s, as Svix waits) has failed.

-url given more than once spreads the deliveries over the URLs, as over
the replicas of one receiver behind a load balancer: messages take the
URLs in turn, and a message's retries and resends go each to the URL
after the one before, as Svix's redeliveries reach whichever replica
answers. Only replicas that share their idempotency store run each
callback once then. The report counts the deliveries per URL. Every
other flag is given once: a second value is an error, not a silent
replacement of the first.

-dup F delivers a fraction F of the messages again with the same svix-id
(a new timestamp and signature), half of them at the same time as the
first attempt and half once it is answered: the receiver should run its
callback once and answer 2xx (or 409 while the first is in progress).
-retry follows Svix's rules when a delivery is not answered 2xx in time:
the same svix-id again after 5s, 5m, 30m, 2h, 5h, 10h and 10h, eight
attempts in all, stopping at the first 2xx; -retry-scale shrinks the
schedule (the default 0.0001 makes 28 hours about 10 seconds).
-tamper F and -stale F add F forged deliveries per message (alternately
a body changed after signing and a signature under another secret) and
F deliveries signed 10 minutes ago: all of them must be refused.

-wait-url URL makes PASS mean processed, not only accepted: a receiver
that queues its work (WithAsync, River) answers 2xx before doing it, so
after the load it may still have a backlog. Once the deliveries are over,
load GETs URL every 100ms until it reads 0, and reports how long the
backlog took to drain; if it is not 0 within -wait-timeout (default 1m),
the run fails. URL answers either a plain number (the body "0"), or, with
-wait-metric NAME, a Prometheus text exposition (a /metrics page), of
which the samples of metric NAME are summed: the backlog of every queue.

At the end: acknowledged deliveries per second (those answered 2xx; the
ones refused or never answered are counted apart, since a receiver that
refuses everything, or a port nothing listens on, answers fastest),
latency percentiles from a histogram, the answers by status and by URL,
the reasons given for refusals, hints at the likely cause of failures
(nothing running at a URL, a -secret that is not the receiver's, clocks
apart, a receiver slower than -timeout), the backlog's drain with
-wait-url, and the verdict: messages never acknowledged (no 2xx for
their svix-id: lost, as Svix counts them) and forged or stale deliveries
accepted, both of which must be 0. A message the receiver answered with
webhook-delivery: abort-message is not retried, as Svix does not retry it,
and is counted apart as aborted, not lost: the receiver keeps it as a
dead letter. On a terminal a progress line shows
the run as it goes.

-json prints the same as one JSON object, for CI and for tests that run
the command: pass, messages, acknowledged, unacknowledged,
unacknowledged_ids (the first 20), aborted, aborted_ids, deliveries, deliveries_per_second
(every attempt, failed ones too), answered_2xx, answered_2xx_per_second
(the throughput), refused, no_answer, seconds, latency_ms (count, mean,
p50, p90, p99, p99_9, max), status (by code, or "timeout", "no answer",
"interrupted"), refusals (what, status, reason, count), failures (error,
count), per_url (url, deliveries, answered_2xx, refused, no_answer),
hints, resent, resent_accepted, retries, forged and stale (sent,
accepted), interrupted, url (the first), concurrency and rate; with
-wait-url, wait (url, metric, drained, seconds, at_start, last, reads,
error, skipped).

-html FILE writes the report as well to FILE, a self-contained HTML page
(no script, nothing fetched) with the latency percentile curve of the
genuine deliveries and the status, verdict and refusal tables.

Exit status 1 if a message was never acknowledged, a forged or stale
delivery was accepted, the backlog did not drain within -wait-timeout,
or the run was interrupted (Ctrl-C or SIGTERM: the report says what was
sent until then).
`,
		examples: `  export NECTAR_WEBHOOK_SECRET=whsec_...
  nectarhooks load -url http://127.0.0.1:8080/webhooks/nectar
  nectarhooks load -url http://127.0.0.1:8080/webhooks/nectar -n 20000 -c 32 connection.updated.v2
  nectarhooks load -url http://127.0.0.1:8080/webhooks/nectar -duration 30s -rate 500
  nectarhooks load -url http://127.0.0.1:8080/webhooks/nectar -dup 0.1 -retry -tamper 0.01 -stale 0.01 -json
  nectarhooks load -url http://127.0.0.1:8081/webhooks/nectar -url http://127.0.0.1:8082/webhooks/nectar -dup 0.2 -retry
  nectarhooks load -url http://127.0.0.1:8080/webhooks/nectar -rate 500 -duration 20s \
      -wait-url http://127.0.0.1:9464/metrics -wait-metric nectarhooks_queue_backlog
`,
		flags: func(fs *flag.FlagSet) any {
			f := &loadFlags{}
			fs.Var(&f.urls, "url", "POST to `URL`, an http:// or https:// endpoint (required); repeat it to spread the deliveries over replicas")
			fs.StringVar(&f.secret, "secret", "", "the endpoint's `whsec_...` signing secret, or a whsk_ ed25519 signing key (v1a); default $"+secretEnv)
			fs.IntVar(&f.messages, "n", 0, fmt.Sprintf("send `N` messages (default %d unless -duration is set)", defaultLoadMessages))
			fs.DurationVar(&f.duration, "duration", 0, "start new messages for `D` instead of a number of them")
			fs.IntVar(&f.conc, "c", 8, "make up to `N` deliveries at a time")
			fs.Float64Var(&f.rate, "rate", 0, "start `R` messages a second, answered or not (an open loop); 0: as fast as answered")
			fs.DurationVar(&f.timeout, "timeout", 15*time.Second, "a delivery not answered within `D` has failed, as Svix counts it")
			fs.Float64Var(&f.dup, "dup", 0, "deliver a fraction `F` of the messages again, with the same svix-id")
			fs.BoolVar(&f.retry, "retry", false, "retry a failed delivery as Svix does, up to 8 attempts")
			fs.Float64Var(&f.retryScale, "retry-scale", 0.0001, "multiply Svix's retry delays by `X` (1 for the real schedule)")
			fs.Float64Var(&f.tamper, "tamper", 0, "add `F` forged deliveries per message, which must be refused")
			fs.Float64Var(&f.stale, "stale", 0, "add `F` deliveries per message signed 10 minutes ago, which must be refused")
			fs.BoolVar(&f.json, "json", false, "print the result as a JSON object, for scripts and CI")
			fs.StringVar(&f.html, "html", "", "also write the report to `FILE` as a self-contained HTML page, with the latency percentile curve")
			fs.StringVar(&f.waitURL, "wait-url", "", "after the load, GET `URL` until it reads 0: the receiver's backlog, processed")
			fs.StringVar(&f.waitMetric, "wait-metric", "", "read the backlog as the sum of metric `NAME` in -wait-url's Prometheus text; default: the body is one number")
			fs.DurationVar(&f.waitTimeout, "wait-timeout", defaultWaitTimeout, "fail if the backlog is not 0 within `D` of the load's end")
			return f
		},
		run: runLoad,
	}
}

func runLoad(ctx context.Context, e *env, fs *flag.FlagSet, opts any, args []string) int {
	c, f := lookup("load"), opts.(*loadFlags)
	// The float flags are checked for being in range, never for being out
	// of it: NaN fails every comparison, so "v < 0" would let it through
	// (a -rate of NaN made a closed loop, silently).
	fraction := func(v float64) bool { return v >= 0 && v <= 1 }
	for _, u := range f.urls {
		if !isHTTPURL(u) {
			return e.usageError(c, "-url %q is not an http:// or https:// URL", u)
		}
	}
	switch {
	case len(f.urls) == 0:
		return e.usageError(c, "-url is required")
	case f.waitURL != "" && !isHTTPURL(f.waitURL):
		return e.usageError(c, "-wait-url %q is not an http:// or https:// URL", f.waitURL)
	case f.waitURL == "" && flagWasSet(fs, "wait-metric"):
		return e.usageError(c, "-wait-metric names what to read at -wait-url, which is not given")
	case f.waitURL == "" && flagWasSet(fs, "wait-timeout"):
		return e.usageError(c, "-wait-timeout bounds the wait for -wait-url, which is not given")
	case flagWasSet(fs, "wait-metric") && !validMetricName(f.waitMetric):
		return e.usageError(c, "-wait-metric %q is not a Prometheus metric name", f.waitMetric)
	case f.waitTimeout <= 0:
		return e.usageError(c, "-wait-timeout must be positive, got %s", f.waitTimeout)
	case flagWasSet(fs, "n") && flagWasSet(fs, "duration"):
		return e.usageError(c, "-n and -duration are exclusive: give a number of messages or a time")
	case flagWasSet(fs, "n") && f.messages < 1:
		return e.usageError(c, "-n must be at least 1, got %d", f.messages)
	case flagWasSet(fs, "duration") && f.duration <= 0:
		return e.usageError(c, "-duration must be positive, got %s", f.duration)
	case f.conc < 1:
		return e.usageError(c, "-c must be at least 1, got %d", f.conc)
	case math.IsNaN(f.rate) || math.IsInf(f.rate, 0):
		return e.usageError(c, "-rate must be a number of messages a second, got %g", f.rate)
	case f.rate < 0:
		return e.usageError(c, "-rate must not be negative, got %g", f.rate)
	case f.timeout <= 0:
		return e.usageError(c, "-timeout must be positive, got %s", f.timeout)
	case !fraction(f.dup):
		return e.usageError(c, "-dup is a fraction of the messages, from 0 to 1; got %g", f.dup)
	case !fraction(f.tamper):
		return e.usageError(c, "-tamper is a fraction, from 0 to 1; got %g", f.tamper)
	case !fraction(f.stale):
		return e.usageError(c, "-stale is a fraction, from 0 to 1; got %g", f.stale)
	case !(f.retryScale > 0 && f.retryScale <= 1):
		return e.usageError(c, "-retry-scale must be more than 0 and at most 1, got %g", f.retryScale)
	}
	if !flagWasSet(fs, "n") && !flagWasSet(fs, "duration") {
		f.messages = defaultLoadMessages
	}
	// Message i of an open loop is due i/rate seconds after the start, a
	// time.Duration: past its 292 years the schedule cannot be written,
	// and would wrap round to the past. (With -duration, messages are due
	// within it, which always fits.)
	if f.rate > 0 && f.messages > 1 && float64(f.messages-1)/f.rate >= maxSchedule.Seconds() {
		return e.usageError(c, "-rate %g is too slow for -n %d: the last message would start more than %.0f years from now",
			f.rate, f.messages, maxSchedule.Hours()/24/365)
	}
	signer, err := e.signer(f.secret)
	if err != nil {
		return e.usageError(c, "%v", err)
	}
	if len(args) == 0 {
		args = []string{"all"}
	}
	payloads, err := resolvePayloads(args, true)
	if err != nil {
		return e.usageError(c, "%v", err)
	}
	for _, p := range payloads {
		if w := warnIfNotJSON(p); w != "" {
			fmt.Fprintln(e.stderr, w)
		}
	}

	g := newLoadGen(loadConfig{
		urls:        f.urls,
		signer:      signer,
		payloads:    payloads,
		messages:    f.messages,
		duration:    f.duration,
		concurrency: f.conc,
		rate:        f.rate,
		timeout:     f.timeout,
		dup:         f.dup,
		tamper:      f.tamper,
		stale:       f.stale,
		retry:       f.retry,
		retryScale:  f.retryScale,
		newID:       e.newID,
		now:         e.now,
	})
	if !f.json {
		fmt.Fprintln(e.stdout, describeRun(f))
	}
	stopProgress := func() {}
	if e.progress != nil {
		stop, drawn := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(drawn)
			showProgress(e.progress, g.stats, time.Now(), stop)
		}()
		stopProgress = func() { close(stop); <-drawn }
	}
	g.run(ctx)
	stopProgress()
	r := g.report(ctx.Err() != nil)
	if f.waitURL != "" {
		r.Wait = waitAfterLoad(ctx, &r, waitConfig{url: f.waitURL, metric: f.waitMetric, timeout: f.waitTimeout, every: waitPollEvery}, e.progress)
	}

	if f.json {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(r); err != nil {
			fmt.Fprintf(e.stderr, "nectarhooks load: writing the report: %v\n", err)
		}
	} else {
		writeLoadReport(e.stdout, r)
	}
	if f.html != "" {
		if err := writeLoadHTML(f.html, r, describeRun(f)); err != nil {
			fmt.Fprintf(e.stderr, "nectarhooks load: writing -html: %v\n", err)
			return exitUsage
		}
		fmt.Fprintf(e.stderr, "nectarhooks load: report written to %s\n", f.html)
	}
	if !r.Pass {
		return exitRefused
	}
	return exitOK
}

// waitAfterLoad waits for the backlog behind -wait-url to drain, unless
// there is nothing to wait for, and folds the result into r's verdict.
func waitAfterLoad(ctx context.Context, r *loadReport, cfg waitConfig, progress io.Writer) *waitReport {
	var w waitReport
	switch {
	case r.Interrupted:
		w = waitReport{URL: cfg.url, Metric: cfg.metric, Skipped: "the run was interrupted"}
	case r.Acknowledged == 0:
		// Nothing was accepted, so nothing is queued: waiting would
		// only add -wait-timeout to a run that already failed.
		w = waitReport{URL: cfg.url, Metric: cfg.metric, Skipped: "no message was acknowledged"}
	default:
		w = waitDrained(ctx, cfg, progress)
		if ctx.Err() != nil {
			r.Interrupted = true
		}
	}
	r.Pass = r.Pass && w.Drained && !r.Interrupted
	return &w
}

// describeRun is the line printed before a run starts.
func describeRun(f *loadFlags) string {
	what := fmt.Sprintf("%d messages", f.messages)
	if f.duration > 0 {
		what = "messages for " + f.duration.String()
	}
	loop := "closed loop"
	if f.rate > 0 {
		loop = fmt.Sprintf("open loop at %g messages/s", f.rate)
	}
	to := f.urls[0]
	if len(f.urls) > 1 {
		to = strings.Join(f.urls, ", ") + " in turn"
	}
	line := fmt.Sprintf("load: %s to %s, up to %d at a time, %s", what, to, f.conc, loop)
	if f.waitURL != "" {
		line += fmt.Sprintf("; then up to %s for %s to read 0", f.waitTimeout, f.waitURL)
	}
	return line
}

// writeLoadReport prints the report for a person.
func writeLoadReport(w io.Writer, r loadReport) {
	row := func(label, format string, a ...any) {
		fmt.Fprintf(w, "%-12s %s\n", label, fmt.Sprintf(format, a...))
	}
	// The headline is what the receiver took: a port nothing listens on
	// "answers" thousands of deliveries a second, every one a failure.
	row("acknowledged", "%.0f/s: %d of %d deliveries answered 2xx in %.2fs", r.Answered2xxPerSecond, r.Answered2xx, r.Deliveries, r.Seconds)
	if r.Refused > 0 || r.NoAnswer > 0 {
		expected := ""
		if n := (r.Forged.Sent - r.Forged.Accepted) + (r.Stale.Sent - r.Stale.Accepted); n > 0 {
			expected = fmt.Sprintf(" (%d of them forged or stale, as they must be)", n)
		}
		row("not 2xx", "%d refused%s, %d without an answer", r.Refused, expected, r.NoAnswer)
	}
	if r.Latency.Count > 0 {
		l := r.Latency
		from := "from the send"
		if r.Rate > 0 {
			from = "from the scheduled time"
		}
		row("latency", "p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  (%d genuine deliveries, %s)",
			fmtMS(l.P50), fmtMS(l.P90), fmtMS(l.P99), fmtMS(l.P999), fmtMS(l.Max), l.Count, from)
	}
	row("status", "%s", formatStatus(r.Status))
	for i, rf := range r.Refusals {
		label := ""
		if i == 0 {
			label = "refusals"
		}
		row(label, "%-7s %-4s %6d  %s", rf.What, rf.Status, rf.Count, rf.Reason)
	}
	for i, fl := range r.Failures {
		label := ""
		if i == 0 {
			label = "no answer"
		}
		row(label, "%6d  %s", fl.Count, fl.Error)
	}
	if len(r.PerURL) > 1 {
		for i, u := range r.PerURL {
			label := ""
			if i == 0 {
				label = "per URL"
			}
			row(label, "%6d deliveries: %d 2xx, %d refused, %d without an answer  %s", u.Deliveries, u.Answered2xx, u.Refused, u.NoAnswer, u.URL)
		}
	}
	row("messages", "%d: %d acknowledged, %d never acknowledged", r.Messages, r.Acknowledged, r.Unacknowledged)
	if r.Aborted > 0 {
		row("", "%d aborted by the receiver (webhook-delivery: abort-message), not retried: %s", r.Aborted, strings.Join(r.AbortedIDs, " "))
	}
	if r.Unacknowledged > 0 {
		row("", "never acknowledged: %s", strings.Join(r.UnacknowledgedIDs, " "))
	}
	if r.Resent > 0 || r.Retries > 0 {
		row("again", "%d resent with the same svix-id (%d answered 2xx), %d retries", r.Resent, r.ResentAccepted, r.Retries)
	}
	if r.Forged.Sent > 0 || r.Stale.Sent > 0 {
		row("refused?", "forged: %d sent, %d accepted; stale: %d sent, %d accepted", r.Forged.Sent, r.Forged.Accepted, r.Stale.Sent, r.Stale.Accepted)
	}
	if r.Wait != nil {
		row("backlog", "%s", describeWait(r.Wait))
	}
	for i, h := range r.Hints {
		label := ""
		if i == 0 {
			label = "hint"
		}
		row(label, "%s", h)
	}
	row("verdict", "%s", verdict(r))
}

// describeWait says what waiting for the backlog found.
func describeWait(w *waitReport) string {
	what := w.URL
	if w.Metric != "" {
		what = w.Metric + " at " + w.URL
	}
	num := func(v *float64) string { return strconv.FormatFloat(*v, 'g', -1, 64) }
	switch {
	case w.Skipped != "":
		return "not read: " + w.Skipped
	case w.Drained:
		return fmt.Sprintf("drained %.2fs after the load (%s at its end; %s)", w.Seconds, num(w.AtStart), what)
	case w.Last == nil:
		return fmt.Sprintf("not read in %.1fs: %s: %s", w.Seconds, what, w.Error)
	}
	line := fmt.Sprintf("not drained in %.1fs: %s at the end of the load, %s at the last read (%s)", w.Seconds, num(w.AtStart), num(w.Last), what)
	if w.Error != "" {
		line += "; the last read failed: " + w.Error
	}
	return line
}

// verdict says in one line whether the receiver passed, and if not why.
func verdict(r loadReport) string {
	if r.Pass && r.Wait != nil {
		return "PASS: every message acknowledged and the backlog drained, no forged or stale delivery accepted"
	}
	if r.Pass {
		return "PASS: every message acknowledged, no forged or stale delivery accepted"
	}
	var why []string
	if r.Unacknowledged > 0 {
		why = append(why, fmt.Sprintf("%d messages never acknowledged", r.Unacknowledged))
	}
	if n := r.Forged.Accepted; n > 0 {
		why = append(why, fmt.Sprintf("%d forged deliveries accepted", n))
	}
	if n := r.Stale.Accepted; n > 0 {
		why = append(why, fmt.Sprintf("%d stale deliveries accepted", n))
	}
	if w := r.Wait; w != nil && w.Skipped == "" && !w.Drained && !r.Interrupted {
		why = append(why, "the backlog did not drain within -wait-timeout")
	}
	if r.Interrupted {
		why = append(why, "interrupted")
	}
	return "FAIL: " + strings.Join(why, ", ")
}

// formatStatus lists the status counts, codes first in order, then the
// deliveries without an answer.
func formatStatus(m map[string]int64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	// Status codes are three digits and sort before words.
	slices.Sort(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s: %d", k, m[k]))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, "  ")
}

// fmtMS shows a latency in milliseconds with three significant digits.
func fmtMS(ms float64) string {
	switch {
	case ms >= 100:
		return fmt.Sprintf("%.0fms", ms)
	case ms >= 10:
		return fmt.Sprintf("%.1fms", ms)
	}
	return fmt.Sprintf("%.2fms", ms)
}
