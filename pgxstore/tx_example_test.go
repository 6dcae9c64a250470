package pgxstore_test

import (
	"context"
	"log"
	"net/http"
	"os"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/pgxstore"
)

// A callback whose writes and the message's completion commit together:
// a replica killed between them leaves neither, and the message to the
// next delivery; one killed after the commit leaves both, and the next
// delivery is acknowledged without running. Updates of a connection that
// arrive after a newer one are acknowledged without being applied.
func ExampleStore_CompleteTx() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	store, err := pgxstore.New(ctx, pool)
	if err != nil {
		log.Fatal(err)
	}
	order, err := pgxstore.NewOrder(ctx, pool, "")
	if err != nil {
		log.Fatal(err)
	}
	h, err := nectarhooks.NewHandler(os.Getenv("NECTAR_WEBHOOK_SECRET"), nectarhooks.WithIdempotency(store))
	if err != nil {
		log.Fatal(err)
	}
	h.OnConnectionUpdated(func(ctx context.Context, e *nectarhooks.ConnectionUpdated) error {
		return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			if err := order.ApplyTx(ctx, tx, e); err != nil {
				return err // nectarhooks.ErrStale: acknowledged, nothing written
			}
			if _, err := tx.Exec(ctx, `UPDATE connections SET status = $1 WHERE id = $2`, e.Status, e.ID); err != nil {
				return err
			}
			return store.CompleteTx(ctx, tx) // ErrClaimLost: rolled back, nothing written
		})
	})
	http.Handle("POST /webhooks/nectar", h)
	log.Fatal(http.ListenAndServe("127.0.0.1:8080", nil))
}
