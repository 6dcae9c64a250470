// Command async acknowledges each delivery at once and does the work in the
// background, for callbacks that may take longer than Svix's 15-second
// window: WithAsync answers 202 as soon as a delivery is verified, decoded
// and queued, and a fixed number of workers run the callbacks.
//
//	NECTAR_WEBHOOK_SECRET=whsec_... go run ./examples/async -addr 127.0.0.1:8080
//
// The queue is bounded: when it is full the Handler answers 503 and Svix
// delivers the message again later, so nothing is lost at intake. What is
// queued lives in memory, though: a crash after the 202 loses it, while Svix
// considers it delivered. On SIGINT or SIGTERM the server stops taking
// deliveries and the queue is drained before exiting; where a crash must not
// lose messages, use WithQueue with a durable queue instead.
package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nectarhooks/nectarhooks"
)

const (
	// defaultWorkers is how many callbacks run at once: size it to what the
	// slow dependency (a database, an API) can take.
	defaultWorkers = 4
	// defaultQueueSize is how many verified deliveries may wait for a worker.
	// Beyond it, deliveries are refused with 503 and retried by Svix.
	defaultQueueSize = 256
	// drainTimeout bounds how long shutdown waits for queued work.
	drainTimeout = 60 * time.Second
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "`address` to listen on")
	flag.Parse()
	logger := newLogger(os.Stderr)
	// Whatever logs through slog's default or the log package (a
	// dependency, say) writes JSON lines too.
	slog.SetDefault(logger)

	h, err := newHandler(os.Getenv("NECTAR_WEBHOOK_SECRET"), defaultWorkers, defaultQueueSize, logger, newDocumentSyncer(logger, 3*time.Second))
	if err != nil {
		logger.Error("configuring the webhook handler", slog.Any("error", err))
		os.Exit(1)
	}
	srv := newServer(*addr, h, logger)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	served := make(chan error, 1)
	go func() { served <- srv.ListenAndServe() }()
	logger.Info("listening", slog.String("addr", *addr))
	select {
	case err := <-served:
		logger.Error("serving", slog.Any("error", err))
		os.Exit(1)
	case <-ctx.Done():
	}

	if err := shutdown(srv, h, drainTimeout); err != nil {
		logger.Error("shutting down", slog.Any("error", err))
		os.Exit(1)
	}
}

// newLogger returns the program's one logger: JSON lines on w. Everything
// the program logs goes through it, so that every line parses the same way.
func newLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, nil))
}

// newServer returns the HTTP server, with h on the webhook route and the
// server's own messages (a failed TLS handshake, a panic in a handler)
// logged on logger.
func newServer(addr string, h *nectarhooks.Handler, logger *slog.Logger) *http.Server {
	mux := http.NewServeMux()
	mux.Handle("POST /webhooks/nectar", h)
	return &http.Server{
		Addr:              addr,
		Handler:           mux,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      20 * time.Second,
	}
}

// newHandler returns a Handler that queues document events for process,
// which runs on the background workers.
func newHandler(secret string, workers, queueSize int, logger *slog.Logger, process func(context.Context, *nectarhooks.Document) error) (*nectarhooks.Handler, error) {
	h, err := nectarhooks.NewHandler(secret,
		nectarhooks.WithAsync(workers, queueSize),
		nectarhooks.WithLogger(logger),
		// Svix was told "202" already: a callback that fails now is not
		// retried by Svix. Record it somewhere a person or a job will
		// see; the Message in ctx holds the payload to replay later
		// with Handler.DispatchVerified.
		nectarhooks.WithErrorHandler(func(ctx context.Context, status int, err error) {
			if status != 0 {
				return // refused at intake; Svix retries these itself
			}
			m, _ := nectarhooks.MessageFromContext(ctx)
			logger.ErrorContext(ctx, "background processing failed; replay this message",
				slog.String("message_id", m.ID), slog.String("event_type", string(m.EventType)),
				slog.String("payload", string(m.Payload)), slog.Any("error", err))
		}),
		// A generous deadline: the work no longer holds Svix's window.
		nectarhooks.WithCallbackTimeout(2*time.Minute),
	)
	if err != nil {
		return nil, err
	}
	h.OnDocumentCreated(func(ctx context.Context, e *nectarhooks.DocumentCreated) error {
		return process(ctx, &e.Document)
	})
	h.OnDocumentUpdated(func(ctx context.Context, e *nectarhooks.DocumentUpdated) error {
		return process(ctx, &e.Document)
	})
	return h, nil
}

// shutdown stops the server taking deliveries, waits for those in
// progress, then drains the Handler's queue, all within timeout. The order
// matters: once the server is closed nothing can be queued any more.
func shutdown(srv *http.Server, h *nectarhooks.Handler, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return errors.Join(srv.Shutdown(ctx), h.Shutdown(ctx))
}

// newDocumentSyncer returns the slow work: fetching the processed document
// from Nectar's API and storing it, say, which takes work here. It must
// watch ctx, which the Handler cancels at the callback deadline.
func newDocumentSyncer(logger *slog.Logger, work time.Duration) func(context.Context, *nectarhooks.Document) error {
	return func(ctx context.Context, d *nectarhooks.Document) error {
		timer := time.NewTimer(work)
		defer timer.Stop()
		select {
		case <-timer.C:
			m, _ := nectarhooks.MessageFromContext(ctx)
			logger.InfoContext(ctx, "document synced", slog.String("document_id", d.ID), slog.String("message_id", m.ID))
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
