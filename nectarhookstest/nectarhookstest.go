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
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"embed"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"time"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/internal/edkey"
)

// Signer signs payloads with one signing secret as Svix signs its
// deliveries. It is safe for concurrent use.
type Signer struct {
	v  *nectarhooks.Verifier // for a whsec_ secret
	ed ed25519.PrivateKey    // for a whsk_ key
	// Now is the clock for the timestamps of Header and Request.
	// Default: time.Now.
	Now func() time.Time
}

// NewSigner returns a Signer for secret: "whsec_" and base64, as for
// nectarhooks.NewVerifier, to sign v1 (HMAC-SHA256) signatures; or a
// "whsk_" private key (base64 of the 64-byte ed25519 private key, or of
// its 32-byte seed; NewKeyPair makes one) to sign v1a (ed25519) ones, which
// a receiver checks with the pair's "whpk_" public key. Errors match
// nectarhooks.ErrInvalidSecret.
func NewSigner(secret string) (*Signer, error) {
	if strings.HasPrefix(strings.TrimSpace(secret), edkey.SigningPrefix) {
		key, err := edkey.Signing(secret)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", nectarhooks.ErrInvalidSecret, err)
		}
		return &Signer{ed: key, Now: time.Now}, nil
	}
	v, err := nectarhooks.NewVerifier(secret)
	if err != nil {
		return nil, err
	}
	return &Signer{v: v, Now: time.Now}, nil
}

// Sign returns the svix-signature header value for the message:
// "v1," and the base64 HMAC-SHA256 of "id.timestamp.payload", or, for a
// whsk_ key, "v1a," and the base64 of its ed25519 signature.
func (s *Signer) Sign(id string, timestamp time.Time, payload []byte) string {
	if s.ed != nil {
		return edkey.Sign(s.ed, id, timestamp.Unix(), payload)
	}
	return s.v.Sign(id, timestamp, payload)
}

// Header returns the svix-id, svix-timestamp and svix-signature headers of a
// delivery of payload, with a new message id and the Signer's clock.
func (s *Signer) Header(payload []byte) http.Header {
	return s.HeaderFor(NewMessageID(), s.now(), payload)
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
	return s.RequestFor(target, NewMessageID(), s.now(), payload)
}

// NewRequest returns a signed POST of payload to url for sending over a
// network, with http.Client.Do: a new message id, the Signer's clock, and
// ctx for cancellation.
func (s *Signer) NewRequest(ctx context.Context, url string, payload []byte) (*http.Request, error) {
	r, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(payload))
	if err != nil {
		return nil, err
	}
	for k, vs := range s.Header(payload) {
		r.Header[k] = vs
	}
	return r, nil
}

// RequestFor is Request with a given message id and timestamp.
func (s *Signer) RequestFor(target, id string, timestamp time.Time, payload []byte) *http.Request {
	r := httptest.NewRequest(http.MethodPost, target, bytes.NewReader(payload))
	for k, vs := range s.HeaderFor(id, timestamp, payload) {
		r.Header[k] = vs
	}
	return r
}

// NewMessageID returns a new random message id shaped like Svix's: "msg_"
// and 27 base62 characters. Random rather than counted, so that a test or
// tool run twice against a receiver that remembers ids (WithIdempotency)
// is not taken for a redelivery.
func NewMessageID() string {
	const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	const n = 27
	id := make([]byte, 0, len("msg_")+n)
	id = append(id, "msg_"...)
	var buf [64]byte
	for len(id) < cap(id) {
		if _, err := rand.Read(buf[:]); err != nil {
			panic(err) // crypto/rand does not fail on supported platforms
		}
		for _, b := range buf {
			// 248 = 4*62: dropping larger bytes keeps the choice uniform.
			if b < 248 && len(id) < cap(id) {
				id = append(id, alphabet[b%62])
			}
		}
	}
	return string(id)
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

// NewKeyPair returns a new random ed25519 key pair in the text form of
// Standard Webhooks' asymmetric scheme: signingKey is "whsk_" and the
// base64 of the 64-byte private key, for NewSigner (the sender's);
// publicKey is "whpk_" and the base64 of the 32-byte public key, for
// nectarhooks.NewHandler (the receiver's).
func NewKeyPair() (signingKey, publicKey string) {
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return edkey.FormatSigning(key), edkey.FormatPublic(pub)
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
