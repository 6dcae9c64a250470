package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"unicode"
	"unicode/utf8"
)

// escapeControl returns s with everything that is not printable text
// written as an escape, the way strconv.Quote writes it (\x1b, \u202e),
// and printable text left as it is: C0 and C1 control characters (ESC and
// CSI start the sequences that move the cursor, retitle the window or
// rewrite what was printed), DEL, format characters (the bidirectional
// overrides, embeddings and isolates, and the marks U+200E, U+200F and
// U+061C, which reorder what is shown), line and paragraph separators,
// and bytes that are not UTF-8. A server's answer and a captured header
// are text from elsewhere; printed raw, they could hide or fake the lines
// around them. Everything the CLI prints that came from elsewhere goes
// through here.
func escapeControl(s string) string {
	clean := true
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if needsEscape(r) {
			clean = false
			break
		}
		i += size
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case !needsEscape(r):
			b.WriteString(s[i : i+size])
		case r < 0x80:
			fmt.Fprintf(&b, `\x%02x`, r)
		case r <= 0xffff:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			fmt.Fprintf(&b, `\U%08x`, r)
		}
		i += size
	}
	return b.String()
}

// needsEscape reports the runes escapeControl writes as escapes: all but
// the graphic ones (letters, marks, numbers, punctuation, symbols and
// spaces). What that leaves out is the control (Cc) and format (Cf)
// characters, the line and paragraph separators, private-use and
// unassigned code points, which a terminal may act on or draw as
// anything, and utf8.RuneError, which decoding yields for a byte that is
// not UTF-8 (a genuine U+FFFD is escaped too, which is harmless).
func needsEscape(r rune) bool {
	if r == utf8.RuneError {
		return true
	}
	return !unicode.IsGraphic(r)
}

// isTerminal reports whether w is a terminal, so that the live progress
// line, which rewrites itself with carriage returns, is drawn only where
// someone watches it and never lands in a log file or a pipe. A character
// device is a terminal for this purpose (os.Stdin of /dev/null is one too,
// but progress is only ever written to stderr).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	info, err := f.Stat()
	return err == nil && info.Mode()&os.ModeCharDevice != 0
}
