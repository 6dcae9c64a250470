package main

import (
	"math"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParseHeaders feeds verify's header parser the files people save:
// anything, since a capture can hold what any client sent. It must not
// panic, and what it accepts must be headers a request could carry.
func FuzzParseHeaders(f *testing.F) {
	f.Add([]byte("svix-id: msg_1\nsvix-timestamp: 1614265330\nsvix-signature: v1,abc=\n"))
	f.Add([]byte("> POST /hooks HTTP/1.1\n> Host: x\n> svix-id: msg_1\n< HTTP/1.1 200 OK\n"))
	f.Add([]byte(`{"svix-id": "msg_1", "svix-signature": ["v1,a=", "v1,b="]}`))
	f.Add([]byte("svix-id: msg_1\n\ncurl -X POST \"$URL\" \\\n  -H 'svix-id: msg_1' \\\n  --data-binary '{\"a\":\n1}'\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := parseHeaders(data)
		if err != nil {
			return
		}
		if len(h) == 0 {
			t.Fatal("accepted a file without headers")
		}
		for name := range h {
			if !isToken(name) {
				t.Fatalf("header name %q, not an HTTP token, from %q", name, data)
			}
		}
		_ = pickHeaders(h)
		_ = http.Header(h).Get("svix-signature")
	})
}

// FuzzEscapeControl checks that whatever a server answers, what is
// printed holds nothing a terminal acts on, and is valid UTF-8.
func FuzzEscapeControl(f *testing.F) {
	f.Add("plain answer")
	f.Add("\x1b]0;title\x07\x1b[2J")
	f.Add("\xff\xfe\u202e\u009b")
	f.Fuzz(func(t *testing.T, s string) {
		out := escapeControl(oneLine(s, maxShownBody))
		if !utf8.ValidString(out) {
			t.Fatalf("not UTF-8: %q", out)
		}
		for _, r := range out {
			if needsEscape(r) {
				t.Fatalf("%U left raw in %q", r, out)
			}
		}
	})
}

// FuzzShellQuote checks that sign's quoting and verify's reading of a curl
// command agree: every string quoted for the shell reads back as itself.
func FuzzShellQuote(f *testing.F) {
	f.Add("svix-id: msg_1")
	f.Add(`{"a": "it's"}`)
	f.Add("line\nbreak \\ and $HOME")
	f.Fuzz(func(t *testing.T, s string) {
		words, err := shellWords(shellQuote(s))
		if err != nil {
			t.Fatalf("%q quoted as %q: %v", s, shellQuote(s), err)
		}
		if s == "" {
			if len(words) != 1 || words[0] != "" {
				// An empty argument quotes as '' and reads back as one empty word.
				t.Fatalf("empty string read back as %q", words)
			}
			return
		}
		if len(words) != 1 || words[0] != s {
			t.Fatalf("%q quoted as %q read back as %q", s, shellQuote(s), words)
		}
	})
}

// FuzzPromValue feeds load -wait-url's metrics reader whatever a URL
// answers. It must not panic; what it reads is a finite sum, of a metric
// the page names; and a line it writes itself reads back.
func FuzzPromValue(f *testing.F) {
	f.Add("# HELP x\nnectarhooks_queue_backlog 3\nnectarhooks_queue_backlog{queue=\"a\"} 4\n", "nectarhooks_queue_backlog", 1.5)
	f.Add("m{l=\"}\\\"\"} 1\nm_total 9\n", "m", 0.0)
	f.Add("m{unterminated 1\n", "m", -2.0)
	f.Add("m 1e308\nm 1e308\n", "m", 1e308)
	f.Fuzz(func(t *testing.T, text, name string, v float64) {
		if !validMetricName(name) {
			return
		}
		if sum, err := promValue(text, name); err == nil {
			if math.IsNaN(sum) || math.IsInf(sum, 0) {
				t.Fatalf("promValue(%q, %q) = %v, not a finite sum", text, name, sum)
			}
			if !strings.Contains(text, name) {
				t.Fatalf("promValue(%q, %q) = %v from a page without the metric", text, name, sum)
			}
		}
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return
		}
		line := name + "{queue=\"default\"} " + strconv.FormatFloat(v, 'g', -1, 64) + "\n"
		if got, err := promValue("# TYPE "+name+" gauge\n"+line, name); err != nil || got != v {
			t.Fatalf("promValue of %q = %v, %v; want %v", line, got, err, v)
		}
	})
}
