package nectarhooks_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
)

// The test vector Svix publishes: a secret, a message and its signature.
const (
	vectorSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	vectorID        = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	vectorTimestamp = 1614265330
	vectorBody      = `{"test": 2432232314}`
	vectorSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

// Verify checks a message against the headers Svix sent with it. The clock
// is set to the vector's timestamp, which is long past the tolerance.
func ExampleVerifier_Verify() {
	v, err := nectarhooks.NewVerifier(vectorSecret,
		nectarhooks.WithClock(func() time.Time { return time.Unix(vectorTimestamp, 0) }))
	if err != nil {
		panic(err)
	}
	header := http.Header{}
	header.Set("svix-id", vectorID)
	header.Set("svix-timestamp", fmt.Sprint(vectorTimestamp))
	header.Set("svix-signature", vectorSignature)

	fmt.Println("as sent:", v.Verify([]byte(vectorBody), header))

	// The same JSON without the space is a different message.
	err = v.Verify([]byte(`{"test":2432232314}`), header)
	fmt.Println("re-encoded:", errors.Is(err, nectarhooks.ErrNoMatchingSignature))
	// Output:
	// as sent: <nil>
	// re-encoded: true
}

// Parse decodes a verified payload into its typed event.
func ExampleParse() {
	payload := nectarhookstest.Sample(nectarhooks.EventConnectionUpdated)

	ev, err := nectarhooks.Parse(payload)
	if err != nil {
		panic(err)
	}
	switch e := ev.(type) {
	case *nectarhooks.ConnectionUpdated:
		fmt.Println(e.Type(), e.ID)
		fmt.Println("changed:", e.ProtectedChanges)
		fmt.Printf("status: %s -> %s\n", *e.Old.Status, e.Status)
		fmt.Println("updated:", e.Updated.Format(time.RFC3339))
	case *nectarhooks.UnknownEvent:
		fmt.Println("not known to this version:", e.EventType)
	}
	// Output:
	// connection.updated.v2 a6c70a54-34e7-4277-80b0-412869ce087c
	// changed: [status]
	// status: PENDING -> CONNECTED
	// updated: 2024-09-07T12:30:00Z
}

// A Handler verifies, decodes and dispatches each delivery; here a test
// signer stands in for Svix.
func ExampleNewHandler() {
	secret := nectarhookstest.NewSecret() // from the Svix portal in real use
	h, err := nectarhooks.NewHandler(secret)
	if err != nil {
		panic(err)
	}
	h.OnConnectionUpdated(func(ctx context.Context, e *nectarhooks.ConnectionUpdated) error {
		msg, _ := nectarhooks.MessageFromContext(ctx)
		fmt.Printf("%s (%s): %s -> %s\n", e.ID, msg.ID, *e.Old.Status, e.Status)
		return nil
	})
	mux := http.NewServeMux()
	mux.Handle("/webhooks/nectar", h)

	signer, err := nectarhookstest.NewSigner(secret)
	if err != nil {
		panic(err)
	}
	payload := nectarhookstest.Sample(nectarhooks.EventConnectionUpdated)
	req := signer.RequestFor("/webhooks/nectar", "msg_1", time.Now(), payload)
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, req)
	fmt.Println(rec.Code)
	// Output:
	// a6c70a54-34e7-4277-80b0-412869ce087c (msg_1): PENDING -> CONNECTED
	// 200
}

// Middleware verifies deliveries for a route that decodes them itself.
func ExampleVerifier_Middleware() {
	secret := nectarhookstest.NewSecret()
	v, err := nectarhooks.NewVerifier(secret, nectarhooks.WithLogger(nil))
	if err != nil {
		panic(err)
	}
	route := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		msg, _ := nectarhooks.MessageFromContext(r.Context())
		var body struct {
			ID string `json:"id"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			http.Error(w, "bad payload", http.StatusBadRequest)
			return
		}
		fmt.Println("route got", msg.EventType, body.ID)
		w.WriteHeader(http.StatusNoContent)
	})
	handler := v.Middleware(route)

	signer, err := nectarhookstest.NewSigner(secret)
	if err != nil {
		panic(err)
	}
	payload := nectarhookstest.Sample(nectarhooks.EventDocumentCreated)
	for _, req := range []*http.Request{
		signer.Request("/", payload),
		httptest.NewRequest(http.MethodPost, "/", nil), // unsigned: never reaches the route
	} {
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		fmt.Println(rec.Code)
	}
	// Output:
	// route got document.created.v2 b2d4e6f8-1234-5678-9abc-def012345678
	// 204
	// 401
}

// With an idempotency store, a redelivery of a processed message (same
// svix-id) is acknowledged without running its callback again.
func ExampleWithIdempotency() {
	secret := nectarhookstest.NewSecret()
	h, err := nectarhooks.NewHandler(secret,
		nectarhooks.WithIdempotency(nectarhooks.NewMemoryStore(0, 0)))
	if err != nil {
		panic(err)
	}
	h.OnDocumentCreated(func(ctx context.Context, e *nectarhooks.DocumentCreated) error {
		fmt.Println("processing", e.ID)
		return nil
	})

	signer, err := nectarhookstest.NewSigner(secret)
	if err != nil {
		panic(err)
	}
	payload := nectarhookstest.Sample(nectarhooks.EventDocumentCreated)
	for range 2 {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, signer.RequestFor("/", "msg_retried", time.Now(), payload))
		fmt.Print(rec.Code, " ", rec.Body.String())
	}
	// Output:
	// processing b2d4e6f8-1234-5678-9abc-def012345678
	// 200 ok
	// 200 acknowledged: message already processed
}

// Dispatch serves deliveries that do not arrive through net/http, such as
// an AWS Lambda function's events, whose header maps have lower-case keys.
// StatusCode gives the status to answer with.
func ExampleHandler_Dispatch() {
	secret := nectarhookstest.NewSecret()
	h, err := nectarhooks.NewHandler(secret)
	if err != nil {
		panic(err)
	}
	h.OnDocumentUpdated(func(ctx context.Context, e *nectarhooks.DocumentUpdated) error {
		fmt.Println("document", e.ID, "updated")
		return nil
	})

	signer, err := nectarhookstest.NewSigner(secret)
	if err != nil {
		panic(err)
	}
	// A Lambda function URL event carries the body as a string and the
	// header names in lower case.
	body := string(nectarhookstest.Sample(nectarhooks.EventDocumentUpdated))
	headers := map[string]string{}
	for k, vs := range signer.Header([]byte(body)) {
		headers[strings.ToLower(k)] = vs[0]
	}

	header := make(http.Header, len(headers))
	for k, v := range headers {
		header[k] = []string{v} // Dispatch finds non-canonical keys too
	}
	err = h.Dispatch(context.Background(), []byte(body), header)
	fmt.Println(nectarhooks.StatusCode(err))

	err = h.Dispatch(context.Background(), []byte(body+" "), header)
	fmt.Println(nectarhooks.StatusCode(err), errors.Is(err, nectarhooks.ErrVerification))
	// Output:
	// document b2d4e6f8-1234-5678-9abc-def012345678 updated
	// 200
	// 401 true
}

// During a secret rotation the Handler accepts both secrets, so deliveries
// keep being verified whichever one Svix signs with.
func ExampleWithSecrets() {
	oldSecret, newSecret := nectarhookstest.NewSecret(), nectarhookstest.NewSecret()
	h, err := nectarhooks.NewHandler(newSecret, nectarhooks.WithSecrets(oldSecret))
	if err != nil {
		panic(err)
	}
	payload := nectarhookstest.Sample(nectarhooks.EventConnectionCreated)
	for _, secret := range []string{oldSecret, newSecret, nectarhookstest.NewSecret()} {
		signer, err := nectarhookstest.NewSigner(secret)
		if err != nil {
			panic(err)
		}
		fmt.Println(nectarhooks.StatusCode(h.Dispatch(context.Background(), payload, signer.Header(payload))))
	}
	// Output:
	// 200
	// 200
	// 401
}
