package nectarhookstest_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
)

// A test of a service's callbacks sends them a signed sample through the
// Handler, as Svix would.
func ExampleSigner_Request() {
	secret := nectarhookstest.NewSecret()
	h, err := nectarhooks.NewHandler(secret)
	if err != nil {
		panic(err)
	}
	h.OnDocumentCreated(func(_ context.Context, e *nectarhooks.DocumentCreated) error {
		fmt.Println("document", e.ID, "at", e.Site.Name)
		return nil
	})

	signer, err := nectarhookstest.NewSigner(secret)
	if err != nil {
		panic(err)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, signer.Request("/webhooks/nectar", nectarhookstest.Sample(nectarhooks.EventDocumentCreated)))
	fmt.Println(rec.Code)
	// Output:
	// document b2d4e6f8-1234-5678-9abc-def012345678 at California Facility 1
	// 200
}

// Sign computes the svix-signature header; here for Svix's published test
// vector.
func ExampleSigner_Sign() {
	signer, err := nectarhookstest.NewSigner("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		panic(err)
	}
	fmt.Println(signer.Sign("msg_p5jXN8AQM9LWM0D4loKWxJek", time.Unix(1614265330, 0), []byte(`{"test": 2432232314}`)))
	// Output:
	// v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=
}

// HeaderFor and FixedClock make replays and stale messages easy to test.
func ExampleSigner_HeaderFor() {
	secret := nectarhookstest.NewSecret()
	now := time.Date(2024, 9, 6, 12, 0, 0, 0, time.UTC)
	v, err := nectarhooks.NewVerifier(secret, nectarhooks.WithClock(nectarhookstest.FixedClock(now)))
	if err != nil {
		panic(err)
	}
	signer, err := nectarhookstest.NewSigner(secret)
	if err != nil {
		panic(err)
	}
	payload := nectarhookstest.Sample(nectarhooks.EventConnectionCreated)

	for _, age := range []time.Duration{time.Minute, 10 * time.Minute} {
		header := signer.HeaderFor("msg_1", now.Add(-age), payload)
		err := v.Verify(payload, header)
		fmt.Printf("%s old: too old %v\n", age, errors.Is(err, nectarhooks.ErrMessageTooOld))
	}
	// Output:
	// 1m0s old: too old false
	// 10m0s old: too old true
}

// Sample returns Nectar's documented payloads, byte for byte, for tests
// of code that parses them.
func ExampleSample() {
	for _, t := range nectarhooks.EventTypes() {
		payload := nectarhookstest.Sample(t)
		ev, err := nectarhooks.Parse(payload)
		if err != nil {
			panic(err)
		}
		fmt.Printf("%-24s %d bytes, parsed as %T\n", t, len(payload), ev)
	}
	// Output:
	// connection.created.v2    717 bytes, parsed as *nectarhooks.ConnectionCreated
	// connection.updated.v2    831 bytes, parsed as *nectarhooks.ConnectionUpdated
	// connection.validated.v2  759 bytes, parsed as *nectarhooks.ConnectionValidated
	// document.created.v2      489 bytes, parsed as *nectarhooks.DocumentCreated
	// document.updated.v2      549 bytes, parsed as *nectarhooks.DocumentUpdated
}

// NewSecret makes a secret in the format the Svix portal shows.
func ExampleNewSecret() {
	secret := nectarhookstest.NewSecret()
	key, err := nectarhooks.DecodeSecret(secret)
	fmt.Println(strings.HasPrefix(secret, "whsec_"), len(key), err)
	// Output:
	// true 24 <nil>
}

// A receiver of ed25519 (v1a) signatures holds only the public key: a
// test signs with the private one.
func ExampleNewKeyPair() {
	signingKey, publicKey := nectarhookstest.NewKeyPair()
	h, err := nectarhooks.NewHandler(publicKey)
	if err != nil {
		log.Fatal(err)
	}
	signer, err := nectarhookstest.NewSigner(signingKey)
	if err != nil {
		log.Fatal(err)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, signer.Request("/webhooks/nectar", nectarhookstest.Sample(nectarhooks.EventDocumentCreated)))
	fmt.Println(rec.Code)
	_, err = nectarhooks.NewHandler(signingKey)
	fmt.Println(errors.Is(err, nectarhooks.ErrPrivateKey))
	// Output:
	// 200
	// true
}
