package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nectarhooks/nectarhooks/nectarhookstest"
)

// The kinds of fault the scheduler applies to a replica's database link.
const (
	faultFreeze      = "freeze"           // silence both ways, then heal
	faultLostReplies = "lost-replies+cut" // the server works, its answer is lost, then a cut
	faultCut         = "cut"              // every connection closed now
	faultReset       = "reset"            // every connection reset now
	faultLatency     = "latency"          // every chunk delayed, for a while
	faultSlice       = "slice"            // writes of a few bytes, for a while
)

var (
	allFaults     = []string{faultFreeze, faultLostReplies, faultCut, faultReset, faultLatency, faultSlice}
	instantFaults = []string{faultCut, faultReset}
)

// faultEvent is one fault applied, for the report and for the timeline
// printed when an invariant fails.
type faultEvent struct {
	at      time.Duration // since the run began
	replica int
	kind    string
	detail  string // its parameters
}

func (f faultEvent) String() string {
	s := fmt.Sprintf("%8s r%d %s", f.at.Round(time.Millisecond), f.replica, f.kind)
	if f.detail != "" {
		s += " " + f.detail
	}
	return s
}

// chaos applies random faults to the proxies until its context ends.
type chaos struct {
	proxies []*nectarhookstest.FaultProxy
	rng     *rand.Rand // the scheduler's alone, so that a seed replays the faults
	begin   time.Time
	// busy marks the replicas with a timed fault in progress: they get only
	// cuts and resets until it heals, since a second timed fault would
	// heal the first one early (Thaw ends every freeze) or be healed by it.
	busy []atomic.Bool
	wg   sync.WaitGroup

	mu     sync.Mutex
	events []faultEvent
}

func newChaos(proxies []*nectarhookstest.FaultProxy, seed uint64, begin time.Time) *chaos {
	return &chaos{proxies: proxies, rng: rand.New(rand.NewPCG(seed, 0xc4a05)), begin: begin,
		busy: make([]atomic.Bool, len(proxies))}
}

// between returns a random duration in [lo, hi].
func between(rng *rand.Rand, lo, hi time.Duration) time.Duration {
	return lo + time.Duration(rng.Int64N(int64(hi-lo)+1))
}

// run applies a fault every 300 ms to 1.5 s until ctx ends, then heals every
// proxy and returns once every timed fault has ended.
func (c *chaos) run(ctx context.Context) {
	defer c.healAll()
	defer c.wg.Wait()
	for {
		t := time.NewTimer(between(c.rng, 300*time.Millisecond, 1500*time.Millisecond))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		r := c.rng.IntN(len(c.proxies))
		kinds := allFaults
		if c.busy[r].Load() {
			kinds = instantFaults
		}
		c.apply(ctx, r, kinds[c.rng.IntN(len(kinds))])
	}
}

// apply starts one fault on replica r. Its parameters are drawn here, on
// the scheduler's goroutine, in a fixed order, so that a seed replays them.
func (c *chaos) apply(ctx context.Context, r int, kind string) {
	p := c.proxies[r]
	switch kind {
	case faultFreeze:
		d := between(c.rng, 500*time.Millisecond, 4*time.Second)
		c.record(r, kind, "for "+d.String())
		p.Freeze()
		c.timed(ctx, r, d, p.Thaw)
	case faultLostReplies:
		// The statements sent meanwhile reach the server and run; their
		// answers are held, then dropped by the cut: the client cannot know
		// whether its claim, completion or insert happened.
		d := between(c.rng, 200*time.Millisecond, time.Second)
		c.record(r, kind, "cut after "+d.String())
		p.FreezeReplies()
		// Cut before Thaw: thawing first would deliver the held answers.
		c.timed(ctx, r, d, func() { p.Cut(); p.Thaw() })
	case faultCut:
		c.record(r, kind, "")
		p.Cut()
	case faultReset:
		c.record(r, kind, "")
		p.Reset()
	case faultLatency:
		lat := between(c.rng, 50*time.Millisecond, 400*time.Millisecond)
		d := between(c.rng, time.Second, 4*time.Second)
		c.record(r, kind, fmt.Sprintf("%s for %s", lat, d))
		p.SetLatency(lat)
		c.timed(ctx, r, d, func() { p.SetLatency(0) })
	case faultSlice:
		n := 1 + c.rng.IntN(16)
		d := between(c.rng, time.Second, 3*time.Second)
		c.record(r, kind, fmt.Sprintf("%d bytes for %s", n, d))
		p.SetSlice(n)
		c.timed(ctx, r, d, func() { p.SetSlice(0) })
	}
}

// timed marks r busy and heals it after d, or as soon as ctx ends.
func (c *chaos) timed(ctx context.Context, r int, d time.Duration, heal func()) {
	c.busy[r].Store(true)
	c.wg.Go(func() {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
		}
		heal()
		c.busy[r].Store(false)
	})
}

// healAll leaves every link as it was before the run, whatever fault was
// last applied.
func (c *chaos) healAll() {
	for _, p := range c.proxies {
		p.Thaw()
		p.SetLatency(0)
		p.SetSlice(0)
	}
}

func (c *chaos) record(r int, kind, detail string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.events = append(c.events, faultEvent{at: time.Since(c.begin), replica: r, kind: kind, detail: detail})
}

// timeline returns the faults applied, in order; call it after run.
func (c *chaos) timeline() []faultEvent {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]faultEvent(nil), c.events...)
}

// byKind counts the faults applied by kind, as "freeze=12 cut=7 ...".
func byKind(events []faultEvent) string {
	counts := map[string]int{}
	for _, e := range events {
		counts[e.kind]++
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, counts[k])
	}
	return fmt.Sprintf("%d (%s)", len(events), strings.Join(parts, " "))
}
