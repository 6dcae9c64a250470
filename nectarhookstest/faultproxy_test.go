package nectarhookstest

import (
	"context"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// guard bounds every blocking read and wait of these tests so that a bug
// fails them instead of hanging; it is never a timing assertion.
const guard = 10 * time.Second

// quiet is how long a test watches for something that must not happen.
const quiet = 100 * time.Millisecond

// echoServer answers every read with the same bytes and records them.
type echoServer struct {
	ln      net.Listener
	wg      sync.WaitGroup
	mu      sync.Mutex
	got     []byte
	accepts int
	conns   map[net.Conn]struct{}
	once    sync.Once
}

func newEchoServer(t *testing.T) *echoServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s := &echoServer{ln: ln, conns: make(map[net.Conn]struct{})}
	s.wg.Add(1)
	go s.serve()
	t.Cleanup(s.close)
	return s
}

func (s *echoServer) addr() string { return s.ln.Addr().String() }

func (s *echoServer) serve() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.accepts++
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go s.echo(c)
	}
}

func (s *echoServer) echo(c net.Conn) {
	defer s.wg.Done()
	defer c.Close()
	buf := make([]byte, 64<<10)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			s.mu.Lock()
			s.got = append(s.got, buf[:n]...)
			s.mu.Unlock()
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// received returns every byte the server has read, over all connections.
func (s *echoServer) received() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return string(s.got)
}

func (s *echoServer) accepted() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accepts
}

// close stops the server and waits for its goroutines.
func (s *echoServer) close() {
	s.once.Do(func() {
		s.ln.Close()
		s.mu.Lock()
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
}

// connector opens a connection to the echo server through the proxy.
type connector struct {
	name    string
	target  bool // whether the proxy needs the echo server as its target
	connect func(t *testing.T, p *FaultProxy, echo string) (net.Conn, error)
}

var connectors = []connector{
	{"Addr", true, func(_ *testing.T, p *FaultProxy, _ string) (net.Conn, error) {
		return net.Dial("tcp", p.Addr())
	}},
	{"Dial", false, func(t *testing.T, p *FaultProxy, echo string) (net.Conn, error) {
		ctx, cancel := context.WithTimeout(context.Background(), guard)
		defer cancel()
		return p.Dial(ctx, "tcp", echo)
	}},
}

// setup starts an echo server, a proxy in front of it and a connection
// through the proxy as cn makes it.
func setup(t *testing.T, cn connector) (*FaultProxy, *echoServer, net.Conn) {
	t.Helper()
	echo := newEchoServer(t)
	target := ""
	if cn.target {
		target = echo.addr()
	}
	p := NewFaultProxy(t, target)
	c := mustConnect(t, cn, p, echo)
	return p, echo, c
}

func mustConnect(t *testing.T, cn connector, p *FaultProxy, echo *echoServer) net.Conn {
	t.Helper()
	c, err := cn.connect(t, p, echo.addr())
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

// roundTrip sends msg and requires it back.
func roundTrip(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	_, err := c.Write([]byte(msg))
	require.NoError(t, err)
	require.Equal(t, msg, readN(t, c, len(msg)))
}

// readN reads exactly n bytes (within guard).
func readN(t *testing.T, c net.Conn, n int) string {
	t.Helper()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(guard)))
	buf := make([]byte, n)
	_, err := io.ReadFull(c, buf)
	require.NoError(t, err)
	return string(buf)
}

// requireSilent requires a read on c to time out: the connection is open
// but nothing arrives.
func requireSilent(t *testing.T, c net.Conn) {
	t.Helper()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(quiet)))
	n, err := c.Read(make([]byte, 1))
	require.ErrorIs(t, err, os.ErrDeadlineExceeded)
	require.Zero(t, n)
}

func TestFaultProxyForwards(t *testing.T) {
	for _, cn := range connectors {
		t.Run(cn.name, func(t *testing.T) {
			p, echo, c := setup(t, cn)
			roundTrip(t, c, "hello")
			roundTrip(t, c, "world")
			assert.Equal(t, "helloworld", echo.received())
			assert.Equal(t, 1, p.Conns())

			require.NoError(t, c.Close()) // the FIN goes through, the echo server closes
			require.Eventually(t, func() bool { return p.Conns() == 0 }, guard, 5*time.Millisecond)
		})
	}
}

func TestFaultProxyConns(t *testing.T) {
	for _, cn := range connectors {
		t.Run(cn.name, func(t *testing.T) {
			p, echo, c := setup(t, cn)
			conns := []net.Conn{c, mustConnect(t, cn, p, echo), mustConnect(t, cn, p, echo)}
			for _, c := range conns {
				roundTrip(t, c, "x") // the proxy has accepted it
			}
			assert.Equal(t, 3, p.Conns())
			conns[0].Close()
			require.Eventually(t, func() bool { return p.Conns() == 2 }, guard, 5*time.Millisecond)
			p.Cut()
			assert.Zero(t, p.Conns())
		})
	}
}

func TestFaultProxyFreeze(t *testing.T) {
	for _, cn := range connectors {
		t.Run(cn.name, func(t *testing.T) {
			p, echo, c := setup(t, cn)
			roundTrip(t, c, "hello")

			p.Freeze()
			for _, s := range []string{"abc", "def", "ghi"} {
				_, err := c.Write([]byte(s))
				require.NoError(t, err)
			}
			requireSilent(t, c)
			assert.Equal(t, "hello", echo.received(), "the server got bytes through a frozen link")
			assert.Equal(t, 1, p.Conns(), "freezing closed the connection")

			p.Thaw()
			assert.Equal(t, "abcdefghi", readN(t, c, 9), "held bytes out of order")
			assert.Equal(t, "helloabcdefghi", echo.received())
			roundTrip(t, c, "after")
		})
	}
}

func TestFaultProxyFreezeReplies(t *testing.T) {
	for _, cn := range connectors {
		t.Run(cn.name, func(t *testing.T) {
			p, echo, c := setup(t, cn)
			roundTrip(t, c, "hello")

			p.FreezeReplies()
			_, err := c.Write([]byte("ping"))
			require.NoError(t, err)
			require.Eventually(t, func() bool { return echo.received() == "helloping" }, guard, 5*time.Millisecond,
				"the statement did not reach the server")
			requireSilent(t, c)

			p.Thaw()
			assert.Equal(t, "ping", readN(t, c, 4))
		})
		t.Run(cn.name+"/ThenCut", func(t *testing.T) {
			p, echo, c := setup(t, cn)
			roundTrip(t, c, "hello")

			p.FreezeReplies()
			_, err := c.Write([]byte("ping"))
			require.NoError(t, err)
			require.Eventually(t, func() bool { return echo.received() == "helloping" }, guard, 5*time.Millisecond)
			p.Cut() // the server did the work; the client never hears of it
			require.NoError(t, c.SetReadDeadline(time.Now().Add(guard)))
			n, err := c.Read(make([]byte, 4))
			assert.Zero(t, n)
			assert.ErrorIs(t, err, io.EOF)
		})
	}
}

func TestFaultProxyConnectWhileFrozen(t *testing.T) {
	t.Run("Dial", func(t *testing.T) {
		echo := newEchoServer(t)
		p := NewFaultProxy(t, "")
		p.Freeze()

		ctx, cancel := context.WithTimeout(context.Background(), quiet)
		defer cancel()
		c, err := p.Dial(ctx, "tcp", echo.addr())
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.Nil(t, c)
		var ne net.Error
		require.ErrorAs(t, err, &ne)
		assert.True(t, ne.Timeout(), "a dial that ran out of time should say so, as net.Dialer's does")

		type dialed struct {
			c   net.Conn
			err error
		}
		done := make(chan dialed, 1)
		go func() {
			c, err := p.Dial(context.Background(), "tcp", echo.addr())
			done <- dialed{c, err}
		}()
		select {
		case d := <-done:
			t.Fatalf("Dial returned while frozen: %v, %v", d.c, d.err)
		case <-time.After(quiet):
		}
		assert.Zero(t, echo.accepted(), "the server saw a connection through a frozen link")

		p.Thaw()
		var d dialed
		select {
		case d = <-done:
		case <-time.After(guard):
			t.Fatal("Dial still hangs after Thaw")
		}
		require.NoError(t, d.err)
		defer d.c.Close()
		roundTrip(t, d.c, "hello")
	})
	t.Run("Addr", func(t *testing.T) {
		echo := newEchoServer(t)
		p := NewFaultProxy(t, echo.addr())
		p.Freeze()

		c, err := net.Dial("tcp", p.Addr()) // the kernel accepts it
		require.NoError(t, err)
		defer c.Close()
		_, err = c.Write([]byte("hello"))
		require.NoError(t, err)
		requireSilent(t, c)
		assert.Zero(t, echo.accepted(), "the server saw a connection through a frozen link")

		p.Thaw()
		assert.Equal(t, "hello", readN(t, c, 5))
	})
}

func TestFaultProxyLatency(t *testing.T) {
	const d = 50 * time.Millisecond
	for _, cn := range connectors {
		t.Run(cn.name, func(t *testing.T) {
			p, _, c := setup(t, cn)
			roundTrip(t, c, "warm")

			p.SetLatency(d)
			start := time.Now()
			roundTrip(t, c, "hello")
			assert.GreaterOrEqual(t, time.Since(start), 2*d, "each direction should wait d")

			p.SetLatency(0)
			roundTrip(t, c, "again")
		})
	}
}

// writeRecorder is a server conn that records the size of each write.
type writeRecorder struct {
	*net.TCPConn
	mu     *sync.Mutex
	writes *[]int
}

func (w writeRecorder) Write(b []byte) (int, error) {
	w.mu.Lock()
	*w.writes = append(*w.writes, len(b))
	w.mu.Unlock()
	return w.TCPConn.Write(b)
}

// The server's reads cannot show slicing (the kernel joins writes that
// arrive before a read), so the proxy's writes to the server are recorded.
func TestFaultProxySlice(t *testing.T) {
	const msg = "0123456789"
	for _, n := range []int{1, 3, 4} {
		for _, cn := range connectors {
			t.Run(cn.name+"/"+strconv.Itoa(n), func(t *testing.T) {
				echo := newEchoServer(t)
				var mu sync.Mutex
				var writes []int
				dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
					c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
					if err != nil {
						return nil, err
					}
					return writeRecorder{c.(*net.TCPConn), &mu, &writes}, nil
				}
				p := newFaultProxy(t, echo.addr(), dial)
				p.SetSlice(n)
				c := mustConnect(t, cn, p, echo)
				roundTrip(t, c, msg)
				assert.Equal(t, msg, echo.received())

				mu.Lock()
				defer mu.Unlock()
				total := 0
				for _, w := range writes {
					assert.LessOrEqual(t, w, n)
					total += w
				}
				assert.Equal(t, len(msg), total)
			})
		}
	}
}

func TestFaultProxyCutAndReset(t *testing.T) {
	faults := []struct {
		name  string
		fault func(*FaultProxy)
		want  error
	}{
		{"Cut", (*FaultProxy).Cut, io.EOF},
		{"Reset", (*FaultProxy).Reset, syscall.ECONNRESET},
	}
	for _, f := range faults {
		for _, cn := range connectors {
			t.Run(f.name+"/"+cn.name, func(t *testing.T) {
				p, echo, c := setup(t, cn)
				roundTrip(t, c, "hello")

				f.fault(p)
				assert.Zero(t, p.Conns())
				require.NoError(t, c.SetReadDeadline(time.Now().Add(guard)))
				_, err := c.Read(make([]byte, 1))
				require.ErrorIs(t, err, f.want)

				// The proxy still accepts new connections.
				c2 := mustConnect(t, cn, p, echo)
				roundTrip(t, c2, "again")
				assert.Equal(t, 1, p.Conns())
			})
		}
	}
}

func TestFaultProxyClose(t *testing.T) {
	p, _, c := setup(t, connectors[0])
	roundTrip(t, c, "hello")

	require.NoError(t, p.Close())
	require.NoError(t, p.Close())
	assert.Zero(t, p.Conns())
	require.NoError(t, c.SetReadDeadline(time.Now().Add(guard)))
	_, err := c.Read(make([]byte, 1))
	assert.ErrorIs(t, err, io.EOF)

	_, err = p.Dial(context.Background(), "tcp", p.Addr())
	assert.Error(t, err)
}

// Close ends every goroutine of the proxy, wherever it waits: at the gate
// of Freeze or FreezeReplies, in a latency sleep, in a held Dial.
func TestFaultProxyCloseLeaksNothing(t *testing.T) {
	opt := goleak.IgnoreCurrent()
	echo := newEchoServer(t)
	p := NewFaultProxy(t, echo.addr())

	var conns []net.Conn
	open := func() net.Conn {
		c, err := net.Dial("tcp", p.Addr())
		require.NoError(t, err)
		conns = append(conns, c)
		roundTrip(t, c, "hello")
		return c
	}
	replying, sleeping, requesting := open(), open(), open()
	p.FreezeReplies() // a reply held at the gate
	_, err := replying.Write([]byte("x"))
	require.NoError(t, err)
	require.Eventually(t, func() bool { return echo.received() == "hellohellohellox" }, guard, 5*time.Millisecond)
	p.SetLatency(time.Hour) // a request in its sleep
	_, err = sleeping.Write([]byte("y"))
	require.NoError(t, err)
	// Let the pump take y into its sleep; if it has not, Freeze holds y.
	time.Sleep(quiet)
	p.Freeze() // a request held, and a Dial and a connection to Addr waiting
	_, err = requesting.Write([]byte("z"))
	require.NoError(t, err)
	dialed := make(chan error, 1)
	go func() {
		_, err := p.Dial(context.Background(), "tcp", echo.addr())
		dialed <- err
	}()
	held, err := net.Dial("tcp", p.Addr())
	require.NoError(t, err)
	conns = append(conns, held)
	require.Eventually(t, func() bool { return p.Conns() == 4 }, guard, 5*time.Millisecond)

	closed := make(chan error, 1)
	go func() { closed <- p.Close() }()
	select {
	case err := <-closed:
		require.NoError(t, err)
	case <-time.After(guard): // Close waits for every goroutine of the proxy
		t.Fatal("Close hangs: a goroutine of the proxy does not end")
	}
	select {
	case err := <-dialed:
		assert.ErrorIs(t, err, net.ErrClosed)
	case <-time.After(guard):
		t.Fatal("Dial still hangs after Close")
	}
	for _, c := range conns {
		c.Close()
	}
	echo.close()
	goleak.VerifyNone(t, opt)
}

// Faults switched on and off while clients talk lose no byte and reorder
// none; run with -race.
func TestFaultProxyConcurrentFaults(t *testing.T) {
	echo := newEchoServer(t)
	p := NewFaultProxy(t, echo.addr())
	stop := make(chan struct{})
	var toggler sync.WaitGroup
	toggler.Add(1)
	go func() {
		defer toggler.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				p.Thaw()
				return
			default:
			}
			switch i % 4 {
			case 0:
				p.Freeze()
			case 1:
				p.FreezeReplies()
			default:
				p.Thaw()
			}
			p.SetSlice(i % 5)
			p.SetLatency(time.Duration(i%3) * time.Millisecond)
			_ = p.Conns()
			time.Sleep(time.Millisecond)
		}
	}()

	var clients sync.WaitGroup
	for i := range 4 {
		clients.Add(1)
		go func() {
			defer clients.Done()
			cn := connectors[i%2]
			c, err := cn.connect(t, p, echo.addr())
			if !assert.NoError(t, err) {
				return
			}
			defer c.Close()
			for j := range 30 {
				msg := []byte{byte('a' + i), byte('0' + j%10), 'x', 'y', 'z'}
				if _, err := c.Write(msg); !assert.NoError(t, err) {
					return
				}
				buf := make([]byte, len(msg))
				c.SetReadDeadline(time.Now().Add(guard))
				if _, err := io.ReadFull(c, buf); !assert.NoError(t, err) || !assert.Equal(t, msg, buf) {
					return
				}
			}
		}()
	}
	clients.Wait()
	close(stop)
	toggler.Wait()
	require.NoError(t, p.Close())
}
