package pgxstore_test

import (
	"context"
	"log"
	"net/http"
	"os"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/pgxstore"
)

// A receiver whose replicas share duplicate suppression through
// PostgreSQL: whichever replica a delivery reaches, each message's
// callback runs once.
func ExampleNew() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL")) // postgres://user@host:5432/db
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()

	// Creates the table nectarhooks_messages if it is missing.
	store, err := pgxstore.New(ctx, pool)
	if err != nil {
		log.Fatal(err)
	}
	h, err := nectarhooks.NewHandler(os.Getenv("NECTAR_WEBHOOK_SECRET"), nectarhooks.WithIdempotency(store))
	if err != nil {
		log.Fatal(err)
	}
	h.OnDocumentCreated(func(ctx context.Context, e *nectarhooks.DocumentCreated) error {
		log.Printf("document %s created", e.ID)
		return nil
	})
	http.Handle("POST /webhooks/nectar", h)
	log.Fatal(http.ListenAndServe("127.0.0.1:8080", nil))
}

// A table in a schema of the application's, and processed messages
// remembered for a week instead of 48 hours.
func ExampleWithTable() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()

	store, err := pgxstore.New(ctx, pool,
		pgxstore.WithTable("billing.webhook_messages"),
		pgxstore.WithTTL(7*24*time.Hour))
	if err != nil {
		log.Fatal(err)
	}
	_ = store // nectarhooks.WithIdempotency(store)
}

// Forget before resending a processed message from the Svix portal, so
// that the resend runs its callback again.
func ExampleStore_Forget() {
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

	if err := store.Forget(ctx, "msg_p5jXN8AQM9LWM0D4loKWxJek"); err != nil {
		log.Fatal(err)
	}
}

// Deleting expired rows on a schedule of one's own, on top of the
// cleanup that Complete does as it goes.
func ExampleStore_DeleteExpired() {
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

	for range time.Tick(time.Hour) {
		n, err := store.DeleteExpired(ctx)
		if err != nil {
			log.Printf("deleting expired webhook messages: %v", err)
			continue
		}
		log.Printf("deleted %d expired webhook messages", n)
	}
}
