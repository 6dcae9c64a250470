package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
	"github.com/nectarhooks/nectarhooks/pgxstore"
)

// TestDeadLettersAccounts: one svix-id given up on by an account Handler
// for two accounts is two dead letters, each listed and shown with its
// account; replay without -account leaves them (exit 1), and replay
// -account acme with acme's secret and a {account} URL replays acme's
// alone, into acme.
func TestDeadLettersAccounts(t *testing.T) {
	dsn := nectarhookstest.PostgresURL(t)
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, dsn)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	suffix := strings.ToLower(nectarhookstest.NewMessageID()[4:16])
	table := "nh_dead_acct_" + suffix
	for _, tb := range []string{table, "nh_msgs_acct_" + suffix} {
		t.Cleanup(func() {
			_, err := pool.Exec(context.Background(), "DROP TABLE IF EXISTS "+pgx.Identifier{tb}.Sanitize())
			assert.NoError(t, err)
		})
	}
	store, err := pgxstore.NewDeadLetters(ctx, pool, table)
	require.NoError(t, err)
	idem, err := pgxstore.New(ctx, pool, pgxstore.WithTable("nh_msgs_acct_"+suffix))
	require.NoError(t, err)
	secrets := map[string]string{"acme": nectarhookstest.NewSecret(), "globex": nectarhookstest.NewSecret()}
	h, err := nectarhooks.NewAccountHandler(func(r *http.Request) string { return r.PathValue("account") },
		func(_ context.Context, account string) ([]string, error) {
			if s, ok := secrets[account]; ok {
				return []string{s}, nil
			}
			return nil, nectarhooks.ErrUnknownAccount
		},
		nectarhooks.WithDeadLetters(store), nectarhooks.WithIdempotency(idem),
		nectarhooks.WithErrorHandler(func(context.Context, int, error) {}))
	require.NoError(t, err)
	var fixed atomic.Bool
	var mu sync.Mutex
	runs := map[string]int{}
	h.OnDocumentCreated(func(ctx context.Context, _ *nectarhooks.DocumentCreated) error {
		m, _ := nectarhooks.MessageFromContext(ctx)
		mu.Lock()
		runs[m.Account]++
		mu.Unlock()
		if !fixed.Load() {
			return nectarhooks.Permanent(errors.New("refused until fixed"))
		}
		return nil
	})
	mux := http.NewServeMux()
	mux.Handle("POST /webhooks/{account}", h)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	const id = "msg_to_every_endpoint"
	payload := []byte(`{"eventType":"document.created.v2","id":"doc-1"}`)
	for account, secret := range secrets {
		signer, err := nectarhookstest.NewSigner(secret)
		require.NoError(t, err)
		req, err := http.NewRequest(http.MethodPost, srv.URL+"/webhooks/"+account, strings.NewReader(string(payload)))
		require.NoError(t, err)
		for k, vs := range signer.HeaderFor(id, time.Now(), payload) {
			req.Header[k] = vs
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, nectarhooks.AbortMessage, resp.Header.Get(nectarhooks.DeliveryHeader), account)
	}
	cli := func(secret string, args ...string) cliResult {
		t.Helper()
		return runCLI(t, invocation{vars: map[string]string{"DATABASE_URL": dsn, "NECTAR_WEBHOOK_SECRET": secret}},
			append([]string{"dead"}, append(args, "-table", table)...)...)
	}
	accountsOf := func(res cliResult) []string {
		t.Helper()
		require.Equal(t, exitOK, res.code, res.stderr)
		var got []string
		for line := range strings.Lines(res.stdout) {
			var d deadJSON
			require.NoError(t, json.Unmarshal([]byte(line), &d), line)
			assert.Equal(t, id, d.ID)
			got = append(got, d.Account)
		}
		return got
	}
	assert.ElementsMatch(t, []string{"acme", "globex"}, accountsOf(cli("", "list", "-json")))
	assert.Equal(t, []string{"globex"}, accountsOf(cli("", "list", "-json", "-account", "globex")))
	text := cli("", "list")
	assert.Contains(t, text.stdout, id+" (account acme)")
	assert.Contains(t, text.stdout, id+" (account globex)")
	show := cli("", "show", "-account", "acme")
	assert.Contains(t, show.stdout, "account:         acme\n")

	fixed.Store(true)
	// Without -account nothing of an account's is sent: one secret cannot
	// sign for both.
	res := cli(secrets["acme"], "replay", "-all", "-url", srv.URL+"/webhooks/acme")
	assert.Equal(t, exitRefused, res.code, res.stdout+res.stderr)
	assert.Contains(t, res.stdout, "2 left: an account's")
	res = cli(secrets["acme"], "replay", "-all", "-account", "acme", "-url", srv.URL+"/webhooks/{account}")
	require.Equal(t, exitOK, res.code, res.stdout+res.stderr)
	assert.Contains(t, res.stdout, "1 replayed")
	mu.Lock()
	assert.Equal(t, map[string]int{"acme": 2, "globex": 1}, runs, "runs by account")
	mu.Unlock()
	assert.Equal(t, []string{"globex"}, accountsOf(cli("", "list", "-json")))
	usage := cli("", "replay", "-all", "-url", srv.URL+"/webhooks/{account}")
	assert.Equal(t, exitUsage, usage.code)
	assert.Contains(t, usage.stderr, "-url has {account}")
}
