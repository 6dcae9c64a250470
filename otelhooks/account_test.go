package otelhooks_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
	"github.com/nectarhooks/nectarhooks/otelhooks"
)

// The spans of a NewAccountHandler's delivery carry the account; the
// metrics do not (one series per account would be unbounded).
func TestAccountOnSpans(t *testing.T) {
	spans, reader := tracetest.NewInMemoryExporter(), sdkmetric.NewManualReader()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() {
		assert.NoError(t, tp.Shutdown(context.Background()))
		assert.NoError(t, mp.Shutdown(context.Background()))
	})
	obs, err := otelhooks.New(otelhooks.WithTracerProvider(tp), otelhooks.WithMeterProvider(mp))
	require.NoError(t, err)
	secret := nectarhookstest.NewSecret()
	h, err := nectarhooks.NewAccountHandler(func(r *http.Request) string { return r.PathValue("account") },
		func(context.Context, string) ([]string, error) { return []string{secret}, nil }, nectarhooks.WithObserver(obs))
	require.NoError(t, err)
	h.OnDocumentCreated(func(context.Context, *nectarhooks.DocumentCreated) error { return nil })
	mux := http.NewServeMux()
	mux.Handle("POST /webhooks/{account}", h)
	signer, err := nectarhookstest.NewSigner(secret)
	require.NoError(t, err)
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, signer.Request("/webhooks/tenant-zx81", nectarhookstest.Sample(nectarhooks.EventDocumentCreated)))
	require.Equal(t, http.StatusOK, rec.Code)

	got := spans.GetSpans()
	require.NotEmpty(t, got)
	for _, s := range got {
		assert.Equal(t, "tenant-zx81", attrs(s.Attributes)["nectarhooks.account"], "span %s", s.Name)
	}
	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(context.Background(), &rm))
	require.NotEmpty(t, rm.ScopeMetrics)
	encoded, err := json.Marshal(rm)
	require.NoError(t, err)
	assert.Contains(t, string(encoded), "document.created.v2", "metric attributes are in the encoding")
	assert.NotContains(t, string(encoded), "tenant-zx81", "the account in a metric")
}
