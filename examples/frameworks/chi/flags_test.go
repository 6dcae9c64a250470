package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantAddr string
		wantErr  string // "" for success
	}{
		{name: "default", args: nil, wantAddr: "127.0.0.1:8080"},
		{name: "-addr", args: []string{"-addr", "127.0.0.1:9090"}, wantAddr: "127.0.0.1:9090"},
		{name: "--addr=", args: []string{"--addr=:8080"}, wantAddr: ":8080"},
		{name: "unknown flag", args: []string{"-port", "80"}, wantErr: "-port"},
		{name: "missing value", args: []string{"-addr"}, wantErr: "addr"},
		{name: "stray argument", args: []string{"8080"}, wantErr: "unexpected argument"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr strings.Builder
			addr, err := parseFlags(tt.args, &stderr)
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				assert.Contains(t, stderr.String(), "-addr address", "the usage follows the error")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.wantAddr, addr)
			assert.Empty(t, stderr.String())
		})
	}
}
