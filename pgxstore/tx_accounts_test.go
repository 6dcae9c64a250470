package pgxstore

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jackc/pgx/v5"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
)

// Under NewAccountHandler the store keeps a message under its account and
// id, and Svix sends one svix-id to every endpoint: CompleteTx completes
// the row of the callback's own account, and the same id delivered to two
// accounts runs, and completes, once in each.
func TestCompleteTxAccountHandler(t *testing.T) {
	pool := newPool(t, nil)
	s, err := New(testContext(t), pool, WithTable(testTable(t)))
	require.NoError(t, err)
	effects := effectsTable(t, pool)
	signing := map[string]string{"acme": nectarhookstest.NewSecret(), "globex": nectarhookstest.NewSecret()}
	lookup := func(_ context.Context, account string) ([]string, error) {
		if k, ok := signing[account]; ok {
			return []string{k}, nil
		}
		return nil, nectarhooks.ErrUnknownAccount
	}
	h, err := nectarhooks.NewAccountHandler(func(r *http.Request) string { return r.PathValue("account") }, lookup,
		nectarhooks.WithIdempotency(s), nectarhooks.WithLogger(discardLogger()))
	require.NoError(t, err)
	var runs []string
	h.OnDocumentCreated(func(ctx context.Context, _ *nectarhooks.DocumentCreated) error {
		m, _ := nectarhooks.MessageFromContext(ctx)
		runs = append(runs, m.Account)
		return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `INSERT INTO `+effects+` (message_id) VALUES ($1)`, m.Account+" "+m.ID); err != nil {
				return err
			}
			return s.CompleteTx(ctx, tx)
		})
	})
	mux := http.NewServeMux()
	mux.Handle("POST /webhooks/{account}", h)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	id := nectarhookstest.NewMessageID()
	payload := nectarhookstest.Sample(nectarhooks.EventDocumentCreated)
	deliver := func(account string) int {
		t.Helper()
		signer, err := nectarhookstest.NewSigner(signing[account])
		require.NoError(t, err)
		r, err := http.NewRequestWithContext(testContext(t), http.MethodPost, srv.URL+"/webhooks/"+account, bytes.NewReader(payload))
		require.NoError(t, err)
		for k, vs := range signer.HeaderFor(id, time.Now(), payload) {
			r.Header[k] = vs
		}
		resp, err := srv.Client().Do(r)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	assert.Equal(t, http.StatusOK, deliver("acme"), "first account")
	assert.Equal(t, http.StatusOK, deliver("globex"), "second account, same svix-id")
	assert.Equal(t, http.StatusOK, deliver("acme"), "redelivery to the first account")
	assert.Equal(t, []string{"acme", "globex"}, runs, "one run per account; the redelivery runs nothing")

	for _, account := range []string{"acme", "globex"} {
		var n int
		require.NoError(t, pool.QueryRow(testContext(t),
			`SELECT count(*) FROM `+effects+` WHERE message_id = $1`, account+" "+id).Scan(&n))
		assert.Equal(t, 1, n, "effect rows of %s", account)
	}
	// Nothing was completed under the bare id, which no account's
	// delivery is kept under.
	assert.Zero(t, countRows(t, s, "id = '"+key(id)+"'"), "rows under the bare svix-id")
}
