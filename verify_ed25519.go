package nectarhooks

import (
	"crypto/ed25519"
	"fmt"
	"strings"
	"sync"

	"github.com/nectarhooks/nectarhooks/internal/edkey"
)

// ErrPrivateKey is the error, matched with errors.Is, of a "whsk_" key
// given to NewVerifier, NewHandler or WithSecrets: that is the sender's
// private signing key, which a receiver must never hold. The receiver
// takes the "whpk_" public key of the pair (nectarhooks keygen prints
// both). It also matches ErrInvalidSecret.
var ErrPrivateKey = fmt.Errorf("%w: a whsk_ key is the sender's private signing key; give the receiver the whpk_ public key of the pair instead, and keep the whsk_ key on the sender only", ErrInvalidSecret)

// maxAsymmetricEntries bounds the well-formed v1a entries of one header
// that are checked: each costs an ed25519 verification per public key
// (tens of microseconds), and the header is the sender's before anything
// is authenticated. Svix sends one entry per active key: two during a
// rotation.
const maxAsymmetricEntries = 4

// addKey adds one key as NewVerifier reads it: a "whpk_" public key, or a
// "whsec_" secret; a "whsk_" private key is refused with ErrPrivateKey.
func (v *Verifier) addKey(s string) error {
	t := strings.TrimSpace(s)
	switch {
	case strings.HasPrefix(t, edkey.SigningPrefix):
		return ErrPrivateKey
	case strings.HasPrefix(t, edkey.PublicPrefix):
		pub, err := edkey.Public(t)
		if err != nil {
			return fmt.Errorf("%w: %v; want whpk_ followed by the base64 of a 32-byte ed25519 public key", ErrInvalidSecret, err)
		}
		v.pubs = append(v.pubs, pub)
		return nil
	}
	key, err := DecodeSecret(t)
	if err != nil {
		return err
	}
	v.keys = append(v.keys, newMACKey(key))
	return nil
}

// edState is the scratch of one v1a check: the signed content and the
// decoded signature, pooled so that a check allocates nothing.
type edState struct {
	msg []byte
	sig [ed25519.SignatureSize]byte
}

var edStates = sync.Pool{New: func() any { return &edState{msg: make([]byte, 0, 2048)} }}

// maxPooledContent is the largest signed content whose buffer goes back
// to the pool: larger ones, rare, are left to the garbage collector
// rather than kept.
const maxPooledContent = 256 << 10

// matchAsymmetric reports whether a v1a entry of sigs is the ed25519
// signature of "id.ts.payload" under one of the public keys. Entries are
// found as matchIn finds v1 ones (at the start or after a space, ending at
// a space, a comma or the end); a signature must be the 88 characters of
// padded standard base64 of 64 bytes, canonical, or it is skipped.
func (v *Verifier) matchAsymmetric(id string, ts int64, payload []byte, sigs string) bool {
	const version = "v1a,"
	var st *edState
	defer func() {
		if st != nil && cap(st.msg) <= maxPooledContent {
			edStates.Put(st)
		}
	}()
	checked := 0
	for off := 0; off < len(sigs) && checked < maxAsymmetricEntries; {
		var start int
		if off == 0 && strings.HasPrefix(sigs, version) {
			start = 0
		} else {
			j := strings.Index(sigs[off:], " "+version)
			if j < 0 {
				return false
			}
			start = off + j + 1
		}
		off = start + len(version)
		end := off
		for end < len(sigs) && sigs[end] != ' ' && sigs[end] != ',' {
			end++
		}
		if st == nil {
			st = edStates.Get().(*edState)
			st.msg = st.msg[:0] // built below, at the first well-formed entry
		}
		if !decodeSignature(sigs[off:end], &st.sig) {
			continue
		}
		checked++
		if len(st.msg) == 0 {
			st.msg = edkey.AppendContent(st.msg, id, ts, payload)
		}
		for _, pub := range v.pubs {
			// crypto/ed25519 refuses a non-canonical S (S >= L), so a
			// signature cannot be malleated into another that verifies.
			if ed25519.Verify(pub, st.msg, st.sig[:]) {
				return true
			}
		}
	}
	return false
}

// base64Values maps each byte to its value in the standard base64
// alphabet, or 0xff.
var base64Values = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for i := 0; i < len(base64Alphabet); i++ {
		t[base64Alphabet[i]] = byte(i)
	}
	return t
}()

// decodeSignature decodes s, the padded standard base64 of a 64-byte
// signature, into dst, and reports whether it was one: exactly 88
// characters ending "==" with the unused bits of the last character zero,
// as base64.StdEncoding.Strict requires. One text, one signature. It is
// base64.StdEncoding.Strict().Decode without converting s to bytes, which
// would allocate.
func decodeSignature(s string, dst *[ed25519.SignatureSize]byte) bool {
	if len(s) != 88 || s[86] != '=' || s[87] != '=' {
		return false
	}
	var bad byte
	for i := 0; i < 21; i++ {
		a, b, c, d := base64Values[s[4*i]], base64Values[s[4*i+1]], base64Values[s[4*i+2]], base64Values[s[4*i+3]]
		bad |= a | b | c | d
		dst[3*i] = a<<2 | b>>4
		dst[3*i+1] = b<<4 | c>>2
		dst[3*i+2] = c<<6 | d
	}
	a, b := base64Values[s[84]], base64Values[s[85]]
	bad |= a | b
	dst[63] = a<<2 | b>>4
	return bad&0xc0 == 0 && b&0x0f == 0
}
