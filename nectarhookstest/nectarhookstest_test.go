package nectarhookstest_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	svix "github.com/svix/svix-webhooks/go"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
)

// Svix's published test vector.
const (
	vectorSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	vectorID        = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	vectorTimestamp = 1614265330
	vectorBody      = `{"test": 2432232314}`
	vectorSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

// payloads are the messages the signing tests sign: every sample, and a
// few bodies chosen to catch encoding mistakes.
func payloads() map[string][]byte {
	m := map[string][]byte{
		"empty":          {},
		"vector":         []byte(vectorBody),
		"non-ASCII":      []byte(`{"name":"Société Générale ⚡"}`),
		"binary":         {0, 0xff, '.', '\n', 0x80},
		"trailing space": []byte("{} "),
	}
	for _, t := range nectarhooks.EventTypes() {
		m[string(t)] = nectarhookstest.Sample(t)
	}
	return m
}

// TestSignerAgreesWithSvix holds Signer to the official Svix library:
// the same signatures, and headers Svix's Verify accepts.
func TestSignerAgreesWithSvix(t *testing.T) {
	secret := nectarhookstest.NewSecret()
	signer, err := nectarhookstest.NewSigner(secret)
	require.NoError(t, err)
	wh, err := svix.NewWebhook(secret)
	require.NoError(t, err)

	for name, payload := range payloads() {
		t.Run(name, func(t *testing.T) {
			for _, ts := range []time.Time{time.Unix(0, 0), time.Unix(vectorTimestamp, 999_999_999), time.Now()} {
				want, err := wh.Sign("msg_"+name, ts, payload)
				require.NoError(t, err)
				assert.Equal(t, want, signer.Sign("msg_"+name, ts, payload), "timestamp %d", ts.Unix())
			}
			assert.NoError(t, wh.Verify(payload, signer.Header(payload)), "Header")
			assert.NoError(t, wh.Verify(payload, signer.Request("/", payload).Header), "Request")
			old := signer.HeaderFor("msg_old", time.Unix(vectorTimestamp, 0), payload)
			assert.NoError(t, wh.VerifyIgnoringTimestamp(payload, old), "HeaderFor")
			assert.Error(t, wh.Verify(payload, old), "Svix accepts a stale timestamp")
		})
	}
}

func TestSignerTestVector(t *testing.T) {
	tests := []struct {
		name   string
		secret string
		want   string
	}{
		{name: "published secret", secret: vectorSecret, want: vectorSignature},
		{name: "without whsec_", secret: strings.TrimPrefix(vectorSecret, "whsec_"), want: vectorSignature},
		{name: "other secret", secret: "whsec_" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 24)), want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			signer, err := nectarhookstest.NewSigner(tt.secret)
			require.NoError(t, err)
			got := signer.Sign(vectorID, time.Unix(vectorTimestamp, 0), []byte(vectorBody))
			if tt.want == "" {
				assert.NotEqual(t, vectorSignature, got)
				assert.True(t, strings.HasPrefix(got, "v1,"), got)
				return
			}
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestNewSignerRefusesBadSecrets(t *testing.T) {
	tests := []struct {
		name   string
		secret string
	}{
		{name: "empty", secret: ""},
		{name: "not base64", secret: "whsec_!!!"},
		{name: "too short", secret: "whsec_" + base64.StdEncoding.EncodeToString([]byte("short"))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := nectarhookstest.NewSigner(tt.secret)
			require.ErrorIs(t, err, nectarhooks.ErrInvalidSecret)
			assert.Nil(t, s)
		})
	}
}

// TestRequestReachesHandler checks that what Request builds is a delivery
// a Handler accepts and routes to the right callback.
func TestRequestReachesHandler(t *testing.T) {
	secret := nectarhookstest.NewSecret()
	signer, err := nectarhookstest.NewSigner(secret)
	require.NoError(t, err)

	for _, et := range nectarhooks.EventTypes() {
		t.Run(string(et), func(t *testing.T) {
			h, err := nectarhooks.NewHandler(secret)
			require.NoError(t, err)
			var got []nectarhooks.EventType
			record := func(ctx context.Context, ev nectarhooks.Event) error {
				msg, ok := nectarhooks.MessageFromContext(ctx)
				require.True(t, ok)
				assert.True(t, strings.HasPrefix(msg.ID, "msg_"), msg.ID)
				got = append(got, ev.Type())
				return nil
			}
			h.OnConnectionCreated(func(ctx context.Context, e *nectarhooks.ConnectionCreated) error { return record(ctx, e) })
			h.OnConnectionUpdated(func(ctx context.Context, e *nectarhooks.ConnectionUpdated) error { return record(ctx, e) })
			h.OnConnectionValidated(func(ctx context.Context, e *nectarhooks.ConnectionValidated) error { return record(ctx, e) })
			h.OnDocumentCreated(func(ctx context.Context, e *nectarhooks.DocumentCreated) error { return record(ctx, e) })
			h.OnDocumentUpdated(func(ctx context.Context, e *nectarhooks.DocumentUpdated) error { return record(ctx, e) })

			req := signer.Request("/webhooks/nectar", nectarhookstest.Sample(et))
			assert.Equal(t, http.MethodPost, req.Method)
			assert.Equal(t, "/webhooks/nectar", req.URL.Path)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			assert.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
			assert.Equal(t, []nectarhooks.EventType{et}, got)
		})
	}
}

// TestFixedClock signs and verifies at a moment of the test's choosing,
// the way tests of stale and future messages do.
func TestFixedClock(t *testing.T) {
	secret := nectarhookstest.NewSecret()
	sent := time.Date(2024, 9, 6, 0, 15, 43, 0, time.UTC)
	payload := nectarhookstest.Sample(nectarhooks.EventConnectionCreated)

	tests := []struct {
		name       string
		receiverAt time.Time
		wantErr    error
	}{
		{name: "received at once", receiverAt: sent},
		{name: "received within the tolerance", receiverAt: sent.Add(nectarhooks.DefaultTolerance)},
		{name: "received too late", receiverAt: sent.Add(nectarhooks.DefaultTolerance + time.Second), wantErr: nectarhooks.ErrMessageTooOld},
		{name: "received too early", receiverAt: sent.Add(-nectarhooks.DefaultTolerance - time.Second), wantErr: nectarhooks.ErrMessageTooNew},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := nectarhookstest.FixedClock(sent)
			assert.Equal(t, sent, clock())
			assert.Equal(t, clock(), clock(), "a fixed clock does not move")

			signer, err := nectarhookstest.NewSigner(secret)
			require.NoError(t, err)
			signer.Now = clock
			v, err := nectarhooks.NewVerifier(secret, nectarhooks.WithClock(nectarhookstest.FixedClock(tt.receiverAt)))
			require.NoError(t, err)

			header := signer.Header(payload)
			assert.Equal(t, strconv.FormatInt(sent.Unix(), 10), header.Get("Svix-Timestamp"))
			err = v.Verify(payload, header)
			if tt.wantErr == nil {
				assert.NoError(t, err)
			} else {
				assert.ErrorIs(t, err, tt.wantErr)
			}
		})
	}
}

func TestHeader(t *testing.T) {
	signer, err := nectarhookstest.NewSigner(vectorSecret)
	require.NoError(t, err)
	tests := []struct {
		name   string
		header func() http.Header
		wantID string // "" for any new id
		wantTS string // "" for the current time
	}{
		{name: "HeaderFor", header: func() http.Header {
			return signer.HeaderFor(vectorID, time.Unix(vectorTimestamp, 0), []byte(vectorBody))
		}, wantID: vectorID, wantTS: strconv.Itoa(vectorTimestamp)},
		{name: "RequestFor", header: func() http.Header {
			return signer.RequestFor("/", vectorID, time.Unix(vectorTimestamp, 0), []byte(vectorBody)).Header
		}, wantID: vectorID, wantTS: strconv.Itoa(vectorTimestamp)},
		{name: "Header", header: func() http.Header { return signer.Header([]byte(vectorBody)) }},
		{name: "Request", header: func() http.Header { return signer.Request("/", []byte(vectorBody)).Header }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := time.Now().Unix()
			h := tt.header()
			after := time.Now().Unix()

			assert.Equal(t, "application/json", h.Get("Content-Type"))
			id, tsText := h.Get("Svix-Id"), h.Get("Svix-Timestamp")
			if tt.wantID != "" {
				assert.Equal(t, tt.wantID, id)
				assert.Equal(t, tt.wantTS, tsText)
				assert.Equal(t, vectorSignature, h.Get("Svix-Signature"))
				return
			}
			assert.True(t, strings.HasPrefix(id, "msg_"), id)
			ts, err := strconv.ParseInt(tsText, 10, 64)
			require.NoError(t, err)
			assert.GreaterOrEqual(t, ts, before)
			assert.LessOrEqual(t, ts, after)
			assert.Equal(t, signer.Sign(id, time.Unix(ts, 0), []byte(vectorBody)), h.Get("Svix-Signature"))
		})
	}
}

// TestNilNowMeansTimeNow covers a Signer built as a struct literal's
// zero Now, as a test might leave it after copying.
func TestNilNowMeansTimeNow(t *testing.T) {
	tests := []struct {
		name string
		now  func() time.Time
	}{
		{name: "nil", now: nil},
		{name: "time.Now", now: time.Now},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			secret := nectarhookstest.NewSecret()
			signer, err := nectarhookstest.NewSigner(secret)
			require.NoError(t, err)
			signer.Now = tt.now
			wh, err := svix.NewWebhook(secret)
			require.NoError(t, err)
			payload := []byte(`{}`)
			assert.NoError(t, wh.Verify(payload, signer.Header(payload)))
		})
	}
}

func TestNewMessageIDIsUnique(t *testing.T) {
	tests := []struct {
		name       string
		goroutines int
		each       int
	}{
		{name: "sequential", goroutines: 1, each: 100},
		{name: "concurrent", goroutines: 8, each: 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			seen := map[string]bool{}
			var wg sync.WaitGroup
			for range tt.goroutines {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range tt.each {
						id := nectarhookstest.NewMessageID()
						mu.Lock()
						seen[id] = true
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			assert.Len(t, seen, tt.goroutines*tt.each)
			for id := range seen {
				assert.Regexp(t, `^msg_[0-9A-Za-z]{27}$`, id)
			}
		})
	}
}

func TestNewSecret(t *testing.T) {
	seen := map[string]bool{}
	for i := range 3 {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			secret := nectarhookstest.NewSecret()
			require.True(t, strings.HasPrefix(secret, "whsec_"), secret)
			key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
			require.NoError(t, err)
			assert.Len(t, key, 24, "Svix's keys are 24 bytes")
			decoded, err := nectarhooks.DecodeSecret(secret)
			require.NoError(t, err)
			assert.Equal(t, key, decoded)
			assert.False(t, seen[secret], "NewSecret repeated itself")
			seen[secret] = true
		})
	}
}

func TestSample(t *testing.T) {
	for _, et := range nectarhooks.EventTypes() {
		t.Run(string(et), func(t *testing.T) {
			b := nectarhookstest.Sample(et)
			require.NotEmpty(t, b)
			ev, err := nectarhooks.Parse(b)
			require.NoError(t, err)
			assert.Equal(t, et, ev.Type())

			// Each call returns a fresh copy, so callers may change it.
			want := bytes.Clone(b)
			for i := range b {
				b[i] = 'x'
			}
			assert.Equal(t, want, nectarhookstest.Sample(et))
		})
	}

	for _, et := range []nectarhooks.EventType{"", "invoice.created.v3", "connection.created.v1", "../nectarhookstest.go", "samples", "*"} {
		t.Run("no sample for "+strconv.Quote(string(et)), func(t *testing.T) {
			assert.Nil(t, nectarhookstest.Sample(et))
		})
	}
}

// TestSamplesMatchTestdata holds the embedded samples to the module's
// testdata, which keeps Nectar's documented payloads byte for byte.
func TestSamplesMatchTestdata(t *testing.T) {
	for _, et := range nectarhooks.EventTypes() {
		t.Run(string(et), func(t *testing.T) {
			want, err := os.ReadFile(filepath.Join("..", "testdata", string(et)+".json"))
			if os.IsNotExist(err) && et == nectarhooks.EventConnectionValidated {
				t.Skip("no testdata file yet; TestValidatedSampleDerivation covers it")
			}
			require.NoError(t, err)
			assert.Equal(t, string(want), string(nectarhookstest.Sample(et)))
		})
	}

	t.Run("no other samples", func(t *testing.T) {
		files, err := filepath.Glob(filepath.Join("samples", "*.json"))
		require.NoError(t, err)
		var got []string
		for _, f := range files {
			got = append(got, strings.TrimSuffix(filepath.Base(f), ".json"))
		}
		var want []string
		for _, et := range nectarhooks.EventTypes() {
			want = append(want, string(et))
		}
		assert.ElementsMatch(t, want, got)
	})
}

// TestValidatedSampleDerivation checks the one sample Nectar does not
// publish: connection.created.v2's, with the eventType line added.
func TestValidatedSampleDerivation(t *testing.T) {
	created := nectarhookstest.Sample(nectarhooks.EventConnectionCreated)
	validated := nectarhookstest.Sample(nectarhooks.EventConnectionValidated)
	tests := []struct {
		name string
		got  []byte
	}{
		{name: "embedded sample", got: validated},
	}
	if b, err := os.ReadFile(filepath.Join("..", "testdata", "connection.validated.v2.json")); err == nil {
		tests = append(tests, struct {
			name string
			got  []byte
		}{name: "testdata", got: b})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			first, rest, ok := bytes.Cut(created, []byte("\n"))
			require.True(t, ok)
			want := string(first) + "\n" + `  "eventType": "connection.validated.v2",` + "\n" + string(rest)
			assert.Equal(t, want, string(tt.got))
		})
	}
}
