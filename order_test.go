package nectarhooks_test

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
)

var orderT0 = time.Date(2024, 9, 7, 12, 30, 0, 0, time.UTC)

func at(us int) nectarhooks.Time {
	return nectarhooks.Time{Time: orderT0.Add(time.Duration(us) * time.Microsecond)}
}

func TestEventVersion(t *testing.T) {
	conn := nectarhooks.Connection{ID: "c1", Created: at(0), Updated: at(5)}
	doc := nectarhooks.Document{ID: "d1", Created: at(1), Updated: at(7)}
	tests := []struct {
		name   string
		ev     nectarhooks.Event
		want   nectarhooks.EntityVersion
		wantOK bool
	}{
		{"connection created", &nectarhooks.ConnectionCreated{Connection: conn},
			nectarhooks.EntityVersion{Entity: "connection:c1", Updated: at(5).Time}, true},
		{"connection updated", &nectarhooks.ConnectionUpdated{Connection: conn},
			nectarhooks.EntityVersion{Entity: "connection:c1", Updated: at(5).Time}, true},
		{"connection validated", &nectarhooks.ConnectionValidated{Connection: conn},
			nectarhooks.EntityVersion{Entity: "connection:c1", Updated: at(5).Time}, true},
		{"document created", &nectarhooks.DocumentCreated{Document: doc},
			nectarhooks.EntityVersion{Entity: "document:d1", Updated: at(7).Time}, true},
		{"document updated", &nectarhooks.DocumentUpdated{Document: doc},
			nectarhooks.EntityVersion{Entity: "document:d1", Updated: at(7).Time}, true},
		{"no updated: created", &nectarhooks.ConnectionCreated{Connection: nectarhooks.Connection{ID: "c1", Created: at(3)}},
			nectarhooks.EntityVersion{Entity: "connection:c1", Updated: at(3).Time}, true},
		{"neither", &nectarhooks.ConnectionUpdated{Connection: nectarhooks.Connection{ID: "c1"}}, nectarhooks.EntityVersion{}, false},
		{"no id", &nectarhooks.DocumentUpdated{Document: nectarhooks.Document{Updated: at(1)}}, nectarhooks.EntityVersion{}, false},
		{"unknown event", &nectarhooks.UnknownEvent{}, nectarhooks.EntityVersion{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := nectarhooks.EventVersion(context.Background(), tt.ev)
			require.Equal(t, tt.wantOK, ok)
			assert.Equal(t, tt.want, got)
		})
	}
}

func update(id string, us int) *nectarhooks.ConnectionUpdated {
	return &nectarhooks.ConnectionUpdated{Connection: nectarhooks.Connection{ID: id, Updated: at(us)}}
}

func TestMemoryOrder(t *testing.T) {
	errFail := errors.New("failing on purpose")
	steps := []struct {
		name      string
		ev        nectarhooks.Event
		fail      bool
		wantStale bool
		wantRun   bool
		newest    int // microseconds after orderT0, checked after the step
	}{
		{"first applied", update("c1", 10), false, false, true, 10},
		{"older: stale, not run", update("c1", 5), false, true, false, 10},
		{"tie: applied", update("c1", 10), false, false, true, 10},
		{"newer, fails: not recorded", update("c1", 20), true, false, true, 10},
		{"older than the failed one, newer than applied: applied", update("c1", 15), false, false, true, 15},
		{"the failed one's retry: applied", update("c1", 20), false, false, true, 20},
		{"created after updates: stale", &nectarhooks.ConnectionCreated{Connection: nectarhooks.Connection{ID: "c1", Created: at(1)}}, false, true, false, 20},
		{"another entity: its own order", update("c2", 1), false, false, true, 20},
	}
	o := nectarhooks.NewMemoryOrder()
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			ran := false
			err := o.Apply(context.Background(), st.ev, func() error {
				ran = true
				if st.fail {
					return errFail
				}
				return nil
			})
			assert.Equal(t, st.wantRun, ran, "apply ran")
			switch {
			case st.wantStale:
				require.ErrorIs(t, err, nectarhooks.ErrStale)
			case st.fail:
				require.ErrorIs(t, err, errFail)
			default:
				require.NoError(t, err)
			}
			newest, ok := o.Newest("connection:c1")
			require.True(t, ok)
			assert.Equal(t, at(st.newest).Time, newest)
		})
	}
	t.Run("unordered events run", func(t *testing.T) {
		ran := false
		require.NoError(t, o.Apply(context.Background(), &nectarhooks.UnknownEvent{}, func() error { ran = true; return nil }))
		assert.True(t, ran)
	})
}

// Many goroutines apply the updates of a few entities in random order,
// each writing the status it carries: in the end every entity's status is
// that of its newest update, whatever the order.
func TestMemoryOrderConcurrent(t *testing.T) {
	const entities, updates = 20, 50
	type ev struct {
		id string
		us int
	}
	var all []ev
	for e := range entities {
		for u := range updates {
			all = append(all, ev{string(rune('a' + e)), u})
		}
	}
	rand.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	o := nectarhooks.NewMemoryOrder()
	var mu sync.Mutex
	status := map[string]int{}
	var wg sync.WaitGroup
	work := make(chan ev)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for e := range work {
				err := o.Apply(context.Background(), update(e.id, e.us), func() error {
					mu.Lock()
					status[e.id] = e.us
					mu.Unlock()
					return nil
				})
				if err != nil && !errors.Is(err, nectarhooks.ErrStale) {
					t.Error(err)
				}
			}
		}()
	}
	for _, e := range all {
		work <- e
	}
	close(work)
	wg.Wait()
	require.Len(t, status, entities)
	for id, us := range status {
		assert.Equal(t, updates-1, us, "entity %s", id)
	}
}

// A callback that returns ErrStale is acknowledged (200), its message
// completed in the idempotency store, and the Observer sees OutcomeStale.
func TestHandlerStaleEvent(t *testing.T) {
	secret := nectarhookstest.NewSecret()
	signer, err := nectarhookstest.NewSigner(secret)
	require.NoError(t, err)
	store := newCountingStore()
	obs := &outcomes{}
	h, err := nectarhooks.NewHandler(secret, nectarhooks.WithIdempotency(store), nectarhooks.WithObserver(obs))
	require.NoError(t, err)
	o := nectarhooks.NewMemoryOrder()
	applied := map[string]bool{}
	h.OnConnectionUpdated(func(ctx context.Context, e *nectarhooks.ConnectionUpdated) error {
		return o.Apply(ctx, e, func() error { applied[string(e.Status)+e.Updated.Format(nectarhooks.TimeLayout)] = true; return nil })
	})
	newer := connectionUpdate(t, "c1", "CONNECTED", at(10))
	older := connectionUpdate(t, "c1", "PENDING", at(5))
	for i, body := range [][]byte{newer, older} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, signer.Request("/", body))
		require.Equal(t, http.StatusOK, rec.Code)
		if i == 1 {
			assert.Equal(t, "acknowledged: stale event\n", rec.Body.String())
		}
	}
	assert.Len(t, applied, 1, "only the newer update applied")
	store.mu.Lock()
	assert.Equal(t, map[string]int{"claim": 2, "complete": 2}, store.calls, "the stale message is completed, not released")
	store.mu.Unlock()
	obs.mu.Lock()
	defer obs.mu.Unlock()
	assert.Equal(t, []nectarhooks.Outcome{nectarhooks.OutcomeProcessed, nectarhooks.OutcomeStale}, obs.process)
	assert.True(t, nectarhooks.OutcomeStale.Acknowledged())
	assert.Equal(t, "stale", nectarhooks.OutcomeStale.String())
}

// connectionUpdate is Nectar's connection.updated.v2 sample for connection
// id with status and updated.
func connectionUpdate(t testing.TB, id, status string, updated nectarhooks.Time) []byte {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(nectarhookstest.Sample(nectarhooks.EventConnectionUpdated), &m))
	m["id"], m["status"], m["updated"] = id, status, updated
	b, err := json.Marshal(m)
	require.NoError(t, err)
	return b
}

// outcomes records the outcome of each StageProcess.
type outcomes struct {
	mu      sync.Mutex
	process []nectarhooks.Outcome
}

func (o *outcomes) Start(ctx context.Context, _ nectarhooks.Delivery) context.Context { return ctx }

func (o *outcomes) End(_ context.Context, d nectarhooks.Delivery) {
	if d.Stage == nectarhooks.StageProcess {
		o.mu.Lock()
		o.process = append(o.process, d.Outcome)
		o.mu.Unlock()
	}
}

// Under NewAccountHandler each account's entities are its own: an older
// update of connection c1 for account b is applied although account a
// applied a newer c1, and is stale within b once b applied a newer one.
func TestOrderPerAccount(t *testing.T) {
	inAccount := func(account string) context.Context {
		return nectarhooks.ContextWithMessage(context.Background(), nectarhooks.Message{ID: "msg_1", Account: account})
	}
	v, ok := nectarhooks.EventVersion(inAccount("acme"), update("c1", 1))
	require.True(t, ok)
	assert.Equal(t, "acme connection:c1", v.Entity)

	o := nectarhooks.NewMemoryOrder()
	apply := func(account string, us int) error {
		return o.Apply(inAccount(account), update("c1", us), func() error { return nil })
	}
	require.NoError(t, apply("a", 20))
	require.NoError(t, apply("b", 10), "another account's entity of the same id")
	require.NoError(t, apply("", 5), "a Handler without accounts: its own")
	require.NoError(t, apply("b", 30))
	require.ErrorIs(t, apply("b", 25), nectarhooks.ErrStale)
	require.ErrorIs(t, apply("a", 15), nectarhooks.ErrStale)
	newest, ok := o.Newest("a connection:c1")
	require.True(t, ok)
	assert.Equal(t, at(20).Time, newest)
}
