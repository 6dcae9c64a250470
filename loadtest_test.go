package nectarhooks_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
)

// The fault load: an httptest server on loopback runs a Handler with
// WithIdempotency, and concurrent senders deliver a mix of good and bad
// messages, retrying failures with the same message id as Svix does. The
// callbacks fail on purpose, by message kind. Afterwards every good
// message's callback must have succeeded exactly once, every bad one must
// have been refused with its status and never reached a callback, and
// nothing may be left running.

const (
	ltSenders         = 32
	ltMaxBodyBytes    = 4 << 10
	ltCallbackTimeout = 250 * time.Millisecond // short, so that overruns are cheap
	ltSyncAttempts    = 4                      // Svix makes 8; 4 shows the pattern
	ltAsyncAttempts   = 100_000                // each retry waits for a callback to start; never reached
	ltHeapBound       = 64 << 20
	ltDeadline        = 50 * time.Second // a safety net for the whole run, not a measure
)

type ltKind int

// Kinds of message. Those before ltTampered are authentic and go through a
// Svix-like sender; the others are refused at intake and sent once, as a
// forger or a broken proxy would.
const (
	ltOK              ltKind = iota
	ltErrOnce                // the first run returns an error
	ltPanicOnce              // the first run panics
	ltSlowOnce               // the first run overruns the callback timeout, watching its context
	ltPoison                 // every run returns an error: Svix gives up
	ltDup                    // delivered again after it succeeded
	ltDupRace                // delivered twice at once
	ltHeld                   // delivered again while the first delivery's callback is held
	ltErrAlways              // async: fails after the 202
	ltPanicAlways            // async: panics after the 202
	ltDrain                  // async: sent last, held until Shutdown has begun
	ltTampered               // body changed after signing
	ltWrongSecret            // signed with another endpoint's secret
	ltStale                  // signed 10 minutes ago: a replay
	ltOversize               // over WithMaxBodyBytes, with Content-Length
	ltOversizeChunked        // over WithMaxBodyBytes, chunked
	ltBadJSON                // signed, but not a payload
	ltWrongMethod            // a GET
	ltKinds
)

var ltKindNames = [ltKinds]string{
	"ok", "err-once", "panic-once", "slow-once", "poison", "dup", "dup-race", "held",
	"err-always", "panic-always", "drain",
	"tampered", "wrong-secret", "stale", "oversize", "oversize-chunked", "bad-json", "wrong-method",
}

func (k ltKind) String() string { return ltKindNames[k] }

// refusal is the status a bad kind must be refused with, 0 for good ones.
func (k ltKind) refusal() int {
	switch k {
	case ltTampered, ltWrongSecret, ltStale:
		return http.StatusUnauthorized
	case ltOversize, ltOversizeChunked:
		return http.StatusRequestEntityTooLarge
	case ltBadJSON:
		return http.StatusBadRequest
	case ltWrongMethod:
		return http.StatusMethodNotAllowed
	}
	return 0
}

// ltJob is one message and everything seen of it.
type ltJob struct {
	id      string
	kind    ltKind
	payload []byte

	// Server side, from the callback and the store.
	runs, successes, failures, panics, late atomic.Int32 // late: failed with its context ended
	running                                 atomic.Int32
	overlap                                 atomic.Bool
	started                                 chan struct{} // ltHeld: the first run has begun; ltDrain: shared, a run has begun
	gate                                    chan struct{} // closed to let a held run finish; ltDrain: shared
	settledOnce                             sync.Once
	settled                                 chan struct{} // closed when the store records it processed

	// Sender side: the statuses of each delivery's attempts (two
	// deliveries for the duplicate kinds), 0 for a transport error.
	deliveries [][]int
}

// behave is what the callback does on the job's run-th run.
func (j *ltJob) behave(ctx context.Context, run int32) error {
	switch j.kind {
	case ltErrOnce:
		if run == 1 {
			return errors.New("downstream hiccup")
		}
	case ltPanicOnce:
		if run == 1 {
			j.panics.Add(1)
			panic("callback bug on " + j.id)
		}
	case ltSlowOnce:
		if run == 1 {
			<-ctx.Done()
			return ctx.Err()
		}
	case ltPoison, ltErrAlways:
		return errors.New("poison message")
	case ltPanicAlways:
		j.panics.Add(1)
		panic("callback bug on " + j.id)
	case ltHeld:
		if run == 1 {
			j.started <- struct{}{}
			<-j.gate // ignores ctx: the test releases it
		}
	case ltDrain:
		j.started <- struct{}{} // shared by the drain jobs, like the gate
		<-j.gate                // ignores ctx
	}
	return nil
}

// ltServer is the receiving side: the Handler's callbacks and its store.
type ltServer struct {
	jobs   map[string]*ltJob // read-only while the load runs
	strays atomic.Int32      // callbacks for messages no job sent

	mu         sync.Mutex
	errByStat  map[int]int // error handler calls by status
	errRecords atomic.Int32
	progress   ltProgress // callbacks started, each after taking a message off the queue
}

func (s *ltServer) callback(ctx context.Context) error {
	m, ok := nectarhooks.MessageFromContext(ctx)
	j := s.jobs[m.ID]
	if !ok || j == nil {
		s.strays.Add(1)
		return nil
	}
	s.progress.add()
	run := j.runs.Add(1)
	if j.running.Add(1) > 1 {
		j.overlap.Store(true)
	}
	defer j.running.Add(-1)
	err := j.behave(ctx, run)
	if err == nil {
		j.successes.Add(1)
	} else {
		j.failures.Add(1)
		if ctx.Err() != nil {
			j.late.Add(1)
		}
	}
	return err
}

func (s *ltServer) register(h *nectarhooks.Handler) {
	h.OnConnectionCreated(func(ctx context.Context, _ *nectarhooks.ConnectionCreated) error { return s.callback(ctx) })
	h.OnConnectionUpdated(func(ctx context.Context, _ *nectarhooks.ConnectionUpdated) error { return s.callback(ctx) })
	h.OnConnectionValidated(func(ctx context.Context, _ *nectarhooks.ConnectionValidated) error { return s.callback(ctx) })
	h.OnDocumentCreated(func(ctx context.Context, _ *nectarhooks.DocumentCreated) error { return s.callback(ctx) })
	h.OnDocumentUpdated(func(ctx context.Context, _ *nectarhooks.DocumentUpdated) error { return s.callback(ctx) })
	h.OnUnhandled(func(ctx context.Context, _ nectarhooks.Message) error {
		s.strays.Add(1)
		return nil
	})
}

func (s *ltServer) onError(_ context.Context, status int, _ error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.errByStat[status]++
}

// processed records that the store has id as processed. (Not on Release:
// that also comes from a full queue, before any callback ran.)
func (s *ltServer) processed(id string) {
	if j := s.jobs[id]; j != nil {
		j.settledOnce.Do(func() { close(j.settled) })
	}
}

// ltStore is a MemoryStore that tells the server which messages it has
// recorded as processed.
type ltStore struct {
	*nectarhooks.MemoryStore
	s *ltServer
}

func (st ltStore) Complete(ctx context.Context, id, token string) error {
	err := st.MemoryStore.Complete(ctx, id, token)
	st.s.processed(id)
	return err
}

// ltProgress counts events and lets goroutines wait for the next.
type ltProgress struct {
	mu sync.Mutex
	n  int64
	ch chan struct{}
}

func (p *ltProgress) add() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n++
	if p.ch != nil {
		close(p.ch)
		p.ch = nil
	}
}

func (p *ltProgress) mark() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}

// waitBeyond returns once the count exceeds m, or ctx ends.
func (p *ltProgress) waitBeyond(ctx context.Context, m int64) error {
	for {
		p.mu.Lock()
		if p.n > m {
			p.mu.Unlock()
			return nil
		}
		if p.ch == nil {
			p.ch = make(chan struct{})
		}
		ch := p.ch
		p.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// ltErrorLog counts error-level log records, which should be none: with an
// error handler set, failures go there instead.
type ltErrorLog struct{ n *atomic.Int32 }

func (l ltErrorLog) Enabled(_ context.Context, lv slog.Level) bool { return lv >= slog.LevelError }
func (l ltErrorLog) WithAttrs([]slog.Attr) slog.Handler            { return l }
func (l ltErrorLog) WithGroup(string) slog.Handler                 { return l }
func (l ltErrorLog) Handle(context.Context, slog.Record) error {
	l.n.Add(1)
	return nil
}

// ltSender delivers messages over loopback as Svix would.
type ltSender struct {
	ctx       context.Context
	url       string
	client    *http.Client
	signer    *nectarhookstest.Signer
	forger    *nectarhookstest.Signer
	attempts  int
	progress  *ltProgress // async: a 503 waits until another callback has started
	requests  atomic.Int64
	transport atomic.Int64 // transport errors
	errOnce   sync.Once
	firstErr  error // the first transport error, for the failure message
}

// post sends one request and returns its status, or 0 when no answer came.
func (c *ltSender) post(method string, body []byte, header http.Header, chunked bool) int {
	c.requests.Add(1)
	var rd io.Reader = bytes.NewReader(body)
	if chunked {
		rd = io.MultiReader(rd) // hides the length: sent chunked
	}
	if body == nil {
		rd = nil
	}
	req, err := http.NewRequestWithContext(c.ctx, method, c.url, rd)
	if err == nil {
		for k, v := range header {
			req.Header[k] = v
		}
		var resp *http.Response
		if resp, err = c.client.Do(req); err == nil {
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if err == nil {
				return resp.StatusCode
			}
		}
	}
	c.transport.Add(1)
	c.errOnce.Do(func() { c.firstErr = err })
	return 0
}

// deliver sends j with retries, each attempt signed afresh with the same
// id, until one is answered 2xx. on409, if set, runs before the retry of a
// 409: Svix's next attempt comes seconds later, after the other delivery
// has finished.
func (c *ltSender) deliver(j *ltJob, on409 func()) []int {
	var statuses []int
	for range c.attempts {
		mark := int64(0)
		if c.progress != nil {
			mark = c.progress.mark()
		}
		st := c.post(http.MethodPost, j.payload, c.signer.HeaderFor(j.id, time.Now(), j.payload), false)
		statuses = append(statuses, st)
		switch {
		case st == 0, st >= 200 && st < 300:
			return statuses
		case st == http.StatusConflict && on409 != nil:
			on409()
		case st == http.StatusServiceUnavailable && c.progress != nil:
			// The queue was full of messages whose callbacks had not
			// started when mark was taken: the count will move. Svix
			// would wait seconds instead.
			if c.progress.waitBeyond(c.ctx, mark) != nil {
				return statuses
			}
		}
	}
	return statuses
}

// sendBad sends a bad kind once.
func (c *ltSender) sendBad(j *ltJob) int {
	now := time.Now()
	switch j.kind {
	case ltTampered:
		// One character of the first id changed: still a valid payload
		// of the same length, so only the signature can tell.
		body := bytes.Clone(j.payload)
		i := bytes.Index(body, []byte(`"id": "`)) + len(`"id": "`)
		body[i] ^= 1
		return c.post(http.MethodPost, body, c.signer.HeaderFor(j.id, now, j.payload), false)
	case ltWrongSecret:
		return c.post(http.MethodPost, j.payload, c.forger.HeaderFor(j.id, now, j.payload), false)
	case ltStale:
		return c.post(http.MethodPost, j.payload, c.signer.HeaderFor(j.id, now.Add(-10*time.Minute), j.payload), false)
	case ltOversize, ltOversizeChunked:
		body := append(bytes.Clone(j.payload), bytes.Repeat([]byte(" "), ltMaxBodyBytes+2048-len(j.payload))...)
		return c.post(http.MethodPost, body, c.signer.HeaderFor(j.id, now, body), j.kind == ltOversizeChunked)
	case ltBadJSON:
		body := j.payload[:len(j.payload)/2]
		return c.post(http.MethodPost, body, c.signer.HeaderFor(j.id, now, body), false)
	case ltWrongMethod:
		return c.post(http.MethodGet, nil, c.signer.HeaderFor(j.id, now, nil), false)
	}
	panic("not a bad kind: " + j.kind.String())
}

// run plays one job: one delivery, or two for the duplicate kinds.
func (c *ltSender) run(j *ltJob) {
	switch j.kind {
	case ltDup:
		first := c.deliver(j, nil)
		if c.progress != nil {
			// Async: the 202 came before the callback; redeliver once
			// the outcome is recorded, as a manual resend would.
			select {
			case <-j.settled:
			case <-c.ctx.Done():
			}
		}
		j.deliveries = [][]int{first, c.deliver(j, nil)}
	case ltDupRace:
		var a, b []int
		aDone, bDone := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(bDone)
			b = c.deliver(j, func() { <-aDone })
		}()
		a = c.deliver(j, func() { <-bDone })
		close(aDone)
		<-bDone
		j.deliveries = [][]int{a, b}
	case ltHeld:
		aDone := make(chan []int, 1)
		go func() { aDone <- c.deliver(j, nil) }()
		var a []int
		select {
		case <-j.started: // the first delivery's callback is running
		case a = <-aDone: // it never got there: the checks will say why
			j.deliveries = [][]int{a}
			return
		}
		var once sync.Once
		release := func() {
			once.Do(func() {
				close(j.gate)
				a = <-aDone
			})
		}
		b := c.deliver(j, release)
		release()
		j.deliveries = [][]int{a, b}
	default:
		if want := j.kind.refusal(); want != 0 {
			j.deliveries = [][]int{{c.sendBad(j)}}
			return
		}
		j.deliveries = [][]int{c.deliver(j, nil)}
	}
}

// ltMix lists the kinds of one cycle of messages; the jobs repeat it, in a
// shuffled order.
func ltMix(async bool) []ltKind {
	repeat := func(k ltKind, n int) []ltKind {
		out := make([]ltKind, n)
		for i := range out {
			out[i] = k
		}
		return out
	}
	var mix []ltKind
	add := func(k ltKind, n int) { mix = append(mix, repeat(k, n)...) }
	if async {
		add(ltOK, 24)
		add(ltDup, 4)
		add(ltErrAlways, 2)
		add(ltPanicAlways, 2)
	} else {
		add(ltOK, 14)
		add(ltErrOnce, 3)
		add(ltPanicOnce, 3)
		add(ltSlowOnce, 1)
		add(ltPoison, 1)
		add(ltDup, 3)
		add(ltDupRace, 3)
		add(ltHeld, 1)
	}
	add(ltTampered, 2)
	add(ltWrongSecret, 1)
	add(ltStale, 2)
	add(ltOversize, 1)
	add(ltOversizeChunked, 1)
	add(ltBadJSON, 2)
	add(ltWrongMethod, 2)
	return mix
}

func ltMakeJobs(async bool, cycles int) []*ltJob {
	mix := ltMix(async)
	types := nectarhooks.EventTypes()
	jobs := make([]*ltJob, 0, cycles*len(mix))
	for c := range cycles {
		for i, k := range mix {
			n := c*len(mix) + i
			jobs = append(jobs, &ltJob{
				id:      fmt.Sprintf("msg_%s_%05d", k, n),
				kind:    k,
				payload: nectarhookstest.Sample(types[n%len(types)]),
				started: make(chan struct{}, 1),
				gate:    make(chan struct{}),
				settled: make(chan struct{}),
			})
		}
	}
	rng := rand.New(rand.NewPCG(6, 6)) // fixed: a failure replays
	rng.Shuffle(len(jobs), func(i, k int) { jobs[i], jobs[k] = jobs[k], jobs[i] })
	return jobs
}

// ltTally is what the senders saw, summed.
type ltTally struct {
	messages, requests, retries int
	byStatus                    map[int]int
	byKind                      map[ltKind]int
	runs, successes, failures   int
	panics, late                int
	suppressed                  int // 2xx answers that ran no callback: duplicates
}

func ltSum(jobs []*ltJob) ltTally {
	t := ltTally{byStatus: map[int]int{}, byKind: map[ltKind]int{}, messages: len(jobs)}
	for _, j := range jobs {
		t.byKind[j.kind]++
		accepted := 0
		for _, d := range j.deliveries {
			t.retries += len(d) - 1
			for _, st := range d {
				t.requests++
				t.byStatus[st]++
				if st >= 200 && st < 300 {
					accepted++
				}
			}
		}
		t.runs += int(j.runs.Load())
		t.successes += int(j.successes.Load())
		t.failures += int(j.failures.Load())
		t.panics += int(j.panics.Load())
		t.late += int(j.late.Load())
		if j.kind.refusal() == 0 {
			// Each 2xx either ran the callback to success or was
			// acknowledged as already processed; in async mode a 202
			// whose callback then failed counts as run.
			t.suppressed += accepted - int(j.successes.Load())
			if j.kind == ltErrAlways || j.kind == ltPanicAlways {
				t.suppressed -= int(j.runs.Load())
			}
		}
	}
	return t
}

func (t ltTally) summary(mode string, elapsed time.Duration) string {
	var refused []string
	var statuses []int
	for st := range t.byStatus {
		statuses = append(statuses, st)
	}
	sort.Ints(statuses)
	accepted := 0
	for _, st := range statuses {
		if st >= 200 && st < 300 {
			accepted += t.byStatus[st]
			continue
		}
		refused = append(refused, fmt.Sprintf("%d=%d", st, t.byStatus[st]))
	}
	return fmt.Sprintf("fault load (%s): %d messages, %d requests sent, %d accepted (200=%d 202=%d), refused %s; "+
		"callbacks run %d (succeeded %d, failed %d, panicked %d, overran %d); duplicates suppressed %d; retries %d; %s",
		mode, t.messages, t.requests, accepted, t.byStatus[200], t.byStatus[202], strings.Join(refused, " "),
		t.runs, t.successes, t.failures, t.panics, t.late, t.suppressed, t.retries, elapsed.Round(time.Millisecond))
}

// TestFaultLoad is the load test of issue 6: nothing lost, nothing twice.
func TestFaultLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("fault load: skipped with -short")
	}
	tests := []struct {
		name   string
		async  bool
		cycles int
	}{
		{"sync", false, 50},
		{"async", true, 30},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ltRunLoad(t, tt.async, tt.cycles)
		})
	}
}

func ltRunLoad(t *testing.T, async bool, cycles int) {
	ignore := goleak.IgnoreCurrent()
	ctx, cancel := context.WithTimeout(context.Background(), ltDeadline)
	defer cancel()

	jobs := ltMakeJobs(async, cycles)
	drain := newLtDrainState(async)
	srv := &ltServer{jobs: make(map[string]*ltJob, len(jobs)), errByStat: map[int]int{}}
	for _, j := range append(jobs, drain.jobs...) {
		srv.jobs[j.id] = j
	}
	secret := nectarhookstest.NewSecret()
	store := ltStore{MemoryStore: nectarhooks.NewMemoryStore(0, 0), s: srv}
	opts := []nectarhooks.Option{
		nectarhooks.WithIdempotency(store),
		nectarhooks.WithMaxBodyBytes(ltMaxBodyBytes),
		nectarhooks.WithCallbackTimeout(ltCallbackTimeout),
		nectarhooks.WithErrorHandler(srv.onError),
		nectarhooks.WithLogger(slog.New(ltErrorLog{&srv.errRecords})),
	}
	if async {
		// Few workers and a short queue, so that the senders fill it.
		opts = append(opts, nectarhooks.WithAsync(2, 2))
	}
	h, err := nectarhooks.NewHandler(secret, opts...)
	require.NoError(t, err)
	srv.register(h)
	ts := httptest.NewServer(h)
	defer func() { // after a failure; each step is harmless when repeated
		ts.Close()
		drain.release()
		_ = h.Shutdown(ctx)
	}()
	if !strings.HasPrefix(ts.URL, "http://127.0.0.1:") {
		t.Fatalf("the test server is not on loopback: %s", ts.URL)
	}

	signer, err := nectarhookstest.NewSigner(secret)
	require.NoError(t, err)
	forger, err := nectarhookstest.NewSigner(nectarhookstest.NewSecret())
	require.NoError(t, err)
	tr := &http.Transport{MaxConnsPerHost: 2 * ltSenders, MaxIdleConnsPerHost: 2 * ltSenders}
	sender := &ltSender{
		ctx: ctx, url: ts.URL + "/webhooks/nectar", signer: signer, forger: forger,
		client:   &http.Client{Transport: tr, Timeout: 20 * time.Second},
		attempts: ltSyncAttempts,
	}
	if async {
		sender.attempts, sender.progress = ltAsyncAttempts, &srv.progress
	}

	start := time.Now()
	queue := make(chan *ltJob)
	var wg sync.WaitGroup
	for range ltSenders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range queue {
				sender.run(j)
			}
		}()
	}
	for _, j := range jobs {
		queue <- j
	}
	close(queue)
	wg.Wait()

	// Wind down as a service would: the server, then the Handler, which
	// drains its queue in async mode.
	if async {
		drain.deliver(t, sender)
	}
	ts.Close()
	tr.CloseIdleConnections()
	if async {
		drain.shutdown(t, ctx, h, signer)
	} else {
		require.NoError(t, h.Shutdown(ctx), "a no-op without WithAsync")
	}
	elapsed := time.Since(start)

	require.Zero(t, sender.transport.Load(), "transport errors; the first: %v", sender.firstErr)
	jobs = append(jobs, drain.jobs...)
	tally := ltSum(jobs)
	mode := "sync"
	if async {
		mode = "async"
	}
	t.Log(tally.summary(mode, elapsed))
	if async {
		t.Logf("fault load (async): queue full %d times; when Shutdown began, %d accepted messages had not finished, %d not started",
			tally.byStatus[http.StatusServiceUnavailable], drain.unfinished, drain.notStarted)
	}

	// Every message, by kind.
	completed := 0
	for _, j := range jobs {
		ltCheckJob(t, j, async)
		if j.successes.Load() == 1 {
			completed++
		}
	}
	assert.Zero(t, srv.strays.Load(), "callbacks for messages never sent, or by no typed callback")
	wantSuppressed := tally.byKind[ltDup] + tally.byKind[ltDupRace] + tally.byKind[ltHeld]
	assert.Equal(t, wantSuppressed, tally.suppressed, "duplicates acknowledged without running")

	// Every refusal reached the error handler with the status the sender
	// saw (or the drain probes); async failures after the 202 with status 0.
	srv.mu.Lock()
	for st, n := range drain.probes {
		tally.byStatus[st] += n
	}
	for st, n := range tally.byStatus {
		if st < 200 || st >= 300 {
			assert.Equal(t, n, srv.errByStat[st], "error handler calls for status %d", st)
		}
	}
	if async {
		assert.Equal(t, tally.failures+tally.panics, srv.errByStat[0], "failures after the answer reach the error handler")
	} else {
		assert.Zero(t, srv.errByStat[0])
	}
	srv.mu.Unlock()
	// The error handler replaces the log: nothing reaches both.
	assert.Zero(t, srv.errRecords.Load(), "error-level log records")

	// The store remembers exactly the messages processed: no claim was
	// left behind and no bad delivery got in.
	assert.Equal(t, completed, store.Len(), "ids in the store")

	// Nothing left running, and memory bounded.
	sender.client.CloseIdleConnections()
	goleak.VerifyNone(t, ignore)
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	assert.Less(t, ms.HeapAlloc, uint64(ltHeapBound), "heap after GC")
}

// ltDrainJobs is how many messages are held for Shutdown to drain: enough
// to keep both workers busy and fill the queue of WithAsync(2, 2).
const ltDrainJobs = 4

// ltDrainState is the async run's last phase: messages accepted but held
// in their callbacks or in the queue when Shutdown begins.
type ltDrainState struct {
	jobs                   []*ltJob
	gate                   chan struct{}
	started                chan struct{} // a drain job's callback has begun
	released               sync.Once
	unfinished, notStarted int
	probes                 map[int]int // statuses of the probes, by status
}

func (d *ltDrainState) release() {
	d.released.Do(func() { close(d.gate) })
}

// newLtDrainState makes the drain jobs, in async mode.
func newLtDrainState(async bool) *ltDrainState {
	d := &ltDrainState{gate: make(chan struct{}), started: make(chan struct{}, ltDrainJobs), probes: map[int]int{}}
	for i := range ltDrainJobs {
		if !async {
			break
		}
		d.jobs = append(d.jobs, &ltJob{
			id: fmt.Sprintf("msg_drain_%d", i), kind: ltDrain, gate: d.gate, started: d.started,
			payload: nectarhookstest.Sample(nectarhooks.EventConnectionUpdated),
			settled: make(chan struct{}),
		})
	}
	return d
}

// deliver sends the drain jobs, which the workers cannot finish until the
// gate opens, and returns once all are accepted.
func (d *ltDrainState) deliver(t *testing.T, sender *ltSender) {
	t.Helper()
	var wg sync.WaitGroup
	for _, j := range d.jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			j.deliveries = [][]int{sender.deliver(j, nil)}
		}()
	}
	wg.Wait()
	for _, j := range d.jobs {
		require.Equal(t, http.StatusAccepted, j.deliveries[0][len(j.deliveries[0])-1], "drain job %s accepted", j.id)
	}
}

// shutdown runs Handler.Shutdown while the drain jobs are held, waits
// (by probing) until intake has stopped, then lets them go: Shutdown must
// return nil only once all have run.
func (d *ltDrainState) shutdown(t *testing.T, ctx context.Context, h *nectarhooks.Handler, signer *nectarhookstest.Signer) {
	t.Helper()
	// Both workers take a drain job and hold it; the other two wait in
	// the queue. Wait until the workers' callbacks have begun.
	for range 2 {
		select {
		case <-d.started:
		case <-ctx.Done():
			t.Fatal("the drain jobs never started")
		}
	}
	for _, j := range d.jobs {
		if j.successes.Load() == 0 {
			d.unfinished++
			if j.runs.Load() == 0 {
				d.notStarted++
			}
		}
	}
	require.Equal(t, ltDrainJobs, d.unfinished, "drain jobs unfinished")
	require.Equal(t, ltDrainJobs-2, d.notStarted, "drain jobs still queued")

	done := make(chan error, 1)
	go func() { done <- h.Shutdown(ctx) }()
	// Probe with a duplicate of a held message: 409 while intake runs,
	// 503 once Shutdown has stopped it; it never runs either way.
	probe := d.jobs[0]
	for i := 0; ; i++ {
		require.Less(t, i, 100_000, "Shutdown never stopped intake")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, signer.RequestFor("/", probe.id, time.Now(), probe.payload))
		d.probes[rec.Code]++
		if rec.Code == http.StatusServiceUnavailable {
			break
		}
		require.Equal(t, http.StatusConflict, rec.Code, "probe")
	}
	require.Empty(t, done, "Shutdown returned while messages were held")
	d.release()
	require.NoError(t, <-done, "Shutdown drains the queue")
}

// ltCheckJob checks one message against what its kind must produce.
func ltCheckJob(t *testing.T, j *ltJob, async bool) {
	t.Helper()
	runs, succ, fails, panics, late := j.runs.Load(), j.successes.Load(), j.failures.Load(), j.panics.Load(), j.late.Load()
	what := fmt.Sprintf("%s: deliveries %v, runs %d, successes %d, failures %d, panics %d, late %d",
		j.id, j.deliveries, runs, succ, fails, panics, late)
	if !assert.False(t, j.overlap.Load(), "ran twice at once: %s", what) {
		return
	}
	if want := j.kind.refusal(); want != 0 {
		assert.Equal(t, [][]int{{want}}, j.deliveries, what)
		assert.Zero(t, runs, what)
		return
	}
	ok := 200
	if async {
		ok = 202
	}
	// In async mode a delivery may meet a full queue first: 503s, then the
	// 202. Drop them here; the totals are checked against the error handler.
	d := j.deliveries
	if async {
		d = make([][]int, len(j.deliveries))
		for i, attempts := range j.deliveries {
			for _, st := range attempts {
				if st != http.StatusServiceUnavailable {
					d[i] = append(d[i], st)
				}
			}
		}
	}
	// A failure is answered 503 when the callback's deadline had passed
	// by then, as it always has for slow-once, and 500 otherwise.
	failStatus := http.StatusInternalServerError
	if late > 0 {
		failStatus = http.StatusServiceUnavailable
	}
	var want [][]int
	wantRuns, wantSucc := int32(1), int32(1)
	switch j.kind {
	case ltOK, ltDrain:
		want = [][]int{{ok}}
	case ltErrOnce, ltSlowOnce:
		want = [][]int{{failStatus, 200}}
		wantRuns = 2
	case ltPanicOnce:
		want = [][]int{{500, 200}}
		wantRuns = 2
	case ltPoison:
		// Every attempt failed, late ones with 503, in whatever order.
		require.Len(t, j.deliveries, 1, what)
		counts := map[int]int32{}
		for _, st := range j.deliveries[0] {
			counts[st]++
		}
		assert.Equal(t, ltNonZero(map[int]int32{500: ltSyncAttempts - late, 503: late}), ltNonZero(counts), what)
		want = j.deliveries
		wantRuns, wantSucc = ltSyncAttempts, 0
	case ltErrAlways, ltPanicAlways:
		want = [][]int{{202}} // the failure came after the answer
		wantSucc = 0
	case ltDup:
		want = [][]int{{ok}, {200}} // the second is acknowledged as processed
	case ltHeld:
		want = [][]int{{200}, {409, 200}}
	case ltDupRace:
		// One ran; the other was acknowledged as processed, directly or
		// after a 409 while the first was running.
		require.Len(t, j.deliveries, 2, what)
		want = [][]int{{200}, {200}}
		for i, attempts := range j.deliveries {
			if len(attempts) == 2 && attempts[0] == 409 {
				want[i] = []int{409, 200}
			}
		}
	}
	assert.Equal(t, want, d, what)
	assert.Equal(t, wantRuns, runs, what)
	assert.Equal(t, wantSucc, succ, "succeeded exactly once: %s", what)
}

func ltNonZero(m map[int]int32) map[int]int32 {
	out := map[int]int32{}
	for k, v := range m {
		if v != 0 {
			out[k] = v
		}
	}
	return out
}
