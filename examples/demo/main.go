// Command demo shows a nectarhooks Handler at work without a Nectar or
// Svix account: it serves a Handler on a loopback port, sends it Nectar's
// documented sample events signed by the official Svix Go library, as Svix
// would sign them, then a few deliveries a receiver must refuse or
// tolerate, and prints what each callback received.
//
//	go run ./examples/demo
//
// It exits with status 1 if any delivery is answered or handled other than
// as expected, which makes it a smoke test as well as a tour.
package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	svix "github.com/svix/svix-webhooks/go"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
)

// delivery is one request the demo sends, and what should come of it.
type delivery struct {
	label   string // what the output line calls it
	id      string // svix-id; fixed, so that the output is the same every run
	payload []byte
	// age is how long before now the message claims to have been signed.
	age time.Duration
	// tamper, if set, changes the body after it was signed.
	tamper func([]byte) []byte
	// wantStatus and wantResult are the expected HTTP status and the
	// expected description of what the callback received, or of why none
	// ran.
	wantStatus int
	wantResult string
}

func main() {
	if err := run(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(out io.Writer) error {
	// Each Svix endpoint has its own secret; a fresh one stands in for it.
	secret := nectarhookstest.NewSecret()

	rec := &recorder{}
	h, err := nectarhooks.NewHandler(secret,
		// Refusals are reported through the error handler below, which
		// keeps the demo's output to one line per delivery; a real service
		// passes its own logger here.
		nectarhooks.WithLogger(slog.New(slog.DiscardHandler)),
		nectarhooks.WithErrorHandler(rec.refused),
		// A redelivery of a processed message is acknowledged without
		// running its callback again.
		nectarhooks.WithIdempotency(nectarhooks.NewMemoryStore(0, 0)),
	)
	if err != nil {
		return err
	}
	register(h, rec)

	// A real net/http server on a loopback port: the deliveries cross an
	// actual HTTP connection, as they would from Svix.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/webhooks/nectar", h)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	url := "http://" + ln.Addr().String() + "/webhooks/nectar"

	signer, err := svix.NewWebhook(secret)
	if err != nil {
		return err
	}
	client := &http.Client{Timeout: 10 * time.Second}

	fmt.Fprintln(out, "nectarhooks demo: each delivery signed with the Svix Go library, POSTed to a Handler on 127.0.0.1")
	fmt.Fprintln(out)
	var failures []string
	for _, d := range deliveries() {
		status, answer, err := send(client, signer, url, d)
		if err != nil {
			failures = append(failures, fmt.Sprintf("%s: %v", d.label, err))
			continue
		}
		result, ok := rec.take()
		if !ok {
			// Acknowledged without a callback: the answer says why.
			result = "no callback ran; answered " + strconv.Quote(answer)
		}
		fmt.Fprintf(out, "%-31s %d  %s\n", d.label, status, result)
		if status != d.wantStatus {
			failures = append(failures, fmt.Sprintf("%s: status %d, want %d", d.label, status, d.wantStatus))
		}
		if result != d.wantResult {
			failures = append(failures, fmt.Sprintf("%s: got %q, want %q", d.label, result, d.wantResult))
		}
	}

	// Stop taking connections and wait for requests in flight, then for
	// the Handler (a no-op here; it drains the queue of WithAsync).
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		return fmt.Errorf("shutting the server down: %w", err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serving: %w", err)
	}
	if err := h.Shutdown(ctx); err != nil {
		return fmt.Errorf("shutting the handler down: %w", err)
	}

	fmt.Fprintln(out)
	if len(failures) > 0 {
		return fmt.Errorf("%d unexpected result(s):\n  %s", len(failures), strings.Join(failures, "\n  "))
	}
	fmt.Fprintln(out, "all deliveries answered and handled as expected")
	return nil
}

// deliveries lists what the demo sends: the five documented events, a
// redelivery, and three messages a receiver must refuse or tolerate.
func deliveries() []delivery {
	sample := nectarhookstest.Sample
	return []delivery{
		{
			label: "connection.created.v2", id: "msg_demo01", payload: sample(nectarhooks.EventConnectionCreated),
			wantStatus: 200, wantResult: "connection a6c70a54-34e7-4277-80b0-412869ce087c created: CONNECTED, Los Angeles Department of Water and Power",
		},
		{
			label: "connection.updated.v2", id: "msg_demo02", payload: sample(nectarhooks.EventConnectionUpdated),
			wantStatus: 200, wantResult: "connection a6c70a54-34e7-4277-80b0-412869ce087c status: PENDING -> CONNECTED",
		},
		{
			label: "connection.validated.v2", id: "msg_demo03", payload: sample(nectarhooks.EventConnectionValidated),
			wantStatus: 200, wantResult: "connection a6c70a54-34e7-4277-80b0-412869ce087c validated: account 0137746423 at California Facility 1",
		},
		{
			label: "document.created.v2", id: "msg_demo04", payload: sample(nectarhooks.EventDocumentCreated),
			wantStatus: 200, wantResult: "document b2d4e6f8-1234-5678-9abc-def012345678 created for California Facility 1",
		},
		{
			label: "document.updated.v2", id: "msg_demo05", payload: sample(nectarhooks.EventDocumentUpdated),
			wantStatus: 200, wantResult: "document b2d4e6f8-1234-5678-9abc-def012345678 updated: 2024-09-10 14:22 -> 2024-09-12 08:15 UTC",
		},
		{
			// Svix retries, and the portal resends, with the same svix-id.
			label: "connection.updated.v2 (again)", id: "msg_demo02", payload: sample(nectarhooks.EventConnectionUpdated),
			wantStatus: 200, wantResult: `no callback ran; answered "acknowledged: message already processed"`,
		},
		{
			label: "tampered body", id: "msg_demo06", payload: sample(nectarhooks.EventConnectionUpdated),
			tamper: func(b []byte) []byte {
				return bytes.Replace(b, []byte(`"PENDING"`), []byte(`"DISCONNECTED"`), 1)
			},
			wantStatus: 401, wantResult: "refused: ErrNoMatchingSignature",
		},
		{
			label: "stale timestamp (10 min old)", id: "msg_demo07", payload: sample(nectarhooks.EventDocumentCreated),
			age:        10 * time.Minute,
			wantStatus: 401, wantResult: "refused: ErrMessageTooOld",
		},
		{
			// Nectar may add event types at any time: a receiver that
			// does not know one acknowledges it, since retrying cannot help.
			label: "invoice.created.v3", id: "msg_demo08",
			payload:    []byte(`{"eventType":"invoice.created.v3","id":"inv_0001"}`),
			wantStatus: 200, wantResult: "OnUnhandled: invoice.created.v3, 50 bytes kept",
		},
	}
}

// send signs d as Svix would, with the Svix library, and POSTs it. It
// returns the status and the text of the answer.
func send(client *http.Client, signer *svix.Webhook, url string, d delivery) (int, string, error) {
	ts := time.Now().Add(-d.age)
	sig, err := signer.Sign(d.id, ts, d.payload)
	if err != nil {
		return 0, "", err
	}
	body := d.payload
	if d.tamper != nil {
		body = d.tamper(bytes.Clone(body))
	}
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Svix-Id", d.id)
	req.Header.Set("Svix-Timestamp", strconv.FormatInt(ts.Unix(), 10))
	req.Header.Set("Svix-Signature", sig)
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	// The Handler's answers are a line of text; 1 KiB is plenty.
	text, err := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
	if err != nil {
		return 0, "", err
	}
	return resp.StatusCode, strings.TrimSpace(string(text)), nil
}

// register sets a callback for every event type. Each records what it
// received; a real service would update its database or queue work here.
func register(h *nectarhooks.Handler, rec *recorder) {
	h.OnConnectionCreated(func(ctx context.Context, e *nectarhooks.ConnectionCreated) error {
		return rec.record(ctx, "connection %s created: %s, %s", e.ID, e.Status, e.Datasource.Name)
	})
	h.OnConnectionUpdated(func(ctx context.Context, e *nectarhooks.ConnectionUpdated) error {
		// Old holds only what changed: a nil Status means it did not.
		if e.Old.Status == nil {
			return rec.record(ctx, "connection %s changed: %s", e.ID, strings.Join(e.ProtectedChanges, ", "))
		}
		return rec.record(ctx, "connection %s status: %s -> %s", e.ID, *e.Old.Status, e.Status)
	})
	h.OnConnectionValidated(func(ctx context.Context, e *nectarhooks.ConnectionValidated) error {
		var sites []string
		for _, rel := range e.SitesRelations {
			sites = append(sites, fmt.Sprintf("account %s at %s", strings.Join(rel.AccountIDs, ", "), rel.Site.Name))
		}
		return rec.record(ctx, "connection %s validated: %s", e.ID, strings.Join(sites, "; "))
	})
	h.OnDocumentCreated(func(ctx context.Context, e *nectarhooks.DocumentCreated) error {
		return rec.record(ctx, "document %s created for %s", e.ID, e.Site.Name)
	})
	h.OnDocumentUpdated(func(ctx context.Context, e *nectarhooks.DocumentUpdated) error {
		const layout = "2006-01-02 15:04"
		if e.Old.Updated == nil {
			return rec.record(ctx, "document %s updated", e.ID)
		}
		return rec.record(ctx, "document %s updated: %s -> %s UTC", e.ID,
			e.Old.Updated.Format(layout), e.Updated.Format(layout))
	})
	// Event types without a typed callback, including ones this version
	// of the package does not know, arrive here with the raw payload.
	h.OnUnhandled(func(ctx context.Context, m nectarhooks.Message) error {
		return rec.record(ctx, "OnUnhandled: %s, %d bytes kept", m.EventType, len(m.Payload))
	})
}

// recorder keeps what happened to the delivery in flight: what its
// callback received, or why the Handler refused it. The demo sends one
// delivery at a time, so there is only ever one.
type recorder struct {
	mu  sync.Mutex
	got string
}

// record is called by the callbacks. The Message in their context is the
// verified delivery; its ID is the key for idempotency.
func (r *recorder) record(ctx context.Context, format string, args ...any) error {
	if _, ok := nectarhooks.MessageFromContext(ctx); !ok {
		return errors.New("callback context carries no message")
	}
	r.set(fmt.Sprintf(format, args...))
	return nil
}

// refused is the Handler's error handler, called for every delivery not
// answered 2xx.
func (r *recorder) refused(_ context.Context, _ int, err error) {
	r.set("refused: " + sentinelName(err))
}

func (r *recorder) set(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = s
}

// take returns what was recorded since the last call, and forgets it.
func (r *recorder) take() (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	got := r.got
	r.got = ""
	return got, got != ""
}

// sentinelName names the package error err matches, which is what a
// service would branch on with errors.Is.
func sentinelName(err error) string {
	for _, s := range []struct {
		name string
		err  error
	}{
		{"ErrMissingHeaders", nectarhooks.ErrMissingHeaders},
		{"ErrInvalidHeaders", nectarhooks.ErrInvalidHeaders},
		{"ErrNoMatchingSignature", nectarhooks.ErrNoMatchingSignature},
		{"ErrMessageTooOld", nectarhooks.ErrMessageTooOld},
		{"ErrMessageTooNew", nectarhooks.ErrMessageTooNew},
		{"ErrInvalidPayload", nectarhooks.ErrInvalidPayload},
	} {
		if errors.Is(err, s.err) {
			return s.name
		}
	}
	return err.Error()
}
