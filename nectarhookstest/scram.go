package nectarhookstest

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// scram is the client side of SCRAM-SHA-256 (RFC 5802, RFC 7677), the
// password authentication PostgreSQL uses by default since version 14, so
// that PostgresDatabase logs in wherever the drivers of the modules'
// own tests (pgx) would. No channel binding: the session's TLS, when there
// is one, is not bound ("n,,").
type scram struct {
	password    string
	clientFirst string // client-first-message-bare: "n=user,r=nonce"
	serverSig   []byte // the ServerSignature the server must prove itself with
}

// newSCRAM starts an exchange for user (PostgreSQL ignores it and takes
// the session's user: it sends "") with a fresh client nonce, or nonce
// when one is given (tests).
func newSCRAM(user, password, nonce string) *scram {
	if nonce == "" {
		b := make([]byte, 18)
		rand.Read(b)
		nonce = base64.RawStdEncoding.EncodeToString(b)
	}
	return &scram{password: password, clientFirst: "n=" + user + ",r=" + nonce}
}

// first returns the client-first-message.
func (s *scram) first() string { return "n,," + s.clientFirst }

// final answers the server-first-message with the client-final-message,
// the proof that the client knows the password.
func (s *scram) final(serverFirst string) (string, error) {
	attrs := scramAttributes(serverFirst)
	nonce, salt64, iter := attrs["r"], attrs["s"], attrs["i"]
	if !strings.HasPrefix(nonce, s.clientFirst[strings.Index(s.clientFirst, ",r=")+3:]) {
		return "", errors.New("SCRAM: the server's nonce does not extend ours")
	}
	salt, err := base64.StdEncoding.DecodeString(salt64)
	if err != nil {
		return "", fmt.Errorf("SCRAM: salt: %w", err)
	}
	n, err := strconv.Atoi(iter)
	if err != nil || n < 1 {
		return "", fmt.Errorf("SCRAM: iteration count %q", iter)
	}
	salted, err := pbkdf2.Key(sha256.New, s.password, salt, n, sha256.Size)
	if err != nil {
		return "", fmt.Errorf("SCRAM: %w", err)
	}
	withoutProof := "c=biws,r=" + nonce // biws: base64 of "n,,"
	auth := []byte(s.clientFirst + "," + serverFirst + "," + withoutProof)
	clientKey := mac(salted, []byte("Client Key"))
	storedKey := sha256.Sum256(clientKey)
	proof := mac(storedKey[:], auth)
	for i := range proof {
		proof[i] ^= clientKey[i]
	}
	s.serverSig = mac(mac(salted, []byte("Server Key")), auth)
	return withoutProof + ",p=" + base64.StdEncoding.EncodeToString(proof), nil
}

// verify checks the server-final-message: a server that cannot prove it
// knows the password (or reports an error) is refused.
func (s *scram) verify(serverFinal string) error {
	attrs := scramAttributes(serverFinal)
	if e, ok := attrs["e"]; ok {
		return fmt.Errorf("SCRAM: the server refused: %s", e)
	}
	v, err := base64.StdEncoding.DecodeString(attrs["v"])
	if err != nil || s.serverSig == nil || !hmac.Equal(v, s.serverSig) {
		return errors.New("SCRAM: the server's signature does not match")
	}
	return nil
}

func mac(key, msg []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write(msg)
	return h.Sum(nil)
}

// scramAttributes splits "a=1,b=2" into its attributes.
func scramAttributes(msg string) map[string]string {
	out := map[string]string{}
	for _, kv := range strings.Split(msg, ",") {
		if k, v, ok := strings.Cut(kv, "="); ok && len(k) == 1 {
			out[k] = v
		}
	}
	return out
}
