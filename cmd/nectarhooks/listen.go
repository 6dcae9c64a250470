package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
)

// Defaults of listen's flags.
const (
	defaultListenAddr   = "127.0.0.1:8790"
	defaultHistory      = 500
	defaultHistoryBytes = 64 << 20
)

type listenFlags struct {
	addr          string
	secret        string
	forwardTo     string
	forwardSecret string
	tolerance     time.Duration
	timeout       time.Duration
	maxBody       int64
	history       int
	historyBytes  int64
	historyFile   string
	json          bool
}

func listenCommand() *command {
	return &command{
		name:     "listen",
		synopsis: "listen [-addr HOST:PORT] [-secret whsec_...] [-forward-to URL] [-json] [flags]",
		help: `Receive deliveries as an endpoint would, check each one, and show it: one
line per delivery in the terminal (time, svix-id, event type, verdict and
the answer given), and a live web page at the same address, where every
delivery opens to its headers, raw body, pretty JSON, the SDK's typed
decode, the verdict with its reason, the forward target's answer and
timings, with a Replay button. Point Svix (through a tunnel), 'nectarhooks
send' or 'nectarhooks load' at it: a POST to any path is a delivery.

Each delivery is verified with the endpoint's signing secret, or its
whpk_ public key for ed25519 (v1a) signatures (-secret, or
$NECTAR_WEBHOOK_SECRET; without either, listen makes one up and prints it,
for send to use). A delivery that does not verify is answered 401 and
the line says which check failed: missing headers, a timestamp too old or
too new (by how much), no signature for this secret or key, a body changed after
signing, or a signature made with another kind of key.

-forward-to passes each verified delivery on to your own receiver,
re-signed with a local secret listen prints at start (-forward-secret to
keep one across runs), and answers the sender with your receiver's
answer, so Svix's retries behave as in production. Replay sends a stored
delivery to it again: the same svix-id, a new timestamp and signature.

It listens on loopback unless -addr names another address; the web page
answers only to loopback host names. History is kept in memory, bounded
by -history deliveries and -history-bytes, and appended to -history-file
when given (read back at the next start). Ctrl-C or SIGTERM stops it,
after the deliveries in flight are answered.
`,
		examples: `  nectarhooks listen
  nectarhooks listen -addr 127.0.0.1:9000 -forward-to http://127.0.0.1:8080/webhooks/nectar
  nectarhooks listen -json | jq -c 'select(.verdict.ok | not)'
  nectarhooks listen -history-file deliveries.jsonl
`,
		flags: func(fs *flag.FlagSet) any {
			f := &listenFlags{}
			fs.StringVar(&f.addr, "addr", defaultListenAddr, "listen on `HOST:PORT`; a non-loopback host exposes it to the network")
			fs.StringVar(&f.secret, "secret", "", "the endpoint's `whsec_...` signing secret or whpk_... public key; default $"+secretEnv+", else a new one, printed")
			fs.StringVar(&f.forwardTo, "forward-to", "", "pass verified deliveries on to `URL`, re-signed, and answer with its answer")
			fs.StringVar(&f.forwardSecret, "forward-secret", "", "re-sign forwarded deliveries with `whsec_...`; default a new one, printed")
			fs.DurationVar(&f.tolerance, "tolerance", nectarhooks.DefaultTolerance, "accept timestamps up to `D` from now, either way")
			fs.DurationVar(&f.timeout, "timeout", 15*time.Second, "wait up to `D` for the forward target's answer; Svix waits 15s")
			fs.Int64Var(&f.maxBody, "max-body", nectarhooks.DefaultMaxBodyBytes, "refuse bodies over `N` bytes with 413")
			fs.IntVar(&f.history, "history", defaultHistory, "keep the last `N` deliveries")
			fs.Int64Var(&f.historyBytes, "history-bytes", defaultHistoryBytes, "keep at most `N` bytes of deliveries")
			fs.StringVar(&f.historyFile, "history-file", "", "append deliveries to `FILE` (JSON lines) and read them back at start")
			fs.BoolVar(&f.json, "json", false, "print one JSON object per delivery instead of a line of text")
			return f
		},
		run: runListen,
	}
}

func runListen(ctx context.Context, e *env, _ *flag.FlagSet, opts any, args []string) int {
	c, f := lookup("listen"), opts.(*listenFlags)
	switch {
	case len(args) > 0:
		return e.usageError(c, "unexpected argument %q", args[0])
	case f.tolerance <= 0:
		return e.usageError(c, "-tolerance must be positive, got %s", f.tolerance)
	case f.timeout <= 0:
		return e.usageError(c, "-timeout must be positive, got %s", f.timeout)
	case f.maxBody <= 0:
		return e.usageError(c, "-max-body must be positive, got %d", f.maxBody)
	case f.history < 1 || f.historyBytes < 1:
		return e.usageError(c, "-history and -history-bytes must be at least 1")
	case f.forwardTo != "" && !isHTTPURL(f.forwardTo):
		return e.usageError(c, "-forward-to %q is not an http:// or https:// URL", f.forwardTo)
	case f.forwardSecret != "" && f.forwardTo == "":
		return e.usageError(c, "-forward-secret is for -forward-to, which is not given")
	}
	secret, generated := strings.TrimSpace(f.secret), false
	if secret == "" {
		secret = strings.TrimSpace(e.getenv(secretEnv))
	}
	if secret == "" {
		secret, generated = nectarhookstest.NewSecret(), true
	}
	cfg := listenConfig{
		secret:       secret,
		tolerance:    f.tolerance,
		maxBody:      f.maxBody,
		history:      f.history,
		historyBytes: f.historyBytes,
		now:          e.now,
	}
	if f.forwardTo != "" {
		cfg.forwardTo, cfg.forwardSecret, cfg.timeout = f.forwardTo, f.forwardSecret, f.timeout
		if cfg.forwardSecret == "" {
			cfg.forwardSecret = nectarhookstest.NewSecret()
		}
	}
	l, err := newListener(cfg)
	if err != nil {
		return e.usageError(c, "%v", err)
	}
	defer l.close()
	if f.historyFile != "" {
		if err := l.hist.persist(f.historyFile); err != nil {
			return e.usageError(c, "-history-file: %v", err)
		}
	}
	if f.json {
		l.report = func(d *record) { writeDeliveryJSON(e.stdout, d) }
	} else {
		l.report = func(d *record) { writeDeliveryLine(e.stdout, d) }
	}

	ln, err := net.Listen("tcp", f.addr)
	if err != nil {
		return e.usageError(c, "%v", err)
	}
	base := "http://" + ln.Addr().String()
	fmt.Fprintf(e.stderr, "nectarhooks listen: receiving deliveries at %s/ (a POST to any path)\n", base)
	fmt.Fprintf(e.stderr, "  web page: %s/\n", base)
	if generated {
		fmt.Fprintf(e.stderr, "  no -secret or $%s: checking with a new secret; send with it:\n", secretEnv)
		fmt.Fprintf(e.stderr, "    export %s=%s\n", secretEnv, secret)
	}
	if cfg.forwardTo != "" {
		fmt.Fprintf(e.stderr, "  forwarding verified deliveries to %s, re-signed with:\n", cfg.forwardTo)
		fmt.Fprintf(e.stderr, "    %s   (your receiver's secret while it runs behind listen)\n", cfg.forwardSecret)
	}
	if host, _, _ := net.SplitHostPort(ln.Addr().String()); !net.ParseIP(host).IsLoopback() {
		fmt.Fprintf(e.stderr, "  warning: %s is not a loopback address: deliveries are accepted from the network (the web page still answers only to loopback host names)\n", host)
	}

	srv := &http.Server{Handler: l, ReadHeaderTimeout: 10 * time.Second}
	// A browser opens spare connections ahead of need and may never send
	// on them; Shutdown takes such a connection for idle only after 5s,
	// and the page left open would make a stop fail. Once Shutdown has
	// closed the listener, they are closed.
	var fresh freshConns
	srv.ConnState = fresh.track
	srv.RegisterOnShutdown(fresh.closeAll)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err = <-served:
	case <-ctx.Done():
		// The live pages' event streams end first: Shutdown waits for
		// every handler, and theirs run until the page is closed.
		l.close()
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = srv.Shutdown(shutdownCtx)
		cancel()
		<-served
	}
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintf(e.stderr, "nectarhooks listen: %v\n", err)
		return exitRefused
	}
	fmt.Fprintf(e.stderr, "nectarhooks listen: stopped after %d deliveries\n", l.hist.total())
	return exitOK
}

// freshConns tracks the connections that have not sent a request yet.
type freshConns struct {
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

// track is an http.Server's ConnState hook.
func (f *freshConns) track(c net.Conn, state http.ConnState) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if state == http.StateNew {
		if f.conns == nil {
			f.conns = map[net.Conn]struct{}{}
		}
		f.conns[c] = struct{}{}
		return
	}
	delete(f.conns, c)
}

// closeAll closes them: those a request has not started on.
func (f *freshConns) closeAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for c := range f.conns {
		c.Close()
	}
}
