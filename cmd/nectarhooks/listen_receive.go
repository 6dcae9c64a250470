package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
)

// listenConfig is what a listener is built from: listen's flags, checked.
type listenConfig struct {
	secret        string // the endpoint's signing secret
	tolerance     time.Duration
	maxBody       int64
	history       int
	historyBytes  int64
	forwardTo     string // "" when not forwarding
	forwardSecret string
	timeout       time.Duration // for the forward target's answer
	now           func() time.Time
}

// listener is listen's http.Handler: it receives deliveries on any path,
// and serves the web page under / and /_nectarhooks/.
type listener struct {
	cfg      listenConfig
	verifier *nectarhooks.Verifier
	signer   *nectarhookstest.Signer // re-signs forwarded deliveries; nil when not forwarding
	client   *http.Client
	hist     *history
	hub      *hub
	web      http.Handler
	// report is called once per delivery received (not per replay), in
	// the order they are recorded, to print its line.
	report func(*record)
}

func newListener(cfg listenConfig) (*listener, error) {
	if cfg.now == nil {
		cfg.now = time.Now
	}
	// NewVerifier, not the CLI's own parsing: whatever secret formats the
	// library accepts, listen accepts.
	v, err := nectarhooks.NewVerifier(cfg.secret, nectarhooks.WithTolerance(cfg.tolerance), nectarhooks.WithClock(cfg.now))
	if err != nil {
		if hint := secretHint(strings.TrimSpace(cfg.secret)); hint != "" {
			return nil, errors.New(hint)
		}
		return nil, err
	}
	l := &listener{cfg: cfg, verifier: v, hist: newHistory(cfg.history, cfg.historyBytes), hub: newHub(), report: func(*record) {}}
	if cfg.forwardTo != "" {
		if l.signer, err = nectarhookstest.NewSigner(cfg.forwardSecret); err != nil {
			return nil, fmt.Errorf("-forward-secret: %w", err)
		}
		l.client = &http.Client{
			Transport: http.DefaultTransport.(*http.Transport).Clone(),
			Timeout:   cfg.timeout,
			// As Svix: a redirect is an answer, not a place to go.
			CheckRedirect: noRedirect,
		}
	}
	l.web = l.webHandler()
	return l, nil
}

// close ends the web pages' event streams and the forwarding client's
// idle connections; the listener answers nothing live afterwards.
func (l *listener) close() {
	l.hub.close()
	if l.client != nil {
		l.client.CloseIdleConnections()
	}
	l.hist.closeFile()
}

func (l *listener) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost && !strings.HasPrefix(r.URL.Path, webPrefix) {
		l.receive(w, r)
		return
	}
	l.web.ServeHTTP(w, r)
}

// delivery is one request received, as the history keeps it and the web
// page shows it.
type record struct {
	Seq      int64       `json:"seq"`
	Received time.Time   `json:"received"`
	Method   string      `json:"method"`
	Path     string      `json:"path"`
	Remote   string      `json:"remote"`
	Header   http.Header `json:"header"`
	Body     []byte      `json:"body"`
	Size     int64       `json:"size"` // bytes received; more than len(Body) when refused as too large
	ID       string      `json:"id"`
	Type     string      `json:"type"`
	Verdict  diagnosis   `json:"verdict"`
	// Decoded is the SDK's typed decode (nectarhooks.Parse) as JSON, and
	// DecodedAs its Go type; DecodeError when Parse refused the body.
	Decoded     json.RawMessage `json:"decoded,omitempty"`
	DecodedAs   string          `json:"decodedAs,omitempty"`
	DecodeError string          `json:"decodeError,omitempty"`
	Answer      answer          `json:"answer"`
	Forward     *forwarded      `json:"forward,omitempty"`
	Replays     []forwarded     `json:"replays,omitempty"`
	// VerifyMicros is how long the check took, TotalMillis the whole
	// delivery, forwarding included.
	VerifyMicros int64   `json:"verifyMicros"`
	TotalMillis  float64 `json:"totalMillis"`
}

// answer is a status given, to the sender or by the forward target.
type answer struct {
	Status int    `json:"status"`
	Text   string `json:"text"` // "200 OK"
	Body   string `json:"body,omitempty"`
	// contentType is the forward target's, passed on to the sender.
	contentType string
}

// forwarded is one delivery to the forward target: the first, or a replay.
type forwarded struct {
	URL       string    `json:"url"`
	At        time.Time `json:"at"`
	Timestamp int64     `json:"timestamp"` // the svix-timestamp it was signed with
	Answer    *answer   `json:"answer,omitempty"`
	Error     string    `json:"error,omitempty"` // no answer: why
	Millis    float64   `json:"millis"`
}

// size is what a delivery costs the history's byte bound, roughly.
func (d *record) size() int64 {
	n := int64(len(d.Body)+len(d.Decoded)+len(d.Path)) + 512
	for k, vs := range d.Header {
		n += int64(len(k))
		for _, v := range vs {
			n += int64(len(v))
		}
	}
	for _, f := range d.Replays {
		if f.Answer != nil {
			n += int64(len(f.Answer.Body))
		}
	}
	if d.Forward != nil && d.Forward.Answer != nil {
		n += int64(len(d.Forward.Answer.Body))
	}
	return n
}

func (l *listener) receive(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	d := &record{
		Received: l.cfg.now(),
		Method:   r.Method,
		Path:     r.URL.RequestURI(),
		Remote:   r.RemoteAddr,
		Header:   r.Header.Clone(),
	}
	d.ID = pickHeaders(d.Header).id
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, l.cfg.maxBody))
	d.Size = int64(len(body))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		d.Verdict = diagnosis{Check: checkBodyTooLarge, Title: fmt.Sprintf("body larger than %d bytes (-max-body): refused, not kept", l.cfg.maxBody)}
		body = nil
		l.answer(w, d, http.StatusRequestEntityTooLarge, d.Verdict.Title)
	case err != nil:
		d.Verdict = diagnosis{Check: checkReadFailed, Title: "the body could not be read: " + err.Error()}
		l.answer(w, d, http.StatusBadRequest, d.Verdict.Title)
	default:
		d.Body = body
		verifyStart := time.Now()
		d.Verdict = diagnose(l.verifier, l.cfg.secret, d.Header, body, l.cfg.now(), l.cfg.tolerance)
		d.VerifyMicros = time.Since(verifyStart).Microseconds()
		d.decode()
		switch {
		case !d.Verdict.OK:
			// As a receiver with the SDK answers it: 401, never
			// forwarded, so the developer's receiver sees only what it
			// would see in production.
			l.answer(w, d, http.StatusUnauthorized, d.Verdict.Title)
		case l.signer == nil:
			l.answer(w, d, http.StatusOK, "verified")
		default:
			f := l.forward(r.Context(), d.ID, body)
			d.Forward = &f
			l.mirror(w, d, f)
		}
	}
	d.TotalMillis = float64(time.Since(start).Microseconds()) / 1000
	kept := l.hist.add(d)
	l.hub.publish(&kept)
	l.report(&kept)
}

// decode fills what the SDK makes of the body: its type and typed event.
func (d *record) decode() {
	d.Type = string(nectarhooks.PeekEventType(d.Body))
	ev, err := nectarhooks.Parse(d.Body)
	if err != nil {
		d.DecodeError = err.Error()
		return
	}
	d.DecodedAs = fmt.Sprintf("%T", ev)
	d.Decoded, _ = json.Marshal(ev)
}

// answer answers the sender with status and a one-line text.
func (l *listener) answer(w http.ResponseWriter, d *record, status int, text string) {
	d.Answer = answer{Status: status, Text: statusText(status), Body: text}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	io.WriteString(w, text+"\n")
}

// mirror answers the sender with the forward target's answer: its status,
// content type and body, so that the sender (Svix) retries or not as it
// would against the target itself. No answer is a 502.
func (l *listener) mirror(w http.ResponseWriter, d *record, f forwarded) {
	if f.Answer == nil {
		l.answer(w, d, http.StatusBadGateway, "forward target gave no answer: "+f.Error)
		return
	}
	d.Answer = *f.Answer
	if ct := f.Answer.contentType; ct != "" {
		w.Header().Set("Content-Type", ct)
	}
	w.WriteHeader(f.Answer.Status)
	io.WriteString(w, f.Answer.Body)
}

// forward posts body to the forward target as message id, re-signed now
// with the forward secret, and returns the target's answer.
func (l *listener) forward(ctx context.Context, id string, body []byte) forwarded {
	ts := l.cfg.now()
	f := forwarded{URL: l.cfg.forwardTo, At: ts, Timestamp: ts.Unix()}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, l.cfg.forwardTo, bytes.NewReader(body))
	if err != nil {
		f.Error = err.Error()
		return f
	}
	if id == "" {
		id = nectarhookstest.NewMessageID()
	}
	for k, vs := range l.signer.HeaderFor(id, ts, body) {
		req.Header[k] = vs
	}
	req.Header.Set("User-Agent", "nectarhooks-listen")
	start := time.Now()
	resp, err := l.client.Do(req)
	if err != nil {
		f.Millis = float64(time.Since(start).Microseconds()) / 1000
		f.Error = describeSendError(err, l.cfg.timeout)
		return f
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxReadBody))
	f.Millis = float64(time.Since(start).Microseconds()) / 1000
	f.Answer = &answer{Status: resp.StatusCode, Text: statusText(resp.StatusCode), Body: string(raw), contentType: resp.Header.Get("Content-Type")}
	return f
}

func statusText(code int) string { return fmt.Sprintf("%d %s", code, http.StatusText(code)) }
