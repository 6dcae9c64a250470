package main

import (
	"errors"
	"fmt"
	"strings"
	"unicode"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
)

// secretEnv names the environment variable read when -secret is absent.
const secretEnv = "NECTAR_WEBHOOK_SECRET"

// errNoSecret is the complaint when neither source has a secret.
var errNoSecret = errors.New("no signing secret: pass -secret whsec_... or set " + secretEnv)

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
	return nectarhookstest.NewSigner(secret)
}
