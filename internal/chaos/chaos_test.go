package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"go.uber.org/goleak"
)

// TestMain also checks, after every test, that nothing is left running,
// the set-up and clean-up of the servers' tables and databases included.
func TestMain(m *testing.M) {
	redis.SetLogger(redisLogger{})
	goleak.VerifyTestMain(m)
}

// mode is one way of running the replicas.
type mode struct {
	name  string
	start func(*testing.T, *shared) *cluster
	// river: the callbacks run on River's workers, after the answer,
	// rather than before it under an idempotency store.
	river bool
}

var modes = []mode{
	{name: "pgxstore", start: startPgxstore},
	{name: "goredisstore", start: startGoredisstore},
	{name: "river", start: startRiver, river: true},
}

// riverSettle bounds the wait, once the faults have stopped and every
// message was acknowledged, for River to complete every job. A job whose
// fetch lost its answer waits for River's rescuer, which looks every 30
// seconds (not configurable) for jobs running longer than
// riverRescueAfter (20 s), and a leader to run it, which a fault may have
// deposed (River's leadership lasts 15 s); then for a retry.
const riverSettle = 90 * time.Second

// TestSoak runs each mode with three replicas under faults of their
// database links (see the package documentation) and checks the SDK's
// promises after the run.
func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("the chaos soak runs for about a minute; not under -short")
	}
	cfg := loadConfig(t)
	t.Logf("seed %d (replay with %s=%d), %s of faults and %d messages per mode",
		cfg.seed, seedEnv, cfg.seed, cfg.duration, cfg.messages)
	for i, m := range modes {
		t.Run(m.name, func(t *testing.T) { soak(t, cfg, m, uint64(i)) })
	}
}

// outcome is what a mode's run left, for the checks and the report.
type outcome struct {
	mode    mode
	cfg     config
	msgs    []*message
	faults  []faultEvent
	shared  *shared
	jobs    map[string][]jobRow // river mode: the jobs once settled
	settled time.Duration       // river mode: from the end of the traffic until every job completed
	traffic time.Duration       // from the first delivery until the last sender finished
	begin   time.Time
}

func soak(t *testing.T, cfg config, m mode, index uint64) {
	// Whatever runs before the mode (the test binary's own goroutines) is
	// not the mode's to account for; everything the mode starts is.
	before := goleak.IgnoreCurrent()
	s := newShared()
	c := m.start(t, s)
	var sx *svix
	shutdown := func() {
		c.shutdown()
		if sx != nil {
			sx.close()
		}
		verifyNoLeaks(t, before)
	}
	shut := false
	defer func() {
		if !shut { // the test ended early: still stop everything, and look
			shutdown()
		}
	}()

	rng := rand.New(rand.NewPCG(cfg.seed, index))
	msgs := newMessages(cfg.messages, cfg.duration, rng)
	sx = newSvix(t, s.secret, c.urls, rng.Uint64())
	begin := time.Now()
	ch := newChaos(c.proxies, rng.Uint64(), begin)
	ctx, cancel := context.WithTimeout(context.Background(), cfg.duration)
	defer cancel()
	chaosDone := make(chan struct{})
	go func() {
		defer close(chaosDone)
		ch.run(ctx)
	}()
	sx.run(msgs, begin, begin.Add(cfg.duration+retryWindow))
	<-chaosDone // every fault healed
	o := &outcome{mode: m, cfg: cfg, msgs: msgs, faults: ch.timeline(), shared: s,
		traffic: time.Since(begin), begin: begin}

	if m.river {
		o.jobs, o.settled = settleJobs(t, c, msgs)
	}
	// Shut down and look for leaks before the report, so that the
	// numbers include whatever the shutdown logged.
	shut = true
	shutdown()
	o.report(t)
	o.check(t)
}

// settleJobs waits until every message has one job, completed, or
// riverSettle passes, and returns the jobs as last read and how long it
// took.
func settleJobs(t *testing.T, c *cluster, msgs []*message) (map[string][]jobRow, time.Duration) {
	start := time.Now()
	deadline := start.Add(riverSettle)
	var jobs map[string][]jobRow
	for {
		ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
		var err error
		jobs, err = c.jobs(ctx)
		cancel()
		if err != nil {
			t.Errorf("reading river_job: %v", err)
			return nil, time.Since(start)
		}
		if allCompleted(jobs, msgs) || time.Now().After(deadline) {
			return jobs, time.Since(start)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func allCompleted(jobs map[string][]jobRow, msgs []*message) bool {
	for _, m := range msgs {
		if js := jobs[m.id]; len(js) != 1 || js[0].state != "completed" {
			return false
		}
	}
	return true
}

// verifyNoLeaks fails t if a goroutine started since before is still
// running. Some end a moment after the shutdown returns, on their own: a
// store call the Handler stopped waiting for ends at its deadline
// (WithStoreTimeout, 1 s) and then releases its claim (1 s more); the HTTP
// client's and servers' connection goroutines end once their closed
// sockets are noticed. goleak retries for well under a second, so the
// wait is given a bound of its own first.
func verifyNoLeaks(t *testing.T, before goleak.Option) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for goleak.Find(before) != nil && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	goleak.VerifyNone(t, before)
}

// report logs the run's numbers.
func (o *outcome) report(t *testing.T) {
	t.Helper()
	var (
		deliveries, conflicts, violations int
		statuses                          = map[string]int{}
		took                              []time.Duration
		with409                           int
	)
	for _, m := range o.msgs {
		saw409 := false
		for _, a := range m.attempts {
			deliveries++
			took = append(took, a.took)
			key := fmt.Sprint(a.status)
			if a.status == 0 {
				key = "error"
			}
			statuses[key]++
			if a.status == http.StatusConflict {
				conflicts++
				saw409 = true
			}
			if late(a) {
				violations++
			}
		}
		if saw409 {
			with409++
		}
	}
	slices.Sort(took)
	acked := 0
	for _, m := range o.msgs {
		if m.acked {
			acked++
		}
	}
	t.Logf("%s: %d messages, %d acknowledged; %d deliveries (%d retries); traffic %s",
		o.mode.name, len(o.msgs), acked, deliveries, deliveries-len(o.msgs), o.traffic.Round(time.Millisecond))
	t.Logf("answers by status: %s", counts(statuses))
	t.Logf("answer time: p50 %s, p99 %s, max %s; %d at or past %s",
		percentile(took, 0.50), percentile(took, 0.99), percentile(took, 1), violations, svixWait)
	t.Logf("faults: %s", byKind(o.faults))
	t.Logf("Handlers: %s", o.shared.obs)
	t.Logf("409s: %d answers on %d messages", conflicts, with409)
	if !o.mode.river {
		ranAfter, longest := o.claimsFreed()
		t.Logf("messages that ran after a 409 (a claim left behind was released late or its lease ran out): %d; longest from first 409 to the run: %s",
			ranAfter, longest.Round(time.Millisecond))
	}
	missing, dups, extra := o.runCounts()
	t.Logf("callbacks: %d messages ran, %d never, %d more than once (%d extra runs)",
		o.shared.runs.len(), len(missing), len(dups), extra)
	if o.mode.river {
		states := map[string]int{}
		retried, rows := 0, 0
		for _, js := range o.jobs {
			for _, j := range js {
				rows++
				states[j.state]++
				if j.attempt > 1 {
					retried++
				}
			}
		}
		t.Logf("River: %d job rows for %d messages, by state: %s; %d jobs took more than one attempt; waited %s after the traffic for every job to complete",
			rows, len(o.jobs), counts(states), retried, o.settled.Round(time.Millisecond))
	}
	for _, l := range o.shared.logs.lines() {
		t.Logf("Handler log: %s", l)
	}
	for _, l := range o.shared.clientLogs.lines() {
		t.Logf("client log: %s", l)
	}
}

// check asserts the invariants, and on a failure logs the fault timeline
// and the history of each message concerned.
func (o *outcome) check(t *testing.T) {
	t.Helper()
	suspects := map[string]string{} // message id: what is wrong with it
	// (1) Every message acknowledged in the end.
	for _, m := range o.msgs {
		if !m.acked {
			suspects[m.id] = "never acknowledged"
		}
	}
	// (2) Every answer within Svix's 15 seconds.
	for _, m := range o.msgs {
		for _, a := range m.attempts {
			if late(a) {
				suspects[m.id] = fmt.Sprintf("an answer took %s", a.took.Round(time.Millisecond))
			}
		}
	}
	missing, dups, _ := o.runCounts()
	for _, id := range missing {
		suspects[id] = "callback never succeeded"
	}
	if o.mode.river {
		// (3, River) One job per message, completed. The callbacks ran at
		// least once each (missing, above); more than once is River's
		// at-least-once execution (a job whose completion was lost runs
		// again), which the report counts: transactional completion
		// (issue 19) is what will close it.
		for _, m := range o.msgs {
			switch js := o.jobs[m.id]; {
			case len(js) != 1:
				suspects[m.id] = fmt.Sprintf("%d job rows: %v", len(js), js)
			case js[0].state != "completed":
				suspects[m.id] = fmt.Sprintf("job %s after %s of settling", js[0], riverSettle)
			}
		}
		known := map[string]bool{}
		for _, m := range o.msgs {
			known[m.id] = true
		}
		for id := range o.jobs {
			if !known[id] {
				suspects[id] = "a job for a message never sent"
			}
		}
	} else {
		// (3, stores) Exactly one successful run per message.
		for _, id := range dups {
			suspects[id] = fmt.Sprintf("callback succeeded %d times", len(o.shared.runs.times(id)))
		}
	}

	unacked, lateAnswers := 0, 0
	for _, m := range o.msgs {
		if !m.acked {
			unacked++
		}
		for _, a := range m.attempts {
			if late(a) {
				lateAnswers++
			}
		}
	}
	assert.Zero(t, unacked, "messages never acknowledged 2xx")
	assert.Zero(t, lateAnswers, "answers at or past %s (or the client's %s timeout)", svixWait, clientTimeout)
	assert.Empty(t, missing, "messages whose callback never succeeded")
	if o.mode.river {
		assert.True(t, allCompleted(o.jobs, o.msgs), "every message has exactly one job, completed within %s", riverSettle)
	} else {
		assert.Empty(t, dups, "messages whose callback succeeded more than once")
	}
	if len(suspects) == 0 {
		return
	}
	byID := map[string]*message{}
	for _, m := range o.msgs {
		byID[m.id] = m
	}
	ids := make([]string, 0, len(suspects))
	for id := range suspects {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	const shown = 10
	for i, id := range ids {
		if i == shown {
			t.Logf("... and %d more", len(ids)-shown)
			break
		}
		var runs []string
		for _, r := range o.shared.runs.times(id) {
			runs = append(runs, r.Sub(o.begin).Round(time.Millisecond).String())
		}
		history := ""
		if m := byID[id]; m != nil {
			history = m.history()
		}
		t.Logf("message %s: %s; successful runs at %v; deliveries:%s", id, suspects[id], runs, history)
	}
	var b strings.Builder
	for _, f := range o.faults {
		fmt.Fprintf(&b, "\n\t%s", f)
	}
	t.Logf("fault timeline (seed %d):%s", o.cfg.seed, b.String())
}

// late reports whether a broke the promise: answered at or past Svix's 15
// seconds, or not at all within the client's timeout.
func late(a attempt) bool {
	return a.took >= svixWait || (a.status == 0 && strings.Contains(a.err, "Timeout"))
}

// runCounts returns the messages whose callback never succeeded, those
// whose callback succeeded more than once, and the runs past the first.
func (o *outcome) runCounts() (missing, dups []string, extra int) {
	for _, m := range o.msgs {
		switch n := len(o.shared.runs.times(m.id)); {
		case n == 0:
			missing = append(missing, m.id)
		case n > 1:
			dups = append(dups, m.id)
			extra += n - 1
		}
	}
	return missing, dups, extra
}

// claimsFreed counts the messages that were answered 409 (another claim
// held them) and then ran, and the longest wait from the first 409 to the
// run: the claims a lost answer or a late grant left behind, then freed
// by a late Release or the end of their lease.
func (o *outcome) claimsFreed() (n int, longest time.Duration) {
	for _, m := range o.msgs {
		runs := o.shared.runs.times(m.id)
		if len(runs) == 0 {
			continue
		}
		for _, a := range m.attempts {
			if a.status != http.StatusConflict {
				continue
			}
			if first409 := o.begin.Add(a.at); runs[0].After(first409) {
				n++
				longest = max(longest, runs[0].Sub(first409))
			}
			break
		}
	}
	return n, longest
}

// percentile returns the p-th percentile of sorted durations.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p+0.999999) - 1
	i = min(max(i, 0), len(sorted)-1)
	return sorted[i].Round(time.Millisecond)
}
