// Command chi mounts a nectarhooks Handler on a chi router.
//
//	cd examples/frameworks && NECTAR_WEBHOOK_SECRET=whsec_... go run ./chi -addr 127.0.0.1:8080
//
// A nectarhooks.Handler is an http.Handler, so chi takes it as it is. The
// one rule is that nothing may read or rewrite the body before it: the
// signature covers the bytes exactly as sent. Register the webhook route
// outside any group whose middleware decodes bodies, as below. chi has no
// CSRF protection of its own; if the service adds one (gorilla/csrf,
// nosurf), keep it off this route too, since Svix sends no CSRF token.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"github.com/nectarhooks/nectarhooks"
)

func main() {
	addr, err := parseFlags(os.Args[1:], os.Stderr)
	if err != nil {
		os.Exit(2) // the flag package has printed the error and the usage
	}
	h, err := nectarhooks.NewHandler(os.Getenv("NECTAR_WEBHOOK_SECRET"))
	if err != nil {
		log.Fatal(err)
	}
	h.OnConnectionUpdated(func(ctx context.Context, e *nectarhooks.ConnectionUpdated) error {
		log.Printf("connection %s is %s", e.ID, e.Status)
		return nil
	})
	srv := &http.Server{
		Addr:              addr,
		Handler:           newRouter(h),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      20 * time.Second,
	}
	// examples/server shows graceful shutdown; it works the same here.
	log.Printf("listening on %s", addr)
	log.Fatal(srv.ListenAndServe())
}

// parseFlags reads the command line: -addr, the address to listen on
// (default 127.0.0.1:8080, reachable only from this machine; use :8080 to
// listen on every interface), as the other examples do. Errors and the
// usage go to stderr.
func parseFlags(args []string, stderr io.Writer) (addr string, err error) {
	fs := flag.NewFlagSet("chi", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&addr, "addr", "127.0.0.1:8080", "`address` to listen on; use :8080 to listen on every interface")
	if err := fs.Parse(args); err != nil {
		return "", err
	}
	if fs.NArg() > 0 {
		err := fmt.Errorf("unexpected argument %q: the only flag is -addr", fs.Arg(0))
		fmt.Fprintln(fs.Output(), err)
		fs.Usage()
		return "", err
	}
	return addr, nil
}

// newRouter returns the service's router with the webhook route on it.
func newRouter(h *nectarhooks.Handler) chi.Router {
	r := chi.NewRouter()
	// Middleware that leaves the body alone is fine on every route.
	r.Use(middleware.RequestID, middleware.Recoverer)

	// The webhook route, ahead of and apart from the body-decoding group.
	r.Method(http.MethodPost, "/webhooks/nectar", h)

	// The rest of the service: its JSON API, with middleware that
	// consumes the body. Mounted over the webhook route, such middleware
	// would break every signature.
	r.Group(func(r chi.Router) {
		r.Use(decodeJSON)
		r.Post("/api/notes", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusCreated)
		})
	})
	return r
}

// decodeJSON stands for the body-parsing middleware a service may have: it
// decodes the body into the request context, leaving r.Body drained.
func decodeJSON(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			http.Error(w, "invalid JSON", http.StatusBadRequest)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), bodyKey{}, body)))
	})
}

type bodyKey struct{}
