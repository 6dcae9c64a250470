package readme_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nectarhooks/nectarhooks"
)

// The tables of errors in docs/errors.md and in the package documentation
// (doc.go) give each error's status; StatusCode must agree with every row,
// and every error must have a row in each, so that none of the three drifts
// from the others.

// documentedErrors are the errors the tables must list, by the name they
// list them under.
var documentedErrors = map[string]error{
	"ErrVerification":        nectarhooks.ErrVerification,
	"ErrMissingHeaders":      nectarhooks.ErrMissingHeaders,
	"ErrInvalidHeaders":      nectarhooks.ErrInvalidHeaders,
	"ErrNoMatchingSignature": nectarhooks.ErrNoMatchingSignature,
	"ErrMessageTooOld":       nectarhooks.ErrMessageTooOld,
	"ErrMessageTooNew":       nectarhooks.ErrMessageTooNew,
	"ErrInvalidMessageID":    nectarhooks.ErrInvalidMessageID,
	"ErrInvalidPayload":      nectarhooks.ErrInvalidPayload,
	"*PayloadError":          &nectarhooks.PayloadError{Err: nectarhooks.ErrInvalidPayload},
	"ErrReadBody":            nectarhooks.ErrReadBody,
	"ErrMethodNotAllowed":    nectarhooks.ErrMethodNotAllowed,
	"ErrBodyTooLarge":        nectarhooks.ErrBodyTooLarge,
	"ErrInFlight":            nectarhooks.ErrInFlight,
	"ErrCallbackTimeout":     nectarhooks.ErrCallbackTimeout,
	"ErrOverrunning":         nectarhooks.ErrOverrunning,
	"ErrQueueFull":           nectarhooks.ErrQueueFull,
	"ErrShuttingDown":        nectarhooks.ErrShuttingDown,
	"ErrStoreUnavailable":    nectarhooks.ErrStoreUnavailable,
	"*CallbackError":         &nectarhooks.CallbackError{Err: os.ErrInvalid},
	"ErrInvalidSecret":       nectarhooks.ErrInvalidSecret,
	"ErrAlreadyQueued":       nectarhooks.ErrAlreadyQueued,
	"ErrPermanent":           nectarhooks.ErrPermanent,
	"ErrDeadLettered":        nectarhooks.ErrDeadLettered,
	"ErrDeadLetterStore":     nectarhooks.ErrDeadLetterStore,
	"ErrDeadLettersFull":     nectarhooks.ErrDeadLettersFull,
	"ErrUnknownAccount":      nectarhooks.ErrUnknownAccount,
	"ErrKeyLookup":           nectarhooks.ErrKeyLookup,
	"ErrPrivateKey":          nectarhooks.ErrPrivateKey,
	"ErrStale":               nectarhooks.ErrStale,
	"ErrAlreadyProcessed":    nectarhooks.ErrAlreadyProcessed,
}

// errorRow is one row of a table of errors: the names in its first column
// and the status in its last.
type errorRow struct {
	names  []string
	status string
}

// markdownErrorRows reads the rows of docs/errors.md's table whose first
// column names errors in backquotes: | `ErrX`, `*Y` | means | 400 |
func markdownErrorRows(src string) []errorRow {
	var rows []errorRow
	row := regexp.MustCompile("(?m)^\\| (`[*A-Za-z]+`(?:, `[*A-Za-z]+`)*) \\| .* \\| ([^|]+) \\|$")
	name := regexp.MustCompile("`([*A-Za-z]+)`")
	for _, m := range row.FindAllStringSubmatch(src, -1) {
		var names []string
		for _, n := range name.FindAllStringSubmatch(m[1], -1) {
			names = append(names, n[1])
		}
		rows = append(rows, errorRow{names, strings.TrimSpace(m[2])})
	}
	return rows
}

// godocErrorRows reads the preformatted table of the package documentation
// that starts with the line "error  means  status": a row starts with a
// name at the margin and may go on over indented lines, the last of which
// ends with its status.
func godocErrorRows(src string) []errorRow {
	var rows []errorRow
	in := false
	status := regexp.MustCompile(`\s(\d{3})$`)
	for _, l := range strings.Split(src, "\n") {
		if !strings.HasPrefix(l, "//\t") {
			if in {
				break
			}
			continue
		}
		text := strings.TrimPrefix(l, "//\t")
		if !in {
			in = regexp.MustCompile(`^error\s{2,}means\s{2,}status$`).MatchString(text)
			continue
		}
		if !strings.HasPrefix(text, " ") {
			first := regexp.MustCompile(`\s{2,}`).Split(text, 2)[0]
			rows = append(rows, errorRow{names: strings.Split(first, ", ")})
		}
		if m := status.FindStringSubmatch(text); m != nil && len(rows) > 0 {
			rows[len(rows)-1].status = m[1]
		}
	}
	return rows
}

func TestErrorTablesMatchStatusCode(t *testing.T) {
	md, err := os.ReadFile(filepath.Join(repoRoot, "docs", "errors.md"))
	require.NoError(t, err)
	godoc, err := os.ReadFile(filepath.Join(repoRoot, "doc.go"))
	require.NoError(t, err)
	tables := map[string][]errorRow{
		"docs/errors.md": markdownErrorRows(string(md)),
		"doc.go":         godocErrorRows(string(godoc)),
	}
	for file, rows := range tables {
		t.Run(file, func(t *testing.T) {
			require.NotEmpty(t, rows, "%s has no table of errors", file)
			seen := map[string]bool{}
			for _, r := range rows {
				for _, name := range r.names {
					e, ok := documentedErrors[name]
					if !assert.True(t, ok, "%s lists %s, which this test does not know: add it to documentedErrors", file, name) {
						continue
					}
					seen[name] = true
					want, err := strconv.Atoi(r.status)
					if assert.NoError(t, err, "%s gives %q as the status of %s", file, r.status, name) {
						assert.Equal(t, want, nectarhooks.StatusCode(e), "%s: the status of %s", file, name)
					}
				}
			}
			for name := range documentedErrors {
				assert.True(t, seen[name], "%s has no row for %s", file, name)
			}
		})
	}
}

func TestErrorTableParsers(t *testing.T) {
	md := "| error | means | status |\n|---|---|---|\n| `ErrA`, `*B` | x | 401 |\n| `ErrC` | y, with | bars | 503 |\n| other | z | 1 |\n"
	assert.Equal(t, []errorRow{{[]string{"ErrA", "*B"}, "401"}, {[]string{"ErrC"}, "503"}}, markdownErrorRows(md))

	godoc := "// Text.\n//\n//\terror    means          status\n//\tErrA, *B  x              401\n//\t*C       y and\n//\t         more           500\n//\n// After.\n//\n//\tErrD  not a row  200\n"
	assert.Equal(t, []errorRow{{[]string{"ErrA", "*B"}, "401"}, {[]string{"*C"}, "500"}}, godocErrorRows(godoc))
}
