package nectarhookstest

import (
	"bufio"
	"crypto/md5"
	"encoding/binary"
	"encoding/hex"
	"io"
	"net"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestPostgresDatabase makes databases on the real server in a subtest:
// each can be connected to while the subtest runs, and none after its
// cleanup. The check is checkPostgres itself, which PostgresURL would
// answer from its verdict of the database kept from before the drop.
func TestPostgresDatabase(t *testing.T) {
	admin, err := url.Parse(PostgresURL(t))
	require.NoError(t, err)
	var dbURLs []string
	parent := t
	t.Run("while the test runs", func(t *testing.T) {
		for range 2 {
			dbURL := PostgresDatabase(t, "nh_pgdb_")
			u, err := url.Parse(dbURL)
			require.NoError(t, err)
			name := strings.TrimPrefix(u.Path, "/")
			assert.Regexp(t, `^nh_pgdb_[0-9a-f]{12}$`, name)
			assert.Equal(t, admin.Host, u.Host)
			assert.Equal(t, admin.User.String(), u.User.String())
			assert.Equal(t, admin.RawQuery, u.RawQuery, "the URL keeps PostgresURL's parameters")
			assert.Empty(t, checkPostgres(u), "database %s exists", name)
			// A session left open until after the drop, as a leaked pool's
			// would be: WITH (FORCE) ends it.
			conn, _, problem := dialPostgres(u)
			require.Empty(t, problem)
			parent.Cleanup(func() { conn.Close() })
			usr, db := postgresUserDatabase(u)
			password, _ := u.User.Password()
			_, problem, err = startSession(conn, usr, db, password, true)
			require.NoError(t, err)
			require.Empty(t, problem)
			assert.NotContains(t, dbURLs, dbURL)
			dbURLs = append(dbURLs, dbURL)
		}
	})
	require.Len(t, dbURLs, 2)
	for _, dbURL := range dbURLs {
		u, err := url.Parse(dbURL)
		require.NoError(t, err)
		// A logged-in session, not checkPostgres: behind a password the
		// check stops before the server looks the database up.
		assert.ErrorContains(t, execPostgres(u, "SELECT 1"), "SQLSTATE 3D000", "%s is dropped after the test", dbURL)
	}
}

// TestPostgresDatabaseDbname checks that a dbname parameter, which wins
// over the URL's path, names the new database too.
func TestPostgresDatabaseDbname(t *testing.T) {
	base, err := url.Parse(PostgresURL(t))
	require.NoError(t, err)
	usr, db := postgresUserDatabase(base)
	q := base.Query()
	q.Set("dbname", db)
	q.Set("user", usr)
	base.Path, base.RawQuery = "/ignored", q.Encode()
	t.Setenv(PostgresURLEnv, base.String())
	u, err := url.Parse(PostgresDatabase(t, "nh_pgdb_"))
	require.NoError(t, err)
	assert.Equal(t, u.Path, "/"+u.Query().Get("dbname"))
	assert.Empty(t, checkPostgres(u))
}

// TestExecPostgresError checks that a statement the server refuses comes
// back as an error with its SQLSTATE.
func TestExecPostgresError(t *testing.T) {
	u, err := url.Parse(PostgresURL(t))
	require.NoError(t, err)
	err = execPostgres(u, "SELECT * FROM nh_no_such_table")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "SQLSTATE 42P01")
	require.NoError(t, execPostgres(u, "SELECT 1"))
}

func TestValidDatabasePrefix(t *testing.T) {
	for prefix, want := range map[string]bool{
		"nh_river_": true, "_x": true, "a1": true, strings.Repeat("a", 50): true,
		"": false, "1nh": false, "NH_": false, "nh-x": false, "nh x": false, "nh;drop": false,
		`nh"`: false, strings.Repeat("a", 51): false, "ñ": false,
	} {
		assert.Equal(t, want, validDatabasePrefix(prefix), "%q", prefix)
	}
}

// TestExecPostgresLogin runs execPostgres against a stand-in server that
// asks for the password as each test case says, and checks what came back.
func TestExecPostgresLogin(t *testing.T) {
	inner := md5.Sum([]byte("s3cret" + "alice"))
	outer := md5.Sum(append([]byte(hex.EncodeToString(inner[:])), 1, 2, 3, 4))
	tests := []struct {
		name     string
		auth     []byte // the Authentication request's body
		password string // the PasswordMessage wanted; "" for none
		wantErr  string
	}{
		{name: "trust", auth: []byte{0, 0, 0, 0}},
		{name: "clear text", auth: []byte{0, 0, 0, 3}, password: "s3cret"},
		{name: "md5", auth: []byte{0, 0, 0, 5, 1, 2, 3, 4}, password: "md5" + hex.EncodeToString(outer[:])},
		{name: "SCRAM-SHA-256-PLUS only", auth: append([]byte{0, 0, 0, 10}, "SCRAM-SHA-256-PLUS\x00\x00"...), wantErr: "none of SCRAM-SHA-256"},
		{name: "GSSAPI", auth: []byte{0, 0, 0, 7}, wantErr: "authentication of type 7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			defer l.Close()
			got := make(chan []string, 1) // the password, then the query
			go func() {
				conn, err := l.Accept()
				if err != nil {
					return
				}
				defer conn.Close()
				r := bufio.NewReader(conn)
				var head [4]byte
				io.ReadFull(r, head[:])
				io.CopyN(io.Discard, r, int64(binary.BigEndian.Uint32(head[:])-4)) // StartupMessage
				conn.Write(message('R', tt.auth...))
				var seen []string
				if tt.password != "" {
					_, body, _ := readMessage(r)
					seen = append(seen, strings.TrimSuffix(string(body), "\x00"))
					conn.Write(message('R', 0, 0, 0, 0))
				}
				if tt.wantErr == "" {
					conn.Write(message('Z', 'I'))
					_, body, _ := readMessage(r)
					seen = append(seen, strings.TrimSuffix(string(body), "\x00"))
					conn.Write(message('C', []byte("SELECT 1\x00")...))
					conn.Write(message('Z', 'I'))
				}
				got <- seen
			}()
			u := &url.URL{Scheme: "postgres", User: url.UserPassword("alice", "s3cret"), Host: l.Addr().String(),
				Path: "/books", RawQuery: "sslmode=disable"}
			err = execPostgres(u, "SELECT 1")
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			want := []string{"SELECT 1"}
			if tt.password != "" {
				want = append([]string{tt.password}, want...)
			}
			assert.Equal(t, want, <-got)
		})
	}
}

// message is a PostgreSQL backend message.
func message(typ byte, body ...byte) []byte {
	return append(binary.BigEndian.AppendUint32([]byte{typ}, uint32(4+len(body))), body...)
}

// TestSCRAMRFC7677 holds the SCRAM-SHA-256 client to the example exchange
// of RFC 7677, section 3: user "user", password "pencil".
func TestSCRAMRFC7677(t *testing.T) {
	sc := newSCRAM("user", "pencil", "rOprNGfwEbeRWgbNEkqO")
	assert.Equal(t, "n,,n=user,r=rOprNGfwEbeRWgbNEkqO", sc.first())
	final, err := sc.final("r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")
	require.NoError(t, err)
	assert.Equal(t, "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=", final)
	require.NoError(t, sc.verify("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="))
	assert.ErrorContains(t, sc.verify("v=AAAATRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="), "does not match")
	assert.ErrorContains(t, sc.verify("e=invalid-proof"), "invalid-proof")

	_, err = newSCRAM("user", "pencil", "abc").final("r=xyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")
	assert.ErrorContains(t, err, "nonce", "a server nonce that does not extend ours is refused")
}

// TestExecPostgresSCRAM runs a SCRAM-SHA-256 login against a stand-in
// server: the messages are framed as PostgreSQL wants them, and a server
// whose final signature is wrong is refused rather than trusted.
func TestExecPostgresSCRAM(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	seen := make(chan [2]string, 1) // SASLInitialResponse, SASLResponse
	go func() {
		conn, err := l.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		r := bufio.NewReader(conn)
		var head [4]byte
		io.ReadFull(r, head[:])
		io.CopyN(io.Discard, r, int64(binary.BigEndian.Uint32(head[:])-4)) // StartupMessage
		conn.Write(message('R', append([]byte{0, 0, 0, 10}, "SCRAM-SHA-256\x00\x00"...)...))
		_, initial, _ := readMessage(r)
		first := string(initial[len("SCRAM-SHA-256\x00")+4:])
		nonce := first[strings.Index(first, "r=")+2:]
		conn.Write(message('R', append([]byte{0, 0, 0, 11}, "r="+nonce+"srv,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"...)...))
		_, response, _ := readMessage(r)
		seen <- [2]string{string(initial), string(response)}
		conn.Write(message('R', append([]byte{0, 0, 0, 12}, "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="...)...))
	}()
	u := &url.URL{Scheme: "postgres", User: url.UserPassword("alice", "s3cret"), Host: l.Addr().String(),
		Path: "/books", RawQuery: "sslmode=disable"}
	err = execPostgres(u, "SELECT 1")
	require.ErrorContains(t, err, "signature does not match")
	got := <-seen
	assert.True(t, strings.HasPrefix(got[0], "SCRAM-SHA-256\x00"), "%q", got[0])
	assert.Contains(t, got[0], "n,,n=,r=")
	assert.Regexp(t, `^c=biws,r=[A-Za-z0-9+/]+srv,p=[A-Za-z0-9+/]+=*$`, got[1])
}
