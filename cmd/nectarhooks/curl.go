package main

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// shellWords splits s into words as a POSIX shell would for the commands
// sign prints: blanks separate words, backslash-newline continues a line,
// single quotes keep everything, double quotes keep all but \" and \\, and
// a backslash outside quotes escapes the next character. Expansions are
// left as written.
func shellWords(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && i+1 < len(s) && s[i+1] == '\n':
			i++
		case c == '\\' && i+1 < len(s):
			cur.WriteByte(s[i+1])
			inWord = true
			i++
		case c == '\'':
			end := strings.IndexByte(s[i+1:], '\'')
			if end < 0 {
				return nil, errors.New("unterminated single quote")
			}
			cur.WriteString(s[i+1 : i+1+end])
			inWord = true
			i += end + 1
		case c == '"':
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && (s[i+1] == '"' || s[i+1] == '\\') {
					i++
				}
				cur.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, errors.New("unterminated double quote")
			}
			inWord = true
		case c == ' ' || c == '\t' || c == '\n':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

// curlCommand finds a curl command among lines, as sign prints it (or as
// a browser's "copy as cURL" gives it): the first line starting with
// "curl ", and the lines that its trailing backslashes continue onto or
// that a quoted argument spans (sign quotes an inline body, newlines
// included). It returns the command's text and the range of lines it
// spans; ok is false when there is none.
func curlCommand(lines []string) (cmd string, first, last int, ok bool) {
	first = -1
	for i, l := range lines {
		if strings.HasPrefix(strings.TrimPrefix(strings.TrimSpace(l), "$ "), "curl ") {
			first = i
			break
		}
	}
	if first < 0 {
		return "", 0, 0, false
	}
	var b strings.Builder
	for last = first; last < len(lines); last++ {
		l := strings.TrimRight(lines[last], "\r")
		if last == first {
			l = strings.TrimPrefix(strings.TrimSpace(l), "$ ")
		}
		b.WriteString(l)
		b.WriteByte('\n')
		continued := strings.HasSuffix(strings.TrimRight(l, " \t"), "\\")
		if _, err := shellWords(b.String()); !continued && err == nil {
			break
		}
	}
	return b.String(), first, min(last, len(lines)-1), true
}

// curlHeaders returns the headers a curl command's -H and --header
// arguments set.
func curlHeaders(cmd string) (http.Header, error) {
	words, err := shellWords(cmd)
	if err != nil {
		return nil, fmt.Errorf("the curl command cannot be read: %v", err)
	}
	h := make(http.Header)
	for i := 0; i < len(words); i++ {
		var arg string
		switch w := words[i]; {
		case w == "-H" || w == "--header":
			if i+1 == len(words) {
				return nil, fmt.Errorf("the curl command ends with %s and no header", w)
			}
			i++
			arg = words[i]
		case strings.HasPrefix(w, "-H") && len(w) > 2:
			arg = w[2:]
		case strings.HasPrefix(w, "--header="):
			arg = strings.TrimPrefix(w, "--header=")
		default:
			continue
		}
		name, value, ok := strings.Cut(arg, ":")
		name = strings.TrimSpace(name)
		if !ok || !isToken(name) {
			return nil, fmt.Errorf("the curl command's header %q is not \"Name: value\"", cut(arg, 60))
		}
		h.Add(name, strings.TrimSpace(value))
	}
	return h, nil
}
