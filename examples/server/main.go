// Command server is a complete Nectar webhook receiver, meant to be copied
// and filled in: the callbacks below are where a service's own work goes.
//
// It reads the endpoint's signing secret from NECTAR_WEBHOOK_SECRET. During
// a rotation, list several, separated by commas: the first is the current
// one, and the others stay accepted until Svix has switched over.
//
//	NECTAR_WEBHOOK_SECRET=whsec_... go run ./examples/server -addr 127.0.0.1:8080
//
// Flags:
//
//	-addr   address to listen on (default 127.0.0.1:8080, reachable only from
//	        this machine: put a TLS-terminating proxy or tunnel in front, or
//	        use -addr :8080 in a container)
//	-path   path of the webhook endpoint (default /webhooks/nectar)
//
// It logs JSON lines with log/slog, answers GET /healthz for load balancers,
// and on SIGINT or SIGTERM stops taking connections and finishes the
// deliveries in progress before exiting.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/nectarhooks/nectarhooks"
)

// secretEnv names the environment variable holding the signing secrets.
const secretEnv = "NECTAR_WEBHOOK_SECRET"

// shutdownGrace bounds how long deliveries in progress may take to finish
// after a signal. Svix waits 15 seconds for an answer, and a callback at most
// DefaultCallbackTimeout, so this lets every one of them complete.
const shutdownGrace = 20 * time.Second

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "`address` to listen on; use :8080 to listen on every interface")
	path := flag.String("path", "/webhooks/nectar", "URL `path` of the webhook endpoint")
	flag.Parse()

	logger := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if err := run(ctx, logger, *addr, *path, os.Getenv(secretEnv)); err != nil {
		os.Exit(1) // run has logged why
	}
}

// run builds the receiver and serves it on addr until ctx is cancelled. It
// logs how it ended, and returns the error it logged, if any: "not
// started" for a configuration that cannot work (no secret, a bad one, an
// address it cannot listen on), "server stopped" when serving failed, and
// "shut down" or "shutdown incomplete" after a signal.
func run(ctx context.Context, logger *slog.Logger, addr, path, secretList string) error {
	h, ln, err := start(logger, addr, path, secretList)
	if err != nil {
		logger.Error("not started", slog.Any("error", err))
		return err
	}
	return serve(ctx, logger, ln, newMux(h, path), h)
}

// start reads the configuration and opens the listener.
func start(logger *slog.Logger, addr, path, secretList string) (*nectarhooks.Handler, net.Listener, error) {
	secrets, err := parseSecrets(secretList)
	if err != nil {
		return nil, nil, err
	}
	h, err := newHandler(logger, secrets)
	if err != nil {
		return nil, nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	return h, ln, nil
}

// parseSecrets splits a comma-separated list of signing secrets, ignoring
// white space and empty entries. It does not check the secrets themselves:
// NewHandler does, with messages that never repeat them.
func parseSecrets(list string) ([]string, error) {
	var secrets []string
	for _, s := range strings.Split(list, ",") {
		if s = strings.TrimSpace(s); s != "" {
			secrets = append(secrets, s)
		}
	}
	if len(secrets) == 0 {
		return nil, fmt.Errorf("%s is not set: copy the signing secret (whsec_...) from the endpoint's page in the Svix portal", secretEnv)
	}
	return secrets, nil
}

// newHandler returns the webhook Handler with its callbacks. secrets[0] is
// the current signing secret; any others are accepted too, for rotation.
func newHandler(logger *slog.Logger, secrets []string) (*nectarhooks.Handler, error) {
	h, err := nectarhooks.NewHandler(secrets[0],
		nectarhooks.WithSecrets(secrets[1:]...),
		nectarhooks.WithLogger(logger),
		nectarhooks.WithErrorHandler(errorHandler(logger)),
		// Svix delivers a message again after a failed or slow answer,
		// and the portal can resend it: run each callback once per
		// svix-id. A memory store serves one instance; several replicas
		// need a shared IdempotencyStore.
		nectarhooks.WithIdempotency(nectarhooks.NewMemoryStore(0, 0)),
	)
	if err != nil {
		return nil, err
	}

	// Replace these with the service's own work. Return an error to have
	// Svix deliver the event again later; return nil once it is handled.
	h.OnConnectionCreated(func(ctx context.Context, e *nectarhooks.ConnectionCreated) error {
		logger.InfoContext(ctx, "connection created",
			slog.String("connection_id", e.ID), slog.String("company", e.Company.Name),
			slog.String("status", string(e.Status)))
		return nil
	})
	h.OnConnectionUpdated(func(ctx context.Context, e *nectarhooks.ConnectionUpdated) error {
		attrs := []any{slog.String("connection_id", e.ID), slog.Any("changed", e.ProtectedChanges),
			slog.String("status", string(e.Status))}
		if e.Old.Status != nil {
			attrs = append(attrs, slog.String("old_status", string(*e.Old.Status)))
		}
		logger.InfoContext(ctx, "connection updated", attrs...)
		return nil
	})
	h.OnConnectionValidated(func(ctx context.Context, e *nectarhooks.ConnectionValidated) error {
		logger.InfoContext(ctx, "connection validated", slog.String("connection_id", e.ID))
		return nil
	})
	h.OnDocumentCreated(func(ctx context.Context, e *nectarhooks.DocumentCreated) error {
		logger.InfoContext(ctx, "document created",
			slog.String("document_id", e.ID), slog.String("site", e.Site.Name))
		return nil
	})
	h.OnDocumentUpdated(func(ctx context.Context, e *nectarhooks.DocumentUpdated) error {
		logger.InfoContext(ctx, "document updated", slog.String("document_id", e.ID))
		return nil
	})
	return h, nil
}

// errorHandler reports every delivery the Handler did not acknowledge. With
// an error handler set, the Handler logs none of them itself: this logs
// each with the message id and event type when the message was verified,
// and a panic's stack, and is where a service counts failures for its
// metrics. Statuses of 500 and up, and 0 (a failure after the answer), are
// the service's own problems; the others are the sender's.
func errorHandler(logger *slog.Logger) func(context.Context, int, error) {
	return func(ctx context.Context, status int, err error) {
		level := slog.LevelWarn
		if status == 0 || status >= 500 {
			level = slog.LevelError
		}
		attrs := []slog.Attr{slog.Int("status", status), slog.Any("error", err)}
		if m, ok := nectarhooks.MessageFromContext(ctx); ok {
			attrs = append(attrs, slog.String("message_id", m.ID), slog.String("event_type", string(m.EventType)))
		}
		var p *nectarhooks.PanicError
		if errors.As(err, &p) {
			attrs = append(attrs, slog.String("stack", string(p.Stack)))
		}
		logger.LogAttrs(ctx, level, "nectar webhook not acknowledged", attrs...)
	}
}

// newMux routes the webhook path to h and /healthz to a liveness check.
// Anything else in the service, such as body-parsing middleware, must not
// wrap h: it needs the body exactly as it arrived.
func newMux(h *nectarhooks.Handler, path string) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle(path, h)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	return mux
}

// serve serves mux on ln until ctx is cancelled, then shuts down
// gracefully: the server stops taking connections and waits for requests in
// progress, then the Handler finishes its own work. It logs how that ended.
func serve(ctx context.Context, logger *slog.Logger, ln net.Listener, mux http.Handler, h *nectarhooks.Handler) error {
	srv := &http.Server{
		Handler:  mux,
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		// Svix sends small bodies and waits 15 seconds for an answer;
		// these bound what a slow or idle client can hold.
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      20 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	logger.Info("listening", slog.String("addr", ln.Addr().String()))

	select {
	case err := <-served:
		logger.Error("server stopped", slog.Any("error", err))
		return err
	case <-ctx.Done():
	}
	logger.Info("shutting down", slog.Duration("grace", shutdownGrace))
	start := time.Now()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	err := srv.Shutdown(shutdownCtx)
	if serr := <-served; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	// After the server: no delivery can reach the Handler any more.
	err = errors.Join(err, h.Shutdown(shutdownCtx))
	if err != nil {
		// Deliveries still running were cut off; Svix retries them.
		logger.Error("shutdown incomplete", slog.Any("error", err), slog.Duration("took", time.Since(start)))
		return err
	}
	logger.Info("shut down", slog.Duration("took", time.Since(start)))
	return nil
}
