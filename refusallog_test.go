package nectarhooks_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
)

// syncBuffer is a bytes.Buffer safe for the concurrent writes of loggers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// lines returns the logged lines that contain every one of parts.
func (b *syncBuffer) lines(parts ...string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(b.buf.String()), "\n") {
		keep := l != ""
		for _, p := range parts {
			keep = keep && strings.Contains(l, p)
		}
		if keep {
			out = append(out, l)
		}
	}
	return out
}

// Anyone can send requests that fail verification: the log warns of them
// at most once per RefusalLogInterval, logs the rest at debug level, and
// counts them in the next warning. Refusals of verified deliveries, which
// only Svix can cause, are each warned of, and the error handler sees
// every refusal.
func TestRefusalLogIsBounded(t *testing.T) {
	var now atomic.Int64
	start := time.Now().UnixNano()
	now.Store(start)
	clock := func() time.Time { return time.Unix(0, now.Load()) }
	elapsed := func() time.Duration { return time.Duration(now.Load() - start) }
	secret := nectarhookstest.NewSecret()
	signer, err := nectarhookstest.NewSigner(secret)
	require.NoError(t, err)
	signer.Now = clock
	forged := func() *http.Request {
		r := signer.Request("/hook", nectarhookstest.Sample(nectarhooks.EventConnectionUpdated))
		r.Header.Set("Svix-Signature", "v1,"+strings.Repeat("A", 43)+"=")
		return r
	}
	undecodable := func() *http.Request {
		return signer.Request("/hook", []byte(`{"eventType":"connection.updated.v2","id":7}`))
	}
	get := func() *http.Request { return httptest.NewRequest(http.MethodGet, "/hook", nil) }

	for _, side := range []string{"Handler", "Verifier.Middleware"} {
		t.Run(side, func(t *testing.T) {
			logs := &syncBuffer{}
			logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			var handled atomic.Int64
			serve := func(opts ...nectarhooks.Option) http.Handler {
				opts = append(opts, nectarhooks.WithClock(clock), nectarhooks.WithRefusalClock(elapsed))
				if side == "Handler" {
					h, err := nectarhooks.NewHandler(secret, opts...)
					require.NoError(t, err)
					return h
				}
				v, err := nectarhooks.NewVerifier(secret, opts...)
				require.NoError(t, err)
				return v.Middleware(http.NotFoundHandler())
			}
			logged := serve(nectarhooks.WithLogger(logger))
			withHandler := serve(nectarhooks.WithLogger(logger), nectarhooks.WithErrorHandler(func(context.Context, int, error) { handled.Add(1) }))
			send := func(h http.Handler, r *http.Request, want int) {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, r)
				require.Equal(t, want, rec.Code, rec.Body.String())
			}

			// A burst of forged and malformed requests: one warning.
			var wg sync.WaitGroup
			for i := range 200 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if i%2 == 0 {
						send(logged, forged(), http.StatusUnauthorized)
					} else {
						send(logged, get(), http.StatusMethodNotAllowed)
					}
				}()
			}
			wg.Wait()
			assert.Len(t, logs.lines("level=WARN", "delivery refused"), 1)
			assert.Len(t, logs.lines("level=DEBUG", "delivery refused"), 199)

			// Within the interval: debug only. After it: one warning that
			// counts what was logged at debug level only.
			now.Add(int64(nectarhooks.RefusalLogInterval / 2))
			send(logged, forged(), http.StatusUnauthorized)
			assert.Len(t, logs.lines("level=WARN"), 1)
			now.Add(int64(nectarhooks.RefusalLogInterval))
			send(logged, forged(), http.StatusUnauthorized)
			warnings := logs.lines("level=WARN", "delivery refused")
			require.Len(t, warnings, 2)
			assert.Contains(t, warnings[1], "suppressed=200")
			assert.Contains(t, warnings[1], "status=401")
			now.Add(int64(nectarhooks.RefusalLogInterval))
			send(logged, get(), http.StatusMethodNotAllowed)
			warnings = logs.lines("level=WARN", "delivery refused")
			require.Len(t, warnings, 3)
			assert.NotContains(t, warnings[2], "suppressed=", "nothing was suppressed since the last warning")

			// The error handler sees every refusal, and the log none.
			before := len(logs.lines())
			for range 50 {
				send(withHandler, forged(), http.StatusUnauthorized)
			}
			assert.Equal(t, int64(50), handled.Load())
			assert.Len(t, logs.lines(), before)

			if side == "Handler" {
				// Verified deliveries that fail to decode: each warned of.
				for range 5 {
					send(logged, undecodable(), http.StatusBadRequest)
				}
				assert.Len(t, logs.lines("level=WARN", "status=400", "message_id="), 5)
			}
		})
	}
}

// A wall clock stepped back (NTP, an operator) must not silence the
// warnings: the interval runs on the monotonic clock. Here the verifying
// clock (WithClock) and the signer jump back an hour after the first
// warning while the monotonic clock moves on by one interval; a wrong
// secret is warned of again.
func TestRefusalLogIgnoresWallClockSteps(t *testing.T) {
	var wall, mono atomic.Int64
	wall.Store(time.Now().UnixNano())
	clock := func() time.Time { return time.Unix(0, wall.Load()) }
	secret := nectarhookstest.NewSecret()
	signer, err := nectarhookstest.NewSigner(nectarhookstest.NewSecret()) // the wrong secret
	require.NoError(t, err)
	signer.Now = clock
	logs := &syncBuffer{}
	h, err := nectarhooks.NewHandler(secret,
		nectarhooks.WithClock(clock),
		nectarhooks.WithRefusalClock(func() time.Duration { return time.Duration(mono.Load()) }),
		nectarhooks.WithLogger(slog.New(slog.NewTextHandler(logs, nil))))
	require.NoError(t, err)
	send := func() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, signer.Request("/hook", nectarhookstest.Sample(nectarhooks.EventConnectionUpdated)))
		require.Equal(t, http.StatusUnauthorized, rec.Code, rec.Body.String())
	}
	send()
	require.Len(t, logs.lines("level=WARN", "delivery refused"), 1)
	wall.Add(-int64(time.Hour))
	mono.Add(int64(nectarhooks.RefusalLogInterval))
	send()
	assert.Len(t, logs.lines("level=WARN", "delivery refused"), 2, "one interval passed on the monotonic clock")
}
