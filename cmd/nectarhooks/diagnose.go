package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/nectarhooks/nectarhooks"
)

// The checks a diagnosis names, stable for -json and the web page's
// filter: one word for each way a delivery fails, "verified" when none
// does.
const (
	checkVerified      = "verified"
	checkMissing       = "missing-headers"
	checkMalformed     = "malformed-headers"
	checkTooOld        = "timestamp-too-old"
	checkTooNew        = "timestamp-too-new"
	checkNoSignature   = "no-matching-signature"
	checkBodyChanged   = "body-changed"
	checkSecretFormat  = "secret-format"
	checkBodyTooLarge  = "body-too-large"
	checkReadFailed    = "body-unreadable"
	checkNotADelivered = "not-a-delivery"
)

// diagnosis is what listen found about one delivery: whether it verifies
// and, when not, which check failed (check), in a few words (title) and
// in the lines verify prints (reason).
type diagnosis struct {
	OK     bool     `json:"ok"`
	Check  string   `json:"check"`
	Title  string   `json:"title"`
	Reason []string `json:"reason,omitempty"`
}

// diagnose verifies a delivery with v, as a receiver would, and says
// which check failed and why, reusing the explanations of the verify
// command so that both say the same thing.
func diagnose(v *nectarhooks.Verifier, secret string, h http.Header, body []byte, now time.Time, tolerance time.Duration) diagnosis {
	err := v.Verify(body, h)
	if err == nil {
		return diagnosis{OK: true, Check: checkVerified, Title: "verified"}
	}
	hs := pickHeaders(h)
	// The version this key checks: v1 for a whsec_ secret, v1a for a
	// whpk_ public key.
	want := signatureVersion(strings.TrimSpace(secret))
	d := diagnosis{Check: checkOf(err), Title: headline(err), Reason: explain(err, v, secret, h, hs, body, now, "the clock", tolerance)}
	for i, line := range d.Reason {
		if strings.Contains(line, "with -now") {
			// verify's flag, which listen does not have.
			d.Reason[i] = "The signature itself matches: only the time is off."
		}
	}
	switch {
	case d.Check == checkTooOld || d.Check == checkTooNew:
		// "By how much" belongs in the one line a terminal shows.
		ts, _ := strconv.ParseInt(hs.timestamp, 10, 64)
		d.Title = fmt.Sprintf("%s: signed %s the clock (tolerance %s)", d.Title, relativeAge(now.Sub(time.Unix(ts, 0))), tolerance)
	case d.Check != checkNoSignature:
	case bodyRepair(v, h, body) != "":
		d.Check, d.Title = checkBodyChanged, "body changed after signing: "+bodyRepair(v, h, body)
	case !hasVersion(hs.signature, want):
		d.Check, d.Title = checkSecretFormat, "signed with another kind of key: "+signatureVersions(hs.signature, want)
	case want == "v1a":
		d.Title = "no signature for this key (or the body changed)"
	default:
		d.Title = "no signature for this secret (or the body changed)"
	}
	return d
}

// checkOf names the check a verification error failed.
func checkOf(err error) string {
	for _, f := range verifyFailures {
		if errors.Is(err, f.err) {
			return f.check
		}
	}
	return checkNoSignature
}

// bodyRepair tries the accidents that change a signed body without
// changing its meaning (a final newline added or lost, the JSON's white
// space changed) and says which one, undone, makes the body verify; ""
// when none does. Only these: each costs one HMAC.
func bodyRepair(v *nectarhooks.Verifier, h http.Header, body []byte) string {
	if bytes.HasSuffix(body, []byte("\n")) {
		if v.Verify(bytes.TrimRight(body, "\r\n"), h) == nil {
			return "without its final newline the body verifies: a newline was added"
		}
	} else if v.Verify(append(bytes.Clone(body), '\n'), h) == nil {
		return "with a final newline the body verifies: the newline was lost"
	}
	if trimmed := bytes.TrimRight(body, " \t\r\n"); len(trimmed) < len(body) {
		if v.Verify(trimmed, h) == nil || v.Verify(append(bytes.Clone(trimmed), '\n'), h) == nil {
			return "with the white space at its end undone, the body verifies: white space was added after signing"
		}
	}
	var compact bytes.Buffer
	if json.Compact(&compact, body) == nil && !bytes.Equal(compact.Bytes(), body) && v.Verify(compact.Bytes(), h) == nil {
		return "compacted, the JSON verifies: it was re-indented or pretty-printed after signing"
	}
	return ""
}

// hasVersion reports whether a signature header holds an entry of version
// want: "v1" (HMAC) or "v1a" (ed25519).
func hasVersion(sigs, want string) bool {
	for _, entry := range strings.Fields(sigs) {
		if version, _, _ := strings.Cut(entry, ","); version == want {
			return true
		}
	}
	return false
}

// signatureVersions lists the versions of a signature header's entries,
// "v1a", for a title: which kind of key signed, never the signature; want
// is the version the key checks.
func signatureVersions(sigs, want string) string {
	var vs []string
	for _, entry := range strings.Fields(sigs) {
		version, _, _ := strings.Cut(entry, ",")
		vs = append(vs, cut(version, 8))
	}
	return strings.Join(vs, " ") + " entries, no " + want + "; is -secret the right kind of key?"
}
