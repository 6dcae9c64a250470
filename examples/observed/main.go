// Command observed is a webhook receiver with OpenTelemetry metrics, served
// for Prometheus to scrape: the otelhooks Observer records every delivery,
// and OpenTelemetry's Prometheus exporter serves the metrics on a port of
// their own, away from the webhook route.
//
//	NECTAR_WEBHOOK_SECRET=whsec_... go run . -addr 127.0.0.1:8080 -metrics-addr 127.0.0.1:9464
//	curl -s 127.0.0.1:9464/metrics | grep nectarhooks_
//
// With -workers N the callbacks run on N background workers (WithAsync),
// and nectarhooks_queue_depth shows how many deliveries wait for one.
// Traces go to the global TracerProvider, which does nothing until the
// application sets one (with an OTLP exporter, say); under otelhttp each
// delivery's span is a child of the request's.
//
// It lives in a module of its own so that the Prometheus client stays out
// of the library's go.mod.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/otelhooks"
)

// queueSize is how many deliveries may wait for a worker with -workers.
const queueSize = 256

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "`address` of the webhook endpoint, POST /webhooks/nectar")
	metricsAddr := flag.String("metrics-addr", "127.0.0.1:9464", "`address` serving Prometheus metrics on /metrics")
	workers := flag.Int("workers", 0, "background workers (WithAsync); 0 runs callbacks before answering")
	flag.Parse()
	logger := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	if err := run(*addr, *metricsAddr, *workers, logger); err != nil {
		logger.Error("exiting", slog.Any("error", err))
		os.Exit(1)
	}
}

func run(addr, metricsAddr string, workers int, logger *slog.Logger) error {
	reg := prometheus.NewRegistry()
	r, err := newReceiver(os.Getenv("NECTAR_WEBHOOK_SECRET"), workers, reg, logger)
	if err != nil {
		return err
	}
	webhooks := &http.Server{Addr: addr, Handler: r.routes(), ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout: 10 * time.Second, WriteTimeout: 20 * time.Second}
	metrics := &http.Server{Addr: metricsAddr, Handler: metricsRoutes(reg), ReadHeaderTimeout: 5 * time.Second}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	served := make(chan error, 2)
	for _, srv := range []*http.Server{webhooks, metrics} {
		go func() { served <- srv.ListenAndServe() }()
	}
	logger.Info("listening", slog.String("addr", addr), slog.String("metrics_addr", metricsAddr))
	select {
	case err = <-served:
	case <-ctx.Done():
	}

	shutdownCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return errors.Join(err, webhooks.Shutdown(shutdownCtx), r.shutdown(shutdownCtx), metrics.Shutdown(shutdownCtx))
}

// receiver is the observed Handler and what its metrics need.
type receiver struct {
	h        *nectarhooks.Handler
	meters   *sdkmetric.MeterProvider
	queueReg interface{ Unregister() error }
	deadReg  interface{ Unregister() error }
	dead     *nectarhooks.MemoryDeadLetters
}

// now is the clock the dead letters' age is read on: a variable so that
// the test of alerts.yml can look at them two days later.
var now = time.Now

// newReceiver returns a Handler observed by otelhooks, whose metrics reg
// gathers.
func newReceiver(secret string, workers int, reg *prometheus.Registry, logger *slog.Logger) (*receiver, error) {
	exporter, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return nil, fmt.Errorf("prometheus exporter: %w", err)
	}
	meters := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter))
	obs, err := otelhooks.New(otelhooks.WithMeterProvider(meters))
	if err != nil {
		return nil, err
	}
	// Messages given up on are kept for a replay (alerts.yml watches
	// them); use pgxstore.NewDeadLetters where they must outlive the
	// process.
	dead := nectarhooks.NewMemoryDeadLetters(0)
	opts := []nectarhooks.Option{nectarhooks.WithObserver(obs), nectarhooks.WithLogger(logger),
		nectarhooks.WithDeadLetters(dead)}
	if workers > 0 {
		opts = append(opts, nectarhooks.WithAsync(workers, queueSize))
	}
	h, err := nectarhooks.NewHandler(secret, opts...)
	if err != nil {
		return nil, err
	}
	queueReg, err := obs.ObserveQueue(h)
	if err != nil {
		return nil, err
	}
	deadReg, err := obs.ObserveDeadLetters(otelhooks.DeadLetterReader(dead, now))
	if err != nil {
		return nil, err
	}
	h.OnConnectionUpdated(func(ctx context.Context, e *nectarhooks.ConnectionUpdated) error {
		logger.InfoContext(ctx, "connection updated", slog.String("connection_id", e.ID), slog.String("status", string(e.Status)))
		return nil
	})
	h.OnDocumentCreated(func(ctx context.Context, e *nectarhooks.DocumentCreated) error {
		logger.InfoContext(ctx, "document created", slog.String("document_id", e.ID))
		return nil
	})
	return &receiver{h: h, meters: meters, queueReg: queueReg, deadReg: deadReg, dead: dead}, nil
}

// routes serves the webhook endpoint.
func (r *receiver) routes() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("POST /webhooks/nectar", r.h)
	return mux
}

// shutdown drains the Handler's queue, if any, and stops the metrics.
func (r *receiver) shutdown(ctx context.Context) error {
	return errors.Join(r.h.Shutdown(ctx), r.queueReg.Unregister(), r.deadReg.Unregister(), r.meters.Shutdown(ctx))
}

// metricsRoutes serves reg's metrics on GET /metrics.
func metricsRoutes(reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return mux
}
