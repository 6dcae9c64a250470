package nectarhooks_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nectarhooks/nectarhooks"
)

// Updates of one connection arriving out of order, as Svix's retries
// deliver them: the older one is refused once the newer one was applied.
func ExampleMemoryOrder() {
	order := nectarhooks.NewMemoryOrder()
	t0 := time.Date(2024, 9, 7, 12, 30, 0, 0, time.UTC)
	update := func(status nectarhooks.ConnectionStatus, updated time.Time) *nectarhooks.ConnectionUpdated {
		return &nectarhooks.ConnectionUpdated{Connection: nectarhooks.Connection{
			ID: "a6c70a54", Status: status, Updated: nectarhooks.Time{Time: updated}}}
	}
	status := nectarhooks.StatusPending
	for _, e := range []*nectarhooks.ConnectionUpdated{
		update(nectarhooks.StatusConnected, t0.Add(time.Minute)), // the newer update, delivered first
		update(nectarhooks.StatusPending, t0),                    // the older one's retry, delivered after it
	} {
		// In a callback: return order.Apply(ctx, e, ...).
		err := order.Apply(context.Background(), e, func() error {
			status = e.Status
			return nil
		})
		fmt.Println(e.Status, "stale:", errors.Is(err, nectarhooks.ErrStale))
	}
	fmt.Println("status:", status)
	// Output:
	// CONNECTED stale: false
	// PENDING stale: true
	// status: CONNECTED
}
