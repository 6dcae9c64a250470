package nectarhooks_test

import (
	"context"
	"fmt"
	"net/http/httptest"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
)

// printObserver prints each stage of each delivery as it ends.
type printObserver struct{}

func (printObserver) Start(ctx context.Context, _ nectarhooks.Delivery) context.Context { return ctx }

func (printObserver) End(_ context.Context, d nectarhooks.Delivery) {
	eventType := nectarhooks.EventType("-")
	if d.Message != nil {
		eventType = d.Message.EventType
	}
	fmt.Println(d.Stage, eventType, d.Outcome, d.Status, d.Err != nil)
}

// An Observer sees every delivery, successful or not; a metrics library
// would count d.Outcome by event type and record the durations.
func ExampleWithObserver() {
	secret := nectarhookstest.NewSecret()
	h, err := nectarhooks.NewHandler(secret, nectarhooks.WithObserver(printObserver{}))
	if err != nil {
		panic(err)
	}
	h.OnConnectionUpdated(func(context.Context, *nectarhooks.ConnectionUpdated) error { return nil })
	signer, err := nectarhookstest.NewSigner(secret)
	if err != nil {
		panic(err)
	}

	h.ServeHTTP(httptest.NewRecorder(), signer.Request("/", nectarhookstest.Sample(nectarhooks.EventConnectionUpdated)))
	h.ServeHTTP(httptest.NewRecorder(), signer.Request("/", nectarhookstest.Sample(nectarhooks.EventDocumentCreated)))
	forged := signer.Request("/", nectarhookstest.Sample(nectarhooks.EventConnectionUpdated))
	forged.Header.Set("Svix-Signature", "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
	h.ServeHTTP(httptest.NewRecorder(), forged)
	// Output:
	// process connection.updated.v2 processed 200 false
	// receive connection.updated.v2 processed 200 false
	// process document.created.v2 unhandled 200 false
	// receive document.created.v2 unhandled 200 false
	// receive - rejected 401 true
}
