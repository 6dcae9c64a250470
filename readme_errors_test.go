package nectarhooks_test

import (
	"os"
	"regexp"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nectarhooks/nectarhooks"
)

// The README's table of errors gives each error's status; StatusCode must
// agree with every row, so that neither drifts from the other.
func TestReadmeErrorTableMatchesStatusCode(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	require.NoError(t, err)
	errs := map[string]error{
		"ErrVerification":        nectarhooks.ErrVerification,
		"ErrMissingHeaders":      nectarhooks.ErrMissingHeaders,
		"ErrInvalidHeaders":      nectarhooks.ErrInvalidHeaders,
		"ErrNoMatchingSignature": nectarhooks.ErrNoMatchingSignature,
		"ErrMessageTooOld":       nectarhooks.ErrMessageTooOld,
		"ErrMessageTooNew":       nectarhooks.ErrMessageTooNew,
		"ErrInvalidPayload":      nectarhooks.ErrInvalidPayload,
		"ErrReadBody":            nectarhooks.ErrReadBody,
		"ErrMethodNotAllowed":    nectarhooks.ErrMethodNotAllowed,
		"ErrBodyTooLarge":        nectarhooks.ErrBodyTooLarge,
		"ErrInFlight":            nectarhooks.ErrInFlight,
		"ErrCallbackTimeout":     nectarhooks.ErrCallbackTimeout,
		"ErrQueueFull":           nectarhooks.ErrQueueFull,
		"ErrShuttingDown":        nectarhooks.ErrShuttingDown,
		"ErrStoreUnavailable":    nectarhooks.ErrStoreUnavailable,
		"*CallbackError":         &nectarhooks.CallbackError{Err: os.ErrInvalid},
		"ErrInvalidSecret":       nectarhooks.ErrInvalidSecret,
	}
	rows := regexp.MustCompile("(?m)^\\| `([*A-Za-z]+)`[^|]* \\| .* \\| ([^|]+) \\|$").FindAllSubmatch(readme, -1)
	seen := map[string]bool{}
	for _, row := range rows {
		name, status := string(row[1]), string(row[2])
		e, ok := errs[name]
		if !ok {
			continue // another table's row
		}
		seen[name] = true
		t.Run(name, func(t *testing.T) {
			want, err := strconv.Atoi(status)
			require.NoError(t, err, "the README gives %q as the status", status)
			assert.Equal(t, want, nectarhooks.StatusCode(e))
		})
	}
	for name := range errs {
		assert.True(t, seen[name], "%s has no row in the README's table of errors", name)
	}
}
