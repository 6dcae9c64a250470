package riverqueue_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"os"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/riverqueue"
)

// A receiver that takes deliveries and works them in one process. It needs
// a PostgreSQL with River's schema (river migrate-up), so it has no output
// to check.
func Example() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	workers := river.NewWorkers()
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		Queues:                      map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 10}},
		Workers:                     workers,
		CompletedJobRetentionPeriod: riverqueue.CompletedJobRetention,
	})
	if err != nil {
		log.Fatal(err)
	}
	h, err := nectarhooks.NewHandler(os.Getenv("NECTAR_WEBHOOK_SECRET"),
		nectarhooks.WithQueue(riverqueue.New(client)))
	if err != nil {
		log.Fatal(err)
	}
	h.OnConnectionUpdated(func(ctx context.Context, e *nectarhooks.ConnectionUpdated) error {
		return nil // runs on a River worker; an error makes River retry it
	})
	river.AddWorker(workers, riverqueue.NewWorker(h))
	if err := client.Start(ctx); err != nil {
		log.Fatal(err)
	}
	http.Handle("POST /webhooks/nectar", h)
	log.Fatal(http.ListenAndServe("127.0.0.1:8080", nil))
}

// An intake-only replica: its client has no queues and no workers, and
// only inserts.
func ExampleNew_insertOnly() {
	pool, err := pgxpool.New(context.Background(), os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{})
	if err != nil {
		log.Fatal(err)
	}
	h, err := nectarhooks.NewHandler(os.Getenv("NECTAR_WEBHOOK_SECRET"),
		nectarhooks.WithQueue(riverqueue.New(client, riverqueue.WithInsertTimeout(3*time.Second))))
	if err != nil {
		log.Fatal(err)
	}
	http.Handle("POST /webhooks/nectar", h)
	log.Fatal(http.ListenAndServe("127.0.0.1:8080", nil))
}

// What River stores for a message: the payload as base64, so that its
// bytes come back exactly as Svix sent them.
func ExampleArgs() {
	args := riverqueue.NewArgs(nectarhooks.Message{
		ID:        "msg_2Yb0ZfV2dYv",
		Timestamp: time.Unix(1764633600, 0).UTC(),
		EventType: nectarhooks.EventConnectionUpdated,
		Payload:   []byte(`{"eventType": "connection.updated.v2"}`),
	})
	stored, _ := json.Marshal(args)
	fmt.Println(args.Kind())
	fmt.Println(string(stored))

	var back riverqueue.Args
	_ = json.Unmarshal(stored, &back)
	fmt.Println(string(back.Message().Payload))
	// Output:
	// nectarhooks_message
	// {"id":"msg_2Yb0ZfV2dYv","timestamp":"2025-12-02T00:00:00Z","event_type":"connection.updated.v2","payload":"eyJldmVudFR5cGUiOiAiY29ubmVjdGlvbi51cGRhdGVkLnYyIn0="}
	// {"eventType": "connection.updated.v2"}
}
