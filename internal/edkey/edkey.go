// Package edkey reads and writes the ed25519 keys of Standard Webhooks'
// asymmetric scheme ("v1a"), in the text form Svix shows them: "whpk_"
// and the base64 of the 32-byte public key, "whsk_" and the base64 of the
// 64-byte private key (the 32-byte seed followed by the public key, as
// crypto/ed25519 and libsodium hold it). The core, nectarhookstest and the
// CLI share it, so that all three read a key alike.
package edkey

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
)

// The prefixes of the two halves of a key pair.
const (
	PublicPrefix  = "whpk_"
	SigningPrefix = "whsk_"
)

// Errors say what is wrong without repeating the key.
var (
	errBase64 = errors.New("the part after the prefix is not standard base64")
)

// decode trims space and prefix and decodes padded or unpadded base64.
func decode(s, prefix string) ([]byte, error) {
	s = strings.TrimPrefix(strings.TrimSpace(s), prefix)
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		b, err = base64.RawStdEncoding.DecodeString(s)
	}
	if err != nil {
		return nil, errBase64
	}
	return b, nil
}

// Public decodes a "whpk_..." public key (the prefix is optional).
func Public(s string) (ed25519.PublicKey, error) {
	b, err := decode(s, PublicPrefix)
	if err != nil {
		return nil, err
	}
	if len(b) != ed25519.PublicKeySize {
		return nil, errors.New("the public key is " + strconv.Itoa(len(b)) + " bytes, want 32; is it truncated, or another kind of key?")
	}
	return ed25519.PublicKey(b), nil
}

// Signing decodes a "whsk_..." private key (the prefix is optional): 64
// bytes, seed and public key, whose public half must be the seed's; or the
// 32-byte seed alone, which some tools print.
func Signing(s string) (ed25519.PrivateKey, error) {
	b, err := decode(s, SigningPrefix)
	if err != nil {
		return nil, err
	}
	switch len(b) {
	case ed25519.SeedSize:
		return ed25519.NewKeyFromSeed(b), nil
	case ed25519.PrivateKeySize:
		k := ed25519.NewKeyFromSeed(b[:ed25519.SeedSize])
		if string(k[ed25519.SeedSize:]) != string(b[ed25519.SeedSize:]) {
			return nil, errors.New("the signing key's second half is not the public key of its first: the key is damaged")
		}
		return k, nil
	}
	return nil, errors.New("the signing key is " + strconv.Itoa(len(b)) + " bytes, want 64 (seed and public key) or 32 (seed)")
}

// FormatPublic returns the "whpk_..." text of pub.
func FormatPublic(pub ed25519.PublicKey) string {
	return PublicPrefix + base64.StdEncoding.EncodeToString(pub)
}

// FormatSigning returns the "whsk_..." text of key, all 64 bytes.
func FormatSigning(key ed25519.PrivateKey) string {
	return SigningPrefix + base64.StdEncoding.EncodeToString(key)
}

// Sign returns the "v1a,..." entry of the message: the ed25519 signature
// of "id.timestamp.payload" in standard base64.
func Sign(key ed25519.PrivateKey, id string, timestamp int64, payload []byte) string {
	msg := AppendContent(make([]byte, 0, len(id)+24+len(payload)), id, timestamp, payload)
	return "v1a," + base64.StdEncoding.EncodeToString(ed25519.Sign(key, msg))
}

// AppendContent appends to dst the content a "v1a" entry signs,
// "id.timestamp.payload", and returns the extended slice: Sign and the
// core's verifier build it alike.
func AppendContent(dst []byte, id string, timestamp int64, payload []byte) []byte {
	return append(AppendPrefix(dst, id, timestamp), payload...)
}

// AppendPrefix appends to dst what both schemes sign before the payload,
// "id.timestamp.", the timestamp as parsed (a header of "+1614265330" is
// signed as "1614265330"): the core's HMAC ("v1"), which writes the
// payload to the MAC on its own, and AppendContent ("v1a").
func AppendPrefix(dst []byte, id string, timestamp int64) []byte {
	dst = append(dst, id...)
	dst = append(dst, '.')
	dst = strconv.AppendInt(dst, timestamp, 10)
	return append(dst, '.')
}
