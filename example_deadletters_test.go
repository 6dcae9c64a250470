package nectarhooks_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"time"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
)

// A callback declares a failure permanent: the message is recorded as a
// dead letter and Svix is told to stop retrying it. Once the cause is
// fixed, ReplayDeadLetters runs it again.
func ExampleWithDeadLetters() {
	secret := nectarhookstest.NewSecret()
	dead := nectarhooks.NewMemoryDeadLetters(0)
	h, err := nectarhooks.NewHandler(secret, nectarhooks.WithDeadLetters(dead),
		nectarhooks.WithErrorHandler(func(context.Context, int, error) {}))
	if err != nil {
		panic(err)
	}
	fixed := false
	h.OnDocumentCreated(func(ctx context.Context, e *nectarhooks.DocumentCreated) error {
		if !fixed {
			return nectarhooks.Permanent(errors.New("unknown site " + e.Site.ID))
		}
		return nil
	})

	signer, _ := nectarhookstest.NewSigner(secret)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, signer.RequestFor("/", "msg_2m4Dd0S9H1lhWRZQxGKH0D3a8Lq", time.Now(),
		nectarhookstest.Sample(nectarhooks.EventDocumentCreated)))
	fmt.Println(rec.Code, rec.Header().Get("webhook-delivery"))

	letters, _ := dead.List(context.Background(), nectarhooks.DeadLetterFilter{})
	fmt.Println(len(letters), letters[0].Message.ID, letters[0].Attempts)

	fixed = true
	res, _ := h.ReplayDeadLetters(context.Background(), nectarhooks.DeadLetterFilter{})
	letters, _ = dead.List(context.Background(), nectarhooks.DeadLetterFilter{})
	fmt.Println(res.Replayed, len(letters))
	// Output:
	// 500 abort-message
	// 1 msg_2m4Dd0S9H1lhWRZQxGKH0D3a8Lq 1
	// 1 0
}
