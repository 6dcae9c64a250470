// Command middleware puts nectarhooks in front of a webhook route a service
// already has: Verifier.Middleware checks the Svix signature and passes only
// authentic requests on, with the body unchanged, to a handler that decodes
// and routes them itself.
//
//	NECTAR_WEBHOOK_SECRET=whsec_... go run ./examples/middleware -addr 127.0.0.1:8080
//
// Use this when the route's own code must stay in charge; otherwise a
// nectarhooks.Handler, which also decodes and dispatches, is less code.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"log"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/nectarhooks/nectarhooks"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "`address` to listen on")
	flag.Parse()

	v, err := nectarhooks.NewVerifier(os.Getenv("NECTAR_WEBHOOK_SECRET"))
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{
		Addr:              *addr,
		Handler:           newMux(v, &inbox{}, log.Default()),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      20 * time.Second,
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := srv.Shutdown(shutdownCtx); err != nil {
			log.Print(err)
		}
	}()
	log.Printf("listening on %s", *addr)
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}

// newMux is the service's existing router. Only the webhook route is
// wrapped: the middleware refuses anything Svix did not sign (and logs the
// refusal through the Verifier's logger, slog.Default unless WithLogger
// says otherwise); the route logs what it accepts on logger.
func newMux(v *nectarhooks.Verifier, in *inbox, logger *log.Logger) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("POST /webhooks/nectar", v.Middleware(webhookRoute(in, logger)))
	return mux
}

// event is the service's own view of a payload: only the fields it uses.
type event struct {
	EventType string `json:"eventType"`
	ID        string `json:"id"`
	Status    string `json:"status"`
}

// received is what the route keeps of a delivery.
type received struct {
	MessageID string // svix-id: the same for every retry of a message
	EventType nectarhooks.EventType
	ID        string
	Status    string
}

// webhookRoute is the service's own handler. It runs only for verified
// requests, reads the body the middleware passed on, finds the verified
// Message in the request context, and logs one line per delivery with the
// message id, which the Svix portal's attempt log shows too.
func webhookRoute(in *inbox, logger *log.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		msg, ok := nectarhooks.MessageFromContext(r.Context())
		if !ok {
			// Only reachable if the route is mounted without the middleware.
			http.Error(w, "not verified", http.StatusUnauthorized)
			return
		}
		var e event
		if err := json.NewDecoder(r.Body).Decode(&e); err != nil {
			// Svix counts any answer but 2xx as a failure and retries
			// it, so a fixed decoder still gets the message later; the
			// 400 tells whoever reads the portal's attempt log why.
			logger.Printf("refused message %s (%s): malformed payload: %v", msg.ID, msg.EventType, err)
			http.Error(w, "malformed payload", http.StatusBadRequest)
			return
		}
		// connection.created.v2 samples carry no eventType; the
		// middleware resolves it from the payload's shape.
		in.add(received{MessageID: msg.ID, EventType: msg.EventType, ID: e.ID, Status: e.Status})
		logger.Printf("accepted message %s: %s %s", msg.ID, msg.EventType, e.ID)
		w.WriteHeader(http.StatusNoContent)
	})
}

// inbox stands in for the service's storage.
type inbox struct {
	mu     sync.Mutex
	events []received
}

func (in *inbox) add(r received) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.events = append(in.events, r)
}

func (in *inbox) all() []received {
	in.mu.Lock()
	defer in.mu.Unlock()
	return append([]received(nil), in.events...)
}
