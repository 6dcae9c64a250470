package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
)

type verifyFlags struct {
	secret    string
	headers   string
	body      string
	now       int64
	tolerance time.Duration
}

func verifyCommand() *command {
	return &command{
		name:     "verify",
		synopsis: "verify [-secret whsec_...|whpk_...] -headers FILE -body FILE [-now UNIX] [-tolerance D]",
		help: `Check a captured delivery as a receiver would, and when it does not
verify, say which check failed and the likely cause: missing or malformed
headers, no signature matching (the wrong secret, or a body that is not
byte for byte the one delivered), or a timestamp outside the tolerance
(with its age, and whether the signature itself matches).

The headers file holds "Name: value" lines, names in any case, as the
Svix portal shows them, or a whole curl -v transcript (its "> " lines,
the request's headers, are read and the rest skipped), or a curl command's
-H arguments (the output of 'nectarhooks sign' will do), or a JSON object
of header names to strings. The body file must hold the body exactly as
received: save it from the raw request, not from a pretty-printed view.

For an endpoint that signs with ed25519, pass its whpk_ public key (or the
whsk_ signing key, whose public half is used): its v1a signatures are
checked, as a receiver would.

Exit status 0 if the delivery verifies, 1 if not.
`,
		examples: `  nectarhooks verify -headers headers.txt -body body.json
  nectarhooks verify -headers headers.json -body body.json -now 1614265330
  nectarhooks verify -headers headers.txt -body body.json -tolerance 1h
`,
		flags: func(fs *flag.FlagSet) any {
			f := &verifyFlags{}
			fs.StringVar(&f.secret, "secret", "", "the endpoint's `whsec_...` signing secret, or whpk_ public key; default $"+secretEnv)
			fs.StringVar(&f.headers, "headers", "", "read the captured request's headers from `FILE` (required)")
			fs.StringVar(&f.body, "body", "", "read the captured request's body, byte for byte, from `FILE` (required)")
			fs.Int64Var(&f.now, "now", 0, "check the timestamp against `UNIX` time instead of the clock, as for an old capture")
			fs.DurationVar(&f.tolerance, "tolerance", nectarhooks.DefaultTolerance, "accept timestamps up to `D` from now, either way")
			return f
		},
		run: runVerify,
	}
}

func runVerify(_ context.Context, e *env, fs *flag.FlagSet, opts any, args []string) int {
	c, f := lookup("verify"), opts.(*verifyFlags)
	switch {
	case len(args) > 0:
		return e.usageError(c, "unexpected argument %q; the capture is given with -headers and -body", args[0])
	case f.headers == "" || f.body == "":
		return e.usageError(c, "both -headers and -body are required")
	case f.tolerance <= 0:
		return e.usageError(c, "-tolerance must be positive, got %s", f.tolerance)
	}
	secret, err := e.signingSecret(f.secret)
	if err != nil {
		return e.usageError(c, "%v", err)
	}
	secret = verifyingKey(secret)
	rawHeaders, err := readFileCapped(f.headers, maxFileBytes)
	if err != nil {
		return e.usageError(c, "reading the headers: %v", err)
	}
	body, err := readFileCapped(f.body, maxFileBytes)
	if err != nil {
		return e.usageError(c, "reading the body: %v", err)
	}
	header, err := parseHeaders(rawHeaders)
	if err != nil {
		return e.usageError(c, "%s: %v", f.headers, err)
	}
	now, clock := e.now(), "the clock"
	if flagWasSet(fs, "now") {
		now, clock = time.Unix(f.now, 0), "-now"
	}
	v, err := nectarhooks.NewVerifier(secret, nectarhooks.WithTolerance(f.tolerance), nectarhooks.WithClock(nectarhookstest.FixedClock(now)))
	if err != nil {
		return e.usageError(c, "%v", err)
	}

	err = v.Verify(body, header)
	hs := pickHeaders(header)
	if err == nil {
		ts, _ := strconv.ParseInt(hs.timestamp, 10, 64)
		sent := time.Unix(ts, 0)
		fmt.Fprintf(e.stdout, "verified: message %s\n", escapeControl(hs.id))
		fmt.Fprintf(e.stdout, "  headers: %s-*\n", hs.prefix)
		fmt.Fprintf(e.stdout, "  signed: %s, %s %s\n", sent.UTC().Format(time.RFC3339), relativeAge(now.Sub(sent)), clock)
		if t := nectarhooks.PeekEventType(body); t != "" {
			// The body's eventType, which can be any string.
			fmt.Fprintf(e.stdout, "  event type: %s\n", escapeControl(string(t)))
		} else {
			fmt.Fprintln(e.stdout, "  event type: unknown (the body is not a payload whose type can be told)")
		}
		return exitOK
	}

	fmt.Fprintf(e.stdout, "not verified: %s\n", escapeControl(headline(err)))
	// The lines quote the capture's header values; escaped here as well,
	// so that an explanation added later cannot print one raw.
	for _, line := range explain(err, v, secret, header, hs, body, now, clock, f.tolerance) {
		fmt.Fprintf(e.stdout, "  %s\n", escapeControl(line))
	}
	return exitRefused
}

// verifyFailures are the errors of a failed verification, each with the
// check diagnose names it by and the few words verify and listen print.
var verifyFailures = []struct {
	err             error
	check, headline string
}{
	{nectarhooks.ErrMissingHeaders, checkMissing, "missing headers"},
	{nectarhooks.ErrInvalidHeaders, checkMalformed, "malformed headers"},
	{nectarhooks.ErrNoMatchingSignature, checkNoSignature, "no matching signature"},
	{nectarhooks.ErrMessageTooOld, checkTooOld, "timestamp too old"},
	{nectarhooks.ErrMessageTooNew, checkTooNew, "timestamp too new"},
}

// headline names the failed check in a few words.
func headline(err error) string {
	for _, f := range verifyFailures {
		if errors.Is(err, f.err) {
			return f.headline
		}
	}
	return err.Error()
}

// signedHeaders are the three headers a verifier reads, from whichever
// set it reads: svix-* when all three are present, else webhook-*.
type signedHeaders struct {
	prefix                   string // "svix" or "webhook"
	id, timestamp, signature string
}

func pickHeaders(h http.Header) signedHeaders {
	get := func(prefix string) signedHeaders {
		return signedHeaders{prefix, h.Get(prefix + "-id"), h.Get(prefix + "-timestamp"), h.Get(prefix + "-signature")}
	}
	s := get("svix")
	if s.id != "" && s.timestamp != "" && s.signature != "" {
		return s
	}
	if w := get("webhook"); w.id != "" && w.timestamp != "" && w.signature != "" {
		return w
	}
	return s
}

// explain turns a verification error into the lines that say what was
// wrong and what to do about it.
func explain(err error, v *nectarhooks.Verifier, secret string, h http.Header, hs signedHeaders, body []byte, now time.Time, clock string, tolerance time.Duration) []string {
	switch {
	case errors.Is(err, nectarhooks.ErrMissingHeaders):
		return explainMissing(h)
	case errors.Is(err, nectarhooks.ErrInvalidHeaders):
		if _, perr := strconv.ParseInt(hs.timestamp, 10, 64); perr != nil {
			return []string{
				fmt.Sprintf("%s-timestamp is %q, not a whole number of Unix seconds.", hs.prefix, hs.timestamp),
			}
		}
		return []string{
			fmt.Sprintf("%s-signature is %q, which holds no \"version,signature\" entry.", hs.prefix, cut(hs.signature, 80)),
			"Svix sends a space-separated list such as \"v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=\";",
			"copy the whole header value.",
		}
	case errors.Is(err, nectarhooks.ErrNoMatchingSignature):
		return explainMismatch(v, signatureVersion(secret), h, hs, body)
	case errors.Is(err, nectarhooks.ErrMessageTooOld), errors.Is(err, nectarhooks.ErrMessageTooNew):
		ts, _ := strconv.ParseInt(hs.timestamp, 10, 64)
		sent := time.Unix(ts, 0)
		lines := []string{
			fmt.Sprintf("%s-timestamp %d is %s, %s %s (%s),", hs.prefix, ts, sent.UTC().Format(time.RFC3339),
				relativeAge(now.Sub(sent)), clock, now.UTC().Format(time.RFC3339)),
			fmt.Sprintf("more than the tolerance of %s.", tolerance),
		}
		if errors.Is(err, nectarhooks.ErrMessageTooOld) {
			lines = append(lines, "Receivers refuse old timestamps so that a captured delivery cannot be replayed;",
				"Svix signs every attempt anew, so a real retry is never this old.")
		} else {
			lines = append(lines, "The sender's clock or this machine's is off, or -now is not the time of the capture.")
		}
		// The timestamp is checked before the signature; check the
		// signature on its own too, at the message's own time, so that
		// one run tells the whole story.
		atSend, verr := nectarhooks.NewVerifier(secret, nectarhooks.WithClock(nectarhookstest.FixedClock(sent)))
		if verr != nil {
			return lines
		}
		if atSend.Verify(body, h) == nil {
			return append(lines, fmt.Sprintf("The signature itself matches: with -now %d the capture verifies.", ts))
		}
		lines = append(lines, "The signature does not match either:")
		for _, l := range explainMismatch(atSend, signatureVersion(secret), h, hs, body) {
			lines = append(lines, "  "+l)
		}
		return lines
	}
	return []string{err.Error()}
}

// explainMissing lists which of the signed headers are absent, and which
// headers the capture does have, which shows a mis-saved headers file.
func explainMissing(h http.Header) []string {
	var missing []string
	for _, name := range []string{"svix-id", "svix-timestamp", "svix-signature"} {
		if h.Get(name) == "" {
			missing = append(missing, name)
		}
	}
	var found []string
	for name := range h {
		found = append(found, strings.ToLower(name))
	}
	slices.Sort(found)
	lines := []string{
		"missing: " + strings.Join(missing, ", ") + " (and the webhook-id, webhook-timestamp, webhook-signature set is not complete either).",
		"A delivery carries all three; if they were sent, a proxy or gateway in front of the receiver may drop them.",
	}
	if len(found) > 0 {
		lines = append(lines, "headers found: "+strings.Join(found, ", "))
	}
	return lines
}

// explainMismatch accounts for a signature that does not match: no v1
// entry at all, or one of the two usual causes, and checks the commonest
// accident, a newline an editor added to or dropped from the saved body.
func explainMismatch(v *nectarhooks.Verifier, want string, h http.Header, hs signedHeaders, body []byte) []string {
	var v1, other int
	for _, entry := range strings.Fields(hs.signature) {
		if version, _, ok := strings.Cut(entry, ","); ok && version == want {
			v1++
		} else {
			other++
		}
	}
	if v1 == 0 {
		return []string{
			fmt.Sprintf("%s-signature has no %s entry, only %d of other versions, which are not checked with this key.", hs.prefix, want, other),
		}
	}
	first := fmt.Sprintf("None of the %d %s signatures in %s-signature is this body's under this secret. Either:", v1, want, hs.prefix)
	if v1 == 1 {
		first = fmt.Sprintf("The %s signature in %s-signature is not this body's under this secret. Either:", want, hs.prefix)
	}
	lines := []string{
		first,
		"- the secret is not this endpoint's: each endpoint has its own, on its page in the Svix portal; or",
		"- the body is not byte for byte what was delivered: re-serialised or pretty-printed JSON,",
		"  changed white space or key order, or another character encoding all break the signature.",
	}
	if fix := bodyRepair(v, h, body); fix != "" {
		lines = append(lines, strings.ToUpper(fix[:1])+fix[1:]+".")
	}
	return lines
}

// relativeAge says how far a timestamp is from the clock, with the
// direction: "10m0s before" or "3 days after".
func relativeAge(d time.Duration) string {
	dir := "before"
	if d < 0 {
		dir, d = "after", -d
	}
	d = d.Round(time.Second)
	if d >= 48*time.Hour {
		return fmt.Sprintf("%d days %s", int(d/(24*time.Hour)), dir)
	}
	return d.String() + " " + dir
}

func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// parseHeaders reads a captured delivery's headers: a JSON object of
// header names to strings (or lists of strings), or "Name: value" lines,
// or a curl command's -H arguments (what sign prints, both together).
// A curl -v transcript, told by its "> " lines, contributes those lines
// only: the request's headers, without curl's notes, progress meter and
// the response. Otherwise request lines, status lines, HTTP/2
// pseudo-headers and curl-style "*", "{" and "}" lines are skipped, and
// anything else that is not a header is an error rather than skipped, so
// that a wrongly saved file is noticed.
func parseHeaders(data []byte) (http.Header, error) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // a BOM from a Windows editor
	h := make(http.Header)
	if trimmed := bytes.TrimSpace(data); len(trimmed) > 0 && trimmed[0] == '{' {
		return h, parseJSONHeaders(trimmed, h)
	}
	lines := strings.Split(string(data), "\n")
	// The output of "nectarhooks sign" lists the headers, then a curl
	// command that sends them again: take the command's -H arguments and
	// read the lines around it as usual, adding what they repeat once.
	if cmd, first, last, ok := curlCommand(lines); ok {
		fromCurl, err := curlHeaders(cmd)
		if err != nil {
			return nil, err
		}
		for name, values := range fromCurl {
			h[name] = values
		}
		lines = slices.Concat(lines[:first], make([]string, last-first+1), lines[last+1:]) // blank, to keep line numbers
	}
	transcript := slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(strings.TrimSpace(l), ">") })
	for i, line := range lines {
		t := strings.TrimSpace(line)
		if transcript {
			rest, ok := strings.CutPrefix(t, ">")
			if !ok {
				continue
			}
			t = strings.TrimSpace(rest)
		} else if rest, ok := strings.CutPrefix(t, "<"); ok {
			t = strings.TrimSpace(rest)
		}
		if t == "" || isSkippedLine(t) {
			continue
		}
		name, value, ok := strings.Cut(t, ":")
		if name == "" {
			continue // an HTTP/2 pseudo-header, ":authority: ..."
		}
		name = strings.TrimSpace(name)
		if !ok || !isToken(name) {
			return nil, fmt.Errorf("line %d, %q, is not a \"Name: value\" header line", i+1, cut(t, 60))
		}
		if value = strings.TrimSpace(value); !slices.Contains(h.Values(name), value) {
			h.Add(name, value)
		}
	}
	if len(h) == 0 {
		return nil, errors.New("no headers found; want \"Name: value\" lines or a JSON object")
	}
	return h, nil
}

func parseJSONHeaders(data []byte, h http.Header) error {
	var m map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&m); err != nil {
		return fmt.Errorf("not a JSON object of header names to strings: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("not a JSON object of header names to strings: text after the object")
	}
	for name, raw := range m {
		if !isToken(name) {
			return fmt.Errorf("%q is not a header name", cut(name, 60))
		}
		var one string
		if err := json.Unmarshal(raw, &one); err == nil {
			h.Add(name, one)
			continue
		}
		var many []string
		if err := json.Unmarshal(raw, &many); err != nil {
			return fmt.Errorf("the value of %q is not a string", name)
		}
		for _, v := range many {
			h.Add(name, v)
		}
	}
	if len(h) == 0 {
		return errors.New("the JSON object holds no headers")
	}
	return nil
}

// isSkippedLine reports lines of a curl -v transcript or a raw request
// that are not headers: "POST /hooks HTTP/1.1", "HTTP/1.1 200 OK",
// "* Connected to ...", "{ [5 bytes data]".
func isSkippedLine(t string) bool {
	if strings.HasPrefix(t, "*") || strings.HasPrefix(t, "{") || strings.HasPrefix(t, "}") || strings.HasPrefix(t, "HTTP/") {
		return true
	}
	f := strings.Fields(t)
	return len(f) == 3 && strings.HasPrefix(f[2], "HTTP/") && isToken(f[0]) && !strings.Contains(f[0], ":")
}

// isToken reports whether s is an HTTP token, what a header name is made of.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}
