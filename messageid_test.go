package nectarhooks_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
)

// TestMessageIDs: a verified delivery whose svix-id is not printable ASCII
// (NUL, invalid UTF-8, controls, spaces) or is too long is refused with 400
// on every path, before any callback or store sees it; every id Svix sends,
// and the longest accepted, go through.
func TestMessageIDs(t *testing.T) {
	ids := []struct {
		name, id string
		ok       bool
	}{
		{"svix", nectarhookstest.NewMessageID(), true},
		{"punctuation", "msg_!#$%&'()*+,-./:;<=>?@[\\]^_`{|}~", true},
		{"longest", strings.Repeat("x", nectarhooks.MaxMessageIDLength), true},
		{"too long", strings.Repeat("x", nectarhooks.MaxMessageIDLength+1), false},
		{"NUL", "msg_\x00a", false},
		{"invalid UTF-8", "msg_\xfe", false},
		{"UTF-8", "msg_ü", false},
		{"space", "msg_a b", false},
		{"tab", "msg_a\tb", false},
		{"DEL", "msg_\x7f", false},
		{"C1 CSI", "msg_\u009b", false},
	}
	body := nectarhookstest.Sample(nectarhooks.EventConnectionUpdated)
	secret := nectarhookstest.NewSecret()
	signer, err := nectarhookstest.NewSigner(secret)
	require.NoError(t, err)
	store := nectarhooks.NewMemoryStore(0, 0)
	h, err := nectarhooks.NewHandler(secret, nectarhooks.WithIdempotency(store), nectarhooks.WithLogger(nil))
	require.NoError(t, err)
	ran := map[string]int{}
	h.OnConnectionUpdated(func(ctx context.Context, _ *nectarhooks.ConnectionUpdated) error {
		m, _ := nectarhooks.MessageFromContext(ctx)
		ran[m.ID]++
		return nil
	})
	var nextRan bool
	mw := h.Verifier().Middleware(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { nextRan = true }))

	paths := []struct {
		name string
		do   func(id string) int
	}{
		{"ServeHTTP", func(id string) int {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, signer.RequestFor("/hook", id, time.Now(), body))
			return rec.Code
		}},
		{"Dispatch", func(id string) int {
			return nectarhooks.StatusCode(h.Dispatch(context.Background(), body, signer.HeaderFor(id, time.Now(), body)))
		}},
		{"DispatchVerified", func(id string) int {
			return nectarhooks.StatusCode(h.DispatchVerified(context.Background(), nectarhooks.Message{ID: id, Timestamp: time.Now(), Payload: body}))
		}},
		{"Middleware", func(id string) int {
			nextRan = false
			rec := httptest.NewRecorder()
			mw.ServeHTTP(rec, signer.RequestFor("/hook", id, time.Now(), body))
			if nextRan {
				return http.StatusOK
			}
			return rec.Code
		}},
	}
	for _, p := range paths {
		for _, tc := range ids {
			t.Run(p.name+"/"+tc.name, func(t *testing.T) {
				require.NoError(t, store.Forget(context.Background(), tc.id))
				before, known := ran[tc.id], store.Len()
				status := p.do(tc.id)
				if tc.ok {
					assert.Equal(t, http.StatusOK, status)
					return
				}
				assert.Equal(t, http.StatusBadRequest, status)
				assert.Equal(t, before, ran[tc.id], "no callback ran")
				assert.Equal(t, known, store.Len(), "the store never saw it")
			})
		}
	}
	// The error itself: typed, and says what is wrong without echoing
	// the bytes.
	err = h.DispatchVerified(context.Background(), nectarhooks.Message{ID: "msg_\xfe", Payload: body})
	require.ErrorIs(t, err, nectarhooks.ErrInvalidMessageID)
	assert.Contains(t, err.Error(), "byte 0xfe at 4")
}

// FuzzMessageID: whatever svix-id a correctly signed delivery carries, the
// Handler either refuses it with 400 (exactly when it is not 1 to
// MaxMessageIDLength bytes of printable ASCII without spaces) or runs the
// callback with that id, byte for byte.
func FuzzMessageID(f *testing.F) {
	for _, id := range []string{nectarhookstest.NewMessageID(), "msg_\xfe", "msg_\x00", "msg a", "~", "\u202e", strings.Repeat("x", 257)} {
		f.Add(id)
	}
	secret := nectarhookstest.NewSecret()
	signer, err := nectarhookstest.NewSigner(secret)
	require.NoError(f, err)
	h, err := nectarhooks.NewHandler(secret, nectarhooks.WithLogger(nil))
	require.NoError(f, err)
	var got string
	h.OnConnectionUpdated(func(ctx context.Context, _ *nectarhooks.ConnectionUpdated) error {
		m, _ := nectarhooks.MessageFromContext(ctx)
		got = m.ID
		return nil
	})
	body := nectarhookstest.Sample(nectarhooks.EventConnectionUpdated)
	f.Fuzz(func(t *testing.T, id string) {
		if id == "" {
			return // no svix-id header at all: a verification error
		}
		valid := len(id) <= nectarhooks.MaxMessageIDLength
		for i := 0; i < len(id); i++ {
			valid = valid && id[i] > ' ' && id[i] <= '~'
		}
		got = ""
		header := signer.HeaderFor(id, time.Now(), body)
		if header.Get("Svix-Id") != id {
			return // http.Header trims nothing, but be sure the id went out as given
		}
		err := h.Dispatch(context.Background(), body, header)
		switch {
		case valid && err != nil:
			t.Fatalf("svix-id %q refused: %v", id, err)
		case valid && got != id:
			t.Fatalf("svix-id %q reached the callback as %q", id, got)
		case !valid && !errors.Is(err, nectarhooks.ErrInvalidMessageID):
			t.Fatalf("svix-id %q: err %v, want ErrInvalidMessageID", id, err)
		case !valid && got != "":
			t.Fatalf("svix-id %q ran the callback", id)
		}
	})
}
