package riverqueue_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
	"github.com/nectarhooks/nectarhooks/riverqueue"
)

// wait bounds every wait for River to get through its jobs, so that a bug
// fails a test instead of hanging it. It is not a timing assertion: on an
// idle machine everything here takes well under a second.
const wait = 90 * time.Second

// pollEvery is how often waits look again.
const pollEvery = 20 * time.Millisecond

// newDatabase creates a database of the test's own with River's tables
// (see newEmptyDatabase), and returns its URL.
func newDatabase(tb testing.TB) string {
	tb.Helper()
	dbURL := newEmptyDatabase(tb)
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, dbURL)
	require.NoError(tb, err)
	defer pool.Close()
	migrator, err := rivermigrate.New(riverpgxv5.New(pool), nil)
	require.NoError(tb, err)
	_, err = migrator.Migrate(ctx, rivermigrate.DirectionUp, nil)
	require.NoError(tb, err)
	return dbURL
}

// newEmptyDatabase creates a database of the test's own on the test server,
// without River's tables (newDatabase migrates its database), and drops it
// when the test ends. It returns the database's URL.
func newEmptyDatabase(tb testing.TB) string {
	tb.Helper()
	return nectarhookstest.PostgresDatabase(tb, "nh_river_")
}

func randomHex(tb testing.TB, n int) string {
	b := make([]byte, n)
	_, err := rand.Read(b)
	require.NoError(tb, err)
	return hex.EncodeToString(b)
}

// newPool opens a pool on dbURL, closed when the test ends.
func newPool(tb testing.TB, dbURL string, maxConns int32) *pgxpool.Pool {
	tb.Helper()
	cfg, err := pgxpool.ParseConfig(dbURL)
	require.NoError(tb, err)
	if maxConns > 0 {
		cfg.MaxConns = maxConns
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(tb, err)
	tb.Cleanup(pool.Close)
	return pool
}

// newDialPool opens a pool on dbURL whose connections are made by dial
// (a nectarhookstest.FaultProxy's Dial, say), closed when the test ends.
func newDialPool(tb testing.TB, dbURL string, maxConns int32, dial func(ctx context.Context, network, addr string) (net.Conn, error)) *pgxpool.Pool {
	tb.Helper()
	cfg, err := pgxpool.ParseConfig(dbURL)
	require.NoError(tb, err)
	cfg.MaxConns = maxConns
	cfg.ConnConfig.DialFunc = dial
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(tb, err)
	tb.Cleanup(pool.Close)
	return pool
}

// newInsertClient returns an insert-only River client: no queues, no
// workers, as an intake replica runs.
func newInsertClient(tb testing.TB, pool *pgxpool.Pool) *river.Client[pgx.Tx] {
	tb.Helper()
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{})
	require.NoError(tb, err)
	return client
}

// retryNow is a River retry policy for tests: retry at once, instead of
// River's backoff of seconds to days.
type retryNow struct{}

func (retryNow) NextRetry(*rivertype.JobRow) time.Time { return time.Now() }

// newWorkerClient returns a started River client working h's messages (see
// newRiverClient), stopped when the test ends.
func newWorkerClient(tb testing.TB, pool *pgxpool.Pool, h *nectarhooks.Handler, opts ...riverqueue.WorkerOption) *river.Client[pgx.Tx] {
	tb.Helper()
	client, workers := newRiverClient(tb, pool)
	river.AddWorker(workers, riverqueue.NewWorker(h, opts...))
	startClient(tb, client)
	return client
}

// newRiverClient returns a River client that works the default queue with
// fast polling and immediate retries, and its workers, to which workers are
// added before startClient, as a service wires it: client, then the
// Handler whose Queue inserts with it, then the Worker running that Handler.
func newRiverClient(tb testing.TB, pool *pgxpool.Pool) (*river.Client[pgx.Tx], *river.Workers) {
	tb.Helper()
	workers := river.NewWorkers()
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		Queues:                      map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 20}},
		Workers:                     workers,
		RetryPolicy:                 retryNow{},
		FetchCooldown:               10 * time.Millisecond,
		FetchPollInterval:           50 * time.Millisecond,
		CompletedJobRetentionPeriod: riverqueue.CompletedJobRetention,
		Logger:                      quietLogger(),
	})
	require.NoError(tb, err)
	return client, workers
}

// startClient starts client and stops it when the test ends.
func startClient(tb testing.TB, client *river.Client[pgx.Tx]) {
	tb.Helper()
	require.NoError(tb, client.Start(context.Background()))
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		require.NoError(tb, client.Stop(ctx))
	})
}

// jobStates counts the jobs of riverqueue.Kind by state.
func jobStates(tb testing.TB, pool *pgxpool.Pool) map[rivertype.JobState]int {
	tb.Helper()
	rows, err := pool.Query(context.Background(),
		"SELECT state::text, count(*) FROM river_job WHERE kind = $1 GROUP BY state", riverqueue.Kind)
	require.NoError(tb, err)
	states := map[rivertype.JobState]int{}
	for rows.Next() {
		var state string
		var n int
		require.NoError(tb, rows.Scan(&state, &n))
		states[rivertype.JobState(state)] = n
	}
	require.NoError(tb, rows.Err())
	return states
}

func total(states map[rivertype.JobState]int) int {
	n := 0
	for _, c := range states {
		n += c
	}
	return n
}

// samples are Nectar's documented payloads, each with extra whitespace so
// that a re-encoded payload would differ from the one sent.
var samples = func() [][]byte {
	var out [][]byte
	for _, et := range nectarhooks.EventTypes() {
		s := nectarhookstest.Sample(et)
		out = append(out, append(append([]byte("  \n\t "), bytes.ReplaceAll(s, []byte(`":`), []byte(`" :   `))...), "\n\n"...))
	}
	return out
}()

// deliverer sends signed deliveries over HTTP, as Svix does: every attempt
// of a message has the message's id and a fresh timestamp and signature.
type deliverer struct {
	signer *nectarhookstest.Signer
	client *http.Client
}

func newDeliverer(tb testing.TB, secret string) *deliverer {
	tb.Helper()
	signer, err := nectarhookstest.NewSigner(secret)
	require.NoError(tb, err)
	tr := &http.Transport{MaxIdleConns: 64, MaxIdleConnsPerHost: 64}
	tb.Cleanup(tr.CloseIdleConnections)
	return &deliverer{signer: signer, client: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

// deliver sends one attempt of message id and returns the status.
func (d *deliverer) deliver(url, id string, body []byte) (int, error) {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header = d.signer.HeaderFor(id, time.Now(), body)
	resp, err := d.client.Do(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// recorder is a set of callbacks that record what they ran, and fail or
// panic on demand.
type recorder struct {
	mu        sync.Mutex
	attempts  map[string]int    // message id: callback runs
	succeeded map[string]int    // message id: runs that returned nil
	payloads  map[string][]byte // message id: Message.Payload of the last run
	// behave decides each run's outcome from the message id and the run's
	// number (1 for the first); nil succeeds.
	behave func(ctx context.Context, id string, run int) error
}

func newRecorder() *recorder {
	return &recorder{attempts: map[string]int{}, succeeded: map[string]int{}, payloads: map[string][]byte{}}
}

// register sets r's callback for every event type on h.
func (r *recorder) register(h *nectarhooks.Handler) {
	h.OnConnectionCreated(func(ctx context.Context, _ *nectarhooks.ConnectionCreated) error { return r.run(ctx) })
	h.OnConnectionUpdated(func(ctx context.Context, _ *nectarhooks.ConnectionUpdated) error { return r.run(ctx) })
	h.OnConnectionValidated(func(ctx context.Context, _ *nectarhooks.ConnectionValidated) error { return r.run(ctx) })
	h.OnDocumentCreated(func(ctx context.Context, _ *nectarhooks.DocumentCreated) error { return r.run(ctx) })
	h.OnDocumentUpdated(func(ctx context.Context, _ *nectarhooks.DocumentUpdated) error { return r.run(ctx) })
}

func (r *recorder) run(ctx context.Context) error {
	msg, ok := nectarhooks.MessageFromContext(ctx)
	if !ok {
		return fmt.Errorf("no Message in the callback's context")
	}
	r.mu.Lock()
	r.attempts[msg.ID]++
	run := r.attempts[msg.ID]
	r.payloads[msg.ID] = bytes.Clone(msg.Payload)
	behave := r.behave
	r.mu.Unlock()
	if behave != nil {
		if err := behave(ctx, msg.ID, run); err != nil {
			return err
		}
	}
	r.mu.Lock()
	r.succeeded[msg.ID]++
	r.mu.Unlock()
	return nil
}

// snapshot returns copies of the counts.
func (r *recorder) snapshot() (attempts, succeeded map[string]int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	attempts, succeeded = map[string]int{}, map[string]int{}
	for k, v := range r.attempts {
		attempts[k] = v
	}
	for k, v := range r.succeeded {
		succeeded[k] = v
	}
	return attempts, succeeded
}

func (r *recorder) payload(id string) []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.payloads[id]
}

// quietLogger keeps River's logs of failed attempts (which tests cause on
// purpose) out of the test output.
func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// queueFunc is a nectarhooks.Queue made of a function, to wrap a Queue.
type queueFunc func(ctx context.Context, msg nectarhooks.Message) error

func (f queueFunc) Enqueue(ctx context.Context, msg nectarhooks.Message) error { return f(ctx, msg) }

// pgxTx is the transaction type of River's pgx driver.
type pgxTx = pgx.Tx
