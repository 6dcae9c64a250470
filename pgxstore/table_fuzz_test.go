package pgxstore

import (
	"errors"
	"strings"
	"testing"
)

// FuzzParseTable: parseTable either refuses a name with ErrInvalidTable or
// accepts one made only of the allowed bytes, which it quotes as is,
// within PostgreSQL's identifier limit for the index too.
func FuzzParseTable(f *testing.F) {
	for _, s := range []string{"nectarhooks_messages", "app.webhooks", "", ".", "a.b.c", `x"; DROP TABLE t; --`, "1abc", "tablé"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := parseTable(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidTable) {
				t.Fatalf("parseTable(%q): %v, not ErrInvalidTable", s, err)
			}
			return
		}
		want := `"` + got.name + `"`
		joined := got.name
		if got.schema != "" {
			want = `"` + got.schema + `".` + want
			joined = got.schema + "." + got.name
		}
		if joined != s {
			t.Fatalf("parseTable(%q) = %+v, which is not the same name", s, got)
		}
		if got.sql() != want {
			t.Fatalf("parseTable(%q).sql() = %s, want %s", s, got.sql(), want)
		}
		if n := len(got.name + indexSuffix); n > maxIdentifier {
			t.Fatalf("parseTable(%q): index name of %d bytes", s, n)
		}
		for _, part := range []string{got.schema, got.name} {
			if strings.Trim(part, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") != "" || len(part) > maxIdentifier {
				t.Fatalf("parseTable(%q) accepted part %q", s, part)
			}
		}
	})
}
