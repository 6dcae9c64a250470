package chaos

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nectarhooks/nectarhooks"
)

// runLog records the callbacks' successful runs by message id: the effects
// a service's database would hold, shared by every replica.
type runLog struct {
	mu   sync.Mutex
	runs map[string][]time.Time // when each successful run ended
}

func newRunLog() *runLog { return &runLog{runs: map[string][]time.Time{}} }

// callback is every replica's callback: a little work, then success.
func (l *runLog) callback(ctx context.Context) error {
	msg, ok := nectarhooks.MessageFromContext(ctx)
	if !ok {
		return errors.New("chaos: no Message in the callback's context")
	}
	// Work of varying length, so that deliveries of one message overlap
	// in varying ways.
	time.Sleep(rand.N(20 * time.Millisecond))
	l.mu.Lock()
	l.runs[msg.ID] = append(l.runs[msg.ID], time.Now())
	l.mu.Unlock()
	return nil
}

// register sets the callback for every event type on h, so that no
// message is acknowledged without one.
func (l *runLog) register(h *nectarhooks.Handler) {
	h.OnConnectionCreated(func(ctx context.Context, _ *nectarhooks.ConnectionCreated) error { return l.callback(ctx) })
	h.OnConnectionUpdated(func(ctx context.Context, _ *nectarhooks.ConnectionUpdated) error { return l.callback(ctx) })
	h.OnConnectionValidated(func(ctx context.Context, _ *nectarhooks.ConnectionValidated) error { return l.callback(ctx) })
	h.OnDocumentCreated(func(ctx context.Context, _ *nectarhooks.DocumentCreated) error { return l.callback(ctx) })
	h.OnDocumentUpdated(func(ctx context.Context, _ *nectarhooks.DocumentUpdated) error { return l.callback(ctx) })
	h.OnUnhandled(func(context.Context, nectarhooks.Message) error {
		return errors.New("chaos: a message of an event type with no callback")
	})
}

// times returns when id's successful runs ended.
func (l *runLog) times(id string) []time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]time.Time(nil), l.runs[id]...)
}

// len returns how many message ids ran.
func (l *runLog) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.runs)
}

// observer counts the Handlers' outcomes, as a metrics pipeline would: the
// answers of deliveries (StageReceive) and the callback runs
// (StageProcess), with the causes of the refusals.
type observer struct {
	mu       sync.Mutex
	received map[string]int // outcome of StageReceive, with the cause of 503s
	process  map[string]int // outcome of StageProcess
}

func newObserver() *observer {
	return &observer{received: map[string]int{}, process: map[string]int{}}
}

func (o *observer) Start(ctx context.Context, _ nectarhooks.Delivery) context.Context { return ctx }

func (o *observer) End(_ context.Context, d nectarhooks.Delivery) {
	key := d.Outcome.String()
	if d.Outcome == nectarhooks.OutcomeUnavailable {
		key += "/" + cause(d.Err)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if d.Stage == nectarhooks.StageReceive {
		o.received[key]++
	} else {
		o.process[key]++
	}
}

// cause names the kind of a 503's error. The Handler wraps every error of
// a Queue's Enqueue in ErrQueueFull, so riverqueue's own refusals (no
// insert became free in time, too many waiting) are told from failed
// inserts by their text: this is a report, not an assertion.
func cause(err error) string {
	msg := err.Error()
	switch {
	case errors.Is(err, nectarhooks.ErrStoreUnavailable) &&
		(errors.Is(err, context.DeadlineExceeded) || strings.Contains(msg, "WithStoreTimeout")):
		return "claim-deadline"
	case errors.Is(err, nectarhooks.ErrStoreUnavailable):
		return "claim-error"
	case strings.Contains(msg, "no insert slot"):
		return "queue-no-slot"
	case strings.Contains(msg, "too many deliveries waiting"):
		return "queue-backlog"
	case errors.Is(err, nectarhooks.ErrQueueFull) && errors.Is(err, context.DeadlineExceeded):
		return "insert-deadline"
	case errors.Is(err, nectarhooks.ErrQueueFull):
		return "insert-error"
	}
	return "other"
}

func (o *observer) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	s := "answers " + counts(o.received)
	if len(o.process) > 0 {
		s += "; callback runs " + counts(o.process)
	}
	return s
}

// logCounter is a slog.Handler that counts the records at warning level and
// above by message, and keeps the first of each, so that the report says
// how often a replica failed to settle a claim, or River to complete a job,
// without pages of logs.
type logCounter struct {
	mu     sync.Mutex
	counts map[string]int
	first  map[string]string
}

func newLogCounter() *logCounter {
	return &logCounter{counts: map[string]int{}, first: map[string]string{}}
}

func (c *logCounter) logger() *slog.Logger { return slog.New(c) }

func (c *logCounter) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }

func (c *logCounter) Handle(_ context.Context, r slog.Record) error {
	c.add(r.Level.String()+" "+r.Message, func() string {
		var attrs []string
		r.Attrs(func(a slog.Attr) bool {
			attrs = append(attrs, a.String())
			return true
		})
		return strings.Join(attrs, " ")
	})
	return nil
}

// add counts a record under key; first describes it, and is called for
// the first record of key alone.
func (c *logCounter) add(key string, first func() string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.counts[key]++
	if _, ok := c.first[key]; !ok {
		c.first[key] = first()
	}
}

// WithAttrs and WithGroup drop what they are given: the counts key on the
// message alone.
func (c *logCounter) WithAttrs([]slog.Attr) slog.Handler { return c }
func (c *logCounter) WithGroup(string) slog.Handler      { return c }

// lines returns one line per message logged: its count, and the
// attributes of its first record, cut short.
func (c *logCounter) lines() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	keys := make([]string, 0, len(c.counts))
	for k := range c.counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]string, len(keys))
	for i, k := range keys {
		first := c.first[k]
		if len(first) > 300 {
			first = first[:300] + "..."
		}
		out[i] = fmt.Sprintf("%5d× %s [first: %s]", c.counts[k], k, first)
	}
	return out
}

// counts formats a map of counts, sorted by key.
func counts[K comparable](m map[K]int) string {
	parts := make([]string, 0, len(m))
	for k, v := range m {
		parts = append(parts, fmt.Sprintf("%v=%d", k, v))
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

// redisLogs receives go-redis's own log (redis.SetLogger, which is global:
// the pool's dial failures, for one) while a goredisstore mode runs, so
// that it is counted in the report rather than printed on stderr.
var redisLogs atomic.Pointer[logCounter]

// redisLogger is go-redis's logger: it counts each record by its format in
// redisLogs, and drops it when no mode listens.
type redisLogger struct{}

func (redisLogger) Printf(_ context.Context, format string, v ...any) {
	if c := redisLogs.Load(); c != nil {
		c.add("go-redis "+format, func() string { return fmt.Sprintf(format, v...) })
	}
}
