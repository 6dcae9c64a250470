package nectarhookstest

import (
	"bufio"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/user"
	"strings"
	"sync"
	"testing"
	"time"
)

// Environment variables that point tests at real servers, and their
// defaults: the standard ports on the loopback address.
const (
	// PostgresURLEnv names the variable holding a PostgreSQL connection
	// URL. Default: DefaultPostgresURL.
	PostgresURLEnv = "NECTARHOOKS_POSTGRES_URL"
	// RedisAddrEnv names the variable holding a Redis host:port. Default:
	// DefaultRedisAddr.
	RedisAddrEnv = "NECTARHOOKS_REDIS_ADDR"

	// DefaultPostgresURL is a local PostgreSQL with trust authentication,
	// user root and database test. The role must exist and be allowed to
	// create databases (some tests make one each); as the postgres OS user:
	//
	//	createuser -s root && createdb -O root test
	DefaultPostgresURL = "postgres://root@127.0.0.1:5432/test?sslmode=disable"
	// DefaultRedisAddr is a local Redis on its standard port.
	DefaultRedisAddr = "127.0.0.1:6379"
)

// probeTimeout bounds each server check, connection included.
const probeTimeout = 5 * time.Second

// PostgresURL returns the URL of the PostgreSQL server tests use
// (PostgresURLEnv, else DefaultPostgresURL) once the server has accepted
// the URL's user and database. It checks by connecting and starting a
// session as the URL says, with PostgreSQL's wire protocol (the user and
// database default as libpq's do: PGUSER, else the OS user; PGDATABASE,
// else the user's name), and ends the session at once. When nothing
// answers, it skips the test with a message saying how to start a server;
// when the server refuses the role or the database (SQLSTATE 3D000, 28000
// or 28P01), with one saying how to create them. Under the CI variable it
// fails the test instead, so that a CI run cannot pass by skipping. Tests
// should keep to tables (or databases) of their own, since others may
// share the server.
//
// The check starts no authentication: a server that asks for a password
// is taken as ready, and the test's own connection authenticates with the
// password of the URL. With sslmode=disable or allow the session is asked
// for in plaintext; with prefer (pgx's default, when the URL has no
// sslmode) or require, over TLS when the server offers it, without
// verifying its certificate as those modes do not; with verify-ca or
// verify-full, which need certificates, only the TCP connection is
// checked. Each URL is checked once per process, and the verdict kept for
// the tests that follow.
func PostgresURL(tb testing.TB) string {
	tb.Helper()
	raw := env(PostgresURLEnv, DefaultPostgresURL)
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		tb.Fatalf("%s=%q: not a postgres:// URL with a host: %v", PostgresURLEnv, raw, err)
	}
	if problem := once("postgres "+raw, func() string { return checkPostgres(u) }); problem != "" {
		skipOrFail(tb, problem)
	}
	return raw
}

// RedisAddr returns the host:port of the Redis server tests use
// (RedisAddrEnv, else DefaultRedisAddr) once it has answered PING with
// PONG; otherwise it skips or fails the test as PostgresURL does, saying
// how to start a server, or what answered instead (a server that wants a
// password, or another service on the port). Each address is checked once
// per process. Tests should keep to key prefixes of their own.
func RedisAddr(tb testing.TB) string {
	tb.Helper()
	addr := env(RedisAddrEnv, DefaultRedisAddr)
	if problem := once("redis "+addr, func() string { return checkRedis(addr) }); problem != "" {
		skipOrFail(tb, problem)
	}
	return addr
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// verdicts holds the outcome of each server check made in this process,
// by server: hundreds of tests ask for the same server, and one handshake
// answers them all.
var verdicts sync.Map // string -> *verdict

type verdict struct {
	once    sync.Once
	problem string // why tests cannot use the server; "" when they can
}

// once returns the problem check finds with the server named key, running
// check only the first time key is asked about.
func once(key string, check func() string) string {
	v, _ := verdicts.LoadOrStore(key, new(verdict))
	vd := v.(*verdict)
	vd.once.Do(func() { vd.problem = check() })
	return vd.problem
}

// skipOrFail skips tb with msg, or fails it when the CI variable is set.
func skipOrFail(tb testing.TB, msg string) {
	tb.Helper()
	if os.Getenv("CI") != "" {
		tb.Fatal(msg + " [CI is set, so this fails instead of skipping]")
	}
	tb.Skip(msg)
}

// dial connects to addr, or returns the problem: that nothing answers
// there, and how to start a server.
func dial(what, envName, addr, howto string) (net.Conn, string) {
	conn, err := net.DialTimeout("tcp", addr, probeTimeout)
	if err != nil {
		return nil, what + " is not reachable at " + addr + " (" + envName + "): " + err.Error() + "; " + howto
	}
	conn.SetDeadline(time.Now().Add(probeTimeout))
	return conn, ""
}

const startPostgres = "start one (Debian: apt-get install postgresql, then pg_ctlcluster 15 main start, and as the postgres OS user createuser -s root && createdb -O root test), or point " + PostgresURLEnv + " at one"

// checkPostgres returns why tests cannot use the server of u, or "".
func checkPostgres(u *url.URL) string {
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "5432")
	}
	conn, problem := dial("PostgreSQL", PostgresURLEnv, addr, startPostgres)
	if problem != "" {
		return problem
	}
	defer conn.Close()
	q := u.Query()
	switch q.Get("sslmode") {
	case "verify-ca", "verify-full":
		return "" // reachable; the handshake needs certificates
	case "", "prefer", "require":
		var err error
		if conn, err = negotiateTLS(conn); err != nil {
			return notPostgres(addr, err)
		}
		defer conn.Close()
	}
	usr, db := postgresUserDatabase(u)
	problem, err := startSession(conn, usr, db)
	switch {
	case err != nil:
		return notPostgres(addr, err)
	case problem != "":
		return fmt.Sprintf("PostgreSQL at %s (%s) refuses user %q or database %q: %s; create them as the postgres OS user "+
			"(createuser -s %s && createdb -O %s %s, or psql -U postgres -c \"CREATE ROLE %s SUPERUSER LOGIN\" -c \"CREATE DATABASE %s OWNER %s\"), "+
			"or point %s at a role and database that exist (tests create databases of their own, so the role needs CREATEDB)",
			addr, PostgresURLEnv, usr, db, problem, usr, usr, db, usr, db, usr, PostgresURLEnv)
	}
	return ""
}

func notPostgres(addr string, err error) string {
	return "no PostgreSQL session could be started at " + addr + " (" + PostgresURLEnv + "): " + err.Error() +
		"; is it PostgreSQL? " + startPostgres
}

// postgresUserDatabase returns the user and database a client connecting
// with u asks for, defaulted as libpq and pgx default them.
func postgresUserDatabase(u *url.URL) (usr, db string) {
	q := u.Query()
	usr, db = q.Get("user"), q.Get("dbname")
	if usr == "" {
		usr = u.User.Username()
	}
	if usr == "" {
		usr = os.Getenv("PGUSER")
	}
	if usr == "" {
		if cur, err := user.Current(); err == nil {
			usr = cur.Username
		}
	}
	if db == "" {
		db = strings.TrimPrefix(u.Path, "/")
	}
	if db == "" {
		db = os.Getenv("PGDATABASE")
	}
	if db == "" {
		db = usr
	}
	return usr, db
}

// negotiateTLS asks the server for TLS (SSLRequest) and returns conn over
// TLS if it agrees, or conn itself, still in plaintext, if it declines.
func negotiateTLS(conn net.Conn) (net.Conn, error) {
	var req [8]byte
	binary.BigEndian.PutUint32(req[0:], 8)
	binary.BigEndian.PutUint32(req[4:], 80877103) // the SSLRequest code
	if _, err := conn.Write(req[:]); err != nil {
		return nil, err
	}
	var answer [1]byte
	if _, err := io.ReadFull(conn, answer[:]); err != nil {
		return nil, fmt.Errorf("reading the answer to SSLRequest: %w", err)
	}
	switch answer[0] {
	case 'N':
		return conn, nil
	case 'S':
		// The certificate is not verified, as sslmode prefer and require
		// do not verify it.
		tc := tls.Client(conn, &tls.Config{InsecureSkipVerify: true, ServerName: "postgres"})
		if err := tc.Handshake(); err != nil {
			return nil, fmt.Errorf("TLS handshake: %w", err)
		}
		return tc, nil
	}
	return nil, fmt.Errorf("answered SSLRequest with %q, neither S nor N", answer[0])
}

// Error codes (SQLSTATE) of a server that refuses the user or database of
// a session.
var refusals = map[string]bool{
	"3D000": true, // invalid_catalog_name: no such database
	"28000": true, // invalid_authorization_specification: no such role, or pg_hba.conf rejects it
	"28P01": true, // invalid_password
}

// startSession starts a session as usr on database db (StartupMessage,
// protocol 3.0) and reads the answers up to ReadyForQuery, then ends it
// (Terminate). It returns the problem when the server refused the user or
// the database, and an error when the server did not answer as PostgreSQL
// does. A server that asks for authentication has found usr acceptable so
// far: the check stops there, with neither.
func startSession(conn net.Conn, usr, db string) (problem string, err error) {
	var msg []byte
	msg = binary.BigEndian.AppendUint32(msg, 0) // the length, set below
	msg = binary.BigEndian.AppendUint32(msg, 3<<16)
	for _, kv := range [...]string{"user", usr, "database", db, "application_name", "nectarhookstest"} {
		msg = append(append(msg, kv...), 0)
	}
	msg = append(msg, 0)
	binary.BigEndian.PutUint32(msg, uint32(len(msg)))
	if _, err := conn.Write(msg); err != nil {
		return "", err
	}
	r := bufio.NewReader(conn)
	for range 100 { // a session starts in a handful of messages
		var head [5]byte
		if _, err := io.ReadFull(r, head[:]); err != nil {
			return "", fmt.Errorf("reading the answer to StartupMessage: %w", err)
		}
		n := int(binary.BigEndian.Uint32(head[1:])) - 4
		if n < 0 || n > 1<<20 {
			return "", fmt.Errorf("answered StartupMessage with a message %q of length %d", head[0], n+4)
		}
		body := make([]byte, n)
		if _, err := io.ReadFull(r, body); err != nil {
			return "", fmt.Errorf("reading the answer to StartupMessage: %w", err)
		}
		switch head[0] {
		case 'R': // Authentication*
			if n < 4 {
				return "", errors.New("answered StartupMessage with a short Authentication message")
			}
			if binary.BigEndian.Uint32(body) != 0 {
				return "", nil // a password is asked for: the test's connection gives it
			}
			// AuthenticationOk: the role and database are checked next.
		case 'E': // ErrorResponse
			code, text := errorFields(body)
			if refusals[code] {
				return text + " (SQLSTATE " + code + ")", nil
			}
			// Something passing (too many connections, starting up): the
			// test's own connection will say.
			return "", nil
		case 'Z': // ReadyForQuery: the session is open
			conn.Write([]byte{'X', 0, 0, 0, 4}) // Terminate
			return "", nil
		case 'S', 'K', 'N', 'v': // ParameterStatus, BackendKeyData, NoticeResponse, NegotiateProtocolVersion
		default:
			return "", fmt.Errorf("answered StartupMessage with a message of type %q", head[0])
		}
	}
	return "", errors.New("no ReadyForQuery after 100 messages")
}

// errorFields returns the SQLSTATE and the "SEVERITY: message" of an
// ErrorResponse's body.
func errorFields(body []byte) (code, text string) {
	var severity, message string
	for len(body) > 1 && body[0] != 0 {
		field := body[0]
		end := 1
		for end < len(body) && body[end] != 0 {
			end++
		}
		value := string(body[1:end])
		switch field {
		case 'C':
			code = value
		case 'M':
			message = value
		case 'V':
			severity = value
		case 'S':
			if severity == "" {
				severity = value
			}
		}
		if end >= len(body) {
			break
		}
		body = body[end+1:]
	}
	if severity != "" {
		message = severity + ": " + message
	}
	return code, message
}

const startRedis = "start one (redis-server --daemonize yes --port 6379 --save \"\"), or point " + RedisAddrEnv + " at one"

// checkRedis returns why tests cannot use the Redis server at addr, or "".
func checkRedis(addr string) string {
	conn, problem := dial("Redis", RedisAddrEnv, addr, startRedis)
	if problem != "" {
		return problem
	}
	defer conn.Close()
	line, err := func() (string, error) {
		if _, err := io.WriteString(conn, "*1\r\n$4\r\nPING\r\n"); err != nil {
			return "", err
		}
		line, err := bufio.NewReaderSize(io.LimitReader(conn, 512), 512).ReadString('\n')
		if err != nil && line == "" {
			return "", fmt.Errorf("no answer to PING: %w", err)
		}
		return strings.TrimRight(line, "\r\n"), nil
	}()
	switch {
	case err != nil:
	case line == "+PONG":
		return ""
	case strings.HasPrefix(line, "-"):
		return "Redis at " + addr + " (" + RedisAddrEnv + ") answers PING with " + line +
			"; tests connect without a password: point " + RedisAddrEnv + " at a Redis they can use, or " + startRedis
	default:
		if len(line) > 64 {
			line = line[:64] + "..."
		}
		err = fmt.Errorf("answered PING with %q, not +PONG", line)
	}
	return "no Redis answers at " + addr + " (" + RedisAddrEnv + "): " + err.Error() + "; is it Redis? " + startRedis
}
