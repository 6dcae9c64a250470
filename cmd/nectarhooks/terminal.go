package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"unicode/utf8"
)

// escapeControl returns s with everything a terminal would act on instead
// of showing written as an escape: C0 and C1 control characters (ESC
// starts the sequences that move the cursor, retitle the window or
// rewrite what was printed), DEL, the bidirectional overrides that reorder
// what is shown, and bytes that are not UTF-8. A server's answer and a
// captured header are text from elsewhere; printed raw, they could hide
// or fake the lines around them.
func escapeControl(s string) string {
	clean := true
	for _, r := range s {
		if needsEscape(r) {
			clean = false
			break
		}
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
		case r < 0x80 && needsEscape(r):
			fmt.Fprintf(&b, `\x%02x`, r)
		case needsEscape(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// needsEscape reports the runes escapeControl writes as escapes.
func needsEscape(r rune) bool {
	switch {
	case r < 0x20, r == 0x7f, r >= 0x80 && r <= 0x9f:
		return true
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069: // bidi embeddings, overrides, isolates
		return true
	case r == utf8.RuneError:
		return true
	}
	return false
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
