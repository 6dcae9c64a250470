package nectarhookstest

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"
)

// FaultProxy is a TCP proxy that a test puts between a client (pgx,
// go-redis, River) and a real PostgreSQL or Redis server to make the gray
// failures of a network: a link that goes silent without closing (Freeze),
// one that carries the statement but loses its answer (FreezeReplies),
// latency (SetLatency), small writes (SetSlice), a connection cut (Cut) or
// reset (Reset) in the middle of a statement.
//
// Stopping the server or dialing a closed port proves little: the client
// gets "connection refused" or EOF at once, which every client handles.
// Real outages more often look like silence, no error and no close, and
// only a deadline, a context or a keepalive ends the wait; a cut after the
// server did the work leaves the client not knowing whether it happened.
// Those are the paths FaultProxy makes a test walk.
//
// By default it forwards everything at once and unchanged. Make one with
// NewFaultProxy; its methods are safe for concurrent use.
type FaultProxy struct {
	ln     net.Listener
	target string
	// dial connects to servers; a test of the proxy may wrap the conns.
	dial   func(ctx context.Context, network, addr string) (net.Conn, error)
	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine of the proxy, so Close can wait
	once   sync.Once
	err    error // of Close

	mu      sync.Mutex
	cond    *sync.Cond // broadcast when pairs, dialing or closed change
	closed  bool
	frozen  bool          // Freeze: hold both directions and new connections
	replies bool          // FreezeReplies: hold server to client
	thawed  chan struct{} // closed, and replaced, by Thaw
	latency time.Duration
	slice   int
	links   map[*link]struct{}
	pairs   map[string]net.Conn // server conns of Dial, by the local address of its conn to ln
	dialing int                 // Dials between connecting to ln and adding to pairs
}

// link is one connection through the proxy: client is the conn the
// listener accepted, server the proxy's connection onwards (nil until
// dialed). Its fields are guarded by FaultProxy.mu.
type link struct {
	client, server net.Conn
	done           chan struct{} // closed when the link is
	eofs           int           // directions that ended with a FIN
}

// NewFaultProxy starts a proxy on 127.0.0.1 (random port) that forwards
// each connection to target ("host:port"), and closes it (and every
// connection through it) at tb.Cleanup. target may be "" for a proxy used
// only through Dial; a connection to Addr is then closed at once. A
// connection to Addr whose target cannot be reached is closed too.
func NewFaultProxy(tb testing.TB, target string) *FaultProxy {
	tb.Helper()
	return newFaultProxy(tb, target, (&net.Dialer{}).DialContext)
}

func newFaultProxy(tb testing.TB, target string, dial func(context.Context, string, string) (net.Conn, error)) *FaultProxy {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("FaultProxy: %v", err)
	}
	p := &FaultProxy{ln: ln, target: target, dial: dial, thawed: make(chan struct{}),
		links: make(map[*link]struct{}), pairs: make(map[string]net.Conn)}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.cond = sync.NewCond(&p.mu)
	p.wg.Add(1)
	go p.serve()
	tb.Cleanup(func() { p.Close() })
	return p
}

// Addr is the proxy's "host:port": connect there instead of target.
func (p *FaultProxy) Addr() string { return p.ln.Addr().String() }

// Dial connects to addr through the proxy, for pgx (pgconn.Config.DialFunc,
// pgxpool's ConnConfig.DialFunc) and go-redis (redis.Options.Dialer), whose
// dial functions have this signature. It connects to addr first, then to
// the proxy's listener, and returns that real TCP connection (so deadlines
// and the kernel behave as on a network); the proxy tells it from other
// connections by its address and forwards it to the one made to addr.
//
// While the proxy is frozen (Freeze, not FreezeReplies) Dial hangs, as a
// SYN sent into a black hole does: it connects to addr only after Thaw, and
// returns an error wrapping ctx.Err() if ctx ends first.
func (p *FaultProxy) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	if !p.wait(false, ctx.Done()) {
		err := ctx.Err()
		if err == nil {
			err = net.ErrClosed
		}
		return nil, &net.OpError{Op: "dial", Net: network, Err: err}
	}
	server, err := p.dial(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	p.dialing++
	p.mu.Unlock()
	c, err := (&net.Dialer{}).DialContext(ctx, "tcp", p.Addr())
	p.mu.Lock()
	if err == nil && p.closed {
		c.Close()
		err = &net.OpError{Op: "dial", Net: network, Err: net.ErrClosed}
	}
	if err == nil {
		p.pairs[c.LocalAddr().String()] = server
	}
	p.dialing--
	p.cond.Broadcast()
	p.mu.Unlock()
	if err != nil {
		server.Close()
		return nil, err
	}
	return c, nil
}

// Freeze black-holes the link: nothing is forwarded in either direction and
// nothing is closed; connections made meanwhile forward nothing either (a
// connection to Addr is accepted, as the kernel does, but the proxy
// connects it to target only after Thaw; Dial hangs). Bytes read meanwhile
// are held, the rest waits in the kernel's buffers, and all of it is
// delivered in order after Thaw, as TCP retransmits after a network heals.
func (p *FaultProxy) Freeze() {
	p.mu.Lock()
	p.frozen = true
	p.mu.Unlock()
}

// FreezeReplies forwards what clients send but holds what servers answer:
// the statement runs, its answer never arrives (combine with Cut for "cut
// after the server did the work"). New connections are made as usual.
func (p *FaultProxy) FreezeReplies() {
	p.mu.Lock()
	p.replies = true
	p.mu.Unlock()
}

// Thaw ends Freeze and FreezeReplies: what was held is delivered, in order.
func (p *FaultProxy) Thaw() {
	p.mu.Lock()
	p.frozen, p.replies = false, false
	close(p.thawed)
	p.thawed = make(chan struct{})
	p.mu.Unlock()
}

// SetLatency delays every chunk forwarded, in both directions, by d (0, the
// default, removes it). Chunks of one direction go one after another, so
// bytes sent meanwhile wait for the next chunk and arrive in bigger ones.
func (p *FaultProxy) SetLatency(d time.Duration) {
	p.mu.Lock()
	p.latency = max(d, 0)
	p.mu.Unlock()
}

// SetSlice forwards in writes of at most n bytes (0, the default: whole
// chunks as read), to exercise clients' handling of partial reads.
func (p *FaultProxy) SetSlice(n int) {
	p.mu.Lock()
	p.slice = max(n, 0)
	p.mu.Unlock()
}

// Cut closes every open connection now, both sides, with a FIN (or a
// reset, as the kernel sends when a side has bytes not yet read); the proxy
// keeps accepting new ones. What the proxy held is dropped.
func (p *FaultProxy) Cut() { p.closeAll(false) }

// Reset closes every open connection with a TCP RST on both sides
// (SetLinger(0), then Close): their next read fails with ECONNRESET.
func (p *FaultProxy) Reset() { p.closeAll(true) }

// Conns reports how many connections are open through the proxy now,
// counting each from when the proxy accepts it.
func (p *FaultProxy) Conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.links)
}

// Close stops the proxy, closes every connection through it and returns
// once all its goroutines have; safe to call more than once (Cleanup calls
// it too).
func (p *FaultProxy) Close() error {
	p.once.Do(func() {
		p.mu.Lock()
		p.closed = true
		p.cond.Broadcast()
		pairs := p.pairs
		p.pairs = nil
		p.mu.Unlock()
		p.cancel()
		p.err = p.ln.Close()
		p.closeAll(false)
		for _, s := range pairs {
			s.Close()
		}
		p.wg.Wait()
	})
	return p.err
}

func (p *FaultProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if p.ctx.Err() != nil {
				return
			}
			time.Sleep(10 * time.Millisecond) // out of file descriptors, say
			continue
		}
		l := &link{client: c, done: make(chan struct{})}
		p.mu.Lock()
		if p.closed { // Close has taken its list of links to close
			p.mu.Unlock()
			c.Close()
			return
		}
		p.links[l] = struct{}{}
		p.wg.Add(1)
		p.mu.Unlock()
		go p.handle(l)
	}
}

// handle finds or makes l's server connection and starts its two pumps.
func (p *FaultProxy) handle(l *link) {
	defer p.wg.Done()
	server, ok := p.paired(l.client)
	if !ok { // a connection to Addr: connect it to target once the link lets it
		var err error
		if p.target == "" || !p.wait(false, l.done) {
			p.closeLink(l, false)
			return
		}
		if server, err = p.dial(p.ctx, "tcp", p.target); err != nil {
			p.closeLink(l, false)
			return
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-l.done: // Cut or Close came first
		server.Close()
		return
	default:
	}
	l.server = server
	p.wg.Add(2)
	go p.pump(l, server, l.client, false)
	go p.pump(l, l.client, server, true)
}

// paired returns the server conn Dial made for c, or false when c did not
// come from Dial. A Dial that has connected to the listener but not yet
// recorded its pair may be c's, so it waits for those.
func (p *FaultProxy) paired(c net.Conn) (net.Conn, bool) {
	key := c.RemoteAddr().String()
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		if s, ok := p.pairs[key]; ok {
			delete(p.pairs, key)
			return s, true
		}
		if p.dialing == 0 || p.closed {
			return nil, false
		}
		p.cond.Wait()
	}
}

// pump copies src to dst through the gate until either fails; reply marks
// the server-to-client direction. A FIN is passed on as CloseWrite, and the
// link closes when both directions have ended or one fails.
func (p *FaultProxy) pump(l *link, dst, src net.Conn, reply bool) {
	defer p.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if werr := p.forward(l, dst, buf[:n], reply); werr != nil {
				p.closeLink(l, errors.Is(werr, syscall.ECONNRESET))
				return
			}
		}
		if err == nil {
			continue
		}
		if errors.Is(err, io.EOF) && p.wait(reply, l.done) && p.halfClose(l, dst) {
			return
		}
		p.closeLink(l, errors.Is(err, syscall.ECONNRESET))
		return
	}
}

// forward writes b to dst after the gate and the latency, in slices.
func (p *FaultProxy) forward(l *link, dst net.Conn, b []byte, reply bool) error {
	if !p.wait(reply, l.done) {
		return net.ErrClosed
	}
	p.mu.Lock()
	d, n := p.latency, p.slice
	p.mu.Unlock()
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-l.done:
			return net.ErrClosed
		}
	}
	for len(b) > 0 {
		m := len(b)
		if n > 0 && m > n {
			m = n
		}
		if !p.wait(reply, l.done) { // a Freeze takes hold between slices too
			return net.ErrClosed
		}
		if _, err := dst.Write(b[:m]); err != nil {
			return err
		}
		b = b[m:]
	}
	return nil
}

// wait blocks while the proxy holds traffic of this direction (any while
// frozen, replies while replies are frozen). It returns false if done or
// the proxy closed first.
func (p *FaultProxy) wait(reply bool, done <-chan struct{}) bool {
	for {
		p.mu.Lock()
		held := p.frozen || (reply && p.replies)
		thawed := p.thawed
		p.mu.Unlock()
		if !held {
			return true
		}
		select {
		case <-thawed:
		case <-done:
			return false
		case <-p.ctx.Done():
			return false
		}
	}
}

// halfClose passes a FIN on to dst; it reports whether the link stays open
// (the other direction has not ended yet).
func (p *FaultProxy) halfClose(l *link, dst net.Conn) bool {
	cw, ok := dst.(interface{ CloseWrite() error })
	if !ok || cw.CloseWrite() != nil {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	l.eofs++
	return l.eofs < 2
}

func (p *FaultProxy) closeAll(rst bool) {
	p.mu.Lock()
	links := make([]*link, 0, len(p.links))
	for l := range p.links {
		links = append(links, l)
	}
	p.mu.Unlock()
	for _, l := range links {
		p.closeLink(l, rst)
	}
}

// closeLink closes both sides of l, with a RST if rst, and wakes its
// goroutines. Only the first call does anything.
func (p *FaultProxy) closeLink(l *link, rst bool) {
	p.mu.Lock()
	if _, ok := p.links[l]; !ok {
		p.mu.Unlock()
		return
	}
	delete(p.links, l)
	close(l.done)
	conns := []net.Conn{l.client, l.server}
	p.mu.Unlock()
	for _, c := range conns {
		if c == nil {
			continue
		}
		if tc, ok := c.(interface{ SetLinger(int) error }); ok && rst {
			tc.SetLinger(0)
		}
		c.Close()
	}
}
