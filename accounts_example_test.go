package nectarhooks_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
)

// One route receives for several accounts, each checked against its own
// keys, which a KeyLookup finds (here in a map; in a service, in its
// database or secret manager).
func ExampleNewAccountHandler() {
	staging, production := nectarhookstest.NewSecret(), nectarhookstest.NewSecret()
	keys := map[string][]string{"staging": {staging}, "production": {production}}
	lookup := func(ctx context.Context, account string) ([]string, error) {
		k, ok := keys[account]
		if !ok {
			return nil, nectarhooks.ErrUnknownAccount
		}
		return k, nil
	}
	h, err := nectarhooks.NewAccountHandler(func(r *http.Request) string { return r.PathValue("account") }, lookup)
	if err != nil {
		log.Fatal(err)
	}
	h.OnDocumentCreated(func(ctx context.Context, e *nectarhooks.DocumentCreated) error {
		m, _ := nectarhooks.MessageFromContext(ctx)
		fmt.Println("document for", m.Account)
		return nil
	})
	mux := http.NewServeMux()
	mux.Handle("POST /webhooks/nectar/{account}", h)

	payload := nectarhookstest.Sample(nectarhooks.EventDocumentCreated)
	for _, d := range []struct{ account, secret string }{
		{"production", production},
		{"staging", production}, // another account's secret
		{"test", staging},       // an account lookup does not know
	} {
		signer, _ := nectarhookstest.NewSigner(d.secret)
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, signer.Request("/webhooks/nectar/"+d.account, payload))
		fmt.Println(d.account, rec.Code)
	}
	// Output:
	// document for production
	// production 200
	// staging 401
	// test 401
}
