package nectarhooks

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// These tests are internal to reach MemoryStore's clock and record slice.
// They cannot use nectarhookstest, which imports this package, so they sign
// with Verifier.Sign.

var idemSecret = "whsec_" + base64.StdEncoding.EncodeToString([]byte("idempotency-tests-key-24"))

var idemT0 = time.Date(2024, 9, 6, 0, 15, 43, 0, time.UTC)

// idemClock is a settable clock for MemoryStore.now.
type idemClock struct{ t time.Time }

func (c *idemClock) now() time.Time          { return c.t }
func (c *idemClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func idemStore(max int, ttl time.Duration, c *idemClock) *MemoryStore {
	s := NewMemoryStore(max, ttl)
	s.now = c.now
	return s
}

// idemOp is one step on a MemoryStore, with what it must report.
type idemOp struct {
	op      string // claim, complete, release, forget, advance
	id      string
	d       time.Duration // for advance; the lease for claim (default an hour)
	holder  string        // names the claim's token for later steps (default id)
	want    Claim         // for claim
	wantLen int           // checked after the step when not -1
}

func idemRun(t *testing.T, s *MemoryStore, c *idemClock, ops []idemOp) {
	t.Helper()
	ctx := context.Background()
	tokens := map[string]string{} // each holder's acquired claim
	seen := map[string]bool{}     // every token handed out
	for i, op := range ops {
		what := fmt.Sprintf("step %d: %s %s", i, op.op, op.id)
		holder := op.holder
		if holder == "" {
			holder = op.id
		}
		switch op.op {
		case "claim":
			lease := op.d
			if lease == 0 {
				lease = time.Hour
			}
			got, token, err := s.Claim(ctx, op.id, lease)
			require.NoError(t, err, what)
			require.Equal(t, op.want, got, what)
			if got != ClaimAcquired {
				require.Empty(t, token, what)
				break
			}
			require.NotEmpty(t, token, what)
			require.False(t, seen[token], "%s: token %q handed out twice", what, token)
			seen[token] = true
			tokens[holder] = token
		case "complete":
			require.NoError(t, s.Complete(ctx, op.id, tokens[holder]), what)
		case "release":
			require.NoError(t, s.Release(ctx, op.id, tokens[holder]), what)
		case "forget":
			require.NoError(t, s.Forget(ctx, op.id), what)
		case "advance":
			c.advance(op.d)
		default:
			t.Fatalf("%s: unknown op", what)
		}
		if op.wantLen >= 0 {
			require.Equal(t, op.wantLen, s.Len(), what+": Len")
		}
	}
}

func claim(id string, want Claim, n int) idemOp {
	return idemOp{op: "claim", id: id, want: want, wantLen: n}
}

// claimBy is a claim for lease whose token is holder's.
func claimBy(holder, id string, lease time.Duration, want Claim, n int) idemOp {
	return idemOp{op: "claim", id: id, d: lease, holder: holder, want: want, wantLen: n}
}
func completeBy(holder, id string, n int) idemOp {
	return idemOp{op: "complete", id: id, holder: holder, wantLen: n}
}
func releaseBy(holder, id string, n int) idemOp {
	return idemOp{op: "release", id: id, holder: holder, wantLen: n}
}
func complete(id string, n int) idemOp      { return idemOp{op: "complete", id: id, wantLen: n} }
func release(id string, n int) idemOp       { return idemOp{op: "release", id: id, wantLen: n} }
func forget(id string, n int) idemOp        { return idemOp{op: "forget", id: id, wantLen: n} }
func advance(d time.Duration, n int) idemOp { return idemOp{op: "advance", d: d, wantLen: n} }

func TestMemoryStoreLifecycle(t *testing.T) {
	tests := []struct {
		name string
		max  int
		ttl  time.Duration
		ops  []idemOp
	}{
		{name: "new id is acquired, then in flight", ops: []idemOp{
			claim("a", ClaimAcquired, 1), claim("a", ClaimInFlight, 1), claim("b", ClaimAcquired, 2),
		}},
		{name: "completed id is done", ops: []idemOp{
			claim("a", ClaimAcquired, 1), complete("a", 1), claim("a", ClaimDone, 1), claim("a", ClaimDone, 1),
		}},
		{name: "released id is acquired again", ops: []idemOp{
			claim("a", ClaimAcquired, 1), release("a", 0), claim("a", ClaimAcquired, 1), complete("a", 1), claim("a", ClaimDone, 1),
		}},
		{name: "release of a done id keeps it", ops: []idemOp{
			claim("a", ClaimAcquired, 1), complete("a", 1), release("a", 1), claim("a", ClaimDone, 1),
		}},
		{name: "release of an unknown id does nothing", ops: []idemOp{
			release("x", 0), claim("x", ClaimAcquired, 1),
		}},
		{name: "complete without a claim records done", ops: []idemOp{
			complete("a", 1), claim("a", ClaimDone, 1),
		}},
		{name: "forget a done id allows a deliberate resend", ops: []idemOp{
			claim("a", ClaimAcquired, 1), complete("a", 1), forget("a", 0), claim("a", ClaimAcquired, 1), complete("a", 1), claim("a", ClaimDone, 1),
		}},
		{name: "forget an in-flight id", ops: []idemOp{
			claim("a", ClaimAcquired, 1), forget("a", 0), claim("a", ClaimAcquired, 1),
		}},
		{name: "forget an unknown id does nothing", ops: []idemOp{
			forget("x", 0), complete("a", 1), forget("x", 1), claim("a", ClaimDone, 1),
		}},
		{name: "done until the TTL, forgotten at it", ttl: time.Hour, ops: []idemOp{
			claim("a", ClaimAcquired, 1), complete("a", 1),
			advance(time.Hour-time.Nanosecond, 1), claim("a", ClaimDone, 1),
			advance(time.Nanosecond, 0), claim("a", ClaimAcquired, 1),
		}},
		{name: "re-completion keeps the first time", ttl: time.Hour, ops: []idemOp{
			claim("a", ClaimAcquired, 1), complete("a", 1),
			advance(30*time.Minute, 1), complete("a", 1),
			advance(30*time.Minute, 0), claim("a", ClaimAcquired, 1),
		}},
		{name: "entries expire in completion order", ttl: time.Hour, ops: []idemOp{
			complete("a", 1), advance(20*time.Minute, 1), complete("b", 2), advance(20*time.Minute, 2), complete("c", 3),
			advance(20*time.Minute, 2), claim("a", ClaimAcquired, 3), claim("b", ClaimDone, 3),
			advance(20*time.Minute, 2), claim("b", ClaimAcquired, 3), claim("c", ClaimDone, 3),
		}},
		// idemRun claims for an hour: within it the claim holds past the
		// done TTL, after it the next claim takes the message over.
		{name: "in flight holds for its lease, not the TTL", ttl: time.Minute, ops: []idemOp{
			claim("a", ClaimAcquired, 1), advance(59*time.Minute, 1), claim("a", ClaimInFlight, 1),
			advance(time.Minute, 0), claim("a", ClaimAcquired, 1),
			complete("a", 1), advance(time.Minute, 0), claim("a", ClaimAcquired, 1),
		}},
		// An expired claim is forgotten by itself, with no Claim of its id
		// to take it over: Len, and the map, must not keep it.
		{name: "expired claims leave the store", ops: []idemOp{
			claimBy("A", "a", 10*time.Second, ClaimAcquired, 1), claimBy("B", "b", 20*time.Second, ClaimAcquired, 2),
			complete("c", 3), advance(10*time.Second-time.Nanosecond, 3), claim("a", ClaimInFlight, 3),
			advance(time.Nanosecond, 2), advance(10*time.Second, 1), claim("c", ClaimDone, 1),
		}},
		{name: "leases of different lengths expire in lease order", ops: []idemOp{
			claimBy("A", "long", time.Minute, ClaimAcquired, 1), claimBy("B", "short", time.Second, ClaimAcquired, 2),
			advance(time.Second, 1), claim("long", ClaimInFlight, 1), claimBy("C", "short", time.Minute, ClaimAcquired, 2),
			advance(time.Minute, 0),
		}},
		{name: "a stale release does not free the claim that took over", ops: []idemOp{
			claimBy("A", "a", time.Second, ClaimAcquired, 1), advance(time.Second, 0),
			claimBy("B", "a", time.Minute, ClaimAcquired, 1), releaseBy("A", "a", 1), claim("a", ClaimInFlight, 1),
			releaseBy("B", "a", 0), claim("a", ClaimAcquired, 1),
		}},
		{name: "a stale complete does not end the claim that took over", ops: []idemOp{
			claimBy("A", "a", time.Second, ClaimAcquired, 1), advance(time.Second, 0),
			claimBy("B", "a", time.Minute, ClaimAcquired, 1), completeBy("A", "a", 1), claim("a", ClaimInFlight, 1),
			releaseBy("B", "a", 0), claim("a", ClaimAcquired, 1),
		}},
		{name: "a late complete records done when nobody took over", ops: []idemOp{
			claimBy("A", "a", time.Second, ClaimAcquired, 1), advance(time.Minute, 0),
			completeBy("A", "a", 1), claim("a", ClaimDone, 1),
		}},
		{name: "a late complete records done over a newer claim that expired too", ops: []idemOp{
			claimBy("A", "a", time.Second, ClaimAcquired, 1), advance(time.Second, 0),
			claimBy("B", "a", time.Second, ClaimAcquired, 1), advance(time.Second, 0),
			completeBy("A", "a", 1), claim("a", ClaimDone, 1), releaseBy("B", "a", 1), claim("a", ClaimDone, 1),
		}},
		{name: "a late complete records done over a released newer claim", ops: []idemOp{
			claimBy("A", "a", time.Second, ClaimAcquired, 1), advance(time.Second, 0),
			claimBy("B", "a", time.Minute, ClaimAcquired, 1), releaseBy("B", "a", 0),
			completeBy("A", "a", 1), claim("a", ClaimDone, 1),
		}},
		{name: "release by the holder after its lease frees the id", ops: []idemOp{
			claimBy("A", "a", time.Second, ClaimAcquired, 1), advance(time.Second, 0),
			releaseBy("A", "a", 0), claim("a", ClaimAcquired, 1),
		}},
		{name: "a release with a made-up token does nothing", ops: []idemOp{
			claim("a", ClaimAcquired, 1), releaseBy("nobody", "a", 1), claim("a", ClaimInFlight, 1),
			completeBy("nobody", "a", 1), claim("a", ClaimInFlight, 1),
		}},
		// The race the old store had (issue 10): Forget of a message in
		// flight let a second delivery claim it, and the first delivery's
		// Release, which named only the id, then dropped the second's
		// claim, so a third delivery ran alongside the second.
		{name: "release after forget does not free the newer claim", ops: []idemOp{
			claimBy("first", "a", time.Minute, ClaimAcquired, 1), forget("a", 0),
			claimBy("second", "a", time.Minute, ClaimAcquired, 1), releaseBy("first", "a", 1),
			claim("a", ClaimInFlight, 1), completeBy("first", "a", 1), claim("a", ClaimInFlight, 1),
			completeBy("second", "a", 1), claim("a", ClaimDone, 1),
		}},
		{name: "size cap evicts the oldest done", max: 3, ops: []idemOp{
			complete("a", 1), complete("b", 2), complete("c", 3), claim("a", ClaimDone, 3),
			complete("d", 3), claim("b", ClaimDone, 3), claim("c", ClaimDone, 3), claim("d", ClaimDone, 3),
			claim("a", ClaimAcquired, 4),
		}},
		{name: "size cap never evicts in flight", max: 2, ops: []idemOp{
			claim("x", ClaimAcquired, 1), claim("y", ClaimAcquired, 2),
			complete("a", 3), complete("b", 4), complete("c", 4), complete("d", 4), complete("e", 4),
			claim("x", ClaimInFlight, 4), claim("y", ClaimInFlight, 4),
			claim("c", ClaimAcquired, 5), claim("d", ClaimDone, 5),
		}},
		// A forgotten id leaves its completion record behind; it must
		// not count towards the cap, or live entries go early.
		{name: "forgotten ids do not count towards the cap", max: 2, ops: []idemOp{
			complete("a", 1), complete("b", 2), forget("b", 1), complete("c", 2),
			claim("a", ClaimDone, 2), claim("c", ClaimDone, 2), claim("b", ClaimAcquired, 3),
		}},
		// With a clock that does not move, the stale record of a and
		// the current one have the same time; only the current one may
		// evict it.
		{name: "re-completed id keeps its place with a still clock", max: 2, ops: []idemOp{
			complete("a", 1), forget("a", 0), claim("a", ClaimAcquired, 1), complete("a", 1),
			complete("b", 2), claim("a", ClaimDone, 2), claim("b", ClaimDone, 2),
			complete("c", 2), claim("a", ClaimAcquired, 3), claim("b", ClaimDone, 3),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &idemClock{t: idemT0}
			s := idemStore(tt.max, tt.ttl, c)
			idemRun(t, s, c, tt.ops)
		})
	}
}

func TestMemoryStoreDefaults(t *testing.T) {
	tests := []struct {
		name     string
		max      int
		ttl      time.Duration
		wantMax  int
		wantTTL  time.Duration
		wantText string
	}{
		{"zero takes the defaults", 0, 0, DefaultMemoryStoreSize, DefaultIdempotencyTTL, "MemoryStore(max 100000, ttl 48h0m0s)"},
		{"negative takes the defaults", -1, -time.Second, DefaultMemoryStoreSize, DefaultIdempotencyTTL, "MemoryStore(max 100000, ttl 48h0m0s)"},
		{"explicit values are kept", 7, time.Minute, 7, time.Minute, "MemoryStore(max 7, ttl 1m0s)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewMemoryStore(tt.max, tt.ttl)
			assert.Equal(t, tt.wantMax, s.max)
			assert.Equal(t, tt.wantTTL, s.ttl)
			assert.Equal(t, tt.wantText, s.String())
			assert.Equal(t, 0, s.Len())
			var _ IdempotencyStore = s
		})
	}
}

// TestMemoryStoreCompaction checks that the record slice stays bounded
// however many messages pass through, with or without Forget.
func TestMemoryStoreCompaction(t *testing.T) {
	const n = 20_000
	tests := []struct {
		name    string
		max     int
		ttl     time.Duration
		fill    func(s *MemoryStore, c *idemClock)
		wantLen int
		check   func(t *testing.T, s *MemoryStore)
	}{
		{
			name: "size cap", max: 8,
			fill: func(s *MemoryStore, c *idemClock) {
				for i := range n {
					idemMust(s.Complete(context.Background(), strconv.Itoa(i), ""))
				}
			},
			wantLen: 8,
			check: func(t *testing.T, s *MemoryStore) {
				for i := n - 8; i < n; i++ {
					got, _, err := s.Claim(context.Background(), strconv.Itoa(i), time.Hour)
					require.NoError(t, err)
					assert.Equal(t, ClaimDone, got, "the newest %d are kept", 8)
				}
			},
		},
		{
			name: "TTL", max: 1 << 20, ttl: time.Minute,
			fill: func(s *MemoryStore, c *idemClock) {
				for i := range n {
					idemMust(s.Complete(context.Background(), strconv.Itoa(i), ""))
					c.advance(time.Second)
				}
			},
			wantLen: 59,
		},
		{
			// One old entry pins the head of the slice; the stale
			// records that Forget leaves behind it must not pile up.
			name: "forget behind a long-lived entry", max: 100,
			fill: func(s *MemoryStore, c *idemClock) {
				ctx := context.Background()
				idemMust(s.Complete(ctx, "anchor", ""))
				for i := range n {
					id := strconv.Itoa(i)
					idemMust(s.Complete(ctx, id, ""))
					idemMust(s.Forget(ctx, id))
				}
			},
			wantLen: 1,
			check: func(t *testing.T, s *MemoryStore) {
				got, _, err := s.Claim(context.Background(), "anchor", time.Hour)
				require.NoError(t, err)
				assert.Equal(t, ClaimDone, got)
			},
		},
		{
			// Claims settled long before their hour-long lease ends leave
			// lease records behind; they must not pile up until then.
			name: "claims settled within a long lease", max: 1 << 20,
			fill: func(s *MemoryStore, c *idemClock) {
				ctx := context.Background()
				for i := range n {
					id := strconv.Itoa(i)
					_, token, err := s.Claim(ctx, id, time.Hour)
					idemMust(err)
					if i%2 == 0 {
						idemMust(s.Release(ctx, id, token))
					} else {
						idemMust(s.Complete(ctx, id, token))
					}
				}
				for i := range 10 { // and a few still in flight
					_, _, err := s.Claim(ctx, "held-"+strconv.Itoa(i), time.Hour)
					idemMust(err)
				}
			},
			wantLen: n/2 + 10,
			check: func(t *testing.T, s *MemoryStore) {
				got, _, err := s.Claim(context.Background(), "held-3", time.Hour)
				require.NoError(t, err)
				assert.Equal(t, ClaimInFlight, got, "the claims in flight keep their lease")
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &idemClock{t: idemT0}
			s := idemStore(tt.max, tt.ttl, c)
			tt.fill(s, c)
			require.Equal(t, tt.wantLen, s.Len())
			s.mu.Lock()
			records, capacity := len(s.done)-s.head, cap(s.done)
			s.mu.Unlock()
			s.mu.Lock()
			leases, inFlight := len(s.leases), len(s.entries)-s.live
			s.mu.Unlock()
			assert.LessOrEqual(t, leases, inFlight+max(inFlight, 1024)+1, "lease records kept, %d claims in flight", inFlight)
			assert.LessOrEqual(t, records, tt.wantLen+1025, "records kept")
			assert.LessOrEqual(t, capacity, 4*(tt.wantLen+1025), "capacity of the record slice")
			if tt.check != nil {
				tt.check(t, s)
			}
		})
	}
}

func idemMust(err error) {
	if err != nil {
		panic(err)
	}
}

// TestMemoryStoreConcurrent has goroutines race for the same ids: at most
// one holds an id at a time, an id completes once, and each completed id
// is done afterwards. Run it with -race.
func TestMemoryStoreConcurrent(t *testing.T) {
	const workers, ids = 8, 300
	tests := []struct {
		name         string
		releaseEvery int // the first holder of every releaseEvery-th id releases it
	}{
		{"complete at once", 0},
		{"release some first", 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewMemoryStore(0, 0)
			ctx := context.Background()
			var holders, acquired, completed [ids]atomic.Int32
			var overlaps atomic.Int32
			stop := make(chan struct{})
			var lenCalls sync.WaitGroup
			lenCalls.Add(1)
			go func() { // readers and forgetters of other ids race with the claims
				defer lenCalls.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					_ = s.Len()
					idemMust(s.Forget(ctx, fmt.Sprintf("other-%d", i)))
				}
			}()
			var wg sync.WaitGroup
			for w := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for k := range ids {
						i := (k*7 + w*37) % ids
						id := strconv.Itoa(i)
						got, token, err := s.Claim(ctx, id, time.Hour)
						if err != nil || got != ClaimAcquired {
							continue
						}
						if !holders[i].CompareAndSwap(0, 1) {
							overlaps.Add(1)
						}
						first := acquired[i].Add(1) == 1
						holders[i].Store(0)
						if first && tt.releaseEvery > 0 && i%tt.releaseEvery == 0 {
							idemMust(s.Release(ctx, id, token))
							continue
						}
						completed[i].Add(1)
						idemMust(s.Complete(ctx, id, token))
					}
				}()
			}
			wg.Wait()
			close(stop)
			lenCalls.Wait()

			assert.Zero(t, overlaps.Load(), "ids held by two deliveries at once")
			for i := range ids {
				require.LessOrEqual(t, completed[i].Load(), int32(1), "id %d completed more than once", i)
				got, _, err := s.Claim(ctx, strconv.Itoa(i), time.Hour)
				require.NoError(t, err)
				if completed[i].Load() == 1 {
					assert.Equal(t, ClaimDone, got, "id %d", i)
				} else {
					assert.Equal(t, ClaimAcquired, got, "id %d was released by its only holder", i)
				}
			}
		})
	}
}

// --- the Handler with WithIdempotency ---

var idemPayload = func() []byte {
	b, err := os.ReadFile("testdata/document.created.v2.json")
	if err != nil {
		panic(err)
	}
	return b
}()

// idemLog records log records, to check what the Handler logged.
type idemLog struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (l *idemLog) Enabled(context.Context, slog.Level) bool { return true }
func (l *idemLog) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *idemLog) WithGroup(string) slog.Handler            { return l }
func (l *idemLog) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recs = append(l.recs, r.Clone())
	return nil
}

// errorsFor returns how many error-level records name message id.
func (l *idemLog) errorsFor(id string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, r := range l.recs {
		if r.Level < slog.LevelError {
			continue
		}
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "message_id" && a.Value.String() == id {
				n++
			}
			return true
		})
	}
	return n
}

type idemRefusal struct {
	status int
	err    error
	msgID  string
}

// idemRig is a Handler with a scripted document.created.v2 callback: the
// n-th run does script[n] (the last step repeats).
type idemRig struct {
	h      *Handler
	store  IdempotencyStore
	log    *idemLog
	script []string

	mu       sync.Mutex
	runs     int
	running  map[string]int // runs in progress, by message id
	overlap  bool           // one id ran twice at once
	refusals []idemRefusal

	started chan string   // receives the id of each run as it starts, if not nil
	gate    chan struct{} // "block" steps wait for it to close
}

func newIdemRig(t *testing.T, store IdempotencyStore, script []string, opts ...Option) *idemRig {
	t.Helper()
	r := &idemRig{store: store, log: &idemLog{}, script: script, gate: make(chan struct{}), running: map[string]int{}}
	opts = append([]Option{
		WithIdempotency(store),
		WithLogger(slog.New(r.log)),
		WithErrorHandler(func(ctx context.Context, status int, err error) {
			m, _ := MessageFromContext(ctx)
			r.mu.Lock()
			defer r.mu.Unlock()
			r.refusals = append(r.refusals, idemRefusal{status: status, err: err, msgID: m.ID})
		}),
	}, opts...)
	h, err := NewHandler(idemSecret, opts...)
	require.NoError(t, err)
	h.OnDocumentCreated(r.callback)
	r.h = h
	return r
}

func (r *idemRig) callback(ctx context.Context, _ *DocumentCreated) error {
	m, _ := MessageFromContext(ctx)
	r.mu.Lock()
	step := r.script[min(r.runs, len(r.script)-1)]
	r.runs++
	r.running[m.ID]++
	if r.running[m.ID] > 1 {
		r.overlap = true
	}
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.running[m.ID]--
		r.mu.Unlock()
	}()
	if r.started != nil {
		r.started <- m.ID
	}
	switch step {
	case "ok":
		return nil
	case "fail":
		return errors.New("downstream said no")
	case "panic":
		panic("callback bug")
	case "overrun": // honours its context: returns once the deadline passes
		<-ctx.Done()
		return ctx.Err()
	case "block":
		<-r.gate
		return nil
	}
	panic("unknown step " + step)
}

func (r *idemRig) counts() (runs int, overlap bool, refusals []idemRefusal) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.runs, r.overlap, append([]idemRefusal(nil), r.refusals...)
}

// idemEntry is a way in to the Handler; it returns the status the delivery
// was (or, outside net/http, would be) answered with.
type idemEntry struct {
	name    string
	deliver func(h *Handler, id string) int
}

func idemHeader(h *Handler, id string, ts time.Time) http.Header {
	hd := make(http.Header)
	hd.Set("Svix-Id", id)
	hd.Set("Svix-Timestamp", strconv.FormatInt(ts.Unix(), 10))
	hd.Set("Svix-Signature", h.Verifier().Sign(id, ts, idemPayload))
	return hd
}

func idemServe(h *Handler, id string) int {
	req := httptest.NewRequest(http.MethodPost, "/webhooks", bytes.NewReader(idemPayload))
	for k, v := range idemHeader(h, id, time.Now()) {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code
}

var idemEntries = []idemEntry{
	{"ServeHTTP", idemServe},
	{"Dispatch", func(h *Handler, id string) int {
		return StatusCode(h.Dispatch(context.Background(), idemPayload, idemHeader(h, id, time.Now())))
	}},
	{"DispatchVerified", func(h *Handler, id string) int {
		// A stored message, verified long ago: no signature, an old
		// timestamp.
		msg := Message{ID: id, Timestamp: idemT0, Payload: idemPayload}
		return StatusCode(h.DispatchVerified(context.Background(), msg))
	}},
}

func TestIdempotencyHandler(t *testing.T) {
	tests := []struct {
		name       string
		script     []string
		timeout    time.Duration
		deliveries int
		wantStatus []int
		wantRuns   int
		wantErr    []error // what the error handler receives, ServeHTTP only
		wantStored int     // ids the store remembers afterwards
	}{
		{
			name: "success is acknowledged again without running", script: []string{"ok"}, deliveries: 3,
			wantStatus: []int{200, 200, 200}, wantRuns: 1, wantStored: 1,
		},
		{
			name: "failure releases the id so the retry runs", script: []string{"fail", "ok"}, deliveries: 3,
			wantStatus: []int{500, 200, 200}, wantRuns: 2, wantErr: []error{new(CallbackError)}, wantStored: 1,
		},
		{
			name: "panic releases the id so the retry runs", script: []string{"panic", "ok"}, deliveries: 3,
			wantStatus: []int{500, 200, 200}, wantRuns: 2, wantErr: []error{new(PanicError)}, wantStored: 1,
		},
		{
			name: "overrun releases the id so the retry runs", script: []string{"overrun", "ok"}, timeout: 5 * time.Millisecond, deliveries: 3,
			wantStatus: []int{503, 200, 200}, wantRuns: 2, wantErr: []error{ErrCallbackTimeout}, wantStored: 1,
		},
		{
			name: "every failed attempt runs", script: []string{"fail"}, deliveries: 4,
			wantStatus: []int{500, 500, 500, 500}, wantRuns: 4,
			wantErr: []error{new(CallbackError), new(CallbackError), new(CallbackError), new(CallbackError)},
		},
	}
	for _, entry := range idemEntries {
		for _, tt := range tests {
			t.Run(entry.name+"/"+tt.name, func(t *testing.T) {
				var opts []Option
				if tt.timeout > 0 {
					opts = append(opts, WithCallbackTimeout(tt.timeout))
				}
				store := NewMemoryStore(0, 0)
				r := newIdemRig(t, store, tt.script, opts...)
				var got []int
				for range tt.deliveries {
					got = append(got, entry.deliver(r.h, "msg_idem"))
				}
				runs, overlap, refusals := r.counts()
				assert.Equal(t, tt.wantStatus, got, "statuses")
				assert.Equal(t, tt.wantRuns, runs, "callback runs")
				assert.False(t, overlap)
				assert.Equal(t, tt.wantStored, store.Len(), "ids remembered: done ones, as no claim is left behind")
				if entry.name != "ServeHTTP" {
					assert.Empty(t, refusals, "only ServeHTTP calls the error handler")
					return
				}
				require.Len(t, refusals, len(tt.wantErr))
				for i, want := range tt.wantErr {
					assert.Equal(t, tt.wantStatus[i], refusals[i].status)
					assert.Equal(t, "msg_idem", refusals[i].msgID)
					var ce *CallbackError
					require.ErrorAs(t, refusals[i].err, &ce)
					assert.Equal(t, "msg_idem", ce.MessageID)
					switch want := want.(type) {
					case *PanicError:
						assert.ErrorAs(t, refusals[i].err, &want)
					case *CallbackError:
					default:
						assert.ErrorIs(t, refusals[i].err, want)
					}
				}
			})
		}
	}
}

// TestIdempotencyInFlight holds a first delivery inside its callback and
// sends the same message again, by each way in: the second is refused with
// 409 and does not run, and once the first has finished the message is
// acknowledged without running again.
func TestIdempotencyInFlight(t *testing.T) {
	for _, first := range idemEntries {
		for _, second := range idemEntries {
			t.Run(first.name+" then "+second.name, func(t *testing.T) {
				r := newIdemRig(t, NewMemoryStore(0, 0), []string{"block", "ok"})
				r.started = make(chan string, 1)
				firstStatus := make(chan int, 1)
				go func() { firstStatus <- first.deliver(r.h, "msg_slow") }()
				require.Equal(t, "msg_slow", <-r.started)

				assert.Equal(t, http.StatusConflict, second.deliver(r.h, "msg_slow"), "while the first runs")
				assert.Equal(t, http.StatusOK, second.deliver(r.h, "msg_other"), "other messages are not held up")
				require.Equal(t, "msg_other", <-r.started)

				close(r.gate)
				assert.Equal(t, http.StatusOK, <-firstStatus)
				assert.Equal(t, http.StatusOK, second.deliver(r.h, "msg_slow"), "after the first")

				runs, overlap, refusals := r.counts()
				assert.Equal(t, 2, runs, "msg_slow and msg_other once each")
				assert.False(t, overlap, "msg_slow never ran twice at once")
				if second.name == "ServeHTTP" {
					require.Len(t, refusals, 1)
					assert.Equal(t, http.StatusConflict, refusals[0].status)
					assert.ErrorIs(t, refusals[0].err, ErrInFlight)
					assert.Equal(t, "msg_slow", refusals[0].msgID)
				} else {
					assert.Empty(t, refusals)
				}
			})
		}
	}
}

// idemFakeStore is an IdempotencyStore whose methods fail on demand.
type idemFakeStore struct {
	claimErr, completeErr, releaseErr error
	claims, completes, releases       atomic.Int32
}

func (s *idemFakeStore) Claim(context.Context, string, time.Duration) (Claim, string, error) {
	s.claims.Add(1)
	return ClaimAcquired, "t", s.claimErr
}

func (s *idemFakeStore) Complete(context.Context, string, string) error {
	s.completes.Add(1)
	return s.completeErr
}

func (s *idemFakeStore) Release(context.Context, string, string) error {
	s.releases.Add(1)
	return s.releaseErr
}

func (s *idemFakeStore) Forget(context.Context, string) error { return nil }

func TestIdempotencyStoreFailures(t *testing.T) {
	errDown := errors.New("store is down")
	tests := []struct {
		name          string
		store         *idemFakeStore
		script        []string
		wantStatus    int
		wantErr       error
		wantRuns      int
		wantCompletes int32
		wantReleases  int32
		wantLogged    int // error-level log records naming the message
	}{
		{
			name: "claim fails: 503, nothing runs", store: &idemFakeStore{claimErr: errDown}, script: []string{"ok"},
			wantStatus: 503, wantErr: ErrStoreUnavailable,
		},
		{
			name: "complete fails: still acknowledged, and logged", store: &idemFakeStore{completeErr: errDown}, script: []string{"ok"},
			wantStatus: 200, wantRuns: 1, wantCompletes: 1, wantLogged: 1,
		},
		{
			name: "release fails: still 500, and logged", store: &idemFakeStore{releaseErr: errDown}, script: []string{"fail"},
			wantStatus: 500, wantErr: new(CallbackError), wantRuns: 1, wantReleases: 1, wantLogged: 1,
		},
		{
			name: "store works", store: &idemFakeStore{}, script: []string{"ok"},
			wantStatus: 200, wantRuns: 1, wantCompletes: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newIdemRig(t, tt.store, tt.script)
			assert.Equal(t, tt.wantStatus, idemServe(r.h, "msg_store"))

			runs, _, refusals := r.counts()
			assert.Equal(t, tt.wantRuns, runs, "callback runs")
			assert.Equal(t, int32(1), tt.store.claims.Load(), "claims")
			assert.Equal(t, tt.wantCompletes, tt.store.completes.Load(), "completes")
			assert.Equal(t, tt.wantReleases, tt.store.releases.Load(), "releases")
			assert.Equal(t, tt.wantLogged, r.log.errorsFor("msg_store"), "error-level log records")
			if tt.wantErr == nil {
				assert.Empty(t, refusals)
			} else {
				require.Len(t, refusals, 1)
				assert.Equal(t, tt.wantStatus, refusals[0].status)
				if ce, ok := tt.wantErr.(*CallbackError); ok {
					assert.ErrorAs(t, refusals[0].err, &ce)
				} else {
					assert.ErrorIs(t, refusals[0].err, tt.wantErr)
					assert.ErrorIs(t, refusals[0].err, errDown, "the store's own error is kept")
				}
				assert.Equal(t, tt.wantStatus, StatusCode(refusals[0].err))
			}

			// Dispatch and DispatchVerified give the same answer.
			for _, entry := range idemEntries[1:] {
				assert.Equal(t, tt.wantStatus, entry.deliver(r.h, "msg_store_"+entry.name), entry.name)
			}
		})
	}
}

// TestMemoryStoreForgetResend checks the documented way to run a processed
// message again: Forget, then resend with the same id.
func TestMemoryStoreForgetResend(t *testing.T) {
	tests := []struct {
		name     string
		forget   bool
		wantRuns int
	}{
		{"resend is skipped", false, 1},
		{"resend after Forget runs", true, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := NewMemoryStore(0, 0)
			r := newIdemRig(t, store, []string{"ok"})
			require.Equal(t, http.StatusOK, idemServe(r.h, "msg_resend"))
			if tt.forget {
				require.NoError(t, store.Forget(context.Background(), "msg_resend"))
			}
			require.Equal(t, http.StatusOK, idemServe(r.h, "msg_resend"))
			require.Equal(t, http.StatusOK, idemServe(r.h, "msg_resend"), "and a third delivery is a duplicate either way")
			runs, _, _ := r.counts()
			assert.Equal(t, tt.wantRuns, runs)
		})
	}
}

// TestIdempotencyUnhandled checks that a message without a callback is
// recorded as processed: a retry could not help it, and none should run
// the callback registered later.
func TestIdempotencyUnhandled(t *testing.T) {
	tests := []struct {
		name     string
		register bool
		wantRuns int
	}{
		{"callback registered after the first delivery", true, 0},
		{"never registered", false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := NewMemoryStore(0, 0)
			r := newIdemRig(t, store, []string{"ok"})
			r.h.OnDocumentCreated(nil)
			require.Equal(t, http.StatusOK, idemServe(r.h, "msg_unhandled"))
			claim, _, err := store.Claim(context.Background(), "msg_unhandled", time.Hour)
			require.NoError(t, err)
			assert.Equal(t, ClaimDone, claim)
			if tt.register {
				r.h.OnDocumentCreated(r.callback)
			}
			require.Equal(t, http.StatusOK, idemServe(r.h, "msg_unhandled"))
			runs, _, _ := r.counts()
			assert.Equal(t, tt.wantRuns, runs)
		})
	}
}

// TestIdempotencyForgetWhileRunning is the Forget/Release race of the store
// before claims had tokens: a message forgotten while its first delivery
// runs is claimed by a second delivery; when the first then fails, its
// Release must not free the second's claim, or a third delivery runs the
// callback alongside the second.
func TestIdempotencyForgetWhileRunning(t *testing.T) {
	for _, entry := range idemEntries {
		t.Run(entry.name, func(t *testing.T) {
			store := NewMemoryStore(0, 0)
			var mu sync.Mutex
			runs, running, overlap := 0, 0, false
			started := make(chan int, 4)
			gates := [2]chan struct{}{make(chan struct{}), make(chan struct{})}
			h, err := NewHandler(idemSecret, WithIdempotency(store), WithLogger(slog.New(&idemLog{})))
			require.NoError(t, err)
			h.OnDocumentCreated(func(context.Context, *DocumentCreated) error {
				mu.Lock()
				run := runs
				runs++
				if run > 0 { // the first and second overlap, by Forget
					running++
					overlap = overlap || running > 1
				}
				mu.Unlock()
				defer func() {
					mu.Lock()
					if run > 0 {
						running--
					}
					mu.Unlock()
				}()
				started <- run
				if run < len(gates) {
					<-gates[run]
				}
				if run == 0 {
					return errors.New("the first run fails, late")
				}
				return nil
			})
			const id = "msg_forgotten"
			first, second := make(chan int, 1), make(chan int, 1)
			go func() { first <- entry.deliver(h, id) }()
			require.Equal(t, 0, <-started)
			require.NoError(t, store.Forget(context.Background(), id))
			go func() { second <- entry.deliver(h, id) }()
			require.Equal(t, 1, <-started, "after Forget, a delivery runs again")

			close(gates[0])
			assert.Equal(t, http.StatusInternalServerError, <-first, "the first run failed")
			assert.Equal(t, http.StatusConflict, entry.deliver(h, id), "the second delivery still holds the message")
			close(gates[1])
			assert.Equal(t, http.StatusOK, <-second)
			assert.Equal(t, http.StatusOK, entry.deliver(h, id), "processed: acknowledged")

			mu.Lock()
			defer mu.Unlock()
			assert.Equal(t, 2, runs, "the first run and the one after Forget")
			assert.False(t, overlap, "no two runs after the first at once")
		})
	}
}
