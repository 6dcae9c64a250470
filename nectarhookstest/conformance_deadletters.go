package nectarhookstest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nectarhooks/nectarhooks"
)

// TestDeadLetterStore checks that the stores newStore makes keep the
// nectarhooks.DeadLetterStore contract: payloads byte for byte and times to
// the millisecond; a message recorded again counted on, not duplicated;
// filters and order; Take handing a dead letter to one replay at a time,
// also to many takers at once, and again once the lease ends; Remove
// fenced by the claim, and by a Record in between; instances on one
// namespace sharing their dead letters, as replicas do; one svix-id
// recorded for several accounts kept, counted, taken and removed apart. It then runs
// Handlers on the store: a WithAsync callback failing after the 202 and a
// Permanent error each leave one dead letter, byte for byte; replays
// running at once run each message exactly once, and leave the store
// empty; a replay that fails again counts the attempt on; under
// NewAccountHandler, one id given up on for two accounts is two dead
// letters, and a replay of one account's runs it as that account's.
//
// newStore follows the rules of TestIdempotencyStore's (a new instance on
// each call, the namespace fresh for each subtest, cleaned up with
// t.Cleanup); only Namespace of StoreOptions is set.
func TestDeadLetterStore(t *testing.T, newStore func(t *testing.T, opts StoreOptions) nectarhooks.DeadLetterStore) {
	t.Helper()
	tests := []struct {
		name string
		run  func(t *testing.T, c dlConf)
	}{
		{"RecordList", dlRecordList},
		{"RecordAgainCountsOn", dlRecordAgain},
		{"Filters", dlFilters},
		{"TakeOneAtATime", dlTake},
		{"ConcurrentTakes", dlConcurrentTakes},
		{"RemoveFenced", dlRemoveFenced},
		{"Replicas", dlReplicas},
		{"Accounts", dlAccounts},
		{"HandlerRecords", dlHandlerRecords},
		{"HandlerConcurrentReplays", dlHandlerReplays},
		{"HandlerReplayFailsAgain", dlHandlerReplayFails},
		{"HandlerAccounts", dlHandlerAccounts},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.run(t, dlConf{t: t, newStore: newStore, namespace: newNamespace()})
		})
	}
}

type dlConf struct {
	t         *testing.T
	newStore  func(t *testing.T, opts StoreOptions) nectarhooks.DeadLetterStore
	namespace string
}

func (c dlConf) store() nectarhooks.DeadLetterStore {
	c.t.Helper()
	s := c.newStore(c.t, StoreOptions{Namespace: c.namespace})
	if s == nil {
		c.t.Fatal("newStore returned nil")
	}
	return s
}

// dlT0 is a millisecond-exact instant the records are dated from.
var dlT0 = time.Date(2026, time.March, 4, 10, 20, 30, 123_000_000, time.UTC)

// dlPayload is not what Nectar sends: bytes a re-encoding would change
// (spacing, key order, escapes, a non-ASCII rune), to show they are kept.
func dlPayload(i int) []byte {
	return fmt.Appendf(nil, "{ \"eventType\" : \"document.created.v2\",\"id\":\"doc-%d\",  \"name\":\"caf\\u00e9 \u00e9t\u00e9\",\"z\":1 ,\"a\":2}\n", i)
}

func dlLetter(id string, i int, at time.Time) nectarhooks.DeadLetter {
	return nectarhooks.DeadLetter{
		Message: nectarhooks.Message{ID: id, Timestamp: at.Add(-time.Minute).Truncate(time.Second),
			EventType: nectarhooks.EventDocumentCreated, Payload: dlPayload(i)},
		Error: fmt.Sprintf("attempt %d failed", i), Attempts: 1, FirstFailedAt: at, LastFailedAt: at,
	}
}

func dlRecord(t *testing.T, s nectarhooks.DeadLetterStore, d nectarhooks.DeadLetter) {
	t.Helper()
	if err := s.Record(context.Background(), d); err != nil {
		t.Fatalf("Record(%s): %v", d.Message.ID, err)
	}
}

func dlList(t *testing.T, s nectarhooks.DeadLetterStore, f nectarhooks.DeadLetterFilter) []nectarhooks.DeadLetter {
	t.Helper()
	got, err := s.List(context.Background(), f)
	if err != nil {
		t.Fatalf("List(%+v): %v", f, err)
	}
	return got
}

func dlIDs(ds []nectarhooks.DeadLetter) []string {
	ids := make([]string, len(ds))
	for i, d := range ds {
		ids[i] = d.Message.ID
	}
	return ids
}

// dlSame fails t unless got is want, times to the millisecond.
func dlSame(t *testing.T, got, want nectarhooks.DeadLetter) {
	t.Helper()
	near := func(a, b time.Time) bool { d := a.Sub(b); return d < time.Millisecond && d > -time.Millisecond }
	switch {
	case got.Message.ID != want.Message.ID, got.Message.EventType != want.Message.EventType, got.Message.Account != want.Message.Account:
		t.Fatalf("dead letter %q (%s) of account %q, want %q (%s) of %q", got.Message.ID, got.Message.EventType, got.Message.Account,
			want.Message.ID, want.Message.EventType, want.Message.Account)
	case !bytes.Equal(got.Message.Payload, want.Message.Payload):
		t.Fatalf("payload of %s is\n%q, want byte for byte\n%q", want.Message.ID, got.Message.Payload, want.Message.Payload)
	case !got.Message.Timestamp.Equal(want.Message.Timestamp):
		t.Fatalf("timestamp of %s is %s, want %s", want.Message.ID, got.Message.Timestamp, want.Message.Timestamp)
	case got.Error != want.Error, got.Attempts != want.Attempts:
		t.Fatalf("%s: error %q after %d attempts, want %q after %d", want.Message.ID, got.Error, got.Attempts, want.Error, want.Attempts)
	case !near(got.FirstFailedAt, want.FirstFailedAt), !near(got.LastFailedAt, want.LastFailedAt):
		t.Fatalf("%s: failed first at %s and last at %s, want %s and %s", want.Message.ID,
			got.FirstFailedAt, got.LastFailedAt, want.FirstFailedAt, want.LastFailedAt)
	}
}

func dlRecordList(t *testing.T, c dlConf) {
	s := c.store()
	if got := dlList(t, s, nectarhooks.DeadLetterFilter{}); len(got) != 0 {
		t.Fatalf("a new store lists %v", dlIDs(got))
	}
	want := []nectarhooks.DeadLetter{dlLetter("msg_a", 1, dlT0), dlLetter("msg_b", 2, dlT0.Add(time.Second))}
	for _, d := range want {
		dlRecord(t, s, d)
	}
	got := dlList(t, s, nectarhooks.DeadLetterFilter{})
	if len(got) != 2 {
		t.Fatalf("List = %v, want [msg_a msg_b]", dlIDs(got))
	}
	for i := range want {
		dlSame(t, got[i], want[i])
	}
}

func dlRecordAgain(t *testing.T, c dlConf) {
	s := c.store()
	first := dlLetter("msg_again", 1, dlT0)
	dlRecord(t, s, first)
	again := dlLetter("msg_again", 2, dlT0.Add(time.Hour))
	again.Attempts = 3
	dlRecord(t, s, again)
	got := dlList(t, s, nectarhooks.DeadLetterFilter{})
	if len(got) != 1 {
		t.Fatalf("a message recorded twice is listed as %v, want once", dlIDs(got))
	}
	want := again
	want.Attempts = 4
	want.FirstFailedAt = first.FirstFailedAt
	dlSame(t, got[0], want)
}

func dlFilters(t *testing.T, c dlConf) {
	s := c.store()
	for i, id := range []string{"msg_3", "msg_1", "msg_2"} {
		d := dlLetter(id, i, dlT0.Add(time.Duration(3-i)*time.Minute))
		if id == "msg_2" {
			d.Message.EventType = nectarhooks.EventConnectionUpdated
		}
		dlRecord(t, s, d)
	}
	// msg_2 failed last at +1m, msg_1 at +2m, msg_3 at +3m.
	for _, tt := range []struct {
		f    nectarhooks.DeadLetterFilter
		want string
	}{
		{nectarhooks.DeadLetterFilter{}, "[msg_2 msg_1 msg_3]"},
		{nectarhooks.DeadLetterFilter{ID: "msg_1"}, "[msg_1]"},
		{nectarhooks.DeadLetterFilter{ID: "msg_none"}, "[]"},
		{nectarhooks.DeadLetterFilter{EventType: nectarhooks.EventDocumentCreated}, "[msg_1 msg_3]"},
		{nectarhooks.DeadLetterFilter{Since: dlT0.Add(2 * time.Minute)}, "[msg_1 msg_3]"},
		{nectarhooks.DeadLetterFilter{Limit: 2}, "[msg_2 msg_1]"},
		{nectarhooks.DeadLetterFilter{EventType: nectarhooks.EventDocumentCreated, Limit: 1}, "[msg_1]"},
	} {
		if got := fmt.Sprint(dlIDs(dlList(t, s, tt.f))); got != tt.want {
			t.Errorf("List(%+v) = %s, want %s", tt.f, got, tt.want)
		}
	}
}

func dlTake(t *testing.T, c dlConf) {
	s := c.store()
	ctx := context.Background()
	if _, _, ok, err := s.Take(ctx, "", "msg_absent", time.Hour); err != nil || ok {
		t.Fatalf("Take of an absent id = %t, %v; want false, nil", ok, err)
	}
	want := dlLetter("msg_take", 1, dlT0)
	dlRecord(t, s, want)
	d, token, ok, err := s.Take(ctx, "", "msg_take", confLease)
	if err != nil || !ok || token == "" {
		t.Fatalf("Take = %t, %q, %v; want it with a token", ok, token, err)
	}
	dlSame(t, d, want)
	if _, _, ok, err := s.Take(ctx, "", "msg_take", time.Hour); err != nil || ok {
		t.Fatalf("a second Take during the lease = %t, %v; want false", ok, err)
	}
	if got := dlList(t, s, nectarhooks.DeadLetterFilter{}); len(got) != 1 {
		t.Fatalf("a taken dead letter is not listed: %v", dlIDs(got))
	}
	time.Sleep(confLease + confSkew)
	deadline := time.Now().Add(confPatience)
	for {
		_, token2, ok, err := s.Take(ctx, "", "msg_take", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			if token2 == token {
				t.Fatalf("a new Take got the old token %q", token)
			}
			if err := s.Remove(ctx, "", "msg_take", token); err != nil {
				t.Fatal(err)
			}
			if got := dlList(t, s, nectarhooks.DeadLetterFilter{}); len(got) != 1 {
				t.Fatal("Remove with the token of an expired claim removed the dead letter")
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Take still refused %s after the lease ended", confPatience)
		}
		time.Sleep(confPoll)
	}
}

func dlConcurrentTakes(t *testing.T, c dlConf) {
	const takers = 8
	stores := make([]nectarhooks.DeadLetterStore, takers)
	for i := range stores {
		stores[i] = c.store()
	}
	dlRecord(t, stores[0], dlLetter("msg_race", 1, dlT0))
	var won atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make(chan error, takers)
	for i := range takers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, _, ok, err := stores[i].Take(context.Background(), "", "msg_race", time.Hour)
			if err != nil {
				errs <- err
			}
			if ok {
				won.Add(1)
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := won.Load(); n != 1 {
		t.Fatalf("%d of %d concurrent Takes got the dead letter, want exactly 1", n, takers)
	}
}

func dlRemoveFenced(t *testing.T, c dlConf) {
	s := c.store()
	ctx := context.Background()
	dlRecord(t, s, dlLetter("msg_fence", 1, dlT0))
	_, token, ok, err := s.Take(ctx, "", "msg_fence", time.Hour)
	if err != nil || !ok {
		t.Fatalf("Take = %t, %v", ok, err)
	}
	if err := s.Remove(ctx, "", "msg_fence", token+"x"); err != nil {
		t.Fatal(err)
	}
	if len(dlList(t, s, nectarhooks.DeadLetterFilter{})) != 1 {
		t.Fatal("Remove with a wrong token removed the dead letter")
	}
	// It fails again meanwhile (a WithAsync worker after a re-sent
	// delivery): the record ends the claim, and the replay's Remove is late.
	dlRecord(t, s, dlLetter("msg_fence", 2, dlT0.Add(time.Minute)))
	if err := s.Remove(ctx, "", "msg_fence", token); err != nil {
		t.Fatal(err)
	}
	got := dlList(t, s, nectarhooks.DeadLetterFilter{})
	if len(got) != 1 || got[0].Attempts != 2 {
		t.Fatalf("after a Record, the claim's Remove left %v, want the dead letter with 2 attempts", got)
	}
	_, token, ok, err = s.Take(ctx, "", "msg_fence", time.Hour)
	if err != nil || !ok {
		t.Fatalf("Take after a Record ended the claim = %t, %v; want it", ok, err)
	}
	if err := s.Remove(ctx, "", "msg_fence", token); err != nil {
		t.Fatal(err)
	}
	if got := dlList(t, s, nectarhooks.DeadLetterFilter{}); len(got) != 0 {
		t.Fatalf("Remove with the claim's token left %v", dlIDs(got))
	}
	if err := s.Remove(ctx, "", "msg_fence", token); err != nil {
		t.Fatalf("Remove of an id no longer there: %v", err)
	}
}

func dlReplicas(t *testing.T, c dlConf) {
	a, b := c.store(), c.store()
	dlRecord(t, a, dlLetter("msg_shared", 1, dlT0))
	got := dlList(t, b, nectarhooks.DeadLetterFilter{})
	if len(got) != 1 {
		t.Fatalf("another instance on the namespace lists %v", dlIDs(got))
	}
	if _, _, ok, _ := a.Take(context.Background(), "", "msg_shared", time.Hour); !ok {
		t.Fatal("Take failed")
	}
	if _, _, ok, _ := b.Take(context.Background(), "", "msg_shared", time.Hour); ok {
		t.Fatal("another instance took a dead letter this one holds")
	}
	other := dlConf{t: t, newStore: c.newStore, namespace: newNamespace()}.store()
	if got := dlList(t, other, nectarhooks.DeadLetterFilter{}); len(got) != 0 {
		t.Fatalf("a store on another namespace lists %v", dlIDs(got))
	}
}

// dlService is a Handler on the store whose document.created.v2 callback
// fails until fixed, counting its runs by message id.
type dlService struct {
	h      *nectarhooks.Handler
	signer *Signer
	fixed  atomic.Bool
	mu     sync.Mutex
	runs   map[string]int
}

var errNotFixed = errors.New("bug 1234: not fixed yet")

func newDLService(t *testing.T, store nectarhooks.DeadLetterStore, opts ...nectarhooks.Option) *dlService {
	secret := NewSecret()
	signer, err := NewSigner(secret)
	if err != nil {
		t.Fatal(err)
	}
	opts = append([]nectarhooks.Option{nectarhooks.WithDeadLetters(store), nectarhooks.WithIdempotency(nectarhooks.NewMemoryStore(0, 0)),
		nectarhooks.WithErrorHandler(func(context.Context, int, error) {})}, opts...)
	h, err := nectarhooks.NewHandler(secret, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Shutdown(context.Background()) })
	s := &dlService{h: h, signer: signer, runs: map[string]int{}}
	h.OnDocumentCreated(func(ctx context.Context, e *nectarhooks.DocumentCreated) error {
		m, _ := nectarhooks.MessageFromContext(ctx)
		s.mu.Lock()
		s.runs[m.ID]++
		s.mu.Unlock()
		if e.ID == "doc-permanent" {
			return nectarhooks.Permanent(errors.New("document doc-permanent is refused for good"))
		}
		if !s.fixed.Load() {
			return errNotFixed
		}
		// Long enough for concurrent replays to overlap.
		time.Sleep(5 * time.Millisecond)
		return nil
	})
	return s
}

func (s *dlService) deliver(t *testing.T, id string, payload []byte) int {
	t.Helper()
	rr := httptest.NewRecorder()
	s.h.ServeHTTP(rr, s.signer.RequestFor("/webhooks/nectar", id, time.Now(), payload))
	return rr.Code
}

func (s *dlService) runsOf(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.runs[id]
}

// dlWaitFor waits until store lists n dead letters.
func dlWaitFor(t *testing.T, store nectarhooks.DeadLetterStore, n int) []nectarhooks.DeadLetter {
	t.Helper()
	deadline := time.Now().Add(confPatience)
	for {
		got := dlList(t, store, nectarhooks.DeadLetterFilter{})
		if len(got) == n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d dead letters after %s, want %d: %v", len(got), confPatience, n, dlIDs(got))
		}
		time.Sleep(confPoll)
	}
}

func dlHandlerRecords(t *testing.T, c dlConf) {
	store := c.store()
	direct := newDLService(t, store)
	async := newDLService(t, store, nectarhooks.WithAsync(1, 4))
	permanent := []byte(`{"eventType":"document.created.v2","id":"doc-permanent"}`)
	if code := direct.deliver(t, "msg_permanent", permanent); code != 500 {
		t.Fatalf("a Permanent error was answered %d, want 500", code)
	}
	if code := async.deliver(t, "msg_async", dlPayload(7)); code != 202 {
		t.Fatalf("a WithAsync delivery was answered %d, want 202", code)
	}
	got := dlWaitFor(t, store, 2)
	byID := map[string]nectarhooks.DeadLetter{}
	for _, d := range got {
		byID[d.Message.ID] = d
	}
	for id, payload := range map[string][]byte{"msg_permanent": permanent, "msg_async": dlPayload(7)} {
		d, ok := byID[id]
		switch {
		case !ok:
			t.Fatalf("no dead letter for %s: %v", id, dlIDs(got))
		case !bytes.Equal(d.Message.Payload, payload):
			t.Fatalf("dead letter %s holds %q, want %q", id, d.Message.Payload, payload)
		case d.Attempts != 1 || d.Error == "" || d.Message.EventType != nectarhooks.EventDocumentCreated:
			t.Fatalf("dead letter %s: %+v", id, d)
		}
	}
}

func dlHandlerReplays(t *testing.T, c dlConf) {
	const messages, replayers = 12, 3
	store := c.store()
	svc := newDLService(t, store, nectarhooks.WithAsync(2, messages))
	ids := make([]string, messages)
	for i := range ids {
		ids[i] = NewMessageID()
		if code := svc.deliver(t, ids[i], dlPayload(i)); code != 202 {
			t.Fatalf("delivery %d answered %d", i, code)
		}
	}
	dlWaitFor(t, store, messages)
	svc.fixed.Store(true)
	// Replicas replaying at once, each on an instance of its own.
	var replayed atomic.Int32
	var wg sync.WaitGroup
	errs := make(chan error, replayers)
	for range replayers {
		r := newDLService(t, c.store())
		r.fixed.Store(true)
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := r.h.ReplayDeadLetters(context.Background(), nectarhooks.DeadLetterFilter{})
			if err != nil {
				errs <- err
			}
			replayed.Add(int32(res.Replayed))
			svc.mu.Lock()
			for id, n := range r.runs {
				svc.runs[id] += n
			}
			svc.mu.Unlock()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := replayed.Load(); n != messages {
		t.Fatalf("the replays replayed %d messages in all, want %d", n, messages)
	}
	for _, id := range ids {
		// One failed run before the fix, one replay after.
		if n := svc.runsOf(id); n != 2 {
			t.Fatalf("message %s ran %d times, want 2 (the failure and one replay)", id, n)
		}
	}
	if got := dlList(t, store, nectarhooks.DeadLetterFilter{}); len(got) != 0 {
		t.Fatalf("dead letters left after the replays: %v", dlIDs(got))
	}
}

func dlHandlerReplayFails(t *testing.T, c dlConf) {
	store := c.store()
	svc := newDLService(t, store, nectarhooks.WithAsync(1, 1))
	if code := svc.deliver(t, "msg_twice", dlPayload(1)); code != 202 {
		t.Fatalf("answered %d", code)
	}
	first := dlWaitFor(t, store, 1)[0]
	res, err := svc.h.ReplayDeadLetters(context.Background(), nectarhooks.DeadLetterFilter{ID: "msg_twice"})
	if err != nil {
		t.Fatal(err)
	}
	if res != (nectarhooks.ReplayResult{Failed: 1}) {
		t.Fatalf("replay of a message still failing: %+v, want 1 failed", res)
	}
	got := dlList(t, store, nectarhooks.DeadLetterFilter{})
	if len(got) != 1 || got[0].Attempts != 2 || !got[0].FirstFailedAt.Equal(first.FirstFailedAt) ||
		!bytes.Equal(got[0].Message.Payload, dlPayload(1)) {
		t.Fatalf("after a failed replay: %+v, want the dead letter with 2 attempts since %s", got, first.FirstFailedAt)
	}
}

// dlAccounts records one svix-id for two accounts and for no account, as
// Svix sends one id to every endpoint: three dead letters, each counted,
// filtered, taken and removed on its own.
func dlAccounts(t *testing.T, c dlConf) {
	s := c.store()
	ctx := context.Background()
	letters := map[string]nectarhooks.DeadLetter{}
	for i, account := range []string{"acme", "globex", ""} {
		d := dlLetter("msg_everyone", i, dlT0.Add(time.Duration(i)*time.Second))
		d.Message.Account = account
		letters[account] = d
		dlRecord(t, s, d)
	}
	again := letters["globex"]
	again.LastFailedAt = dlT0.Add(time.Hour)
	dlRecord(t, s, again)
	if got := dlList(t, s, nectarhooks.DeadLetterFilter{}); len(got) != 3 {
		t.Fatalf("one id recorded for 3 accounts is listed %d times, want 3", len(got))
	}
	wantGlobex := again
	wantGlobex.Attempts = 2
	wantGlobex.FirstFailedAt = letters["globex"].FirstFailedAt
	for account, want := range map[string]nectarhooks.DeadLetter{"acme": letters["acme"], "globex": wantGlobex} {
		got := dlList(t, s, nectarhooks.DeadLetterFilter{Account: account, ID: "msg_everyone"})
		if len(got) != 1 {
			t.Fatalf("List(Account %q) = %d dead letters, want 1", account, len(got))
		}
		dlSame(t, got[0], want)
	}
	d, acme, ok, err := s.Take(ctx, "acme", "msg_everyone", time.Hour)
	if err != nil || !ok {
		t.Fatalf("Take(acme) = %t, %v", ok, err)
	}
	dlSame(t, d, letters["acme"])
	// Another account's record of the id is not held by acme's claim.
	_, globex, ok, err := s.Take(ctx, "globex", "msg_everyone", time.Hour)
	if err != nil || !ok {
		t.Fatalf("Take(globex) while acme's is taken = %t, %v; want true", ok, err)
	}
	if err := s.Remove(ctx, "globex", "msg_everyone", acme); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(ctx, "acme", "msg_everyone", acme); err != nil {
		t.Fatal(err)
	}
	if got := dlList(t, s, nectarhooks.DeadLetterFilter{}); len(got) != 2 || got[0].Message.Account != "" || got[1].Message.Account != "globex" {
		t.Fatalf("after removing acme's (and acme's token on globex's): %+v, want the bare one and globex's", got)
	}
	if err := s.Remove(ctx, "globex", "msg_everyone", globex); err != nil {
		t.Fatal(err)
	}
	if got := dlList(t, s, nectarhooks.DeadLetterFilter{}); len(got) != 1 || got[0].Message.Account != "" {
		t.Fatalf("after removing globex's: %+v, want the bare one", got)
	}
}

// dlHandlerAccounts gives up on one svix-id for two accounts of a
// NewAccountHandler and replays one account's: it runs as that account's,
// under that account's idempotency key, and the other's stays.
func dlHandlerAccounts(t *testing.T, c dlConf) {
	store := c.store()
	secrets := map[string]string{"acme": NewSecret(), "globex": NewSecret()}
	lookup := func(_ context.Context, account string) ([]string, error) {
		if s, ok := secrets[account]; ok {
			return []string{s}, nil
		}
		return nil, nectarhooks.ErrUnknownAccount
	}
	h, err := nectarhooks.NewAccountHandler(func(r *http.Request) string { return r.PathValue("account") }, lookup,
		nectarhooks.WithDeadLetters(store), nectarhooks.WithIdempotency(nectarhooks.NewMemoryStore(0, 0)),
		nectarhooks.WithErrorHandler(func(context.Context, int, error) {}))
	if err != nil {
		t.Fatal(err)
	}
	var fixed atomic.Bool
	var mu sync.Mutex
	runs := map[string]int{}
	h.OnDocumentCreated(func(ctx context.Context, _ *nectarhooks.DocumentCreated) error {
		m, _ := nectarhooks.MessageFromContext(ctx)
		mu.Lock()
		runs[m.Account]++
		mu.Unlock()
		if !fixed.Load() {
			return nectarhooks.Permanent(errNotFixed)
		}
		return nil
	})
	mux := http.NewServeMux()
	mux.Handle("POST /webhooks/{account}", h)
	const id = "msg_every_endpoint"
	deliver := func(account string) int {
		t.Helper()
		signer, err := NewSigner(secrets[account])
		if err != nil {
			t.Fatal(err)
		}
		rr := httptest.NewRecorder()
		mux.ServeHTTP(rr, signer.RequestFor("/webhooks/"+account, id, time.Now(), dlPayload(1)))
		return rr.Code
	}
	for _, account := range []string{"acme", "globex"} {
		if code := deliver(account); code != 500 {
			t.Fatalf("%s: a Permanent error was answered %d, want 500", account, code)
		}
	}
	got := dlList(t, store, nectarhooks.DeadLetterFilter{ID: id})
	if len(got) != 2 || got[0].Message.Account == got[1].Message.Account {
		t.Fatalf("one id given up on for two accounts: %+v, want a dead letter each", got)
	}
	fixed.Store(true)
	res, err := h.ReplayDeadLetters(context.Background(), nectarhooks.DeadLetterFilter{Account: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	if res != (nectarhooks.ReplayResult{Replayed: 1}) {
		t.Fatalf("replay of acme's: %+v, want 1 replayed", res)
	}
	mu.Lock()
	if runs["acme"] != 2 || runs["globex"] != 1 {
		t.Fatalf("runs by account after replaying acme's: %v, want acme 2, globex 1", runs)
	}
	mu.Unlock()
	// The replay completed acme's message under acme's key: a redelivery
	// to acme runs nothing, one to globex runs.
	if code := deliver("acme"); code != 200 {
		t.Fatalf("redelivery to acme after its replay answered %d", code)
	}
	if code := deliver("globex"); code != 200 {
		t.Fatalf("redelivery to globex answered %d", code)
	}
	mu.Lock()
	defer mu.Unlock()
	if runs["acme"] != 2 || runs["globex"] != 2 {
		t.Fatalf("runs by account after the redeliveries: %v, want 2 each", runs)
	}
	left := dlList(t, store, nectarhooks.DeadLetterFilter{})
	if len(left) != 1 || left[0].Message.Account != "globex" {
		t.Fatalf("dead letters left: %+v, want globex's", left)
	}
}
