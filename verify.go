package nectarhooks

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nectarhooks/nectarhooks/internal/edkey"
)

// ErrVerification matches, with errors.Is, every error that means a message
// is not authentic or not fresh: ErrMissingHeaders, ErrInvalidHeaders,
// ErrNoMatchingSignature, ErrMessageTooOld and ErrMessageTooNew, and
// ErrUnknownAccount (no keys to check it with). The Handler answers all of
// them with 401.
var ErrVerification = errors.New("nectarhooks: verification failed")

// The reasons Verify refuses a message. Each matches itself and
// ErrVerification with errors.Is, through any wrapping.
var (
	// ErrMissingHeaders: neither the svix-id, svix-timestamp and
	// svix-signature headers nor the webhook-* ones are all present.
	ErrMissingHeaders error = &verificationError{"missing svix-id, svix-timestamp or svix-signature header"}
	// ErrInvalidHeaders: the timestamp is not a whole number of seconds,
	// or the signature header holds no "version,signature" entry.
	ErrInvalidHeaders error = &verificationError{"malformed signature headers"}
	// ErrNoMatchingSignature: no v1 signature matches any accepted secret,
	// and no v1a signature any accepted public key.
	ErrNoMatchingSignature error = &verificationError{"no matching signature"}
	// ErrMessageTooOld: the timestamp is further in the past than the
	// tolerance allows; a replay, or a clock far behind.
	ErrMessageTooOld error = &verificationError{"message timestamp too old"}
	// ErrMessageTooNew: the timestamp is further in the future than the
	// tolerance allows.
	ErrMessageTooNew error = &verificationError{"message timestamp too new"}
)

// ErrInvalidSecret is the error, matched with errors.Is, of a signing
// secret that cannot be used. The message says what is expected and never
// repeats the secret.
var ErrInvalidSecret = errors.New("nectarhooks: invalid signing secret")

type verificationError struct{ msg string }

func (e *verificationError) Error() string        { return "nectarhooks: " + e.msg }
func (e *verificationError) Is(target error) bool { return target == ErrVerification }

// DefaultTolerance is how far a message's timestamp may be from the
// receiver's clock, in either direction, before Verify refuses it: the
// value the Svix libraries use.
const DefaultTolerance = 5 * time.Minute

// secretPrefix starts every Svix signing secret.
const secretPrefix = "whsec_"

// MinKeyBytes is the shortest signing key NewVerifier accepts. Svix's keys
// are 24 bytes; anything shorter than 16 is a truncated or mistyped secret.
const MinKeyBytes = 16

// A Verifier checks the signatures of Svix-delivered webhooks, the
// scheme also published as Standard Webhooks. It is safe for concurrent use,
// and Verify allocates nothing when the message is authentic.
//
// Its decisions are those of the official Svix Go library's Verify (the
// package's tests compare the two on many mutated messages), with these
// deliberate differences:
//   - header maps with lower-case or otherwise non-canonical keys, as AWS
//     Lambda and some proxies hand over, are read too (Svix's finds only
//     canonical keys);
//   - white space around a secret is trimmed, and "whsec_" is optional;
//   - several secrets may be accepted at once, for rotation (WithSecrets);
//   - secrets that decode to fewer than MinKeyBytes bytes are refused;
//   - the tolerance and the clock can be set (WithTolerance, WithClock).
type Verifier struct {
	keys []macKey            // whsec_ secrets, for v1 entries
	pubs []ed25519.PublicKey // whpk_ public keys, for v1a entries
	opts *options
}

// macKey is one accepted key, with a pool of HMAC states for it: creating
// an HMAC costs allocations and two SHA-256 blocks, resetting one neither.
// One state is kept aside from the pool, which the garbage collector
// empties: a key used now and then (one account's among a thousand, see
// NewAccountHandler) still finds one. The spare is written only when the
// pool has none, so a busy key's goroutines do not contend for it.
type macKey struct {
	key   []byte
	spare *atomic.Pointer[macState]
	pool  *sync.Pool // of *macState
}

func (k macKey) get() *macState {
	if st, ok := k.pool.Get().(*macState); ok {
		return st
	}
	if st := k.spare.Swap(nil); st != nil {
		return st
	}
	return &macState{mac: hmac.New(sha256.New, k.key), prefix: make([]byte, 0, 64)}
}

func (k macKey) put(st *macState) {
	if k.spare.Load() == nil && k.spare.CompareAndSwap(nil, st) {
		return
	}
	k.pool.Put(st)
}

type macState struct {
	mac    hash.Hash
	prefix []byte // "id.timestamp." of the message being checked
	sum    [sha256.Size]byte
	want   [44]byte // base64 of sum: what a matching v1 signature reads
}

func newMACKey(key []byte) macKey {
	return macKey{key: append([]byte(nil), key...), spare: new(atomic.Pointer[macState]), pool: new(sync.Pool)}
}

// NewVerifier returns a Verifier for an endpoint's signing secret, as the
// Svix portal shows it: "whsec_" followed by the base64 of the key. The
// prefix is optional and white space around the secret (a trailing newline
// from a file or environment variable) is ignored. It fails with an error
// matching ErrInvalidSecret when a secret is empty, not base64, or shorter
// than MinKeyBytes. Options that only concern a Handler are ignored.
//
// For an endpoint that signs with ed25519 (Standard Webhooks' asymmetric
// scheme, "v1a" signatures), pass its public key instead: "whpk_" followed
// by the base64 of the 32 bytes. Secrets and public keys can be mixed, in
// secret and WithSecrets, while an endpoint moves from one scheme to the
// other. A "whsk_" private key is refused with ErrPrivateKey: it belongs
// to the sender alone.
func NewVerifier(secret string, opts ...Option) (*Verifier, error) {
	o, err := newOptions(opts)
	if err != nil {
		return nil, err
	}
	v := &Verifier{opts: o}
	if err := v.addKey(secret); err != nil {
		return nil, err
	}
	if err := v.addSecrets(); err != nil {
		return nil, err
	}
	return v, nil
}

// NewVerifierRaw is NewVerifier for a key that is already decoded: the raw
// bytes, not "whsec_..." text. It keeps a copy of key.
func NewVerifierRaw(key []byte, opts ...Option) (*Verifier, error) {
	o, err := newOptions(opts)
	if err != nil {
		return nil, err
	}
	if err := checkKey(key); err != nil {
		return nil, err
	}
	return newVerifier(key, o)
}

func newVerifier(key []byte, o *options) (*Verifier, error) {
	v := &Verifier{opts: o, keys: []macKey{newMACKey(key)}}
	if err := v.addSecrets(); err != nil {
		return nil, err
	}
	return v, nil
}

// addSecrets adds the keys of WithSecrets.
func (v *Verifier) addSecrets() error {
	for i, s := range v.opts.secrets {
		if err := v.addKey(s); err != nil {
			return fmt.Errorf("WithSecrets, secret %d: %w", i+1, err)
		}
	}
	return nil
}

// DecodeSecret returns the key of a "whsec_..." signing secret, applying
// the rules of NewVerifier. Padded and unpadded base64 are both accepted.
func DecodeSecret(secret string) ([]byte, error) {
	s := strings.TrimPrefix(strings.TrimSpace(secret), secretPrefix)
	if s == "" {
		return nil, fmt.Errorf("%w: the secret is empty; want whsec_ followed by base64, as the endpoint's page in the Svix portal shows it", ErrInvalidSecret)
	}
	key, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		key, err = base64.RawStdEncoding.DecodeString(s)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: the part after whsec_ is not standard base64; want whsec_ followed by base64, as the endpoint's page in the Svix portal shows it", ErrInvalidSecret)
	}
	if err := checkKey(key); err != nil {
		return nil, err
	}
	return key, nil
}

func checkKey(key []byte) error {
	if len(key) < MinKeyBytes {
		return fmt.Errorf("%w: the key is %d bytes, want at least %d; is the secret truncated?", ErrInvalidSecret, len(key), MinKeyBytes)
	}
	return nil
}

// Verify reports whether payload, the request body exactly as received, is
// a message Svix signed with one of the Verifier's secrets, recently. It
// returns nil for an authentic message, or an error matching
// ErrVerification and one of ErrMissingHeaders, ErrInvalidHeaders,
// ErrNoMatchingSignature, ErrMessageTooOld or ErrMessageTooNew.
//
// It reads the svix-id, svix-timestamp and svix-signature headers or, when
// any of those is missing, webhook-id, webhook-timestamp and
// webhook-signature. The signature header is a space-separated list of
// "version,base64" entries: the message is authentic if any "v1" entry is
// the HMAC-SHA256 of "id.timestamp.payload" under any accepted secret,
// compared in constant time, or any "v1a" entry its ed25519 signature
// under any accepted public key. A v1 entry is never checked against a
// public key, nor a v1a entry against a secret. Entries of other versions
// are skipped, and so are v1a entries past the first four well-formed
// ones, each of which costs an ed25519 verification per public key.
//
// Verify the bytes as they arrived: a body decoded and encoded again,
// even with the same content, no longer matches its signature.
func (v *Verifier) Verify(payload []byte, header http.Header) error {
	_, _, err := v.verify(payload, header)
	return err
}

// verifyDelivery is verify, then CheckMessageID: the check of the Handler
// and Middleware, which keep and log messages by their id.
func (v *Verifier) verifyDelivery(payload []byte, header http.Header) (string, int64, error) {
	id, ts, err := v.verify(payload, header)
	if err == nil {
		err = CheckMessageID(id)
	}
	return id, ts, err
}

// verify is Verify, returning the message id and timestamp it checked.
func (v *Verifier) verify(payload []byte, header http.Header) (id string, ts int64, err error) {
	id, tsText, sigs := headerValue(header, "Svix-Id"), headerValue(header, "Svix-Timestamp"), headerValue(header, "Svix-Signature")
	if id == "" || tsText == "" || sigs == "" {
		id, tsText, sigs = headerValue(header, "Webhook-Id"), headerValue(header, "Webhook-Timestamp"), headerValue(header, "Webhook-Signature")
		if id == "" || tsText == "" || sigs == "" {
			return "", 0, ErrMissingHeaders
		}
	}
	ts, ok := parseTimestamp(tsText)
	if !ok {
		return "", 0, ErrInvalidHeaders
	}
	if err := v.checkTimestamp(ts); err != nil {
		return "", 0, err
	}
	if v.match(id, ts, payload, sigs) {
		return id, ts, nil
	}
	if !hasEntry(sigs) {
		return "", 0, ErrInvalidHeaders
	}
	return "", 0, ErrNoMatchingSignature
}

// checkTimestamp applies the tolerance exactly as the Svix Go library does:
// too old by more than the tolerance measured to the nanosecond, too new by
// more than the tolerance in whole seconds.
func (v *Verifier) checkTimestamp(ts int64) error {
	now, tolerance := v.opts.clock(), v.opts.tolerance
	// The same tests in integers first, which is faster; exact where
	// nothing can overflow: the clock within 2^40 s of 1970 and the
	// timestamp within 2^31 s of the clock.
	if sec, nsec := now.Unix(), int64(now.Nanosecond()); sec > -1<<40 && sec < 1<<40 && ts > sec-1<<31 && ts < sec+1<<31 {
		tol := int64(tolerance)
		if (sec-ts)*1e9+nsec <= tol && ts <= sec+tol/1e9+(nsec+tol%1e9)/1e9 {
			return nil
		}
	}
	sent := time.Unix(ts, 0)
	if now.Sub(sent) > tolerance {
		return fmt.Errorf("%w: sent %s before the receiver's clock, tolerance %s", ErrMessageTooOld, now.Sub(sent).Truncate(time.Second), tolerance)
	}
	if sent.Unix() > now.Add(tolerance).Unix() {
		return fmt.Errorf("%w: sent %s after the receiver's clock, tolerance %s", ErrMessageTooNew, sent.Sub(now).Truncate(time.Second), tolerance)
	}
	return nil
}

// match reports whether any v1 entry of sigs is the signature of the
// message under any secret, or any v1a entry under any public key.
func (v *Verifier) match(id string, ts int64, payload []byte, sigs string) bool {
	for i := range v.keys {
		st := v.keys[i].get()
		st.sign(id, ts, payload)
		matched := st.matchIn(sigs)
		v.keys[i].put(st)
		if matched {
			return true
		}
	}
	return len(v.pubs) > 0 && v.matchAsymmetric(id, ts, payload, sigs)
}

// matchIn reports whether sigs, a space-separated list of entries, holds
// the v1 entry of st.want. Svix splits an entry at its commas: the version
// is "v1" and the signature matches when the entry is "v1,", ours, then
// its end or a comma.
//
// The header is the sender's, before anything is authenticated, and may
// be a megabyte of junk: it is scanned for "v1," (a fast substring search)
// rather than split into entries, so that it costs no allocation and
// little time whatever it holds. Lengths are public; the signature
// compares in constant time (the conversion does not copy or allocate).
func (st *macState) matchIn(sigs string) bool {
	const version = "v1,"
	if strings.HasPrefix(sigs, version) && st.matchAt(sigs, 0) {
		return true
	}
	for off := 0; ; {
		// Every later entry starts after a space.
		j := strings.Index(sigs[off:], " "+version)
		if j < 0 {
			return false
		}
		start := off + j + 1
		if start+len(version)+len(st.want) > len(sigs) {
			return false // and so would every later entry
		}
		if st.matchAt(sigs, start) {
			return true
		}
		off = start + len(version)
	}
}

// matchAt reports whether the entry of sigs that starts at start, with
// "v1,", is the entry of st.want.
func (st *macState) matchAt(sigs string, start int) bool {
	end := start + len("v1,") + len(st.want)
	if end > len(sigs) || end < len(sigs) && sigs[end] != ' ' && sigs[end] != ',' {
		return false // shorter, or longer
	}
	sig := sigs[start+len("v1,") : end]
	if strings.IndexByte(sig, ' ') >= 0 {
		return false // the entry ends early: no signature has a space
	}
	return subtle.ConstantTimeCompare(st.want[:], []byte(sig)) == 1
}

// sign computes the base64 v1 signature of a message into st.want.
func (st *macState) sign(id string, ts int64, payload []byte) {
	st.prefix = edkey.AppendPrefix(st.prefix[:0], id, ts)
	st.mac.Reset()
	st.mac.Write(st.prefix)
	st.mac.Write(payload)
	st.mac.Sum(st.sum[:0])
	encodeSum(&st.want, &st.sum)
}

// parseTimestamp is strconv.ParseInt(s, 10, 64), faster for the plain
// digits Svix sends: 18 digits cannot overflow.
func parseTimestamp(s string) (int64, bool) {
	if len(s) == 0 || len(s) > 18 {
		ts, err := strconv.ParseInt(s, 10, 64)
		return ts, err == nil
	}
	var ts int64
	for i := 0; i < len(s); i++ {
		d := s[i] - '0'
		if d > 9 {
			ts, err := strconv.ParseInt(s, 10, 64) // a sign, or not a number
			return ts, err == nil
		}
		ts = ts*10 + int64(d)
	}
	return ts, true
}

const base64Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

// encodeSum is base64.StdEncoding.Encode for one SHA-256 sum, unrolled:
// the generic encoder costs a noticeable part of a 1 KiB Verify.
func encodeSum(dst *[44]byte, src *[sha256.Size]byte) {
	for i := 0; i < 10; i++ {
		v := uint(src[3*i])<<16 | uint(src[3*i+1])<<8 | uint(src[3*i+2])
		dst[4*i] = base64Alphabet[v>>18&63]
		dst[4*i+1] = base64Alphabet[v>>12&63]
		dst[4*i+2] = base64Alphabet[v>>6&63]
		dst[4*i+3] = base64Alphabet[v&63]
	}
	v := uint(src[30])<<16 | uint(src[31])<<8
	dst[40] = base64Alphabet[v>>18&63]
	dst[41] = base64Alphabet[v>>12&63]
	dst[42] = base64Alphabet[v>>6&63]
	dst[43] = '='
}

// hasEntry reports whether sigs holds any "version,signature" entry: an
// entry with a comma, which is any comma, since entries are separated by
// spaces.
func hasEntry(sigs string) bool { return strings.IndexByte(sigs, ',') >= 0 }

// Sign returns the svix-signature header value Svix would send for the
// message: "v1," and the base64 HMAC-SHA256 of "id.timestamp.payload" under
// the Verifier's first secret. It is meant for tests and demos; a receiver
// never needs it. A Verifier of public keys alone cannot sign: Sign
// returns "" (nectarhookstest.NewSigner signs with a whsk_ key).
func (v *Verifier) Sign(id string, timestamp time.Time, payload []byte) string {
	if len(v.keys) == 0 {
		return ""
	}
	st := v.keys[0].get()
	defer v.keys[0].put(st)
	st.sign(id, timestamp.Unix(), payload)
	return "v1," + string(st.want[:])
}

// headerValue returns the first value of the header named by canonical,
// looked up as net/http stores it and, failing that, under any spelling:
// header maps built by hand or by AWS Lambda adapters often have lower-case
// keys, which http.Header.Get does not find.
func headerValue(h http.Header, canonical string) string {
	if vs, ok := h[canonical]; ok {
		if len(vs) > 0 {
			return vs[0]
		}
		return ""
	}
	for k, vs := range h {
		if len(vs) > 0 && strings.EqualFold(k, canonical) {
			return vs[0]
		}
	}
	return ""
}
