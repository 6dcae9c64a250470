package riverqueue_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
	"github.com/nectarhooks/nectarhooks/riverqueue"
)

// intakeKey holds, in a delivery's context, the token a traceObserver
// gave it: what a tracer's span would be.
type intakeKey struct{}

// linkKey holds, in the callback's context, the token the Worker's
// extractor read from the job.
type linkKey struct{}

// traceObserver is a nectarhooks.Observer that marks each delivery's
// context with a token of its own, as a tracer starts a span, and
// remembers the token of each message id.
type traceObserver struct {
	mu     sync.Mutex
	tokens map[string]string
}

func (o *traceObserver) Start(ctx context.Context, d nectarhooks.Delivery) context.Context {
	if d.Stage != nectarhooks.StageReceive {
		return ctx
	}
	return context.WithValue(ctx, intakeKey{}, nectarhookstest.NewMessageID())
}

func (o *traceObserver) End(ctx context.Context, d nectarhooks.Delivery) {
	token, _ := ctx.Value(intakeKey{}).(string)
	if d.Stage != nectarhooks.StageReceive || d.Message == nil || token == "" {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.tokens[d.Message.ID] = token
}

// TestTracePropagation sends deliveries through a Queue and a Worker set
// with WithTraceInjector and WithTraceExtractor: each callback's context
// carries what the injector read from its own delivery's context, through
// the job in PostgreSQL; without them jobs carry nothing.
func TestTracePropagation(t *testing.T) {
	for _, tt := range []struct {
		name      string
		propagate bool
	}{
		{"propagated", true},
		{"without injector and extractor", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			pool := newPool(t, newDatabase(t), 8)
			client, workers := newRiverClient(t, pool)
			obs := &traceObserver{tokens: map[string]string{}}
			var queueOpts []riverqueue.Option
			var workerOpts []riverqueue.WorkerOption
			if tt.propagate {
				queueOpts = append(queueOpts, riverqueue.WithTraceInjector(func(ctx context.Context, carrier map[string]string) {
					carrier["token"], _ = ctx.Value(intakeKey{}).(string)
				}))
				workerOpts = append(workerOpts, riverqueue.WithTraceExtractor(func(ctx context.Context, carrier map[string]string) context.Context {
					return context.WithValue(ctx, linkKey{}, carrier["token"])
				}))
			}
			secret := nectarhookstest.NewSecret()
			h, err := nectarhooks.NewHandler(secret, nectarhooks.WithObserver(obs),
				nectarhooks.WithQueue(riverqueue.New(client, queueOpts...)))
			require.NoError(t, err)
			var (
				mu   sync.Mutex
				seen = map[string]any{} // message id: linkKey in the callback's context
			)
			done := make(chan struct{}, 8)
			h.OnDocumentCreated(func(ctx context.Context, _ *nectarhooks.DocumentCreated) error {
				msg, _ := nectarhooks.MessageFromContext(ctx)
				mu.Lock()
				seen[msg.ID] = ctx.Value(linkKey{})
				mu.Unlock()
				done <- struct{}{}
				return nil
			})
			river.AddWorker(workers, riverqueue.NewWorker(h, workerOpts...))
			startClient(t, client)

			signer, err := nectarhookstest.NewSigner(secret)
			require.NoError(t, err)
			ids := []string{nectarhookstest.NewMessageID(), nectarhookstest.NewMessageID()}
			for _, id := range ids {
				rr := httptest.NewRecorder()
				h.ServeHTTP(rr, signer.RequestFor("/", id, time.Now(), nectarhookstest.Sample(nectarhooks.EventDocumentCreated)))
				require.Equal(t, http.StatusAccepted, rr.Code, rr.Body.String())
			}
			for range ids {
				select {
				case <-done:
				case <-time.After(wait):
					t.Fatal("callbacks did not run")
				}
			}

			var traces []map[string]string
			rows, err := pool.Query(context.Background(), "SELECT args->'trace' FROM river_job WHERE kind = $1 ORDER BY id", riverqueue.Kind)
			require.NoError(t, err)
			for rows.Next() {
				var trace map[string]string
				require.NoError(t, rows.Scan(&trace))
				traces = append(traces, trace)
			}
			require.NoError(t, rows.Err())
			require.Len(t, traces, len(ids))

			mu.Lock()
			defer mu.Unlock()
			obs.mu.Lock()
			defer obs.mu.Unlock()
			for i, id := range ids {
				token := obs.tokens[id]
				require.NotEmpty(t, token, "no intake token for %s", id)
				if tt.propagate {
					assert.Equal(t, token, seen[id], "the callback of %s did not get its delivery's trace context", id)
					assert.Len(t, traces[i], 1)
				} else {
					assert.Nil(t, seen[id])
					assert.Nil(t, traces[i], "a job carries a trace context without an injector")
				}
			}
			assert.NotEqual(t, obs.tokens[ids[0]], obs.tokens[ids[1]])
		})
	}
}
