package nectarhooks_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
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

// bodyReadCounter wraps a request body and counts the calls to its Read,
// so that a test can tell when handlers have gone past their first read.
type bodyReadCounter struct {
	io.ReadCloser
	reads *atomic.Int64
}

func (b bodyReadCounter) Read(p []byte) (int, error) {
	b.reads.Add(1)
	return b.ReadCloser.Read(p)
}

// liveHeap returns the bytes of live heap after a full collection.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// stalledHeap opens n connections to h over loopback that each announce a
// body of claimed bytes, send one, and stall; it returns how much the live
// heap grew once every handler waits for the second byte.
func stalledHeap(t *testing.T, h http.Handler, n int, claimed int) int64 {
	t.Helper()
	var reads atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = bodyReadCounter{r.Body, &reads}
		h.ServeHTTP(w, r)
	}))
	defer srv.Close()
	before := liveHeap()
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range n {
		c, err := net.Dial("tcp", srv.Listener.Addr().String())
		require.NoError(t, err)
		conns = append(conns, c)
		_, err = fmt.Fprintf(c, "POST /hook HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n{", claimed)
		require.NoError(t, err)
	}
	// Each handler reads the byte that came, then blocks on a second
	// read: by then whatever it reserves for the body is reserved.
	require.Eventually(t, func() bool { return reads.Load() >= int64(2*n) },
		time.Minute, 10*time.Millisecond, "handlers did not all reach their second read")
	grown := int64(liveHeap()) - int64(before)
	runtime.KeepAlive(conns)
	return grown
}

// Memory must follow the bytes received, not the Content-Length claimed:
// connections that announce a megabyte, send a byte and stall cost about
// what a bare io.ReadAll handler costs, not a megabyte each.
func TestStalledBodiesHoldLittleMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("opens hundreds of loopback connections")
	}
	const conns, claimed = 200, 1 << 20
	secret := nectarhookstest.NewSecret()
	quiet := nectarhooks.WithErrorHandler(func(context.Context, int, error) {})
	h, err := nectarhooks.NewHandler(secret, quiet)
	require.NoError(t, err)
	v, err := nectarhooks.NewVerifier(secret, quiet)
	require.NoError(t, err)
	bare := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(http.MaxBytesReader(w, r.Body, claimed))
	})

	base := stalledHeap(t, bare, conns, claimed)
	t.Logf("bare io.ReadAll: %d connections hold %.1f MiB", conns, float64(base)/(1<<20))
	for _, side := range []struct {
		name string
		h    http.Handler
	}{
		{"Handler", h},
		{"Verifier.Middleware", v.Middleware(http.NotFoundHandler())},
	} {
		t.Run(side.name, func(t *testing.T) {
			grown := stalledHeap(t, side.h, conns, claimed)
			t.Logf("%s: %d connections hold %.1f MiB", side.name, conns, float64(grown)/(1<<20))
			// A few MiB over the bare handler at most: 16 KiB a
			// connection. Reserving the claimed length costs 200 MiB.
			assert.Less(t, grown, base+conns*16<<10,
				"%d stalled connections grew the live heap by %d bytes (bare handler: %d)", conns, grown, base)
		})
	}
}

// rawPost writes a request head to c, then body; it returns a reader of
// the connection for the answer.
func rawPost(t *testing.T, c net.Conn, head string, body []byte) *bufio.Reader {
	t.Helper()
	_, err := io.WriteString(c, "POST /hook HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"+head+"\r\n")
	require.NoError(t, err)
	_, err = c.Write(body)
	require.NoError(t, err)
	return bufio.NewReader(c)
}

// A body over the limit is answered 413 at once and the connection closed,
// while the sender is still sending: net/http would otherwise read up to
// 256 KiB more of it before answering, which a slow sender never reaches.
func TestOversizedBodyAnsweredPromptly(t *testing.T) {
	const limit = 1 << 10
	h, err := nectarhooks.NewHandler(nectarhookstest.NewSecret(), nectarhooks.WithMaxBodyBytes(limit),
		nectarhooks.WithErrorHandler(func(context.Context, int, error) {}))
	require.NoError(t, err)
	srv := httptest.NewServer(h)
	defer srv.Close()

	chunk := func(n int) []byte {
		return fmt.Appendf(nil, "%x\r\n%s\r\n", n, bytes.Repeat([]byte("a"), n))
	}
	for _, tc := range []struct {
		name  string
		head  string
		first []byte        // sent at once: over the limit
		more  func() []byte // then trickled, every few milliseconds
	}{
		{"chunked", "Transfer-Encoding: chunked\r\n", chunk(2 * limit), func() []byte { return chunk(64) }},
		// Under net/http's 256 KiB drain threshold, which it would read
		// through before answering.
		{"Content-Length over the limit", "Content-Length: 200000\r\n", bytes.Repeat([]byte("a"), 2*limit),
			func() []byte { return bytes.Repeat([]byte("a"), 64) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", srv.Listener.Addr().String())
			require.NoError(t, err)
			defer c.Close()
			br := rawPost(t, c, tc.head, tc.first)

			// The sender keeps sending until the connection fails or the
			// test ends.
			stop := make(chan struct{})
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				tick := time.NewTicker(20 * time.Millisecond)
				defer tick.Stop()
				for {
					select {
					case <-stop:
						return
					case <-tick.C:
					}
					if _, err := c.Write(tc.more()); err != nil {
						return
					}
				}
			}()
			defer func() { close(stop); wg.Wait() }()

			// Generous: 256 KiB at 64 bytes per 20 ms would take 80 s.
			require.NoError(t, c.SetReadDeadline(time.Now().Add(20*time.Second)))
			resp, err := http.ReadResponse(br, nil)
			require.NoError(t, err, "no answer while the sender kept sending")
			text, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			assert.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode, string(text))
			assert.True(t, resp.Close, "the answer should close the connection")
			// Then the server closes the connection rather than reading
			// the rest.
			_, err = br.ReadByte()
			assert.Truef(t, errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || isReset(err),
				"the connection stayed open after the 413: %v", err)
		})
	}
}

// isReset reports whether err is a connection reset, which a server that
// closes a connection the sender still writes to may cause.
func isReset(err error) bool {
	return err != nil && strings.Contains(err.Error(), "connection reset")
}

// A body shorter than its Content-Length was most often read before the
// Handler, by a middleware: the 400 says so.
func TestShortBodySaysWhy(t *testing.T) {
	secret := nectarhookstest.NewSecret()
	signer, err := nectarhookstest.NewSigner(secret)
	require.NoError(t, err)
	h, err := nectarhooks.NewHandler(secret, nectarhooks.WithErrorHandler(func(context.Context, int, error) {}))
	require.NoError(t, err)
	v, err := nectarhooks.NewVerifier(secret, nectarhooks.WithErrorHandler(func(context.Context, int, error) {}))
	require.NoError(t, err)
	// readFirst is a middleware that reads the body and does not put it
	// back, a common mistake of logging and binding middleware.
	readFirst := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.ReadAll(r.Body)
			next.ServeHTTP(w, r)
		})
	}
	body := nectarhookstest.Sample(nectarhooks.EventConnectionUpdated)
	for _, side := range []struct {
		name string
		h    http.Handler
	}{
		{"Handler", readFirst(h)},
		{"Verifier.Middleware", readFirst(v.Middleware(http.NotFoundHandler()))},
	} {
		t.Run(side.name+" over loopback", func(t *testing.T) {
			srv := httptest.NewServer(side.h)
			defer srv.Close()
			req := signer.Request(srv.URL, body)
			req.RequestURI = ""
			resp, err := srv.Client().Do(req)
			require.NoError(t, err)
			text, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			require.NoError(t, err)
			assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
			assert.Contains(t, string(text), "did a middleware read the body first?")
			assert.Contains(t, string(text), fmt.Sprintf("after 0 of the %d bytes", len(body)))
		})
	}
	t.Run("Handler, body shorter than its Content-Length", func(t *testing.T) {
		var got error
		hh, err := nectarhooks.NewHandler(secret, nectarhooks.WithErrorHandler(func(_ context.Context, _ int, err error) { got = err }))
		require.NoError(t, err)
		rec := httptest.NewRecorder()
		req := signer.Request("/hook", body)
		req.Body = io.NopCloser(bytes.NewReader(body[:10])) // ten bytes left
		hh.ServeHTTP(rec, req)
		assert.Equal(t, http.StatusBadRequest, rec.Code)
		assert.Contains(t, rec.Body.String(), "did a middleware read the body first?")
		assert.ErrorIs(t, got, nectarhooks.ErrReadBody)
		assert.ErrorIs(t, got, io.ErrUnexpectedEOF)
	})
}

// Bodies of every size and of unknown length arrive whole, and a body of
// unknown length over the limit is refused having read one byte past it.
func TestBodySizes(t *testing.T) {
	const limit = 100 << 10
	secret := nectarhookstest.NewSecret()
	signer, err := nectarhookstest.NewSigner(secret)
	require.NoError(t, err)
	v, err := nectarhooks.NewVerifier(secret, nectarhooks.WithMaxBodyBytes(limit),
		nectarhooks.WithErrorHandler(func(context.Context, int, error) {}))
	require.NoError(t, err)
	var got []byte
	mw := v.Middleware(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		m, _ := nectarhooks.MessageFromContext(r.Context())
		got = m.Payload
	}))
	for _, size := range []int{0, 1, 8<<10 - 1, 8 << 10, 8<<10 + 1, 20000, limit - 1, limit, limit + 1, 3 * limit} {
		for _, known := range []bool{true, false} {
			t.Run(fmt.Sprintf("%d bytes, length known %v", size, known), func(t *testing.T) {
				body := bytes.Repeat([]byte("x"), size)
				for i := range body {
					body[i] = byte('a' + i%26)
				}
				counted := &countingReader{r: bytes.NewReader(body)}
				req := httptest.NewRequest(http.MethodPost, "/hook", nil)
				req.Header = signer.Header(body)
				req.Body = io.NopCloser(counted)
				req.ContentLength = int64(size)
				if !known {
					req.ContentLength = -1
				}
				got = nil
				rec := httptest.NewRecorder()
				mw.ServeHTTP(rec, req)
				if size > limit {
					assert.Equal(t, http.StatusRequestEntityTooLarge, rec.Code)
					assert.LessOrEqual(t, counted.n, int64(limit+1), "read past the limit")
					return
				}
				require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
				assert.Equal(t, body, got)
			})
		}
	}
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// A body of unknown length costs what one of known length does, within a
// little: it is read into a pooled buffer and copied out once.
func TestUnknownLengthBodyAllocation(t *testing.T) {
	if nectarhooks.RaceEnabled {
		t.Skip("the race detector makes sync.Pool drop buffers")
	}
	secret := nectarhookstest.NewSecret()
	signer, err := nectarhookstest.NewSigner(secret)
	require.NoError(t, err)
	v, err := nectarhooks.NewVerifier(secret)
	require.NoError(t, err)
	mw := v.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	body := nectarhookstest.Sample(nectarhooks.EventConnectionUpdated)
	header := signer.Header(body)
	bytesPerRequest := func(contentLength int64) float64 {
		const runs = 2000
		req := httptest.NewRequest(http.MethodPost, "/hook", nil)
		req.Header = header
		rd := bytes.NewReader(body)
		rc := io.NopCloser(rd)
		w := httptest.NewRecorder()
		serve := func() {
			rd.Reset(body)
			r := *req
			r.Body = rc
			r.ContentLength = contentLength
			mw.ServeHTTP(w, &r)
		}
		serve()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for range runs {
			serve()
		}
		runtime.ReadMemStats(&after)
		require.Equal(t, http.StatusOK, w.Code, w.Body.String())
		return float64(after.TotalAlloc-before.TotalAlloc) / runs
	}
	known, unknown := bytesPerRequest(int64(len(body))), bytesPerRequest(-1)
	t.Logf("bytes allocated per request: known length %.0f, unknown %.0f (body %d bytes)", known, unknown, len(body))
	assert.Less(t, unknown, known+256, "a body of unknown length costs %.0f bytes more than one of known length", unknown-known)
}
