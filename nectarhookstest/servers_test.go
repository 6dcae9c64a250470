package nectarhookstest_test

import (
	"bufio"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nectarhooks/nectarhooks/nectarhookstest"
)

// verdictTB is a testing.TB that records Skip and Fatal calls and ends
// the goroutine as the real ones do; the rest goes to the test's own TB.
type verdictTB struct {
	testing.TB
	mu      sync.Mutex
	skipped []string
	fatal   []string
}

func (v *verdictTB) Helper() {}

func (v *verdictTB) Skip(args ...any) { v.end(&v.skipped, fmt.Sprint(args...)) }

func (v *verdictTB) Skipf(format string, args ...any) {
	v.end(&v.skipped, fmt.Sprintf(format, args...))
}

func (v *verdictTB) Fatal(args ...any) { v.end(&v.fatal, fmt.Sprint(args...)) }

func (v *verdictTB) Fatalf(format string, args ...any) { v.end(&v.fatal, fmt.Sprintf(format, args...)) }

func (v *verdictTB) end(to *[]string, msg string) {
	v.mu.Lock()
	*to = append(*to, msg)
	v.mu.Unlock()
	runtime.Goexit()
}

// verdict runs check with a verdictTB on a goroutine of its own, so that
// Skip and Fatal can end it, and returns what it recorded.
func verdict(t *testing.T, check func(tb testing.TB)) *verdictTB {
	t.Helper()
	v := &verdictTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		check(v)
	}()
	<-done
	return v
}

func randomName(t *testing.T, prefix string) string {
	b := make([]byte, 6)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return prefix + hex.EncodeToString(b)
}

// TestPostgresURLRealServer asks the PostgreSQL server the tests use for
// a database and a role that do not exist: the test is skipped (failed
// under CI) with a message saying how to create them, not left to fail on
// its first query.
func TestPostgresURLRealServer(t *testing.T) {
	base, err := url.Parse(nectarhookstest.PostgresURL(t))
	require.NoError(t, err)
	usr := base.User.Username()
	withDatabase := func(db string) string {
		u := *base
		u.Path = "/" + db
		return u.String()
	}
	withUser := func(name string) string {
		u := *base
		u.User = url.User(name)
		return u.String()
	}
	missingDB, missingRole := randomName(t, "nh_missing_"), randomName(t, "nh_nobody_")
	tests := []struct {
		name string
		url  string
		ci   bool
		// want is in the message of a skip (or, under CI, a failure); nil:
		// neither.
		want []string
	}{
		{name: "role and database exist", url: base.String()},
		{name: "no such database", url: withDatabase(missingDB), want: []string{
			`database "` + missingDB + `" does not exist`, "SQLSTATE 3D000",
			"createuser -s " + usr + " && createdb -O " + usr + " " + missingDB,
			`psql -U postgres -c "CREATE ROLE ` + usr + ` SUPERUSER LOGIN" -c "CREATE DATABASE ` + missingDB + ` OWNER ` + usr + `"`,
			nectarhookstest.PostgresURLEnv,
		}},
		{name: "no such role", url: withUser(missingRole), want: []string{
			`role "` + missingRole + `" does not exist`, "SQLSTATE 28000", "createuser -s " + missingRole,
		}},
		{name: "no such database, under CI", url: withDatabase(missingDB), ci: true, want: []string{
			`database "` + missingDB + `" does not exist`, "CI is set",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(nectarhookstest.PostgresURLEnv, tt.url)
			t.Setenv("CI", map[bool]string{true: "1"}[tt.ci])
			var got string
			v := verdict(t, func(tb testing.TB) { got = nectarhookstest.PostgresURL(tb) })
			assertVerdict(t, v, tt.ci, tt.want)
			if tt.want == nil {
				assert.Equal(t, tt.url, got)
			}
		})
	}
}

// assertVerdict checks that v recorded nothing (want nil), or one skip
// (one failure under ci) whose message has every string of want.
func assertVerdict(t *testing.T, v *verdictTB, ci bool, want []string) {
	t.Helper()
	if want == nil {
		assert.Empty(t, v.skipped, "skipped")
		assert.Empty(t, v.fatal, "failed")
		return
	}
	ended, other := v.skipped, v.fatal
	if ci {
		ended, other = v.fatal, v.skipped
	}
	assert.Empty(t, other)
	require.Len(t, ended, 1, "skipped %q, failed %q", v.skipped, v.fatal)
	for _, w := range want {
		assert.Contains(t, ended[0], w)
	}
}

// fakeServer accepts connections on the loopback address and hands each to
// serve; it returns the address and a count of the connections taken.
func fakeServer(t *testing.T, serve func(conn net.Conn)) (string, *atomic.Int64) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var conns atomic.Int64
	var wg sync.WaitGroup
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer conn.Close()
				serve(conn)
			}()
		}
	}()
	return l.Addr().String(), &conns
}

// closedAddr returns an address nothing listens on.
func closedAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	l.Close()
	return addr
}

// pgMessage is a PostgreSQL backend message.
func pgMessage(typ byte, body ...byte) []byte {
	m := append([]byte{typ}, binary.BigEndian.AppendUint32(nil, uint32(4+len(body)))...)
	return append(m, body...)
}

func pgAuth(code uint32) []byte { return pgMessage('R', binary.BigEndian.AppendUint32(nil, code)...) }

func pgError(code, message string) []byte {
	body := []byte("SFATAL\x00VFATAL\x00C" + code + "\x00M" + message + "\x00\x00")
	return pgMessage('E', body...)
}

var pgReady = pgMessage('Z', 'I')

// fakePostgres is a server that reads a StartupMessage (agreeing to TLS
// first when cert is set, declining it otherwise), records its parameters
// and whether it came over TLS, and writes answer.
type fakePostgres struct {
	cert   *tls.Certificate
	answer []byte

	served chan struct{} // closed when the first connection's serve returns
	once   sync.Once

	mu     sync.Mutex
	params map[string]string
	tls    bool
	ended  bool // a Terminate came
}

func (f *fakePostgres) serve(conn net.Conn) {
	defer f.once.Do(func() { close(f.served) })
	r := bufio.NewReader(conn)
	overTLS := false
	for {
		var head [8]byte
		if _, err := io.ReadFull(r, head[:]); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint32(head[:4]))
		if code := binary.BigEndian.Uint32(head[4:]); code == 80877103 { // SSLRequest
			if f.cert == nil {
				conn.Write([]byte{'N'})
				continue
			}
			conn.Write([]byte{'S'})
			tc := tls.Server(conn, &tls.Config{Certificates: []tls.Certificate{*f.cert}})
			conn, r, overTLS = tc, bufio.NewReader(tc), true
			continue
		}
		body := make([]byte, n-8)
		if _, err := io.ReadFull(r, body); err != nil {
			return
		}
		params := map[string]string{}
		fields := strings.Split(strings.TrimRight(string(body), "\x00"), "\x00")
		for i := 0; i+1 < len(fields); i += 2 {
			params[fields[i]] = fields[i+1]
		}
		f.mu.Lock()
		f.params, f.tls = params, overTLS
		f.mu.Unlock()
		if len(f.answer) == 0 {
			return // hangs up
		}
		conn.Write(f.answer)
		var term [5]byte
		if _, err := io.ReadFull(r, term[:]); err == nil && term[0] == 'X' {
			f.mu.Lock()
			f.ended = true
			f.mu.Unlock()
		}
		return
	}
}

// testCert is a self-signed certificate, httptest's.
func testCert(t *testing.T) *tls.Certificate {
	srv := httptest.NewUnstartedServer(nil)
	srv.StartTLS()
	defer srv.Close()
	return &srv.TLS.Certificates[0]
}

// TestPostgresURLHandshake puts PostgreSQL stand-ins where the URL points,
// one for each answer a session's start can get, and checks the verdict
// and what the check asked for.
func TestPostgresURLHandshake(t *testing.T) {
	cert := testCert(t)
	ok := append(append(append(pgAuth(0), pgMessage('S', []byte("server_version\x0017\x00")...)...),
		pgMessage('K', make([]byte, 8)...)...), pgReady...)
	tests := []struct {
		name    string
		tls     bool   // the server agrees to TLS
		answer  []byte // nil: nothing listens
		path    string // the URL's after host:port; default "/test?sslmode=disable"
		user    string // the URL's user; default root
		env     map[string]string
		ci      bool
		want    []string          // in the skip's message (the failure's under CI); nil: neither
		params  map[string]string // the StartupMessage's, when set
		overTLS bool
		ended   bool // the check ended the session it opened
	}{
		{name: "session opens", answer: ok,
			params: map[string]string{"user": "root", "database": "test", "application_name": "nectarhookstest"}, ended: true},
		{name: "password asked for (SCRAM)", answer: pgAuth(10)},
		{name: "password asked for (MD5)", answer: append(pgAuth(5), 1, 2, 3, 4)},
		{name: "no such database", answer: append(pgAuth(0), pgError("3D000", `database "test" does not exist`)...),
			want: []string{`refuses user "root" or database "test"`, `FATAL: database "test" does not exist (SQLSTATE 3D000)`,
				"createuser -s root && createdb -O root test",
				`psql -U postgres -c "CREATE ROLE root SUPERUSER LOGIN" -c "CREATE DATABASE test OWNER root"`,
				"point " + nectarhookstest.PostgresURLEnv}},
		{name: "no such database, under CI", ci: true, answer: pgError("3D000", `database "test" does not exist`),
			want: []string{"SQLSTATE 3D000", "CI is set"}},
		{name: "no such role", answer: pgError("28000", `role "root" does not exist`), want: []string{"SQLSTATE 28000", "createuser -s root"}},
		{name: "wrong password", answer: pgError("28P01", `password authentication failed for user "root"`), want: []string{"SQLSTATE 28P01"}},
		{name: "a passing error is left to the test", answer: pgError("53300", "sorry, too many clients already")},
		{name: "not PostgreSQL", answer: []byte("HTTP/1.1 400 Bad Request\r\n\r\n"),
			want: []string{"no PostgreSQL session could be started", "is it PostgreSQL?"}},
		{name: "hangs up", answer: []byte{}, want: []string{"no PostgreSQL session could be started", "EOF"}},
		{name: "nothing listens", want: []string{"PostgreSQL is not reachable at", "start one"}},
		{name: "user and database default as libpq's", answer: ok, path: "/", user: "-",
			env:    map[string]string{"PGUSER": "alice", "PGDATABASE": ""},
			params: map[string]string{"user": "alice", "database": "alice"}, ended: true},
		{name: "user and database from the query", answer: ok, path: "/ignored?sslmode=disable&user=bob&dbname=books",
			params: map[string]string{"user": "bob", "database": "books"}, ended: true},
		{name: "sslmode prefer, server offers TLS", tls: true, path: "/test?sslmode=prefer",
			answer: pgError("3D000", `database "test" does not exist`), want: []string{"SQLSTATE 3D000"}, overTLS: true},
		{name: "no sslmode, server offers TLS", tls: true, path: "/test", answer: ok, overTLS: true, ended: true},
		{name: "no sslmode, server declines TLS", path: "/test", answer: pgError("3D000", `database "test" does not exist`),
			want: []string{"SQLSTATE 3D000"}},
		{name: "sslmode require", tls: true, path: "/test?sslmode=require", answer: ok, overTLS: true, ended: true},
		{name: "sslmode verify-full: TCP only", path: "/test?sslmode=verify-full", answer: pgError("3D000", "never asked")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := closedAddr(t)
			f := &fakePostgres{answer: tt.answer, served: make(chan struct{})}
			if tt.tls {
				f.cert = cert
			}
			if tt.answer != nil {
				addr, _ = fakeServer(t, f.serve)
			}
			path, usr := tt.path, tt.user
			if path == "" {
				path = "/test?sslmode=disable"
			}
			switch usr {
			case "":
				usr = "root@"
			case "-":
				usr = ""
			}
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			t.Setenv(nectarhookstest.PostgresURLEnv, "postgres://"+usr+addr+path)
			t.Setenv("CI", map[bool]string{true: "1"}[tt.ci])
			v := verdict(t, func(tb testing.TB) { nectarhookstest.PostgresURL(tb) })
			assertVerdict(t, v, tt.ci, tt.want)
			if tt.answer == nil {
				return
			}
			select {
			case <-f.served: // the check has closed its connection
			case <-time.After(10 * time.Second):
				t.Fatal("the check's connection is still open")
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			for k, want := range tt.params {
				assert.Equal(t, want, f.params[k], "StartupMessage parameter %s", k)
			}
			assert.Equal(t, tt.overTLS, f.tls, "over TLS")
			assert.Equal(t, tt.ended, f.ended, "session ended with Terminate")
		})
	}
}

// TestRedisAddr puts Redis and stand-ins for it where the address points.
func TestRedisAddr(t *testing.T) {
	realAddr := nectarhookstest.RedisAddr(t)
	answering := func(answer string) func(net.Conn) {
		return func(conn net.Conn) {
			if answer == "" { // speaks first, as NATS does, and ignores what it is sent
				io.WriteString(conn, "INFO {\"server_id\":\"x\"}\r\n")
				io.Copy(io.Discard, conn)
				return
			}
			line, err := bufio.NewReader(conn).ReadString('\n')
			if err != nil || line != "*1\r\n" {
				return
			}
			io.WriteString(conn, answer)
		}
	}
	tests := []struct {
		name  string
		serve func(net.Conn) // nil: the real Redis, or nothing when real is false
		real  bool
		ci    bool
		want  []string
	}{
		{name: "Redis", real: true},
		{name: "answers PONG", serve: answering("+PONG\r\n")},
		{name: "wants a password", serve: answering("-NOAUTH Authentication required.\r\n"),
			want: []string{"answers PING with -NOAUTH Authentication required.", "without a password", nectarhookstest.RedisAddrEnv}},
		{name: "wants a password, under CI", ci: true, serve: answering("-NOAUTH Authentication required.\r\n"),
			want: []string{"-NOAUTH", "CI is set"}},
		{name: "an HTTP server", serve: answering("HTTP/1.1 400 Bad Request\r\n\r\n"),
			want: []string{`answered PING with "HTTP/1.1 400 Bad Request", not +PONG`, "is it Redis?", "redis-server"}},
		{name: "another service that speaks first", serve: answering(""), want: []string{`answered PING with "INFO`, "is it Redis?"}},
		{name: "hangs up", serve: func(net.Conn) {}, want: []string{"no answer to PING", "is it Redis?"}},
		{name: "nothing listens", want: []string{"Redis is not reachable at", "redis-server --daemonize yes"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := closedAddr(t)
			switch {
			case tt.real:
				addr = realAddr
			case tt.serve != nil:
				addr, _ = fakeServer(t, tt.serve)
			}
			t.Setenv(nectarhookstest.RedisAddrEnv, addr)
			t.Setenv("CI", map[bool]string{true: "1"}[tt.ci])
			var got string
			v := verdict(t, func(tb testing.TB) { got = nectarhookstest.RedisAddr(tb) })
			assertVerdict(t, v, tt.ci, tt.want)
			if tt.want == nil {
				assert.Equal(t, addr, got)
			}
		})
	}
}

// TestServerVerdictsKept checks that each server is checked once per
// process: later tests get the first verdict without a connection.
func TestServerVerdictsKept(t *testing.T) {
	f := &fakePostgres{answer: pgError("3D000", `database "test" does not exist`), served: make(chan struct{})}
	pgAddr, pgConns := fakeServer(t, f.serve)
	redisAddr, redisConns := fakeServer(t, func(conn net.Conn) { io.WriteString(conn, "HTTP/1.1 400 Bad Request\r\n\r\n") })
	t.Setenv(nectarhookstest.PostgresURLEnv, "postgres://root@"+pgAddr+"/test?sslmode=disable")
	t.Setenv(nectarhookstest.RedisAddrEnv, redisAddr)
	t.Setenv("CI", "")
	for range 5 {
		pg := verdict(t, func(tb testing.TB) { nectarhookstest.PostgresURL(tb) })
		assertVerdict(t, pg, false, []string{"SQLSTATE 3D000"})
		redis := verdict(t, func(tb testing.TB) { nectarhookstest.RedisAddr(tb) })
		assertVerdict(t, redis, false, []string{"no Redis answers"})
	}
	assert.Equal(t, int64(1), pgConns.Load(), "PostgreSQL connections")
	assert.Equal(t, int64(1), redisConns.Load(), "Redis connections")
}

// TestPostgresDatabaseBadPrefix checks that a prefix that would need
// quoting, or make too long a name, fails the test before any database is
// made. (TestPostgresDatabase, beside the package, makes them.)
func TestPostgresDatabaseBadPrefix(t *testing.T) {
	nectarhookstest.PostgresURL(t)
	for _, prefix := range []string{"", "Nh_", "nh-river", "nh; DROP DATABASE test; --", "9nh", strings.Repeat("n", 51)} {
		t.Run(prefix, func(t *testing.T) {
			v := verdict(t, func(tb testing.TB) { nectarhookstest.PostgresDatabase(tb, prefix) })
			assert.Empty(t, v.skipped)
			require.Len(t, v.fatal, 1)
			assert.Contains(t, v.fatal[0], "PostgresDatabase: prefix")
		})
	}
}
