package main

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"strings"
	"unicode"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/internal/edkey"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
)

// secretEnv names the environment variable read when -secret is absent.
const secretEnv = "NECTAR_WEBHOOK_SECRET"

// errNoSecret is the complaint when neither source has a secret.
var errNoSecret = errors.New("no signing secret: pass -secret whsec_... (or an ed25519 whsk_/whpk_ key) or set " + secretEnv)

// signingSecret returns the signing secret from -secret or, when that is
// empty, from the environment, once it decodes as the library decodes
// it. Its errors say what was given instead of a whsec_ secret, without
// repeating the secret.
func (e *env) signingSecret(flagValue string) (string, error) {
	s := strings.TrimSpace(flagValue)
	if s == "" {
		s = strings.TrimSpace(e.getenv(secretEnv))
	}
	if s == "" {
		return "", errNoSecret
	}
	// The two halves of an ed25519 key pair (Standard Webhooks' v1a).
	switch {
	case strings.HasPrefix(s, edkey.SigningPrefix):
		if _, err := edkey.Signing(s); err != nil {
			return "", fmt.Errorf("the whsk_ signing key is not usable: %v", err)
		}
		return s, nil
	case strings.HasPrefix(s, edkey.PublicPrefix):
		if _, err := edkey.Public(s); err != nil {
			return "", fmt.Errorf("the whpk_ public key is not usable: %v", err)
		}
		return s, nil
	}
	if _, err := nectarhooks.DecodeSecret(s); err != nil {
		if hint := secretHint(s); hint != "" {
			return "", errors.New(hint)
		}
		return "", err
	}
	return s, nil
}

// secretHint recognises the usual ways a secret other than the endpoint's
// signing secret, or the right one wrongly copied, ends up in -secret or
// the environment, and says what was expected instead. It returns "" for
// anything else, which the library's own message describes. Only the
// prefix before "_" is quoted back: it names a kind of key, not a key.
func secretHint(s string) string {
	const want = `want the endpoint's signing secret as the Svix portal shows it: "whsec_" followed by base64`
	if s[0] == '"' || s[0] == '\'' {
		return "the signing secret is in quotes, as written in a .env file; pass it without them: " + want
	}
	prefix, _, ok := strings.Cut(s, "_")
	if !ok || len(prefix) > 12 || !isLetters(prefix) {
		return ""
	}
	if prefix == "whsec" {
		return "" // the right prefix: the library says what is wrong after it
	}
	if strings.EqualFold(prefix, "whsec") {
		return fmt.Sprintf("the signing secret starts with %q; the prefix is lower case: %s", prefix+"_", want)
	}
	return fmt.Sprintf("the signing secret starts with %q, which is some other kind of key (an API key?); %s", prefix+"_", want)
}

func isLetters(s string) bool {
	for _, r := range s {
		if !unicode.IsLetter(r) || r > unicode.MaxASCII {
			return false
		}
	}
	return s != ""
}

// signer returns a Signer for the secret signingSecret finds (-secret, or
// the environment), for the commands that sign: send, sign and load.
func (e *env) signer(flagValue string) (*nectarhookstest.Signer, error) {
	secret, err := e.signingSecret(flagValue)
	if err != nil {
		return nil, err
	}
	if strings.HasPrefix(secret, edkey.PublicPrefix) {
		return nil, errors.New("a whpk_ public key cannot sign: pass the whsk_ signing key of the pair ('nectarhooks keygen' makes one)")
	}
	return nectarhookstest.NewSigner(secret)
}

// verifyingKey is the key verify checks with: secret itself, or the
// public half of a whsk_ signing key, which a receiver would hold.
func verifyingKey(secret string) string {
	if !strings.HasPrefix(secret, edkey.SigningPrefix) {
		return secret
	}
	pub, err := publicKeyOf(secret)
	if err != nil {
		return secret // signingSecret checked it already
	}
	return pub
}

// publicKeyOf returns the whpk_ public key of the whsk_ signing key, for
// verify and keygen -public-of.
func publicKeyOf(signing string) (string, error) {
	k, err := edkey.Signing(signing)
	if err != nil {
		return "", err
	}
	return edkey.FormatPublic(k.Public().(ed25519.PublicKey)), nil
}

// signatureVersion is the version of the signatures key checks: v1a for
// an ed25519 key, v1 for a whsec_ secret.
func signatureVersion(key string) string {
	if strings.HasPrefix(key, edkey.PublicPrefix) {
		return "v1a"
	}
	return "v1"
}
