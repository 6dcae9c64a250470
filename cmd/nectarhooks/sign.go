package main

import (
	"context"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nectarhooks/nectarhooks"
)

type signFlags struct {
	secret    string
	id        string
	timestamp int64
	url       string
}

func signCommand() *command {
	return &command{
		name:     "sign",
		synopsis: "sign [-secret whsec_...] [-id msg_...] [-timestamp UNIX] [-url URL] EVENT|FILE",
		help: `Print the svix-id, svix-timestamp and svix-signature headers Svix would
send with the payload, then a curl command that delivers it, for replaying
a delivery by hand or from another tool.

The id defaults to a new random msg_ id and the timestamp to now: a
receiver accepts the signature for 5 minutes (its tolerance). An -id must
be what a receiver processes: 1 to 256 bytes of printable ASCII without
spaces (nectarhooks.MaxMessageIDLength); it answers 400 to others. The curl
command sends a FILE with --data-binary @FILE, so it must run where the
file's path leads, and a sample inline. Without -url it reads the endpoint
from the shell variable $URL.
`,
		examples: `  export NECTAR_WEBHOOK_SECRET=whsec_...
  nectarhooks sign connection.updated.v2
  nectarhooks sign -url http://127.0.0.1:8080/webhooks/nectar ./payload.json
  nectarhooks sign -id msg_p5jXN8AQM9LWM0D4loKWxJek -timestamp 1614265330 ./payload.json
`,
		flags: func(fs *flag.FlagSet) any {
			f := &signFlags{}
			fs.StringVar(&f.secret, "secret", "", "the endpoint's `whsec_...` signing secret, or a whsk_ ed25519 signing key (v1a); default $"+secretEnv)
			fs.StringVar(&f.id, "id", "", "use `msg_...` as the message id; default a new random one")
			fs.Int64Var(&f.timestamp, "timestamp", 0, "sign as of `UNIX` time, in seconds; default now")
			fs.StringVar(&f.url, "url", "", "the `URL` for the curl command; default \"$URL\"")
			return f
		},
		run: runSign,
	}
}

func runSign(_ context.Context, e *env, fs *flag.FlagSet, opts any, args []string) int {
	c, f := lookup("sign"), opts.(*signFlags)
	switch {
	case len(args) == 0:
		return e.usageError(c, "no payload given: name an event type or a JSON file")
	case len(args) > 1:
		return e.usageError(c, "sign takes one payload, got %d", len(args))
	case args[0] == "all":
		return e.usageError(c, "sign takes one payload; \"all\" is for send")
	}
	if flagWasSet(fs, "id") {
		if err := nectarhooks.CheckMessageID(f.id); err != nil {
			return e.usageError(c, "-id %q is not usable: %s", f.id, strings.TrimPrefix(err.Error(), "nectarhooks: "))
		}
	}
	if f.url != "" && !isHTTPURL(f.url) {
		return e.usageError(c, "-url %q is not an http:// or https:// URL", f.url)
	}
	signer, err := e.signer(f.secret)
	if err != nil {
		return e.usageError(c, "%v", err)
	}
	p, err := resolvePayload(args[0])
	if err != nil {
		return e.usageError(c, "%v", err)
	}
	if w := warnIfNotJSON(p); w != "" {
		fmt.Fprintln(e.stderr, w)
	}

	id := f.id
	if id == "" {
		id = e.newID()
	}
	ts := e.now()
	if flagWasSet(fs, "timestamp") {
		ts = time.Unix(f.timestamp, 0)
	}
	sig := signer.Sign(id, ts, p.body)
	headers := [][2]string{
		{"svix-id", id},
		{"svix-timestamp", strconv.FormatInt(ts.Unix(), 10)},
		{"svix-signature", sig},
	}
	for _, h := range headers {
		fmt.Fprintf(e.stdout, "%s: %s\n", h[0], h[1])
	}

	fmt.Fprintln(e.stdout)
	target := `"$URL"`
	if f.url != "" {
		target = shellQuote(f.url)
	}
	// -sS: no progress meter over the receiver's answer, but an error
	// (connection refused) still said.
	fmt.Fprintf(e.stdout, "curl -sS -X POST %s \\\n", target)
	fmt.Fprintf(e.stdout, "  -H %s \\\n", shellQuote("Content-Type: application/json"))
	for _, h := range headers {
		fmt.Fprintf(e.stdout, "  -H %s \\\n", shellQuote(h[0]+": "+h[1]))
	}
	if p.path != "" {
		fmt.Fprintf(e.stdout, "  --data-binary @%s\n", shellQuote(p.path))
	} else {
		fmt.Fprintf(e.stdout, "  --data-binary %s\n", shellQuote(string(p.body)))
	}
	return exitOK
}
