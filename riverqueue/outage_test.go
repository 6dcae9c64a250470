package riverqueue_test

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
	"github.com/nectarhooks/nectarhooks/riverqueue"
)

// TestDatabaseOutage takes the database away from a running intake (its
// connections go through a proxy the test stops) and brings it back: while
// it is gone every delivery is answered 503, and Svix's retries of those
// deliveries get through once it is back, one job each.
func TestDatabaseOutage(t *testing.T) {
	dbURL := newDatabase(t)
	target, err := url.Parse(dbURL)
	require.NoError(t, err)
	p := startProxy(t, target.Host)
	viaProxy := *target
	viaProxy.Host = p.addr

	secret := nectarhookstest.NewSecret()
	var errs errorLog
	h, err := nectarhooks.NewHandler(secret,
		nectarhooks.WithQueue(riverqueue.New(newInsertClient(t, newPool(t, viaProxy.String(), 4)),
			riverqueue.WithInsertTimeout(3*time.Second))),
		nectarhooks.WithErrorHandler(errs.record))
	require.NoError(t, err)
	srv := httptest.NewServer(h)
	defer srv.Close()
	d := newDeliverer(t, secret)

	before := nectarhookstest.NewMessageID()
	status, err := d.deliver(srv.URL, before, samples[0])
	require.NoError(t, err)
	require.Equal(t, http.StatusAccepted, status, "database up")

	p.stop()
	during := make([]string, 5)
	for i := range during {
		during[i] = nectarhookstest.NewMessageID()
		status, err := d.deliver(srv.URL, during[i], samples[i%len(samples)])
		require.NoError(t, err)
		assert.Equal(t, http.StatusServiceUnavailable, status, "database down: delivery %d", i)
	}
	reports := errs.all()
	require.Len(t, reports, len(during))
	for _, r := range reports {
		assert.Equal(t, http.StatusServiceUnavailable, r.status)
		assert.ErrorIs(t, r.err, nectarhooks.ErrQueueFull)
	}
	check := newPool(t, dbURL, 2) // straight to the database
	assert.Equal(t, 1, total(jobStates(t, check)), "nothing of the refused deliveries is stored")

	p.restart(t)
	// Svix's retries, attempt after attempt until answered 2xx: the pool
	// may first hand out a connection that died with the proxy.
	for i, id := range during {
		var got int
		for attempt := 1; attempt <= 5; attempt++ {
			got, err = d.deliver(srv.URL, id, samples[i%len(samples)])
			require.NoError(t, err)
			if got == http.StatusAccepted {
				break
			}
		}
		assert.Equal(t, http.StatusAccepted, got, "retry of delivery %d once the database is back", i)
	}
	assert.Equal(t, map[rivertype.JobState]int{rivertype.JobStateAvailable: 1 + len(during)}, jobStates(t, check))
}

// proxy forwards TCP connections to a target until stopped, and can be
// restarted on the same address: a database that goes away and comes back.
type proxy struct {
	target string
	addr   string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func startProxy(t *testing.T, target string) *proxy {
	p := &proxy{target: target, addr: "127.0.0.1:0"}
	p.restart(t)
	t.Cleanup(p.stop)
	return p
}

// restart listens again on the proxy's address and forwards what arrives.
func (p *proxy) restart(t *testing.T) {
	var ln net.Listener
	var err error
	// The port may take a moment to be free again after stop.
	require.Eventually(t, func() bool {
		ln, err = net.Listen("tcp", p.addr)
		return err == nil
	}, wait, pollEvery, "listening on %s", p.addr)
	p.mu.Lock()
	p.ln, p.addr, p.conns = ln, ln.Addr().String(), map[net.Conn]struct{}{}
	p.mu.Unlock()
	p.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Go(func() { p.forward(c) })
		}
	})
}

func (p *proxy) forward(c net.Conn) {
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	if !p.track(c, up) {
		return
	}
	var wg sync.WaitGroup
	pipe := func(dst, src net.Conn) {
		io.Copy(dst, src)
		// Either side ending ends both.
		dst.Close()
		src.Close()
	}
	wg.Go(func() { pipe(up, c) })
	wg.Go(func() { pipe(c, up) })
	wg.Wait()
}

// track records live connections so that stop can cut them, or closes them
// when the proxy is already stopped.
func (p *proxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln == nil {
		for _, c := range cs {
			c.Close()
		}
		return false
	}
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
	return true
}

// stop closes the listener and cuts every forwarded connection, as a
// database crash does.
func (p *proxy) stop() {
	p.mu.Lock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
	p.conns = nil
	p.mu.Unlock()
	p.wg.Wait()
}
