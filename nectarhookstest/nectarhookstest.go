// Package nectarhookstest helps test code that receives Nectar webhooks, in
// the spirit of net/http/httptest: it signs payloads exactly as Svix does,
// builds signed requests for a Handler or a Verifier's middleware, and holds
// Nectar's documented sample payloads.
//
//	signer, _ := nectarhookstest.NewSigner(secret)
//	req := signer.Request("/webhooks", nectarhookstest.Sample(nectarhooks.EventConnectionUpdated))
//	rec := httptest.NewRecorder()
//	handler.ServeHTTP(rec, req)
package nectarhookstest

import (
	"bytes"
	"crypto/rand"
	"embed"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nectarhooks/nectarhooks"
)

// Signer signs payloads with one signing secret as Svix signs its
// deliveries. It is safe for concurrent use.
type Signer struct {
	v *nectarhooks.Verifier
	// Now is the clock for the timestamps of Header and Request.
	// Default: time.Now.
	Now func() time.Time
	ids atomic.Uint64
}

// NewSigner returns a Signer for secret ("whsec_" and base64, as for
// nectarhooks.NewVerifier).
func NewSigner(secret string) (*Signer, error) {
	v, err := nectarhooks.NewVerifier(secret)
	if err != nil {
		return nil, err
	}
	return &Signer{v: v, Now: time.Now}, nil
}

// Sign returns the svix-signature header value for the message:
// "v1," and the base64 HMAC-SHA256 of "id.timestamp.payload".
func (s *Signer) Sign(id string, timestamp time.Time, payload []byte) string {
	return s.v.Sign(id, timestamp, payload)
}

// Header returns the svix-id, svix-timestamp and svix-signature headers of a
// delivery of payload, with a new message id and the Signer's clock.
func (s *Signer) Header(payload []byte) http.Header {
	return s.HeaderFor(s.NextID(), s.now(), payload)
}

// HeaderFor returns the headers of a delivery with the given id and
// timestamp, for tests of replays, duplicates and stale messages.
func (s *Signer) HeaderFor(id string, timestamp time.Time, payload []byte) http.Header {
	h := make(http.Header, 4)
	h.Set("Content-Type", "application/json")
	h.Set("Svix-Id", id)
	h.Set("Svix-Timestamp", strconv.FormatInt(timestamp.Unix(), 10))
	h.Set("Svix-Signature", s.Sign(id, timestamp, payload))
	return h
}

// Request returns a signed POST of payload to target, as
// httptest.NewRequest builds it: for handing straight to a Handler's
// ServeHTTP, not for sending over a network.
func (s *Signer) Request(target string, payload []byte) *http.Request {
	return s.RequestFor(target, s.NextID(), s.now(), payload)
}

// RequestFor is Request with a given message id and timestamp.
func (s *Signer) RequestFor(target, id string, timestamp time.Time, payload []byte) *http.Request {
	r := httptest.NewRequest(http.MethodPost, target, bytes.NewReader(payload))
	for k, vs := range s.HeaderFor(id, timestamp, payload) {
		r.Header[k] = vs
	}
	return r
}

// NextID returns a new message id in Svix's style, "msg_" and a number
// that grows with every call.
func (s *Signer) NextID() string {
	return fmt.Sprintf("msg_test%016d", s.ids.Add(1))
}

func (s *Signer) now() time.Time {
	if s.Now == nil {
		return time.Now()
	}
	return s.Now()
}

// NewSecret returns a new random signing secret in Svix's format:
// "whsec_" and the base64 of 24 random bytes.
func NewSecret() string {
	key := make([]byte, 24)
	if _, err := rand.Read(key); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return "whsec_" + base64.StdEncoding.EncodeToString(key)
}

// FixedClock returns a clock that always reads t, for WithClock and
// Signer.Now.
func FixedClock(t time.Time) func() time.Time {
	return func() time.Time { return t }
}

//go:embed samples/*.json
var samples embed.FS

// Sample returns a copy of Nectar's documented payload for event type t,
// byte for byte as documented (connection.validated.v2, which Nectar
// documents no sample of, is connection.created.v2's with its eventType).
// It returns nil for other event types.
func Sample(t nectarhooks.EventType) []byte {
	b, err := samples.ReadFile("samples/" + string(t) + ".json")
	if err != nil {
		return nil
	}
	return b
}
