package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
)

// TestMetricsAfterDeliveries sends deliveries to the observed receiver over
// loopback, then scrapes /metrics as Prometheus would and reads the
// series they produced.
func TestMetricsAfterDeliveries(t *testing.T) {
	defer goleak.VerifyNone(t)
	for _, workers := range []int{0, 2} {
		t.Run(map[int]string{0: "synchronous", 2: "async"}[workers], func(t *testing.T) {
			secret := nectarhookstest.NewSecret()
			reg := prometheus.NewRegistry()
			r, err := newReceiver(secret, workers, reg, slog.New(slog.DiscardHandler))
			require.NoError(t, err)
			defer func() { assert.NoError(t, r.shutdown(context.Background())) }()
			webhooks := httptest.NewServer(r.routes())
			defer webhooks.Close()
			metrics := httptest.NewServer(metricsRoutes(reg))
			defer metrics.Close()

			signer, err := nectarhookstest.NewSigner(secret)
			require.NoError(t, err)
			post := func(et nectarhooks.EventType, forge bool) int {
				req, err := signer.NewRequest(context.Background(), webhooks.URL+"/webhooks/nectar", nectarhookstest.Sample(et))
				require.NoError(t, err)
				if forge {
					req.Header.Set("Svix-Signature", "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
				}
				resp, err := webhooks.Client().Do(req)
				require.NoError(t, err)
				defer resp.Body.Close()
				_, err = io.Copy(io.Discard, resp.Body)
				require.NoError(t, err)
				return resp.StatusCode
			}
			accepted := http.StatusOK
			if workers > 0 {
				accepted = http.StatusAccepted
			}
			require.Equal(t, accepted, post(nectarhooks.EventConnectionUpdated, false))
			require.Equal(t, accepted, post(nectarhooks.EventConnectionUpdated, false))
			// No callback: acknowledged, queued or not.
			assert.Contains(t, []int{http.StatusOK, accepted}, post(nectarhooks.EventDocumentUpdated, false))
			require.Equal(t, http.StatusUnauthorized, post(nectarhooks.EventDocumentCreated, true))
			// Drain the queue so that the callbacks have run before the scrape.
			require.NoError(t, r.h.Shutdown(context.Background()))

			resp, err := metrics.Client().Get(metrics.URL + "/metrics")
			require.NoError(t, err)
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, resp.StatusCode)
			text := string(body)

			outcome := "processed"
			if workers > 0 {
				outcome = "queued"
			}
			status := map[int]string{0: "200", 2: "202"}[workers]
			for _, want := range []string{
				`nectarhooks_deliveries_total{` + `[^}]*http_response_status_code="` + status + `"[^}]*nectarhooks_event_type="connection.updated.v2"[^}]*nectarhooks_outcome="` + outcome + `"[^}]*} 2`,
				`nectarhooks_deliveries_total{[^}]*http_response_status_code="401"[^}]*nectarhooks_outcome="rejected"[^}]*} 1`,
				`nectarhooks_verification_failures_total{[^}]*nectarhooks_verification_reason="no_matching_signature"[^}]*} 1`,
				`nectarhooks_delivery_duration_seconds_bucket{[^}]*nectarhooks_outcome="rejected"[^}]*le="15"[^}]*} 1`,
				`nectarhooks_callback_duration_seconds_count{[^}]*nectarhooks_event_type="connection.updated.v2"[^}]*nectarhooks_outcome="processed"[^}]*} 2`,
				`nectarhooks_queue_depth{[^}]*} 0`,
			} {
				assert.Regexp(t, regexp.MustCompile(`(?m)^`+want+`$`), text)
			}
			if workers > 0 {
				assert.Regexp(t, `(?m)^nectarhooks_queue_wait_seconds_count\{[^}]*\} 2$`, text)
			}
			assert.NotContains(t, text, secret)
		})
	}
}
