package nectarhookstest

import (
	"net"
	"net/url"
	"os"
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
	// user root and database test.
	DefaultPostgresURL = "postgres://root@127.0.0.1:5432/test?sslmode=disable"
	// DefaultRedisAddr is a local Redis on its standard port.
	DefaultRedisAddr = "127.0.0.1:6379"
)

// PostgresURL returns the URL of the PostgreSQL server tests use
// (PostgresURLEnv, else DefaultPostgresURL) once a TCP connection to it
// succeeds. When none does it skips the test with a message saying how to
// start one, or fails it when the CI variable is set, so that a CI run
// cannot pass by skipping. Tests should keep to tables (or databases) of
// their own, since others may share the server.
func PostgresURL(tb testing.TB) string {
	tb.Helper()
	raw := env(PostgresURLEnv, DefaultPostgresURL)
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		tb.Fatalf("%s=%q: not a postgres:// URL with a host: %v", PostgresURLEnv, raw, err)
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "5432")
	}
	reachable(tb, "PostgreSQL", PostgresURLEnv, host,
		"start one (Debian: apt-get install postgresql, then pg_ctlcluster 15 main start, and create a role root with database test), or point "+PostgresURLEnv+" at one")
	return raw
}

// RedisAddr returns the host:port of the Redis server tests use
// (RedisAddrEnv, else DefaultRedisAddr) once a TCP connection to it
// succeeds; otherwise it skips or fails the test as PostgresURL does.
// Tests should keep to key prefixes of their own.
func RedisAddr(tb testing.TB) string {
	tb.Helper()
	addr := env(RedisAddrEnv, DefaultRedisAddr)
	reachable(tb, "Redis", RedisAddrEnv, addr,
		"start one (redis-server --daemonize yes --port 6379 --save \"\"), or point "+RedisAddrEnv+" at one")
	return addr
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// reachable skips or fails tb unless addr accepts a TCP connection.
func reachable(tb testing.TB, what, envName, addr, howto string) {
	tb.Helper()
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err == nil {
		conn.Close()
		return
	}
	msg := what + " is not reachable at " + addr + " (" + envName + "): " + err.Error() + "; " + howto
	if os.Getenv("CI") != "" {
		tb.Fatal(msg + " [CI is set, so this fails instead of skipping]")
	}
	tb.Skip(msg)
}
