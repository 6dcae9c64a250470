package otelhooks_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	metricnoop "go.opentelemetry.io/otel/metric/noop"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
	"github.com/nectarhooks/nectarhooks/otelhooks"
)

// BenchmarkPipeline measures what observing costs per delivery, beside the
// plain Handler in the same run: the core's BenchmarkPipeline delivery
// (connection.updated.v2, read, verify, decode, callback, answer) with no
// Observer, with otelhooks on the API's no-op providers, and with
// otelhooks on the SDK recording every span (into an in-memory exporter,
// synchronously) and every measurement (a manual reader's aggregation).
//
//	go test -run '^$' -bench Pipeline -benchmem -count 5 ./otelhooks
func BenchmarkPipeline(b *testing.B) {
	secret := nectarhookstest.NewSecret()
	signer, err := nectarhookstest.NewSigner(secret)
	if err != nil {
		b.Fatal(err)
	}
	body := nectarhookstest.Sample(nectarhooks.EventConnectionUpdated)
	header := signer.HeaderFor("msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", time.Now(), body)

	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	b.Cleanup(func() {
		_ = tp.Shutdown(context.Background())
		_ = mp.Shutdown(context.Background())
	})
	noop, err := otelhooks.New(otelhooks.WithTracerProvider(tracenoop.NewTracerProvider()), otelhooks.WithMeterProvider(metricnoop.NewMeterProvider()))
	if err != nil {
		b.Fatal(err)
	}
	sdk, err := otelhooks.New(otelhooks.WithTracerProvider(tp), otelhooks.WithMeterProvider(mp))
	if err != nil {
		b.Fatal(err)
	}

	for _, side := range []struct {
		name string
		opts []nectarhooks.Option
	}{
		{"plain", nil},
		{"otelhooks-noop", []nectarhooks.Option{nectarhooks.WithObserver(noop)}},
		{"otelhooks-sdk", []nectarhooks.Option{nectarhooks.WithObserver(sdk)}},
	} {
		h, err := nectarhooks.NewHandler(secret, side.opts...)
		if err != nil {
			b.Fatal(err)
		}
		h.OnConnectionUpdated(func(_ context.Context, e *nectarhooks.ConnectionUpdated) error {
			if e.Old.Status == nil {
				b.Error("no previous status")
			}
			return nil
		})
		template := httptest.NewRequest(http.MethodPost, "/webhooks/nectar", nil)
		template.Header = header
		template.ContentLength = int64(len(body))
		b.Run(side.name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				r := new(http.Request)
				*r = *template
				r.Body = io.NopCloser(bytes.NewReader(body))
				rr := httptest.NewRecorder()
				h.ServeHTTP(rr, r)
				if rr.Code != http.StatusOK {
					b.Fatalf("answered %d: %s", rr.Code, rr.Body)
				}
				if i++; i%1024 == 0 {
					spans.Reset() // keep the exporter's memory flat
				}
			}
		})
	}
}
