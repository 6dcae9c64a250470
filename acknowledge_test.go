package nectarhooks_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
)

// Messages no callback takes are acknowledged with 200 and a line that
// says why, also with WithAsync, where they are not queued: they take no
// queue slot, so a full queue does not refuse them.
func TestAcknowledgedWithoutCallback(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	updated := nectarhookstest.Sample(nectarhooks.EventConnectionUpdated)
	for _, tc := range []struct {
		name     string
		payload  []byte
		wantText string
	}{
		{"known type without a callback", updated, "acknowledged: no callback for connection.updated.v2\n"},
		{"unknown type", []byte(`{"eventType":"invoice.paid.v3","id":"x"}`), "acknowledged: no callback for invoice.paid.v3\n"},
		{"type that cannot be told", []byte(`{"id":"x"}`), "acknowledged: unknown event type\n"},
	} {
		for _, async := range []bool{false, true} {
			t.Run(tc.name+map[bool]string{false: "", true: ", WithAsync"}[async], func(t *testing.T) {
				secret := nectarhookstest.NewSecret()
				signer, err := nectarhookstest.NewSigner(secret)
				require.NoError(t, err)
				var opts []nectarhooks.Option
				gate := make(chan struct{})
				if async {
					opts = append(opts, nectarhooks.WithAsync(1, 1))
				}
				h, err := nectarhooks.NewHandler(secret, opts...)
				require.NoError(t, err)
				defer func() { require.NoError(t, h.Shutdown(context.Background())) }()
				defer close(gate)
				// A callback for another type, which holds the only
				// worker and fills the only queue slot.
				started := make(chan struct{}, 2)
				h.OnDocumentCreated(func(context.Context, *nectarhooks.DocumentCreated) error {
					started <- struct{}{}
					<-gate
					return nil
				})
				if async {
					doc := nectarhookstest.Sample(nectarhooks.EventDocumentCreated)
					rec := httptest.NewRecorder()
					h.ServeHTTP(rec, signer.Request("/hook", doc))
					require.Equal(t, http.StatusAccepted, rec.Code)
					select {
					case <-started:
					case <-time.After(30 * time.Second):
						t.Fatal("the worker did not start")
					}
					rec = httptest.NewRecorder()
					h.ServeHTTP(rec, signer.Request("/hook", doc))
					require.Equal(t, http.StatusAccepted, rec.Code, "the queue's one slot")
				}

				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, signer.Request("/hook", tc.payload))
				assert.Equal(t, http.StatusOK, rec.Code)
				assert.Equal(t, tc.wantText, rec.Body.String())

				// Dispatch agrees.
				assert.NoError(t, h.Dispatch(context.Background(), tc.payload, signer.Header(tc.payload)))
			})
		}
	}
}
