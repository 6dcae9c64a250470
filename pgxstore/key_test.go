package pgxstore

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestKey(t *testing.T) {
	t.Parallel()
	tests := []struct {
		id    string
		plain bool
	}{
		{"msg_p5jXN8AQM9LWM0D4loKWxJek", true},
		{"", true},
		{"msg_\u00e9 ~", true},
		{strings.Repeat("x", maxPlainID), true},
		{strings.Repeat("x", maxPlainID+1), false},
		{"a\x00b", false},
		{"tab\t", false},
		{"del\x7f", false},
		{"\xff", false},
		{hashedPrefix + "abc", false},
	}
	for _, tt := range tests {
		got := key(tt.id)
		if tt.plain {
			assert.Equal(t, tt.id, got)
			continue
		}
		assert.True(t, strings.HasPrefix(got, hashedPrefix), "key(%q) = %q", tt.id, got)
		assert.Len(t, got, len(hashedPrefix)+64)
		assert.NotEqual(t, got, key(got), "an id spelled like a stored form has a form of its own")
	}
	assert.NotEqual(t, key(strings.Repeat("x", 2000)+"1"), key(strings.Repeat("x", 2000)+"2"))
}

func TestParseToken(t *testing.T) {
	t.Parallel()
	for range 100 {
		n := newToken()
		tok := formatToken(n)
		require.Equal(t, n, parseToken(tok), "token %q", tok)
		for _, other := range []string{strings.ToUpper(tok) + "Z", "+" + tok, "0" + tok, tok + " ", " " + tok, tok + "0"} {
			assert.NotEqual(t, n, parseToken(other), "%q read as the token %q", other, tok)
		}
	}
	for _, bad := range []string{"", "0", "-1", "-zz", "not a token", "zzzzzzzzzzzzzzzzzzzzzzzz", "1_000"} {
		assert.Zero(t, parseToken(bad), "parseToken(%q)", bad)
	}
}
