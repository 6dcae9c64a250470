package nectarhooks

import (
	"errors"
	"math"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	svix "github.com/svix/svix-webhooks/go"
)

// vtFuzzKey stretches a fuzzed key to MinKeyBytes, which ours requires.
func vtFuzzKey(key []byte) []byte {
	for len(key) < MinKeyBytes {
		key = append(key, byte(len(key)))
	}
	return key
}

// vtCheckReason fails unless err is a verification error with exactly one
// reason.
func vtCheckReason(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, ErrVerification) {
		t.Fatalf("error %v does not match ErrVerification", err)
	}
	n := 0
	for _, r := range vtReasons {
		if errors.Is(err, r) {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("error %v matches %d reasons, want 1", err, n)
	}
}

// vtRespell returns h with its keys spelled by style: canonical, lower
// case, upper case, or alternating.
func vtRespell(h http.Header, style int) http.Header {
	out := http.Header{}
	for k, vs := range h {
		switch style % 4 {
		case 1:
			k = strings.ToLower(k)
		case 2:
			k = strings.ToUpper(k)
		case 3:
			b := []byte(strings.ToLower(k))
			for j := len(b) % 2; j < len(b); j += 2 {
				if 'a' <= b[j] && b[j] <= 'z' {
					b[j] -= 'a' - 'A'
				}
			}
			k = string(b)
		}
		out[k] = vs
	}
	return out
}

const vtBase64Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

// FuzzVerify checks that Verify never panics, fails with exactly one
// reason, accepts what Sign signs, refuses that message after any single
// change to its body, id, timestamp or signature, and applies the
// tolerance as Svix's rule says, with the clock skew seconds and nsec
// nanoseconds after the message.
func FuzzVerify(f *testing.F) {
	f.Add([]byte("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), vtID, vtTSText, vtSig, []byte(vtBody), vtTS, uint8(0), uint16(0), byte(1), int64(300), uint32(0), int64(0))
	f.Add([]byte{}, "", "", "", []byte{}, int64(0), uint8(7), uint16(3), byte(0), int64(-301), uint32(999999999), int64(1))
	f.Add([]byte("k"), "msg_1", "+0001", "v1,a v2,b ,, v1", []byte("{}"), int64(-1), uint8(9), uint16(65535), byte(','), int64(1e10), uint32(5e8), int64(-5))
	f.Fuzz(func(t *testing.T, key []byte, id, tsText, sigHeader string, body []byte, ts int64, mut uint8, pos uint16, val byte, skew int64, nsec uint32, tol int64) {
		// The clock stops at the message's time, so a tolerance of 1 s
		// lets timestamp changes reach the signature check.
		ts = min(ts, math.MaxInt64-1) // the clock cannot be 1 s ahead of MaxInt64
		v, err := NewVerifierRaw(vtFuzzKey(key), vtAt(time.Unix(ts, 0)), WithTolerance(time.Second))
		if err != nil {
			t.Fatal(err)
		}

		// Arbitrary headers.
		for _, h := range []http.Header{
			vtHeaders(id, tsText, sigHeader),
			vtLower(vtHeaders(id, tsText, sigHeader)),
			vtHeadersNamed("Webhook-", id, tsText, sigHeader),
		} {
			if err := v.Verify(body, h); err != nil {
				vtCheckReason(t, err)
			}
		}

		// A message signed by the verifier's key.
		if id == "" {
			id = "msg"
		}
		tsText = strconv.FormatInt(ts, 10)
		sig := v.Sign(id, time.Unix(ts, 0), body)
		header := func(id, ts, sig string) http.Header {
			switch mut >> 6 {
			case 1:
				return vtLower(vtHeaders(id, ts, sig))
			case 2:
				return vtHeadersNamed("Webhook-", id, ts, sig)
			default:
				return vtHeaders(id, ts, sig)
			}
		}
		if err := v.Verify(body, header(id, tsText, sig)); err != nil {
			t.Fatalf("signed message refused: %v", err)
		}

		// The tolerance rule of Svix's library, on any clock.
		if tol <= 0 {
			tol = int64(DefaultTolerance)
		}
		now, sent := time.Unix(ts+skew, int64(nsec%1e9)), time.Unix(ts, 0)
		var want error
		switch {
		case now.Sub(sent) > time.Duration(tol):
			want = ErrMessageTooOld
		case sent.Unix() > now.Add(time.Duration(tol)).Unix():
			want = ErrMessageTooNew
		}
		skewed, err := NewVerifierRaw(vtFuzzKey(key), vtAt(now), WithTolerance(time.Duration(tol)))
		if err != nil {
			t.Fatal(err)
		}
		if err := skewed.Verify(body, header(id, tsText, sig)); !errors.Is(err, want) {
			t.Fatalf("clock %v, timestamp %d, tolerance %v: got %v, want %v", now, ts, time.Duration(tol), err, want)
		}

		// One change, which must be refused.
		x := val
		if x == 0 {
			x = 1 // XOR with 0 would change nothing
		}
		b := []byte(body)
		at := func(n int) int { return int(pos) % n }
		switch mut % 12 {
		case 0:
			if len(b) == 0 {
				b = []byte{val}
			} else {
				b = append([]byte{}, b...)
				b[at(len(b))] ^= x
			}
		case 1:
			if len(b) == 0 {
				b = []byte{val}
			} else {
				i := at(len(b))
				b = append(append([]byte{}, b[:i]...), b[i+1:]...)
			}
		case 2:
			i := at(len(b) + 1)
			b = append(append(append([]byte{}, b[:i]...), val), b[i:]...)
		case 3:
			ib := []byte(id)
			ib[at(len(ib))] ^= x
			id = string(ib)
		case 4:
			i := at(len(id))
			id = id[:i] + id[i+1:]
		case 5:
			i := at(len(id) + 1)
			id = id[:i] + string(rune(val)) + id[i:]
		case 6:
			tsText = strconv.FormatInt(ts^1<<(pos%64), 10)
		case 7:
			tsText = strconv.FormatInt(ts+int64(x%3)+1, 10)
		case 8:
			// A leading non-zero digit always changes the value.
			tsText = string(rune('1'+val%9)) + tsText
		case 9:
			sb := []byte(sig)
			sb[at(len(sb))] ^= x
			sig = string(sb)
		case 10:
			sig = sig[:at(len(sig))]
		case 11:
			sig += string(vtBase64Alphabet[val%64])
		}
		err = v.Verify(b, header(id, tsText, sig))
		if err == nil {
			t.Fatalf("mutation %d accepted: id %q, timestamp %q, signature %q, body %q", mut%12, id, tsText, sig, b)
		}
		vtCheckReason(t, err)
	})
}

// FuzzVerifyDifferential checks that ours decides as Svix's
// VerifyIgnoringTimestamp does on arbitrary headers and bodies, with our
// clock stopped at the message's timestamp. A plant byte slips a valid
// signature into the headers, or matches would almost never occur.
func FuzzVerifyDifferential(f *testing.F) {
	f.Add([]byte("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), vtID, vtTSText, vtSig, "", "", "", []byte(vtBody), uint8(0), uint16(0))
	f.Add([]byte("k"), "", "", "", vtID, "+01", "v2,x", []byte("{}"), uint8(6), uint16(5))
	f.Add([]byte("k"), "a", "1", "v1,", "b", "2", "v1,", []byte(nil), uint8(255), uint16(1))
	f.Fuzz(func(t *testing.T, key []byte, svixID, svixTS, svixSig, whID, whTS, whSig string, body []byte, plant uint8, pos uint16) {
		key = vtFuzzKey(key)
		theirs, err := svix.NewWebhookRaw(key)
		if err != nil {
			t.Fatal(err)
		}

		// The set of headers Svix's rules select.
		id, tsText, sig := svixID, svixTS, &svixSig
		if svixID == "" || svixTS == "" || svixSig == "" {
			id, tsText, sig = whID, whTS, &whSig
		}
		ts, perr := strconv.ParseInt(tsText, 10, 64)
		if perr == nil && ts == math.MaxInt64 {
			t.Skip("the clock cannot be 1 s ahead of MaxInt64")
		}
		if perr == nil && id != "" && plant%4 != 0 {
			good, err := theirs.Sign(id, time.Unix(ts, 0), body)
			if err != nil {
				t.Fatal(err)
			}
			if plant&0x80 != 0 {
				good = "v2" + strings.TrimPrefix(good, "v1") // must not count
			}
			// Planting keeps the selected set complete, so the choice holds.
			switch s := *sig; plant % 4 {
			case 1:
				*sig = good + " " + s
			case 2:
				*sig = s + " " + good
			case 3:
				i := int(pos) % (len(s) + 1)
				*sig = s[:i] + good + s[i:]
			}
		}

		h := http.Header{}
		for k, v := range map[string]string{
			"Svix-Id": svixID, "Svix-Timestamp": svixTS, "Svix-Signature": svixSig,
			"Webhook-Id": whID, "Webhook-Timestamp": whTS, "Webhook-Signature": whSig,
		} {
			// Empty values are sometimes present, sometimes absent.
			if v != "" || plant&4 != 0 {
				h[k] = []string{v}
			}
		}
		ours, err := NewVerifierRaw(key, vtAt(time.Unix(ts, 0)), WithTolerance(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		errOurs := ours.Verify(body, vtRespell(h, int(plant>>3)))
		errSvix := theirs.VerifyIgnoringTimestamp(body, h)
		if errors.Is(errOurs, ErrMessageTooOld) || errors.Is(errOurs, ErrMessageTooNew) {
			t.Fatalf("refused for its timestamp %q with the clock at it: %v", tsText, errOurs)
		}
		vtSameDecision(t, "fuzz", errOurs, errSvix, h)
	})
}
