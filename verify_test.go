package nectarhooks

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	svix "github.com/svix/svix-webhooks/go"
)

// The public test vector from Svix's documentation.
const (
	vtSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	vtID     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	vtTS     = int64(1614265330)
	vtTSText = "1614265330"
	vtBody   = `{"test": 2432232314}`
	vtSig    = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

// vtReasons are the verification errors; each failure must match exactly one.
var vtReasons = []error{ErrMissingHeaders, ErrInvalidHeaders, ErrNoMatchingSignature, ErrMessageTooOld, ErrMessageTooNew}

// vtAt is a clock stopped at t.
func vtAt(t time.Time) Option { return WithClock(func() time.Time { return t }) }

// vtAtKA is a clock stopped at the known-answer vector's timestamp.
func vtAtKA() Option { return vtAt(time.Unix(vtTS, 0)) }

func vtNew(t testing.TB, secret string, opts ...Option) *Verifier {
	t.Helper()
	v, err := NewVerifier(secret, opts...)
	require.NoError(t, err)
	return v
}

// vtHeaders builds canonical svix-* headers, leaving out empty values.
func vtHeaders(id, ts, sig string) http.Header {
	return vtHeadersNamed("Svix-", id, ts, sig)
}

func vtHeadersNamed(prefix, id, ts, sig string) http.Header {
	h := http.Header{}
	for name, val := range map[string]string{"Id": id, "Timestamp": ts, "Signature": sig} {
		if val != "" {
			h[prefix+name] = []string{val}
		}
	}
	return h
}

// vtLower returns h with every key in lower case, as AWS Lambda hands
// headers over.
func vtLower(h http.Header) http.Header {
	out := http.Header{}
	for k, vs := range h {
		out[strings.ToLower(k)] = vs
	}
	return out
}

func vtSecretOf(key []byte) string { return "whsec_" + base64.StdEncoding.EncodeToString(key) }

// vtKey is a deterministic key of n bytes, distinct per seed.
func vtKey(seed byte, n int) []byte {
	k := make([]byte, n)
	for i := range k {
		k[i] = seed*31 + byte(i)*7 + 1
	}
	return k
}

// vtSvixSign signs with the official library, so our Sign is not checked
// against itself.
func vtSvixSign(t testing.TB, secret, id string, ts int64, body []byte) string {
	t.Helper()
	wh, err := svix.NewWebhook(secret)
	require.NoError(t, err)
	sig, err := wh.Sign(id, time.Unix(ts, 0), body)
	require.NoError(t, err)
	return sig
}

// vtRequireReason checks err is exactly the reason want, also when wrapped.
func vtRequireReason(t *testing.T, err, want error) {
	t.Helper()
	require.Error(t, err)
	for _, e := range []error{err, fmt.Errorf("webhook: %w", err), fmt.Errorf("outer: %w", fmt.Errorf("inner: %w", err))} {
		assert.ErrorIs(t, e, want)
		assert.ErrorIs(t, e, ErrVerification)
		assert.NotErrorIs(t, e, ErrInvalidSecret)
		for _, other := range vtReasons {
			if other != want {
				assert.NotErrorIs(t, e, other, "%v", e)
			}
		}
	}
}

// vtAssertNoLeak checks text holds none of the secrets, nor a key in any
// usual encoding. Needles under 4 bytes could occur by chance.
func vtAssertNoLeak(t *testing.T, text string, secrets []string, keys [][]byte) {
	t.Helper()
	var needles []string
	for _, s := range secrets {
		// A secret that is only the prefix has nothing to leak: error
		// texts name the prefix on purpose.
		if b := strings.TrimPrefix(strings.TrimSpace(s), "whsec_"); len(b) >= 4 {
			needles = append(needles, strings.TrimSpace(s), b)
		}
	}
	for _, k := range keys {
		needles = append(needles, string(k), hex.EncodeToString(k), base64.StdEncoding.EncodeToString(k),
			base64.RawStdEncoding.EncodeToString(k), fmt.Sprint(k), fmt.Sprintf("%q", k))
	}
	for _, n := range needles {
		if len(strings.TrimSpace(n)) >= 4 {
			assert.NotContains(t, text, n)
		}
	}
}

func TestVerifyKnownAnswer(t *testing.T) {
	at := time.Unix(vtTS, 0)
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(vtSecret, "whsec_"))
	require.NoError(t, err)
	raw, err := NewVerifierRaw(key, vtAt(at))
	require.NoError(t, err)
	verifiers := []struct {
		name string
		v    *Verifier
	}{
		{"NewVerifier", vtNew(t, vtSecret, vtAt(at))},
		{"NewVerifier without prefix", vtNew(t, strings.TrimPrefix(vtSecret, "whsec_"), vtAt(at))},
		{"NewVerifierRaw", raw},
	}
	for _, tc := range verifiers {
		t.Run(tc.name+"/Sign", func(t *testing.T) {
			assert.Equal(t, vtSig, tc.v.Sign(vtID, at, []byte(vtBody)))
			// Only whole seconds are signed, as Svix does.
			assert.Equal(t, vtSig, tc.v.Sign(vtID, at.Add(999*time.Millisecond), []byte(vtBody)))
			assert.NotEqual(t, vtSig, tc.v.Sign(vtID, at.Add(time.Second), []byte(vtBody)))
		})
		t.Run(tc.name+"/Verify", func(t *testing.T) {
			require.NoError(t, tc.v.Verify([]byte(vtBody), vtHeaders(vtID, vtTSText, vtSig)))
		})
	}
	t.Run("svix agrees", func(t *testing.T) {
		assert.Equal(t, vtSig, vtSvixSign(t, vtSecret, vtID, vtTS, []byte(vtBody)))
	})
}

func TestVerifyErrors(t *testing.T) {
	good := func() http.Header { return vtHeaders(vtID, vtTSText, vtSig) }
	with := func(name, val string) http.Header {
		h := good()
		h[name] = []string{val}
		return h
	}
	without := func(name string) http.Header {
		h := good()
		delete(h, name)
		return h
	}
	otherSig := vtSvixSign(t, vtSecretOf(vtKey(9, 24)), vtID, vtTS, []byte(vtBody))
	cases := []struct {
		name   string
		body   string
		header http.Header
		want   error
	}{
		{"nil header", vtBody, nil, ErrMissingHeaders},
		{"no headers", vtBody, http.Header{}, ErrMissingHeaders},
		{"no id", vtBody, without("Svix-Id"), ErrMissingHeaders},
		{"no timestamp", vtBody, without("Svix-Timestamp"), ErrMissingHeaders},
		{"no signature", vtBody, without("Svix-Signature"), ErrMissingHeaders},
		{"empty id", vtBody, with("Svix-Id", ""), ErrMissingHeaders},
		{"empty timestamp", vtBody, with("Svix-Timestamp", ""), ErrMissingHeaders},
		{"empty signature", vtBody, with("Svix-Signature", ""), ErrMissingHeaders},
		{"empty value list", vtBody, http.Header{"Svix-Id": {}, "Svix-Timestamp": {vtTSText}, "Svix-Signature": {vtSig}}, ErrMissingHeaders},
		{"mixed svix and webhook headers", vtBody, http.Header{"Svix-Id": {vtID}, "Webhook-Timestamp": {vtTSText}, "Webhook-Signature": {vtSig}}, ErrMissingHeaders},
		{"timestamp not a number", vtBody, with("Svix-Timestamp", "yesterday"), ErrInvalidHeaders},
		{"timestamp with fraction", vtBody, with("Svix-Timestamp", vtTSText+".0"), ErrInvalidHeaders},
		{"timestamp with leading space", vtBody, with("Svix-Timestamp", " "+vtTSText), ErrInvalidHeaders},
		{"timestamp with trailing newline", vtBody, with("Svix-Timestamp", vtTSText+"\n"), ErrInvalidHeaders},
		{"timestamp in hex", vtBody, with("Svix-Timestamp", "0x60376ef2"), ErrInvalidHeaders},
		{"timestamp with underscores", vtBody, with("Svix-Timestamp", "1_614_265_330"), ErrInvalidHeaders},
		{"timestamp in exponent form", vtBody, with("Svix-Timestamp", "1.61426533e9"), ErrInvalidHeaders},
		{"timestamp beyond int64", vtBody, with("Svix-Timestamp", "99999999999999999999"), ErrInvalidHeaders},
		{"timestamp as RFC 3339", vtBody, with("Svix-Timestamp", "2021-02-25T15:02:10Z"), ErrInvalidHeaders},
		{"signature without version", vtBody, with("Svix-Signature", strings.TrimPrefix(vtSig, "v1,")), ErrInvalidHeaders},
		{"signature version only", vtBody, with("Svix-Signature", "v1"), ErrInvalidHeaders},
		{"signature of spaces", vtBody, with("Svix-Signature", "   "), ErrInvalidHeaders},
		{"wrong signature", vtBody, with("Svix-Signature", "v1,"+strings.Repeat("A", 43)+"="), ErrNoMatchingSignature},
		{"signature of another secret", vtBody, with("Svix-Signature", otherSig), ErrNoMatchingSignature},
		{"empty v1 signature", vtBody, with("Svix-Signature", "v1,"), ErrNoMatchingSignature},
		{"only another version", vtBody, with("Svix-Signature", "v2"+strings.TrimPrefix(vtSig, "v1")), ErrNoMatchingSignature},
		{"body changed", `{"test": 2432232315}`, good(), ErrNoMatchingSignature},
		{"body re-serialised", `{"test":2432232314}`, good(), ErrNoMatchingSignature},
		{"body with trailing newline", vtBody + "\n", good(), ErrNoMatchingSignature},
		{"empty body", "", good(), ErrNoMatchingSignature},
		{"id changed", vtBody, with("Svix-Id", vtID+"x"), ErrNoMatchingSignature},
		{"timestamp changed within tolerance", vtBody, with("Svix-Timestamp", "1614265331"), ErrNoMatchingSignature},
		{"too old", vtBody, with("Svix-Timestamp", "1614264000"), ErrMessageTooOld},
		{"too new", vtBody, with("Svix-Timestamp", "1614267000"), ErrMessageTooNew},
		// Like Svix, the timestamp is checked before the signature.
		{"too old and wrong body", "{}", with("Svix-Timestamp", "1614264000"), ErrMessageTooOld},
		{"too new and wrong body", "{}", with("Svix-Timestamp", "1614267000"), ErrMessageTooNew},
	}
	v := vtNew(t, vtSecret, vtAtKA())
	wh, err := svix.NewWebhook(vtSecret)
	require.NoError(t, err)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := v.Verify([]byte(tc.body), tc.header)
			vtRequireReason(t, err, tc.want)
			if tc.want != ErrMessageTooOld && tc.want != ErrMessageTooNew {
				assert.Error(t, wh.VerifyIgnoringTimestamp([]byte(tc.body), tc.header), "svix accepts it")
			}
		})
	}
	t.Run("sentinels", func(t *testing.T) {
		for _, r := range vtReasons {
			assert.ErrorIs(t, r, ErrVerification)
			assert.NotErrorIs(t, ErrVerification, r)
			assert.NotErrorIs(t, r, ErrInvalidSecret)
		}
		assert.NotErrorIs(t, ErrInvalidSecret, ErrVerification)
	})
}

func TestVerifyTolerance(t *testing.T) {
	T := time.Unix(vtTS, 0)
	type check struct {
		offset int64 // timestamp minus T, in seconds
		want   error
	}
	cases := []struct {
		name      string
		now       time.Time
		tolerance time.Duration // 0: the default
		checks    []check
	}{
		{"default, clock on a whole second", T, 0, []check{
			{0, nil}, {-300, nil}, {-301, ErrMessageTooOld}, {300, nil}, {301, ErrMessageTooNew},
		}},
		// Too old is measured to the nanosecond, too new in whole seconds.
		{"default, clock half a second on", T.Add(500 * time.Millisecond), 0, []check{
			{-299, nil}, {-300, ErrMessageTooOld}, {300, nil}, {301, ErrMessageTooNew},
		}},
		{"default, clock just before the next second", T.Add(time.Second - 1), 0, []check{
			{-299, nil}, {-300, ErrMessageTooOld}, {300, nil}, {301, ErrMessageTooNew},
		}},
		{"default, clock 1 ns past a whole second", T.Add(1), 0, []check{
			{-299, nil}, {-300, ErrMessageTooOld}, {300, nil}, {301, ErrMessageTooNew},
		}},
		{"default, clock just before a whole second", T.Add(-1), 0, []check{
			{-300, nil}, {-301, ErrMessageTooOld}, {299, nil}, {300, ErrMessageTooNew},
		}},
		{"1.5 s", T, 1500 * time.Millisecond, []check{
			{-1, nil}, {-2, ErrMessageTooOld}, {1, nil}, {2, ErrMessageTooNew},
		}},
		{"1 ns", T, 1, []check{
			{0, nil}, {-1, ErrMessageTooOld}, {1, ErrMessageTooNew},
		}},
		{"24 h", T, 24 * time.Hour, []check{
			{-86400, nil}, {-86401, ErrMessageTooOld}, {86400, nil}, {86401, ErrMessageTooNew},
		}},
		// Offsets beyond 2^31 s, and clocks beyond 2^40 s, which simple
		// integer arithmetic might get wrong.
		{"100 years", T, 100 * 365 * 24 * time.Hour, []check{
			{-3153600000, nil}, {-3153600001, ErrMessageTooOld}, {3153600000, nil}, {3153600001, ErrMessageTooNew},
		}},
		{"default, clock in year 71700", time.Unix(1<<41, 0), 0, []check{
			{1<<41 - vtTS - 300, nil}, {1<<41 - vtTS - 301, ErrMessageTooOld}, {1<<41 - vtTS + 300, nil}, {1<<41 - vtTS + 301, ErrMessageTooNew},
		}},
		{"default, clock before 1970", time.Unix(-1<<41, 5e8), 0, []check{
			{-1<<41 - vtTS - 299, nil}, {-1<<41 - vtTS - 300, ErrMessageTooOld}, {-1<<41 - vtTS + 300, nil}, {-1<<41 - vtTS + 301, ErrMessageTooNew},
		}},
	}
	secret := vtSecretOf(vtKey(1, 24))
	for _, tc := range cases {
		opts := []Option{vtAt(tc.now)}
		if tc.tolerance != 0 {
			opts = append(opts, WithTolerance(tc.tolerance))
		}
		v := vtNew(t, secret, opts...)
		for _, c := range tc.checks {
			t.Run(fmt.Sprintf("%s/%+d s", tc.name, c.offset), func(t *testing.T) {
				ts := vtTS + c.offset
				sig := vtSvixSign(t, secret, vtID, ts, []byte(vtBody))
				err := v.Verify([]byte(vtBody), vtHeaders(vtID, strconv.FormatInt(ts, 10), sig))
				if c.want == nil {
					require.NoError(t, err)
				} else {
					vtRequireReason(t, err, c.want)
				}
			})
		}
	}
	t.Run("extreme timestamps", func(t *testing.T) {
		v := vtNew(t, secret, vtAtKA())
		for _, c := range []struct {
			ts   int64
			want error
		}{
			{0, ErrMessageTooOld}, {-1, ErrMessageTooOld}, {math.MinInt64, ErrMessageTooOld},
			{1 << 40, ErrMessageTooNew}, {vtTS * 1000, ErrMessageTooNew},
			// Centuries away: nanosecond differences overflow int64.
			{vtTS - 1e10, ErrMessageTooOld}, {vtTS + 1e10, ErrMessageTooNew},
			{vtTS - 1<<33, ErrMessageTooOld}, {vtTS + 1<<33, ErrMessageTooNew},
			// time.Unix overflows this far out, in Svix's code as in ours,
			// so the reason may be either; refused it must be.
			{math.MaxInt64, nil}, {math.MaxInt64 - 1e10, nil},
		} {
			sig := vtSvixSign(t, secret, vtID, c.ts, []byte(vtBody))
			err := v.Verify([]byte(vtBody), vtHeaders(vtID, strconv.FormatInt(c.ts, 10), sig))
			if c.want == nil {
				require.ErrorIs(t, err, ErrVerification)
				assert.True(t, errors.Is(err, ErrMessageTooOld) || errors.Is(err, ErrMessageTooNew), "%d: %v", c.ts, err)
				continue
			}
			vtRequireReason(t, err, c.want)
		}
	})
	t.Run("real clock", func(t *testing.T) {
		v := vtNew(t, secret)
		now := time.Now().Unix()
		for _, c := range []check{{0, nil}, {-120, nil}, {120, nil}, {-900, ErrMessageTooOld}, {900, ErrMessageTooNew}} {
			sig := vtSvixSign(t, secret, vtID, now+c.offset, []byte(vtBody))
			err := v.Verify([]byte(vtBody), vtHeaders(vtID, strconv.FormatInt(now+c.offset, 10), sig))
			if c.want == nil {
				assert.NoError(t, err, "%+d s", c.offset)
			} else {
				vtRequireReason(t, err, c.want)
			}
		}
	})
	t.Run("invalid options", func(t *testing.T) {
		for name, opt := range map[string]Option{
			"zero tolerance":     WithTolerance(0),
			"negative tolerance": WithTolerance(-time.Second),
			"nil clock":          WithClock(nil),
		} {
			_, err := NewVerifier(secret, opt)
			assert.ErrorIs(t, err, errInvalidOption, name)
			assert.NotErrorIs(t, err, ErrInvalidSecret, name)
		}
	})
}

func TestVerifySignatureHeader(t *testing.T) {
	good := strings.TrimPrefix(vtSig, "v1,")
	bad := vtSvixSign(t, vtSecret, vtID, vtTS, []byte("{}"))[3:]
	var many []string
	for i := range 50 {
		many = append(many, fmt.Sprintf("v%d,%s", i%3, bad))
	}
	urlSafe := strings.NewReplacer("+", "-", "/", "_").Replace(good)
	require.NotEqual(t, good, urlSafe, "the vector must contain + or /")
	cases := []struct {
		name   string
		values []string // svix-signature header values
		want   error
	}{
		{"single", []string{"v1," + good}, nil},
		{"bad then good", []string{"v1," + bad + " v1," + good}, nil},
		{"good then bad", []string{"v1," + good + " v1," + bad}, nil},
		{"other versions skipped", []string{"v0,abc v2," + good + " v1a,x v1," + good}, nil},
		{"fifty others then good", []string{strings.Join(many, " ") + " v1," + good}, nil},
		{"good twice", []string{"v1," + good + " v1," + good}, nil},
		{"surrounding spaces", []string{"   v1," + good + "  "}, nil},
		{"double spaces between", []string{"v1," + bad + "  v1," + good}, nil},
		{"trailing comma", []string{"v1," + good + ","}, nil},
		{"third field", []string{"v1," + good + ",v2"}, nil},
		{"good in first of two values", []string{"v1," + good, "v1," + bad}, nil},
		// Only the first value is read, as http.Header.Get and Svix do.
		{"good in second of two values", []string{"v1," + bad, "v1," + good}, ErrNoMatchingSignature},
		{"only other versions", []string{"v2," + good + " V1," + good + " v1a," + good + " ," + good + " v10," + good}, ErrNoMatchingSignature},
		{"version with space", []string{"v1 ," + good}, ErrNoMatchingSignature},
		{"double comma", []string{"v1,," + good}, ErrNoMatchingSignature},
		{"leading comma", []string{",v1," + good}, ErrNoMatchingSignature},
		{"space after comma", []string{"v1, " + good}, ErrNoMatchingSignature},
		{"tab separated", []string{"v1," + bad + "\tv1," + good}, ErrNoMatchingSignature},
		{"trailing tab", []string{"v1," + good + "\t"}, ErrNoMatchingSignature},
		{"truncated by one", []string{"v1," + good[:len(good)-1]}, ErrNoMatchingSignature},
		{"truncated to half", []string{"v1," + good[:len(good)/2]}, ErrNoMatchingSignature},
		{"truncated to one", []string{"v1," + good[:1]}, ErrNoMatchingSignature},
		{"empty", []string{"v1,"}, ErrNoMatchingSignature},
		{"one too long", []string{"v1," + good + "A"}, ErrNoMatchingSignature},
		{"padding doubled", []string{"v1," + good + "="}, ErrNoMatchingSignature},
		{"unpadded", []string{"v1," + strings.TrimRight(good, "=")}, ErrNoMatchingSignature},
		{"URL-safe alphabet", []string{"v1," + urlSafe}, ErrNoMatchingSignature},
		{"lower case", []string{"v1," + strings.ToLower(good)}, ErrNoMatchingSignature},
		{"hex", []string{"v1," + vtHexOf(t, good)}, ErrNoMatchingSignature},
		{"twice as long", []string{"v1," + good + good}, ErrNoMatchingSignature},
		{"no comma", []string{"v1" + good}, ErrInvalidHeaders},
	}
	v := vtNew(t, vtSecret, vtAtKA())
	wh, err := svix.NewWebhook(vtSecret)
	require.NoError(t, err)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := vtHeaders(vtID, vtTSText, "")
			h["Svix-Signature"] = tc.values
			vtRequireSameAsSvix(t, v, wh, h, tc.want)
		})
	}
}

// vtRequireSameAsSvix requires ours to refuse vtBody under h for the reason
// want (or accept it, for nil) and Svix to decide the same.
func vtRequireSameAsSvix(t *testing.T, v *Verifier, wh *svix.Webhook, h http.Header, want error) {
	t.Helper()
	err := v.Verify([]byte(vtBody), h)
	svixErr := wh.VerifyIgnoringTimestamp([]byte(vtBody), h)
	if want == nil {
		require.NoError(t, err)
		require.NoError(t, svixErr)
		return
	}
	vtRequireReason(t, err, want)
	require.Error(t, svixErr)
}

func vtHexOf(t *testing.T, b64 string) string {
	b, err := base64.StdEncoding.DecodeString(b64)
	require.NoError(t, err)
	return hex.EncodeToString(b)
}

func TestVerifyUnbrandedHeaders(t *testing.T) {
	bad := "v1," + strings.Repeat("A", 43) + "="
	merge := func(hs ...http.Header) http.Header {
		out := http.Header{}
		for _, h := range hs {
			for k, v := range h {
				out[k] = v
			}
		}
		return out
	}
	cases := []struct {
		name   string
		header http.Header
		want   error
	}{
		{"webhook-* only", vtHeadersNamed("Webhook-", vtID, vtTSText, vtSig), nil},
		{"webhook-* when svix-* is incomplete", merge(vtHeaders(vtID, vtTSText, ""), vtHeadersNamed("Webhook-", vtID, vtTSText, vtSig)), nil},
		{"webhook-* when svix-id is empty", merge(vtHeadersNamed("Webhook-", vtID, vtTSText, vtSig), http.Header{"Svix-Id": {""}, "Svix-Timestamp": {vtTSText}, "Svix-Signature": {bad}}), nil},
		{"svix-* preferred when complete", merge(vtHeaders(vtID, vtTSText, vtSig), vtHeadersNamed("Webhook-", vtID, vtTSText, bad)), nil},
		{"svix-* used even when wrong", merge(vtHeaders(vtID, vtTSText, bad), vtHeadersNamed("Webhook-", vtID, vtTSText, vtSig)), ErrNoMatchingSignature},
		{"webhook-* incomplete", vtHeadersNamed("Webhook-", vtID, "", vtSig), ErrMissingHeaders},
		{"webhook-* wrong", vtHeadersNamed("Webhook-", vtID, vtTSText, bad), ErrNoMatchingSignature},
		{"webhook-* bad timestamp", vtHeadersNamed("Webhook-", vtID, "x", vtSig), ErrInvalidHeaders},
		{"other brand", vtHeadersNamed("Standard-", vtID, vtTSText, vtSig), ErrMissingHeaders},
	}
	v := vtNew(t, vtSecret, vtAtKA())
	wh, err := svix.NewWebhook(vtSecret)
	require.NoError(t, err)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			vtRequireSameAsSvix(t, v, wh, tc.header, tc.want)
			// The same decision from a lower-case map.
			lowerErr := v.Verify([]byte(vtBody), vtLower(tc.header))
			if tc.want == nil {
				require.NoError(t, lowerErr)
			} else {
				vtRequireReason(t, lowerErr, tc.want)
			}
		})
	}
}

func TestVerifyHeaderKeySpelling(t *testing.T) {
	bad := "v1," + strings.Repeat("A", 43) + "="
	cases := []struct {
		name   string
		header http.Header
		want   error
	}{
		{"lower case", http.Header{"svix-id": {vtID}, "svix-timestamp": {vtTSText}, "svix-signature": {vtSig}}, nil},
		{"upper case", http.Header{"SVIX-ID": {vtID}, "SVIX-TIMESTAMP": {vtTSText}, "SVIX-SIGNATURE": {vtSig}}, nil},
		{"mixed spellings", http.Header{"sVIX-iD": {vtID}, "Svix-Timestamp": {vtTSText}, "svix-Signature": {vtSig}}, nil},
		{"unbranded lower case", http.Header{"webhook-id": {vtID}, "webhook-timestamp": {vtTSText}, "webhook-signature": {vtSig}}, nil},
		{"canonical key preferred", http.Header{"Svix-Id": {vtID}, "Svix-Timestamp": {vtTSText}, "Svix-Signature": {vtSig}, "svix-signature": {bad}}, nil},
		{"canonical key preferred even when wrong", http.Header{"Svix-Id": {vtID}, "Svix-Timestamp": {vtTSText}, "Svix-Signature": {bad}, "svix-signature": {vtSig}}, ErrNoMatchingSignature},
		{"lower case, empty value", http.Header{"svix-id": {vtID}, "svix-timestamp": {vtTSText}, "svix-signature": {}}, ErrMissingHeaders},
		{"lower case, wrong", http.Header{"svix-id": {vtID}, "svix-timestamp": {vtTSText}, "svix-signature": {bad}}, ErrNoMatchingSignature},
		{"similar names", http.Header{"svix-id2": {vtID}, "svix_timestamp": {vtTSText}, "svix-signatures": {vtSig}}, ErrMissingHeaders},
	}
	v := vtNew(t, vtSecret, vtAtKA())
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := v.Verify([]byte(vtBody), tc.header)
			if tc.want == nil {
				require.NoError(t, err)
			} else {
				vtRequireReason(t, err, tc.want)
			}
		})
	}
}

func TestDecodeSecret(t *testing.T) {
	ka, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(vtSecret, "whsec_"))
	require.NoError(t, err)
	k16, k17, k64 := vtKey(2, 16), vtKey(3, 17), vtKey(4, 64)
	require.True(t, strings.HasSuffix(base64.StdEncoding.EncodeToString(k16), "=="))
	require.True(t, strings.HasSuffix(base64.StdEncoding.EncodeToString(k17), "="))
	valid := []struct {
		name   string
		secret string
		key    []byte
	}{
		{"known answer", vtSecret, ka},
		{"without prefix", strings.TrimPrefix(vtSecret, "whsec_"), ka},
		{"surrounding white space", "\n\t whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw \r\n", ka},
		{"trailing newline", vtSecret + "\n", ka},
		{"white space, no prefix", "  MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n", ka},
		{"16 bytes, padded", vtSecretOf(k16), k16},
		{"16 bytes, unpadded", "whsec_" + base64.RawStdEncoding.EncodeToString(k16), k16},
		{"17 bytes, unpadded", "whsec_" + base64.RawStdEncoding.EncodeToString(k17), k17},
		{"64 bytes", vtSecretOf(k64), k64},
	}
	for _, tc := range valid {
		t.Run(tc.name, func(t *testing.T) {
			key, err := DecodeSecret(tc.secret)
			require.NoError(t, err)
			assert.Equal(t, tc.key, key)
			// The verifier uses that key: it accepts what the key signs.
			v := vtNew(t, tc.secret, vtAtKA())
			raw, err := svix.NewWebhookRaw(tc.key)
			require.NoError(t, err)
			sig, err := raw.Sign(vtID, time.Unix(vtTS, 0), []byte(vtBody))
			require.NoError(t, err)
			require.NoError(t, v.Verify([]byte(vtBody), vtHeaders(vtID, vtTSText, sig)))
		})
	}

	k15 := vtKey(5, 15)
	slashes := []byte(strings.Repeat("\xff", 18))
	invalid := []struct {
		name   string
		secret string
		keys   [][]byte // keys the error text must not show
	}{
		{"empty", "", nil},
		{"white space", " \t\r\n", nil},
		{"prefix only", "whsec_", nil},
		{"prefix and spaces", "  whsec_  ", nil},
		{"not base64", "whsec_this-is-not-base64!", nil},
		{"URL-safe alphabet", "whsec_" + base64.URLEncoding.EncodeToString(slashes), [][]byte{slashes}},
		{"space inside", "whsec_MfKQ9r8GKYqr TwjUPD8ILPZIo2LaLaSw", [][]byte{ka}},
		{"prefix twice", "whsec_" + vtSecret, [][]byte{ka}},
		{"upper-case prefix", "WHSEC_" + strings.TrimPrefix(vtSecret, "whsec_"), [][]byte{ka}},
		{"trailing garbage", vtSecret + "!", [][]byte{ka}},
		{"15 bytes", vtSecretOf(k15), [][]byte{k15}},
		{"15 bytes, unpadded", "whsec_" + base64.RawStdEncoding.EncodeToString(k15), [][]byte{k15}},
		{"1 byte", "whsec_QQ==", [][]byte{{'A'}}},
	}
	for _, tc := range invalid {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeSecret(tc.secret)
			_, errNew := NewVerifier(tc.secret)
			_, errExtra := NewVerifier(vtSecret, WithSecrets(tc.secret))
			for _, e := range []error{err, errNew, errExtra, fmt.Errorf("config: %w", err)} {
				require.ErrorIs(t, e, ErrInvalidSecret)
				assert.NotErrorIs(t, e, ErrVerification)
				for _, text := range []string{e.Error(), fmt.Sprintf("%+v", e), fmt.Sprintf("%#v", e)} {
					vtAssertNoLeak(t, text, []string{tc.secret, vtSecret}, append(tc.keys, ka))
				}
			}
		})
	}
	t.Run("NewVerifierRaw", func(t *testing.T) {
		_, err := NewVerifierRaw(k15)
		require.ErrorIs(t, err, ErrInvalidSecret)
		vtAssertNoLeak(t, err.Error(), nil, [][]byte{k15})
		_, err = NewVerifierRaw(nil)
		require.ErrorIs(t, err, ErrInvalidSecret)

		// The Verifier keeps its own copy of the key.
		key := append([]byte(nil), ka...)
		v, err := NewVerifierRaw(key, vtAtKA())
		require.NoError(t, err)
		for i := range key {
			key[i] = 0
		}
		require.NoError(t, v.Verify([]byte(vtBody), vtHeaders(vtID, vtTSText, vtSig)))
	})
}

func TestVerifyWithSecrets(t *testing.T) {
	oldS, newS, otherS := vtSecretOf(vtKey(10, 24)), vtSecretOf(vtKey(11, 32)), vtSecretOf(vtKey(12, 24))
	body := []byte(vtBody)
	sigBy := func(secret string) string { return vtSvixSign(t, secret, vtID, vtTS, body) }
	verify := func(v *Verifier, sig string) error {
		return v.Verify(body, vtHeaders(vtID, vtTSText, sig))
	}
	t.Run("old and new both verify", func(t *testing.T) {
		for _, v := range []*Verifier{
			vtNew(t, newS, vtAtKA(), WithSecrets(oldS)),
			vtNew(t, oldS, vtAtKA(), WithSecrets(newS)),
			vtNew(t, otherS, vtAtKA(), WithSecrets(oldS), WithSecrets(newS)),
			vtNew(t, otherS, vtAtKA(), WithSecrets(newS, oldS, newS)),
		} {
			require.NoError(t, verify(v, sigBy(oldS)))
			require.NoError(t, verify(v, sigBy(newS)))
			require.NoError(t, verify(v, sigBy(otherS)+" "+sigBy(newS)))
		}
	})
	t.Run("others rejected", func(t *testing.T) {
		v := vtNew(t, newS, vtAtKA(), WithSecrets(oldS))
		vtRequireReason(t, verify(v, sigBy(otherS)), ErrNoMatchingSignature)
		vtRequireReason(t, verify(v, sigBy(otherS)+" v2,"+sigBy(newS)[3:]), ErrNoMatchingSignature)
	})
	t.Run("Sign uses the first secret", func(t *testing.T) {
		v := vtNew(t, newS, vtAtKA(), WithSecrets(oldS))
		assert.Equal(t, sigBy(newS), v.Sign(vtID, time.Unix(vtTS, 0), body))
	})
	t.Run("a bad extra secret fails NewVerifier", func(t *testing.T) {
		for _, badS := range []string{"", "  ", "whsec_", "whsec_not base64", vtSecretOf(vtKey(13, 8))} {
			v, err := NewVerifier(newS, WithSecrets(oldS, badS))
			require.ErrorIs(t, err, ErrInvalidSecret, "%q", badS)
			assert.Nil(t, v)
			vtAssertNoLeak(t, err.Error(), []string{oldS, newS, badS}, [][]byte{vtKey(10, 24), vtKey(11, 32), vtKey(13, 8)})
		}
	})
}

func TestVerifyErrorTextsKeepSecrets(t *testing.T) {
	secret, extra := vtSecretOf(vtKey(20, 24)), vtSecretOf(vtKey(21, 24))
	v := vtNew(t, secret, vtAtKA(), WithSecrets(extra))
	body := []byte(vtBody)
	sig := vtSvixSign(t, secret, vtID, vtTS, body)
	type input struct {
		body       []byte
		id, ts     string
		sig        string
		computedTS int64 // timestamp whose signatures must not leak
	}
	inputs := []input{
		{[]byte("{}"), vtID, vtTSText, sig, vtTS},
		{body, vtID + "x", vtTSText, sig, vtTS},
		{body, vtID, "1614265331", sig, vtTS + 1},
		{body, vtID, vtTSText, "v1," + strings.Repeat("A", 43) + "=", vtTS},
		{body, vtID, vtTSText, strings.TrimPrefix(sig, "v1,"), vtTS},
		{body, vtID, "+01614265330x", sig, vtTS},
		{body, vtID, "1614264000", "v1,x", 1614264000},
		{body, vtID, "1614267000", "v1,x", 1614267000},
		{body, "", vtTSText, sig, vtTS},
	}
	for i, in := range inputs {
		err := v.Verify(in.body, vtHeaders(in.id, in.ts, in.sig))
		require.Error(t, err, "input %d", i)
		var computed []string
		for _, s := range []string{secret, extra} {
			c := vtSvixSign(t, s, in.id, in.computedTS, in.body)
			computed = append(computed, c, strings.TrimPrefix(c, "v1,"))
		}
		for _, text := range []string{err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err)} {
			vtAssertNoLeak(t, text, append(computed, secret, extra), [][]byte{vtKey(20, 24), vtKey(21, 24)})
		}
	}
}

func TestVerifyConcurrent(t *testing.T) {
	oldS, newS := vtSecretOf(vtKey(30, 24)), vtSecretOf(vtKey(31, 24))
	v := vtNew(t, newS, vtAtKA(), WithSecrets(oldS))
	type message struct {
		body   []byte
		header http.Header
		ok     bool
	}
	rng := rand.New(rand.NewPCG(3, 4))
	msgs := make([]message, 256)
	for i := range msgs {
		body := vtRandBody(rng)
		id := fmt.Sprintf("msg_%d", i)
		secret := newS
		if i%3 == 0 {
			secret = oldS
		}
		h := vtHeaders(id, vtTSText, vtSvixSign(t, secret, id, vtTS, body))
		ok := i%4 != 0
		if !ok {
			body = append(body, '!')
		}
		if i%5 == 0 {
			h = vtLower(h)
		}
		msgs[i] = message{body, h, ok}
	}
	wantSig := vtSvixSign(t, newS, vtID, vtTS, []byte(vtBody))
	var wg sync.WaitGroup
	var wrong, signed atomic.Int64
	for g := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 300 {
				m := msgs[(g*37+i)%len(msgs)]
				if err := v.Verify(m.body, m.header); (err == nil) != m.ok {
					wrong.Add(1)
				}
				if i%50 == 0 && v.Sign(vtID, time.Unix(vtTS, 0), []byte(vtBody)) != wantSig {
					wrong.Add(1)
				}
				signed.Add(1)
			}
		}()
	}
	wg.Wait()
	require.Equal(t, int64(64*300), signed.Load())
	require.Zero(t, wrong.Load(), "decisions differ from the sequential ones")
}

func TestVerifyAllocs(t *testing.T) {
	if RaceEnabled {
		t.Skip("the race detector makes sync.Pool drop items, so allocations vary")
	}
	oldS, newS := vtSecretOf(vtKey(40, 24)), vtSecretOf(vtKey(41, 24))
	v := vtNew(t, newS, vtAtKA(), WithSecrets(oldS))
	body := []byte(strings.Repeat(`{"a":"0123456789abcdef"}`, 43))[:1024]
	sigNew := vtSvixSign(t, newS, vtID, vtTS, body)
	sigOld := vtSvixSign(t, oldS, vtID, vtTS, body)
	bad := "v1," + strings.Repeat("A", 43) + "="
	cases := map[string]http.Header{
		"canonical":           vtHeaders(vtID, vtTSText, sigNew),
		"lower-case keys":     vtLower(vtHeaders(vtID, vtTSText, sigNew)),
		"unbranded":           vtHeadersNamed("Webhook-", vtID, vtTSText, sigNew),
		"several signatures":  vtHeaders(vtID, vtTSText, bad+" v2,x "+bad+" "+sigNew),
		"second secret":       vtHeaders(vtID, vtTSText, sigOld),
		"timestamp with sign": vtHeaders(vtID, "+"+vtTSText, sigNew),
	}
	for name, h := range cases {
		t.Run(name, func(t *testing.T) {
			var err error
			allocs := testing.AllocsPerRun(200, func() { err = v.Verify(body, h) })
			require.NoError(t, err)
			assert.Zero(t, allocs)
		})
	}
}

// vtRandBody is a body of up to 2 KiB: JSON-like, printable or binary.
func vtRandBody(rng *rand.Rand) []byte {
	n := rng.IntN(2048)
	b := make([]byte, 0, n)
	switch rng.IntN(3) {
	case 0:
		b = fmt.Appendf(b, `{"eventType":"document.created.v2","id":"%d","pad":"`, rng.Uint64())
		for len(b) < n {
			b = append(b, byte('a'+rng.IntN(26)))
		}
		b = append(b, `"}`...)
	case 1:
		for range n {
			b = append(b, byte(' '+rng.IntN(95)))
		}
	default:
		for range n {
			b = append(b, byte(rng.Uint32()))
		}
	}
	return b
}

// vtRandID is usually Svix-like, sometimes odd but possible.
func vtRandID(rng *rand.Rand) string {
	if rng.IntN(10) == 0 {
		odd := []string{"msg.with.dots", "msg,comma", "msg id", "msg_ü", "1", ".", "msg\t1", "v1,x"}
		return odd[rng.IntN(len(odd))]
	}
	const alnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := []byte("msg_")
	for range 1 + rng.IntN(30) {
		b = append(b, alnum[rng.IntN(len(alnum))])
	}
	return string(b)
}

// vtSvixReason maps the Svix library's error texts to our reasons.
var vtSvixReason = map[string]error{
	"missing required headers":    ErrMissingHeaders,
	"invalid signature headers":   ErrInvalidHeaders,
	"no matching signature found": ErrNoMatchingSignature,
	"message timestamp too old":   ErrMessageTooOld,
	"message timestamp too new":   ErrMessageTooNew,
}

// vtChosenSignature is the signature header Svix's rules select.
func vtChosenSignature(h http.Header) string {
	if h.Get("Svix-Id") != "" && h.Get("Svix-Timestamp") != "" && h.Get("Svix-Signature") != "" {
		return h.Get("Svix-Signature")
	}
	return h.Get("Webhook-Signature")
}

// vtSameDecision fails unless ours and Svix's decide alike, for the same
// reason. The one reason that differs by design: a signature header with no
// "version,signature" entry is ErrInvalidHeaders for us, "no matching
// signature" for Svix.
func vtSameDecision(t *testing.T, what string, ours, theirs error, h http.Header) {
	t.Helper()
	if (ours == nil) != (theirs == nil) {
		t.Fatalf("%s: ours: %v, svix: %v; headers %q", what, ours, theirs, h)
	}
	if ours == nil {
		return
	}
	want, ok := vtSvixReason[theirs.Error()]
	require.True(t, ok, "unknown svix error %v", theirs)
	require.ErrorIs(t, ours, ErrVerification)
	if want == ErrNoMatchingSignature && !strings.Contains(vtChosenSignature(h), ",") {
		want = ErrInvalidHeaders
	}
	require.ErrorIs(t, ours, want, "%s: svix: %v; headers %q", what, theirs, h)
}

type vtMutation struct {
	name   string
	body   []byte
	header http.Header
}

// vtMutations returns the message and many changed copies of it, some
// still authentic (a "+" on the timestamp, other entries around the
// signature), most not. sign signs with the message's secret; now is the
// clock both verifiers will read, give or take a second.
func vtMutations(rng *rand.Rand, sign func(id string, ts int64, body []byte) string, id string, ts int64, body []byte, now int64) []vtMutation {
	tsText := strconv.FormatInt(ts, 10)
	sig := sign(id, ts, body)
	sv := strings.TrimPrefix(sig, "v1,")
	var ms []vtMutation
	add := func(name string, b []byte, h http.Header) { ms = append(ms, vtMutation{name, b, h}) }
	hdr := func(id, ts, sig string) http.Header { return vtHeaders(id, ts, sig) }
	clone := func() []byte { return append([]byte{}, body...) }

	add("original", body, hdr(id, tsText, sig))

	// Body.
	if len(body) > 0 {
		b := clone()
		b[rng.IntN(len(b))] ^= 1 << rng.IntN(8)
		add("body bit flipped", b, hdr(id, tsText, sig))
		add("body last byte dropped", body[:len(body)-1], hdr(id, tsText, sig))
		add("body truncated", body[:rng.IntN(len(body))], hdr(id, tsText, sig))
		add("body first byte dropped", body[1:], hdr(id, tsText, sig))
	}
	add("body byte appended", append(clone(), byte(rng.Uint32())), hdr(id, tsText, sig))
	add("body newline appended", append(clone(), '\n'), hdr(id, tsText, sig))
	add("body empty", nil, hdr(id, tsText, sig))
	add("body doubled", append(clone(), body...), hdr(id, tsText, sig))

	// Id.
	ib := []byte(id)
	ib[rng.IntN(len(ib))] ^= 1 << rng.IntN(7)
	add("id byte changed", body, hdr(string(ib), tsText, sig))
	add("id appended", body, hdr(id+"x", tsText, sig))
	add("id upper case", body, hdr(strings.ToUpper(id)+"_", tsText, sig))
	add("id with space", body, hdr(" "+id, tsText, sig))
	add("id missing", body, hdr("", tsText, sig))
	add("id swapped for timestamp", body, hdr(tsText, id, sig))

	// Timestamp text.
	for _, tt := range []string{
		strconv.FormatInt(ts+1, 10), strconv.FormatInt(ts-1, 10), strconv.FormatInt(ts+int64(rng.IntN(100)+2), 10),
		"+" + tsText, "0" + tsText, "000" + tsText, "+00" + tsText, "-" + tsText, "--" + tsText, "++" + tsText,
		" " + tsText, tsText + " ", tsText + "\n", tsText + "s", tsText + ".0", tsText + "000", tsText[:len(tsText)-1],
		"1e9", "0x" + strconv.FormatInt(ts, 16), "abc", "", "0", "-0", "NaN", strings.Repeat("9", 20),
		strings.Repeat("0", 20) + tsText, strings.Repeat("9", 18), strings.Repeat("9", 19),
		"9223372036854775807", "9223372036854775808", "-9223372036854775808", "-9223372036854775809",
		"١٦١٤٢٦٥٣٣٠", // Arabic-Indic digits
	} {
		add("timestamp "+strconv.Quote(tt), body, hdr(id, tt, sig))
	}
	// Timestamps signed as sent: close ones verify, far ones are replays or
	// from the future. Offsets stay 100 s or more from the 300 s edge.
	for _, off := range []int64{
		int64(rng.IntN(200)), -int64(rng.IntN(200)),
		400 + int64(rng.IntN(1e6)), -400 - int64(rng.IntN(1e6)),
		365 * 86400, -365 * 86400,
	} {
		t2 := now + off
		add(fmt.Sprintf("signed at now%+d", off), body, hdr(id, strconv.FormatInt(t2, 10), sign(id, t2, body)))
	}
	for _, t2 := range []int64{0, -1, 1 << 40, math.MaxInt64, math.MinInt64} {
		add(fmt.Sprintf("signed at %d", t2), body, hdr(id, strconv.FormatInt(t2, 10), sign(id, t2, body)))
	}

	// Signature header.
	entry := func() string {
		versions := []string{"v1", "v1", "v2", "v0", "v1a", "V1", "", "v1 "}
		var val string
		switch rng.IntN(3) {
		case 0:
			r := make([]byte, 32)
			for i := range r {
				r[i] = byte(rng.Uint32())
			}
			val = base64.StdEncoding.EncodeToString(r)
		case 1:
			val = sv[:rng.IntN(len(sv))]
		default:
			val = "junk"
		}
		return versions[rng.IntN(len(versions))] + "," + val
	}
	others := func(n int) []string {
		var es []string
		for range n {
			es = append(es, entry())
		}
		return es
	}
	shuffled := append(others(1+rng.IntN(5)), sig)
	rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	add("signature among others", body, hdr(id, tsText, strings.Join(shuffled, " ")))
	add("others only", body, hdr(id, tsText, strings.Join(others(1+rng.IntN(5)), " ")))
	b := []byte(sig)
	b[3+rng.IntN(len(b)-3)] ^= 1 << rng.IntN(7)
	for _, s := range []string{
		string(b), sig[:3+rng.IntN(len(sig)-3)], sig[:len(sig)-1], sig + "A", sig + "=", "v1,",
		sv, "v2," + sv, "V1," + sv, "v1 ," + sv, "v1,," + sv, "," + sig, ",," + sig, "v1, " + sv,
		sig + ",", sig + ",v2", sig + ",,", "  " + sig + "  ", sig + " " + sig, sig + "\t", "\t" + sig,
		"v1," + strings.NewReplacer("+", "-", "/", "_").Replace(sv), "v1," + strings.TrimRight(sv, "="),
		"v1," + strings.ToLower(sv), ",", " ", " , ", "v1", "v10," + sv, "v1\x00," + sv, "v1," + sv + "\x00",
		sign(id+"x", ts, body), sign(id, ts, append(clone(), 'x')),
	} {
		add("signature "+strconv.Quote(s), body, hdr(id, tsText, s))
	}
	hv := hdr(id, tsText, "")
	hv["Svix-Signature"] = []string{"v1," + strings.Repeat("A", 43) + "=", sig}
	add("signature in second value", body, hv)
	hv = hdr(id, tsText, "")
	hv["Svix-Signature"] = []string{sig, "v1,x"}
	add("signature in first value", body, hv)

	// Header names.
	add("unbranded", body, vtHeadersNamed("Webhook-", id, tsText, sig))
	mixed := vtHeadersNamed("Webhook-", id, tsText, sig)
	mixed["Svix-Id"] = []string{id}
	add("unbranded with svix-id", body, mixed)
	both := vtHeadersNamed("Webhook-", id, tsText, sig)
	for k, v := range hdr(id, tsText, "v1,"+strings.Repeat("A", 43)+"=") {
		both[k] = v
	}
	add("unbranded right, svix-* wrong", body, both)
	add("unbranded, no id", body, vtHeadersNamed("Webhook-", "", tsText, sig))
	add("svix-id with webhook timestamp and signature", body, http.Header{"Svix-Id": {id}, "Webhook-Timestamp": {tsText}, "Webhook-Signature": {sig}})
	add("no timestamp", body, hdr(id, "", sig))
	add("no signature", body, hdr(id, tsText, ""))
	add("no headers", body, http.Header{})
	return ms
}

// TestVerifyMatchesSvix compares decisions with the official library's on
// many messages and mutations, both reading the real clock.
func TestVerifyMatchesSvix(t *testing.T) {
	n := 3000
	if testing.Short() {
		n = 300
	}
	rng := rand.New(rand.NewPCG(20240906, 1))
	var accepted, rejected int
	for i := range n {
		key := make([]byte, 16+rng.IntN(49))
		for j := range key {
			key[j] = byte(rng.Uint32())
		}
		secret := vtSecretOf(key)
		if rng.IntN(4) == 0 {
			secret = strings.TrimPrefix(secret, "whsec_")
		}
		ours, err := NewVerifier(secret)
		require.NoError(t, err)
		theirs, err := svix.NewWebhook(secret)
		require.NoError(t, err)
		sign := func(id string, ts int64, body []byte) string {
			s, err := theirs.Sign(id, time.Unix(ts, 0), body)
			require.NoError(t, err)
			return s
		}
		now := time.Now().Unix()
		ts := now + int64(rng.IntN(240)) - 120
		id := vtRandID(rng)
		body := vtRandBody(rng)
		require.Equal(t, sign(id, ts, body), ours.Sign(id, time.Unix(ts, 0), body))
		for _, m := range vtMutations(rng, sign, id, ts, body, now) {
			errOurs := ours.Verify(m.body, m.header)
			errSvix := theirs.Verify(m.body, m.header)
			vtSameDecision(t, fmt.Sprintf("message %d, %s", i, m.name), errOurs, errSvix, m.header)
			if errOurs == nil {
				accepted++
			} else {
				rejected++
			}
		}
	}
	// Both decisions must be common, or the comparison proves little.
	t.Logf("%d accepted, %d rejected", accepted, rejected)
	require.Greater(t, accepted, 10*n)
	require.Greater(t, rejected, 50*n)
}

// TestVerifyDeliberateDifferencesFromSvix pins down where ours and the
// Svix library disagree on purpose (see the Verifier doc comment).
func TestVerifyDeliberateDifferencesFromSvix(t *testing.T) {
	body := []byte(vtBody)
	wh, err := svix.NewWebhook(vtSecret)
	require.NoError(t, err)
	ours := vtNew(t, vtSecret, vtAtKA())

	t.Run("non-canonical header keys", func(t *testing.T) {
		for _, h := range []http.Header{
			vtLower(vtHeaders(vtID, vtTSText, vtSig)),
			vtLower(vtHeadersNamed("Webhook-", vtID, vtTSText, vtSig)),
			{"SVIX-ID": {vtID}, "SVIX-TIMESTAMP": {vtTSText}, "SVIX-SIGNATURE": {vtSig}},
		} {
			require.NoError(t, ours.Verify(body, h))
			require.Error(t, wh.VerifyIgnoringTimestamp(body, h), "svix now reads %q", h)
		}
	})
	t.Run("white space around the secret", func(t *testing.T) {
		for _, s := range []string{" " + vtSecret, vtSecret + " ", "\t" + vtSecret + " \n"} {
			v := vtNew(t, s, vtAtKA())
			require.NoError(t, v.Verify(body, vtHeaders(vtID, vtTSText, vtSig)))
			_, err := svix.NewWebhook(s)
			require.Error(t, err, "svix now accepts %q", s)
		}
	})
	t.Run("unpadded secret", func(t *testing.T) {
		key := vtKey(50, 16)
		s := "whsec_" + base64.RawStdEncoding.EncodeToString(key)
		v := vtNew(t, s, vtAtKA())
		sig := vtSvixSign(t, vtSecretOf(key), vtID, vtTS, body)
		require.NoError(t, v.Verify(body, vtHeaders(vtID, vtTSText, sig)))
		_, err := svix.NewWebhook(s)
		require.Error(t, err)
	})
	t.Run("several secrets", func(t *testing.T) {
		other := vtSecretOf(vtKey(51, 24))
		v := vtNew(t, vtSecret, vtAtKA(), WithSecrets(other))
		h := vtHeaders(vtID, vtTSText, vtSvixSign(t, other, vtID, vtTS, body))
		require.NoError(t, v.Verify(body, h))
		require.Error(t, wh.VerifyIgnoringTimestamp(body, h))
	})
	t.Run("short keys refused", func(t *testing.T) {
		s := vtSecretOf(vtKey(52, 8))
		short, err := svix.NewWebhook(s)
		require.NoError(t, err)
		sig := vtSvixSign(t, s, vtID, vtTS, body)
		require.NoError(t, short.VerifyIgnoringTimestamp(body, vtHeaders(vtID, vtTSText, sig)))
		_, err = NewVerifier(s)
		require.ErrorIs(t, err, ErrInvalidSecret)
	})
	t.Run("settable clock and tolerance", func(t *testing.T) {
		h := vtHeaders(vtID, vtTSText, vtSig)
		require.Error(t, wh.Verify(body, h), "the 2021 vector is stale on the real clock")
		require.NoError(t, ours.Verify(body, h))
		vtRequireReason(t, vtNew(t, vtSecret).Verify(body, h), ErrMessageTooOld)
		require.NoError(t, vtNew(t, vtSecret, WithTolerance(100*365*24*time.Hour)).Verify(body, h))
	})
}

// vtJunkSignatureHeaders are signature headers of a megabyte, as a sender
// who is not Svix may send them, with the reason each is refused for.
func vtJunkSignatureHeaders() []struct {
	name string
	sigs string
	want error
} {
	const mib = 1 << 20
	fake := "v1," + strings.Repeat("A", 43) + "="
	return []struct {
		name string
		sigs string
		want error
	}{
		{"spaces", strings.Repeat(" ", mib), ErrInvalidHeaders},
		{"commas", strings.Repeat(",", mib), ErrNoMatchingSignature},
		{"v1, repeated", strings.Repeat("v1,", mib/3), ErrNoMatchingSignature},
		{"empty v1 entries", strings.Repeat("v1, ", mib/4), ErrNoMatchingSignature},
		{"wrong signatures", strings.Repeat(fake+" ", mib/len(fake+" ")), ErrNoMatchingSignature},
		{"one long entry", "v1," + strings.Repeat("A", mib), ErrNoMatchingSignature},
	}
}

// A signature header of a megabyte of junk is refused like Svix refuses it,
// without allocating: the header is scanned, not split.
func TestVerifyJunkSignatureHeader(t *testing.T) {
	wh, err := svix.NewWebhook(vtSecret)
	require.NoError(t, err)
	v := vtNew(t, vtSecret, vtAtKA(), WithSecrets(vtSecretOf(vtKey(42, 24))))
	for _, tc := range vtJunkSignatureHeaders() {
		t.Run(tc.name, func(t *testing.T) {
			h := vtHeaders(vtID, vtTSText, tc.sigs)
			vtRequireSameAsSvix(t, v, wh, h, tc.want)
			// And with the real signature after the junk: still found.
			h = vtHeaders(vtID, vtTSText, tc.sigs+" "+vtSig)
			vtRequireSameAsSvix(t, v, wh, h, nil)
			if RaceEnabled {
				return // sync.Pool drops items under the race detector
			}
			h, body := vtHeaders(vtID, vtTSText, tc.sigs), []byte(vtBody)
			allocs := testing.AllocsPerRun(5, func() { err = v.Verify(body, h) })
			vtRequireReason(t, err, tc.want)
			assert.Zero(t, allocs, "allocations to refuse a 1 MiB signature header")
		})
	}
}
