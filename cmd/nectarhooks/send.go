package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/nectarhooks/nectarhooks"
)

// staleAge is how old -stale makes a timestamp: twice the tolerance Svix's
// libraries allow, so every receiver with the usual setting refuses it.
const staleAge = 10 * time.Minute

// maxShownBody bounds how much of an answer's body send reads and shows:
// receivers answer a word or a line, and a misrouted request can return a
// whole HTML page.
const (
	maxReadBody  = 64 << 10
	maxShownBody = 200
)

type sendFlags struct {
	url     string
	secret  string
	id      string
	repeat  int
	stale   bool
	tamper  bool
	timeout time.Duration
}

func sendCommand() *command {
	return &command{
		name:     "send",
		synopsis: "send -url URL [-secret whsec_...] [-id msg_...] [-repeat N] [-stale] [-tamper] [-timeout D] EVENT|FILE...",
		help: `Sign each payload as Svix signs a delivery and POST it to URL: a new
random msg_ id per payload, the current time, the svix-id, svix-timestamp
and svix-signature headers and Content-Type: application/json. For every
delivery it prints the payload, the message id, the status and the start of
the answer's body. Redirects are not followed: Svix counts only a 2xx
answer as delivered.

EVENT is a bundled sample (see 'nectarhooks samples'), "all" the five of
them; FILE is a JSON payload sent byte for byte.

-repeat N sends each payload N times as N attempts of the same message:
the same svix-id, each with a new timestamp and signature, the way Svix
retries a failed delivery or the portal resends one. A receiver with an
idempotency store runs its callback for the first only; the repeats should
still be answered 2xx.

-id msg_... sends the payload as that message instead of a new one: run
send twice with the same -id, once to each replica's URL, and a receiver
whose replicas share an idempotency store runs its callback once, as when
Svix's retry of a message reaches another replica. The id must be 1 to
256 bytes of printable ASCII without spaces (nectarhooks.MaxMessageIDLength):
receivers answer 400 to others. -id takes one payload: Svix never sends
two bodies under one id.

-stale dates the timestamp 10 minutes back, -tamper appends a space to the
body after signing it (the same JSON, but not the signed bytes, as when a
body is re-serialised): a correct receiver refuses both with 401.

Exit status 1 if any delivery got an answer other than 2xx, or none.
`,
		examples: `  export NECTAR_WEBHOOK_SECRET=whsec_...
  nectarhooks send -url http://127.0.0.1:8080/webhooks/nectar all
  nectarhooks send -url http://127.0.0.1:8080/webhooks/nectar connection.updated.v2 ./my-payload.json
  nectarhooks send -url http://127.0.0.1:8080/webhooks/nectar -repeat 3 document.created.v2
  nectarhooks send -url http://127.0.0.1:8081/webhooks/nectar -id msg_replicas1 document.created.v2
  nectarhooks send -url http://127.0.0.1:8082/webhooks/nectar -id msg_replicas1 document.created.v2   # the same message, another replica
  nectarhooks send -url http://127.0.0.1:8080/webhooks/nectar -tamper connection.created.v2   # expect 401
`,
		flags: func(fs *flag.FlagSet) any {
			f := &sendFlags{}
			fs.StringVar(&f.url, "url", "", "POST to `URL`, an http:// or https:// endpoint (required)")
			fs.StringVar(&f.secret, "secret", "", "the endpoint's `whsec_...` signing secret, or a whsk_ ed25519 signing key (v1a); default $"+secretEnv)
			fs.StringVar(&f.id, "id", "", "send as message `msg_...` (the svix-id) instead of a new random one; one payload only")
			fs.IntVar(&f.repeat, "repeat", 1, "send each payload `N` times, with the same svix-id")
			fs.BoolVar(&f.stale, "stale", false, "date the timestamp 10 minutes back, past the usual 5 minute tolerance")
			fs.BoolVar(&f.tamper, "tamper", false, "change the body after signing it (append a space)")
			fs.DurationVar(&f.timeout, "timeout", 15*time.Second, "wait up to `D` for each answer; Svix waits 15s")
			return f
		},
		run: runSend,
	}
}

func runSend(ctx context.Context, e *env, fs *flag.FlagSet, opts any, args []string) int {
	c, f := lookup("send"), opts.(*sendFlags)
	switch {
	case f.url == "":
		return e.usageError(c, "-url is required")
	case len(args) == 0:
		return e.usageError(c, "no payload given: name an event type, \"all\" or a JSON file")
	case f.repeat < 1:
		return e.usageError(c, "-repeat must be at least 1, got %d", f.repeat)
	case f.timeout <= 0:
		return e.usageError(c, "-timeout must be positive, got %s", f.timeout)
	}
	if !isHTTPURL(f.url) {
		return e.usageError(c, "-url %q is not an http:// or https:// URL", f.url)
	}
	if flagWasSet(fs, "id") {
		if err := nectarhooks.CheckMessageID(f.id); err != nil {
			return e.usageError(c, "-id %q is not usable: %s", f.id, strings.TrimPrefix(err.Error(), "nectarhooks: "))
		}
	}
	signer, err := e.signer(f.secret)
	if err != nil {
		return e.usageError(c, "%v", err)
	}
	payloads, err := resolvePayloads(args, true)
	if err != nil {
		return e.usageError(c, "%v", err)
	}
	if flagWasSet(fs, "id") && len(payloads) > 1 {
		return e.usageError(c, "-id names one message, but %d payloads are given: send one", len(payloads))
	}
	for _, p := range payloads {
		if w := warnIfNotJSON(p); w != "" {
			fmt.Fprintln(e.stderr, w)
		}
	}

	transport := http.DefaultTransport.(*http.Transport).Clone()
	defer transport.CloseIdleConnections()
	client := &http.Client{
		Transport: transport,
		Timeout:   f.timeout,
		// Svix does not follow a redirect; neither does this, so that a
		// redirecting endpoint shows up here as it would in the portal.
		CheckRedirect: noRedirect,
	}

	width := 0
	for _, p := range payloads {
		width = max(width, len(p.label))
	}
	sent, accepted := 0, 0
	for _, p := range payloads {
		id := f.id
		if !flagWasSet(fs, "id") {
			id = e.newID()
		}
		for attempt := 1; attempt <= f.repeat; attempt++ {
			if ctx.Err() != nil {
				fmt.Fprintf(e.stderr, "nectarhooks send: interrupted after %d of %d deliveries\n", sent, len(payloads)*f.repeat)
				return exitRefused
			}
			ts := e.now()
			if f.stale {
				ts = ts.Add(-staleAge)
			}
			header := signer.HeaderFor(id, ts, p.body)
			body := p.body
			if f.tamper {
				body = append(bytes.Clone(p.body), ' ')
			}
			what := fmt.Sprintf("%-*s  %s", width, p.label, id)
			if f.repeat > 1 {
				what += fmt.Sprintf("  (%d/%d)", attempt, f.repeat)
			}
			sent++
			status, answer, err := post(ctx, client, f.url, header, body)
			if err != nil {
				fmt.Fprintf(e.stdout, "%s  no answer\n", what)
				fmt.Fprintf(e.stderr, "nectarhooks send: %s: %s\n", p.label, escapeControl(describeSendError(err, f.timeout)))
				continue
			}
			line := what + "  " + status.text
			if answer != "" {
				line += "  " + answer
			}
			fmt.Fprintln(e.stdout, line)
			if status.code >= 200 && status.code < 300 {
				accepted++
			}
		}
	}
	if sent > 1 {
		fmt.Fprintf(e.stdout, "%d deliveries: %d answered 2xx, %d not\n", sent, accepted, sent-accepted)
	}
	if accepted < sent {
		return exitRefused
	}
	return exitOK
}

// noRedirect is the CheckRedirect of every client the CLI delivers with:
// Svix does not follow a redirect, so a 3xx is the answer, as it would be
// in the portal.
func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

type answerStatus struct {
	code int
	text string // "200 OK", and the redirect's target for 3xx
	// aborted: the answer carried webhook-delivery: abort-message, after
	// which Svix makes no further attempt of the message.
	aborted bool
}

// post makes one delivery and returns the answer's status and the start of
// its body on one line. Both are safe to print: what in them comes from
// the server (the Location of a redirect, the body, a read error) is
// escaped here, where it enters, so that send, load and dead cannot forget
// to.
func post(ctx context.Context, client *http.Client, target string, header http.Header, body []byte) (answerStatus, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return answerStatus{}, "", err
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	req.Header.Set("User-Agent", "nectarhooks-cli")
	resp, err := client.Do(req)
	if err != nil {
		return answerStatus{}, "", err
	}
	defer resp.Body.Close()
	text, readErr := io.ReadAll(io.LimitReader(resp.Body, maxReadBody))
	st := answerStatus{code: resp.StatusCode, text: statusText(resp.StatusCode),
		aborted: strings.EqualFold(resp.Header.Get(nectarhooks.DeliveryHeader), nectarhooks.AbortMessage)}
	if loc := resp.Header.Get("Location"); loc != "" && resp.StatusCode >= 300 && resp.StatusCode < 400 {
		st.text += " (redirect to " + shownText(loc, maxShownBody) + ", not followed)"
	}
	shown := oneLine(string(text), maxShownBody)
	if readErr != nil {
		shown += " [body cut short: " + escapeControl(readErr.Error()) + "]"
	}
	return st, shown, nil
}

// oneLine collapses s's white space, newlines included, to single spaces,
// cuts it to at most limit bytes, on a character boundary, and escapes
// what a terminal would act on (see escapeControl).
func oneLine(s string, limit int) string {
	return shownText(strings.Join(strings.Fields(s), " "), limit)
}

// shownText cuts s to at most limit bytes, on a character boundary, and
// escapes what a terminal would act on: a header value, which has no
// newline to collapse, but whose other white space (a line separator)
// must show as the escape it is, not as a space.
func shownText(s string, limit int) string {
	if len(s) > limit {
		cut := limit
		for cut > 0 && !isRuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "..."
	}
	return escapeControl(s)
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }

// describeSendError says why a delivery got no answer, in the terms of a
// Svix delivery attempt.
func describeSendError(err error, timeout time.Duration) string {
	var uerr *url.Error
	if errors.As(err, &uerr) && uerr.Timeout() {
		return fmt.Sprintf("no answer within %s; Svix would count the attempt as failed and retry", timeout)
	}
	if errors.Is(err, context.Canceled) {
		return "interrupted"
	}
	return err.Error()
}
