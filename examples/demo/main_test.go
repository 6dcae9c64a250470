package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nectarhooks/nectarhooks"
)

// TestRun runs the demo as `go run ./examples/demo` does and checks that
// it reports success with one line per delivery.
func TestRun(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, run(&out), out.String())

	for _, d := range deliveries() {
		t.Run(d.label, func(t *testing.T) {
			assert.Contains(t, out.String(), d.label)
			assert.Contains(t, out.String(), d.wantResult)
		})
	}
	assert.True(t, strings.HasSuffix(out.String(), "all deliveries answered and handled as expected\n"), out.String())
}

func TestSentinelName(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{err: nectarhooks.ErrNoMatchingSignature, want: "ErrNoMatchingSignature"},
		{err: nectarhooks.ErrMessageTooOld, want: "ErrMessageTooOld"},
		{err: nectarhooks.ErrMissingHeaders, want: "ErrMissingHeaders"},
		{err: errors.New("something else"), want: "something else"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			assert.Equal(t, tt.want, sentinelName(tt.err))
		})
	}
}
