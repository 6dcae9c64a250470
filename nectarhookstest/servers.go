package nectarhookstest

import (
	"bufio"
	"crypto/md5"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/user"
	"slices"
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
// should keep to tables (or databases, which PostgresDatabase makes) of
// their own, since others may share the server.
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

// PostgresDatabase creates a database of the test's own on the server of
// PostgresURL, named prefix followed by 12 random hexadecimal digits, and
// returns its URL: PostgresURL's with the new database in place of its
// own. The database is dropped when the test ends (WITH (FORCE), so that
// connections the test left open do not keep it), after the cleanups
// registered later, such as the closing of the test's pools. It skips or
// fails the test as PostgresURL does. prefix must be lower-case letters,
// digits and underscores, starting with a letter or an underscore, at most
// 50 of them ("nh_river_", say), so that the name needs no quoting.
//
// It speaks PostgreSQL's wire protocol itself, as PostgresURL does, and
// so authenticates by trust, password, md5 or SCRAM-SHA-256, over TLS as
// PostgresURL's sslmode asks (not verify-ca or verify-full).
func PostgresDatabase(tb testing.TB, prefix string) string {
	tb.Helper()
	if !validDatabasePrefix(prefix) {
		tb.Fatalf("PostgresDatabase: prefix %q is not 1 to 50 lower-case letters, digits and underscores starting with a letter or underscore", prefix)
	}
	u, err := url.Parse(PostgresURL(tb))
	if err != nil {
		tb.Fatal(err) // PostgresURL has parsed it
	}
	var random [6]byte
	rand.Read(random[:]) // never fails, as of Go 1.24
	name := prefix + hex.EncodeToString(random[:])
	if err := execPostgres(u, "CREATE DATABASE "+name); err != nil {
		tb.Fatalf("creating database %s: %v", name, err)
	}
	tb.Cleanup(func() {
		if err := execPostgres(u, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			tb.Errorf("dropping database %s: %v", name, err)
		}
	})
	own := *u // u, the server's own database, is the cleanup's
	own.Path, own.RawPath = "/"+name, ""
	if q := own.Query(); q.Has("dbname") { // it wins over the path
		q.Set("dbname", name)
		own.RawQuery = q.Encode()
	}
	return own.String()
}

// validDatabasePrefix reports whether prefix makes, followed by random
// digits, a database name that needs no quoting and fits PostgreSQL's 63
// bytes.
func validDatabasePrefix(prefix string) bool {
	if prefix == "" || len(prefix) > 50 || prefix[0] >= '0' && prefix[0] <= '9' {
		return false
	}
	for _, c := range []byte(prefix) {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
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
	conn, addr, problem := dialPostgres(u)
	if problem != "" || conn == nil {
		return problem
	}
	defer conn.Close()
	usr, db := postgresUserDatabase(u)
	_, problem, err := startSession(conn, usr, db, "", false)
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

// dialPostgres connects to the server of u, over TLS when u's sslmode asks
// for it and the server offers it, or returns the problem. With sslmode
// verify-ca or verify-full, whose certificates it does not have, it
// returns no connection and no problem once the server has answered over
// TCP.
func dialPostgres(u *url.URL) (conn net.Conn, addr, problem string) {
	addr = u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "5432")
	}
	conn, problem = dial("PostgreSQL", PostgresURLEnv, addr, startPostgres)
	if problem != "" {
		return nil, addr, problem
	}
	switch u.Query().Get("sslmode") {
	case "verify-ca", "verify-full":
		conn.Close()
		return nil, addr, ""
	case "", "prefer", "require":
		tc, err := negotiateTLS(conn)
		if err != nil {
			conn.Close()
			return nil, addr, notPostgres(addr, err)
		}
		conn = tc
	}
	return conn, addr, ""
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
// protocol 3.0) and reads the answers up to ReadyForQuery. It returns the
// problem when the server refused the user or the database, and an error
// when the server did not answer as PostgreSQL does.
//
// Without login it only checks: a server that asks for authentication has
// found usr acceptable so far, and the check stops there, with neither; an
// open session is ended at once (Terminate). With login it answers a
// request for the password in clear text or MD5 with password, and returns
// the open session's reader for the queries that follow.
func startSession(conn net.Conn, usr, db, password string, login bool) (r *bufio.Reader, problem string, err error) {
	var msg []byte
	msg = binary.BigEndian.AppendUint32(msg, 0) // the length, set below
	msg = binary.BigEndian.AppendUint32(msg, 3<<16)
	for _, kv := range [...]string{"user", usr, "database", db, "application_name", "nectarhookstest"} {
		msg = append(append(msg, kv...), 0)
	}
	msg = append(msg, 0)
	binary.BigEndian.PutUint32(msg, uint32(len(msg)))
	if _, err := conn.Write(msg); err != nil {
		return nil, "", err
	}
	r = bufio.NewReader(conn)
	var sc *scram   // the SCRAM exchange under way, if the server asked for one
	for range 100 { // a session starts in a handful of messages
		typ, body, err := readMessage(r)
		if err != nil {
			return nil, "", fmt.Errorf("reading the answer to StartupMessage: %w", err)
		}
		switch typ {
		case 'R': // Authentication*
			if len(body) < 4 {
				return nil, "", errors.New("answered StartupMessage with a short Authentication message")
			}
			switch code := binary.BigEndian.Uint32(body); {
			case code == 0: // AuthenticationOk: the role and database are checked next.
			case !login:
				return nil, "", nil // a password is asked for: the test's connection gives it
			case code == 3: // AuthenticationCleartextPassword
				err = writeMessage(conn, 'p', password)
			case code == 5 && len(body) == 8: // AuthenticationMD5Password, with its salt
				inner := md5.Sum([]byte(password + usr))
				outer := md5.Sum(append([]byte(hex.EncodeToString(inner[:])), body[4:]...))
				err = writeMessage(conn, 'p', "md5"+hex.EncodeToString(outer[:]))
			case code == 10: // AuthenticationSASL, with its mechanisms
				if !slices.Contains(strings.Split(string(body[4:]), "\x00"), "SCRAM-SHA-256") {
					return nil, "", fmt.Errorf("asks for SASL with none of SCRAM-SHA-256 among %q", body[4:])
				}
				sc = newSCRAM("", password, "")
				first := sc.first()
				initial := binary.BigEndian.AppendUint32(append([]byte("SCRAM-SHA-256"), 0), uint32(len(first)))
				err = writeRaw(conn, 'p', append(initial, first...))
			case code == 11 && sc != nil: // AuthenticationSASLContinue: server-first-message
				var final string
				if final, err = sc.final(string(body[4:])); err == nil {
					err = writeRaw(conn, 'p', []byte(final))
				}
			case code == 12 && sc != nil: // AuthenticationSASLFinal: server-final-message
				err = sc.verify(string(body[4:]))
			default:
				return nil, "", fmt.Errorf("asks for authentication of type %d; only trust, password, md5 and SCRAM-SHA-256 are spoken here", code)
			}
			if err != nil {
				return nil, "", err
			}
		case 'E': // ErrorResponse
			code, text := errorFields(body)
			if refusals[code] {
				return nil, text + " (SQLSTATE " + code + ")", nil
			}
			if login {
				return nil, "", errors.New(text + " (SQLSTATE " + code + ")")
			}
			// Something passing (too many connections, starting up): the
			// test's own connection will say.
			return nil, "", nil
		case 'Z': // ReadyForQuery: the session is open
			if !login {
				conn.Write([]byte{'X', 0, 0, 0, 4}) // Terminate
			}
			return r, "", nil
		case 'S', 'K', 'N', 'v': // ParameterStatus, BackendKeyData, NoticeResponse, NegotiateProtocolVersion
		default:
			return nil, "", fmt.Errorf("answered StartupMessage with a message of type %q", typ)
		}
	}
	return nil, "", errors.New("no ReadyForQuery after 100 messages")
}

// readMessage reads one backend message: its type and body.
func readMessage(r *bufio.Reader) (typ byte, body []byte, err error) {
	var head [5]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return 0, nil, err
	}
	n := int(binary.BigEndian.Uint32(head[1:])) - 4
	if n < 0 || n > 1<<20 {
		return 0, nil, fmt.Errorf("a message %q of length %d", head[0], n+4)
	}
	body = make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, nil, err
	}
	return head[0], body, nil
}

// writeMessage writes a frontend message of type typ whose body is text,
// NUL-terminated (Query and PasswordMessage).
func writeMessage(conn net.Conn, typ byte, text string) error {
	return writeRaw(conn, typ, append([]byte(text), 0))
}

// writeRaw writes a frontend message of type typ with body as it is
// (SASLInitialResponse and SASLResponse, which are not NUL-terminated).
func writeRaw(conn net.Conn, typ byte, body []byte) error {
	msg := binary.BigEndian.AppendUint32([]byte{typ}, uint32(4+len(body)))
	_, err := conn.Write(append(msg, body...))
	return err
}

// execPostgres runs statement (simple query protocol) in a session of its
// own on the server and database of u, as u's user, and returns the
// server's error, if any.
func execPostgres(u *url.URL, statement string) error {
	conn, _, problem := dialPostgres(u)
	switch {
	case problem != "":
		return errors.New(problem)
	case conn == nil:
		return errors.New("sslmode verify-ca and verify-full are not spoken here: use sslmode require or disable")
	}
	defer conn.Close()
	// Longer than a check's: CREATE DATABASE copies a template, and DROP
	// ends the sessions left in it, on a server other tests keep busy.
	conn.SetDeadline(time.Now().Add(time.Minute))
	usr, db := postgresUserDatabase(u)
	password, _ := u.User.Password()
	r, problem, err := startSession(conn, usr, db, password, true)
	switch {
	case err != nil:
		return err
	case problem != "":
		return errors.New(problem)
	}
	if err := writeMessage(conn, 'Q', statement); err != nil {
		return err
	}
	var failed error
	for {
		typ, body, err := readMessage(r)
		if err != nil {
			return fmt.Errorf("reading the answer to %q: %w", statement, err)
		}
		switch typ {
		case 'E':
			code, text := errorFields(body)
			failed = errors.New(text + " (SQLSTATE " + code + ")")
		case 'Z': // ReadyForQuery: the statement is done
			conn.Write([]byte{'X', 0, 0, 0, 4}) // Terminate
			return failed
		}
	}
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
