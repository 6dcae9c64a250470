package nectarhookstest

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
	"sync"
	"testing"
	"time"

	"github.com/nectarhooks/nectarhooks"
)

// The Handler scenarios of TestIdempotencyStore: replicas of a receiver,
// each a Handler with a store instance of its own on the subtest's
// namespace, served over loopback HTTP as Svix reaches them.

// confBehaviour decides what a callback run does: replica is the index of
// the Handler, run counts the runs of id on every replica from 1.
type confBehaviour func(ctx context.Context, replica int, id string, run int) error

// confCluster is a set of replicas and what their callbacks did.
type confCluster struct {
	t        *testing.T
	signer   *Signer
	payload  []byte
	replicas []*confReplica
	client   *http.Client
	behave   confBehaviour

	mu        sync.Mutex
	runs      map[string]int // callback runs, by message id
	successes map[string]int // runs that returned nil
	running   map[string]int // runs in progress
	overlaps  []string       // ids that ran twice at once
}

type confReplica struct {
	store   nectarhooks.IdempotencyStore
	handler *nectarhooks.Handler
	server  *httptest.Server
}

// confReplicaOptions gives replica i's Handler options of its own.
type confReplicaOptions func(i int) []nectarhooks.Option

// cluster starts n replicas on stores from newStore, whose callbacks do
// what behave says; everything is closed when the subtest ends.
func (c conf) cluster(n int, newStore func() nectarhooks.IdempotencyStore, opts confReplicaOptions, behave confBehaviour) *confCluster {
	t := c.t
	t.Helper()
	secret := NewSecret()
	signer, err := NewSigner(secret)
	if err != nil {
		t.Fatal(err)
	}
	transport := &http.Transport{MaxIdleConnsPerHost: 64}
	cl := &confCluster{
		t: t, signer: signer, payload: Sample(nectarhooks.EventDocumentCreated),
		client: &http.Client{Transport: transport, Timeout: 2 * confPatience},
		behave: behave,
		runs:   map[string]int{}, successes: map[string]int{}, running: map[string]int{},
	}
	t.Cleanup(transport.CloseIdleConnections)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	for i := range n {
		r := &confReplica{store: newStore()}
		o := []nectarhooks.Option{nectarhooks.WithIdempotency(r.store), nectarhooks.WithLogger(quiet)}
		if opts != nil {
			o = append(o, opts(i)...)
		}
		r.handler, err = nectarhooks.NewHandler(secret, o...)
		if err != nil {
			t.Fatal(err)
		}
		r.handler.OnDocumentCreated(func(ctx context.Context, _ *nectarhooks.DocumentCreated) error {
			return cl.run(ctx, i)
		})
		r.server = httptest.NewServer(r.handler)
		t.Cleanup(r.server.Close)
		cl.replicas = append(cl.replicas, r)
	}
	return cl
}

// run is every callback: it counts, checks for overlaps and behaves.
func (cl *confCluster) run(ctx context.Context, replica int) error {
	m, _ := nectarhooks.MessageFromContext(ctx)
	cl.mu.Lock()
	cl.runs[m.ID]++
	run := cl.runs[m.ID]
	cl.running[m.ID]++
	if cl.running[m.ID] > 1 {
		cl.overlaps = append(cl.overlaps, m.ID)
	}
	cl.mu.Unlock()
	err := cl.behave(ctx, replica, m.ID, run)
	cl.mu.Lock()
	cl.running[m.ID]--
	if err == nil {
		cl.successes[m.ID]++
	}
	cl.mu.Unlock()
	return err
}

// deliver posts one signed delivery of id to replica i and returns the
// answer's status, or 0 (and an error on t) when there was none.
func (cl *confCluster) deliver(i int, id string) int {
	req, err := http.NewRequest(http.MethodPost, cl.replicas[i].server.URL, nil)
	if err != nil {
		cl.t.Error(err)
		return 0
	}
	req.Header = cl.signer.HeaderFor(id, time.Now(), cl.payload)
	req.Body = io.NopCloser(bytes.NewReader(cl.payload))
	req.ContentLength = int64(len(cl.payload))
	resp, err := cl.client.Do(req)
	if err != nil {
		cl.t.Errorf("delivery of %s to replica %d: %v", id, i, err)
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// deliverUntilAccepted delivers id as Svix does: on any answer but 2xx it
// retries, here to a random replica after a short pause, until one
// answers 2xx. It returns the answers.
func (cl *confCluster) deliverUntilAccepted(id string) []int {
	var answers []int
	start := time.Now()
	for attempt := 0; ; attempt++ {
		status := cl.deliver(rand.IntN(len(cl.replicas)), id)
		answers = append(answers, status)
		if status >= 200 && status < 300 || status == 0 {
			return answers
		}
		if time.Since(start) > 2*confPatience {
			cl.t.Errorf("%s: no replica accepted it within %s: answers %v", id, 2*confPatience, answers)
			return answers
		}
		time.Sleep(time.Duration(5+rand.IntN(10*min(attempt+1, 5))) * time.Millisecond)
	}
}

// counts returns id's runs and successful runs.
func (cl *confCluster) counts(id string) (runs, successes int) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return cl.runs[id], cl.successes[id]
}

func (cl *confCluster) checkNoOverlaps() {
	cl.t.Helper()
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if len(cl.overlaps) > 0 {
		cl.t.Errorf("messages whose callback ran twice at once: %v", cl.overlaps)
	}
}

// expectStatus delivers id to replica i and fails t unless the answer is
// want.
func (cl *confCluster) expectStatus(i int, id string, want int, why string) {
	cl.t.Helper()
	if got := cl.deliver(i, id); got != want {
		cl.t.Fatalf("delivery of %s to replica %d answered %d, want %d: %s", id, i, got, want, why)
	}
}

// expectRuns fails t unless id ran runs times, successes of them
// successfully.
func (cl *confCluster) expectRuns(id string, runs, successes int, why string) {
	cl.t.Helper()
	if r, s := cl.counts(id); r != runs || s != successes {
		cl.t.Fatalf("%s ran %d times, %d of them successfully; want %d and %d: %s", id, r, s, runs, successes, why)
	}
}

var errConfFirstRun = errors.New("nectarhookstest: the first run of this message fails")

// confHandlerReplicas: three replicas, every message delivered three times
// at once to random replicas, the first run of some failing, and every
// delivery retried after a non-2xx answer as Svix would: each message's
// callback succeeds exactly once, and never runs twice at once.
func confHandlerReplicas(t *testing.T, c conf) {
	const messages = 40
	cl := c.cluster(3, c.store, nil, func(_ context.Context, _ int, id string, run int) error {
		if run == 1 && failsFirst(id) {
			return errConfFirstRun
		}
		time.Sleep(time.Millisecond) // long enough for redeliveries to meet it
		return nil
	})
	ids := make([]string, messages)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s_%02d", NewMessageID(), i)
	}
	var wg sync.WaitGroup
	for _, id := range ids {
		for range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				answers := cl.deliverUntilAccepted(id)
				if last := answers[len(answers)-1]; last != http.StatusOK {
					t.Errorf("%s: last answer %d, want 200 (answers %v)", id, last, answers)
				}
				for _, status := range answers[:len(answers)-1] {
					if status != http.StatusConflict && status != http.StatusInternalServerError {
						t.Errorf("%s: answered %d before 200, want only 409 (in flight) or 500 (first run failed): %v", id, status, answers)
					}
				}
			}()
		}
	}
	wg.Wait()
	cl.checkNoOverlaps()
	for _, id := range ids {
		runs, successes := cl.counts(id)
		wantRuns := 1
		if failsFirst(id) {
			wantRuns = 2
		}
		if successes != 1 || runs != wantRuns {
			t.Errorf("%s: %d runs, %d successful; want %d and exactly 1", id, runs, successes, wantRuns)
		}
	}
}

// failsFirst picks the messages whose first run fails: about one in four.
func failsFirst(id string) bool { return id[len(id)-1]%4 == 0 }

// confHandlerHung: replica A's callback hangs, ignoring its context. Once
// A's lease has run out replica B takes the message over; A's late
// failure must not release B's claim, so C and A are answered 409 while B
// runs; after B succeeds, every redelivery is acknowledged without a run.
//
// A has a short callback deadline, so that its lease (deadline plus
// nectarhooks.LeaseGrace) runs out soon; B and C keep the default, so that
// B's lease cannot run out while the test looks at it, however slow the
// machine.
func confHandlerHung(t *testing.T, c conf) {
	const a, b, cc = 0, 1, 2
	const timeoutA = 500 * time.Millisecond
	gateA, gateB := make(chan struct{}), make(chan struct{})
	started := make(chan int, 64)
	cl := c.cluster(3, c.store, func(i int) []nectarhooks.Option {
		if i == a {
			return []nectarhooks.Option{nectarhooks.WithCallbackTimeout(timeoutA)}
		}
		return nil
	}, func(_ context.Context, replica int, _ string, _ int) error {
		select {
		case started <- replica:
		default: // far more runs than expected: the test fails anyway
		}
		switch replica {
		case a:
			<-gateA // hangs, whatever its context says
			return errors.New("replica A failed, late")
		case b:
			<-gateB
			return nil
		}
		return errors.New("replica C must not run this message")
	})
	// Registered after the cluster's, so run before the servers close:
	// a test that stops early must not leave callbacks hanging.
	var openA, openB sync.Once
	t.Cleanup(func() {
		openA.Do(func() { close(gateA) })
		openB.Do(func() { close(gateB) })
	})
	id := NewMessageID()
	leaseA := timeoutA + nectarhooks.LeaseGrace

	sentA := time.Now()
	answerA := make(chan int, 1)
	go func() { answerA <- cl.deliver(a, id) }()
	if got := <-started; got != a {
		t.Fatalf("replica %d ran the message, want A", got)
	}
	if got := cl.deliver(cc, id); time.Since(sentA) < leaseA-confSkew && got != http.StatusConflict {
		t.Fatalf("delivery to C while A holds the message answered %d, want 409", got)
	}

	// Svix retries to B until A's lease runs out and B takes over.
	answerB := make(chan int, 1)
	go func() {
		for {
			status := cl.deliver(b, id)
			if status != http.StatusConflict || time.Since(sentA) > confPatience {
				answerB <- status
				return
			}
			time.Sleep(confPoll)
		}
	}()
	select {
	case got := <-started:
		if got != b {
			t.Fatalf("replica %d ran the message, want B", got)
		}
	case status := <-answerB:
		t.Fatalf("B answered %d and never took the message over", status)
	}
	tookOver := time.Now()
	if waited := tookOver.Sub(sentA); waited < leaseA-confSkew {
		t.Fatalf("B took the message over %s after A claimed it, before A's lease of %s ran out", waited, leaseA)
	}

	openA.Do(func() { close(gateA) }) // A fails, long after its deadline
	if got := <-answerA; got != http.StatusServiceUnavailable {
		t.Fatalf("A, failing after its deadline, answered %d, want 503", got)
	}
	cl.expectStatus(cc, id, http.StatusConflict, "B still runs the message: A's late failure must not release B's claim")
	cl.expectStatus(a, id, http.StatusConflict, "B still runs the message")
	if waited := time.Since(tookOver); waited > nectarhooks.DefaultCallbackTimeout {
		t.Logf("the checks took %s: B's lease may have run out; the machine is very slow", waited)
	}

	openB.Do(func() { close(gateB) })
	if got := <-answerB; got != http.StatusOK {
		t.Fatalf("B answered %d, want 200", got)
	}
	for _, i := range []int{a, b, cc, a} {
		cl.expectStatus(i, id, http.StatusOK, "processed by B: acknowledged without a run")
	}
	// A's run and B's overlapped: that is what a lease allows once a
	// holder overruns it.
	cl.expectRuns(id, 2, 1, "A's hung run and B's")
}

// confHandlerForget: Forget, through any replica's store, makes one more
// delivery of a processed message run its callback.
func confHandlerForget(t *testing.T, c conf) {
	cl := c.cluster(2, c.store, nil, func(context.Context, int, string, int) error { return nil })
	id := NewMessageID()
	cl.expectStatus(0, id, http.StatusOK, "first delivery")
	cl.expectStatus(1, id, http.StatusOK, "redelivery")
	cl.expectRuns(id, 1, 1, "a redelivery does not run")
	forget(t, cl.replicas[1].store, id)
	cl.expectStatus(0, id, http.StatusOK, "delivery after Forget")
	cl.expectRuns(id, 2, 2, "Forget makes the next delivery run")
	cl.expectStatus(1, id, http.StatusOK, "redelivery after that")
	cl.expectRuns(id, 2, 2, "only the one delivery after Forget runs")
}

// confHandlerTTL: once the store's TTL has passed, a redelivery of a
// processed message runs its callback once more.
func confHandlerTTL(t *testing.T, c conf) {
	cl := c.cluster(2, func() nectarhooks.IdempotencyStore { return c.storeTTL(confTTL) }, nil,
		func(context.Context, int, string, int) error { return nil })
	id := NewMessageID()
	cl.expectStatus(0, id, http.StatusOK, "first delivery")
	done := time.Now()
	if got := cl.deliver(1, id); got != http.StatusOK {
		t.Fatalf("redelivery answered %d, want 200", got)
	}
	if runs, _ := cl.counts(id); time.Since(done) < confTTL-confSkew && runs != 1 {
		t.Fatalf("%s ran %d times within the TTL, want 1", id, runs)
	}
	for {
		cl.expectStatus(rand.IntN(2), id, http.StatusOK, "redelivery")
		if runs, _ := cl.counts(id); runs == 2 {
			if waited := time.Since(done); waited < confTTL-confSkew {
				t.Fatalf("ran again %s after it was processed, before the TTL of %s", waited, confTTL)
			}
			break
		}
		if time.Since(done) > confPatience {
			t.Fatalf("%s still not run again %s after it was processed, with a TTL of %s", id, confPatience, confTTL)
		}
		time.Sleep(4 * confPoll)
	}
	cl.expectStatus(0, id, http.StatusOK, "redelivery after the second run")
	cl.expectStatus(1, id, http.StatusOK, "redelivery after the second run")
	cl.expectRuns(id, 2, 2, "the TTL makes one delivery run again")
}
