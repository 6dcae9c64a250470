package goredisstore_test

import (
	"context"
	"log"
	"net/http"
	"os"
	"time"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/goredisstore"
	"github.com/redis/go-redis/v9"
)

// Every replica of the service makes the same store, on the same Redis and
// prefix: a message is then processed once, whichever replicas Svix
// delivers it to. (No output: it needs a Redis server.)
func ExampleNew() {
	client := redis.NewClient(&redis.Options{
		Addr: "127.0.0.1:6379",
		// End each call at the deadline the Handler gives it
		// (nectarhooks.WithStoreTimeout): go-redis otherwise waits out
		// ReadTimeout on a link that went silent, after the Handler has
		// given up on the call.
		ContextTimeoutEnabled: true,
		// Fail fast, well inside Svix's 15 seconds, where no deadline is
		// given: a Claim that fails is answered 503 and Svix retries the
		// delivery later.
		DialTimeout:  2 * time.Second,
		ReadTimeout:  2 * time.Second,
		WriteTimeout: 2 * time.Second,
	})
	defer client.Close()

	store := goredisstore.New(client, goredisstore.WithPrefix("billing:nectarhooks:"))
	h, err := nectarhooks.NewHandler(os.Getenv("NECTAR_WEBHOOK_SECRET"), nectarhooks.WithIdempotency(store))
	if err != nil {
		log.Fatal(err)
	}
	h.OnDocumentCreated(func(ctx context.Context, e *nectarhooks.DocumentCreated) error {
		log.Printf("document %s", e.ID)
		return nil
	})
	http.Handle("POST /webhooks/nectar", h)
	log.Fatal(http.ListenAndServe("127.0.0.1:8080", nil))
}

// With Redis Cluster or Sentinel, hand New the client go-redis makes for
// them: every key of the store is a message's own, so each message lives on
// one slot.
func ExampleNew_cluster() {
	client := redis.NewUniversalClient(&redis.UniversalOptions{
		// Several addresses make a cluster client; with MasterName set, a
		// Sentinel (failover) client.
		Addrs:                 []string{"10.0.0.1:6379", "10.0.0.2:6379", "10.0.0.3:6379"},
		ContextTimeoutEnabled: true, // as in ExampleNew
	})
	defer client.Close()

	store := goredisstore.New(client, goredisstore.WithTTL(72*time.Hour))
	if _, err := nectarhooks.NewHandler(os.Getenv("NECTAR_WEBHOOK_SECRET"), nectarhooks.WithIdempotency(store)); err != nil {
		log.Fatal(err)
	}
}

// A resend from the Svix portal keeps the message's svix-id, so the store
// acknowledges it without running the callback: forget the message first
// to have it processed again.
func ExampleStore_Forget() {
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	defer client.Close()
	store := goredisstore.New(client)

	if err := store.Forget(context.Background(), "msg_2OK8RpjBjgNMzZ0QSTNf4k4FS3q"); err != nil {
		log.Fatal(err)
	}
}
