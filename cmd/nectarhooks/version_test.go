package main

import (
	"runtime/debug"
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestFormatVersion checks what version prints for the builds that must
// be told apart, fed the build information each would carry.
func TestFormatVersion(t *testing.T) {
	const rev = "24100c5a1b2c3d4e5f60718293a4b5c6d7e8f901"
	platform := []debug.BuildSetting{{Key: "GOOS", Value: "linux"}, {Key: "GOARCH", Value: "amd64"}}
	vcs := func(modified string) []debug.BuildSetting {
		return append([]debug.BuildSetting{
			{Key: "-buildmode", Value: "exe"},
			{Key: "vcs", Value: "git"},
			{Key: "vcs.revision", Value: rev},
			{Key: "vcs.time", Value: "2026-12-04T21:40:00Z"},
			{Key: "vcs.modified", Value: modified},
		}, platform...)
	}
	info := func(version string, settings []debug.BuildSetting) *debug.BuildInfo {
		return &debug.BuildInfo{GoVersion: "go1.24.4", Main: debug.Module{Path: "github.com/nectarhooks/nectarhooks/cmd/nectarhooks", Version: version}, Settings: settings}
	}
	tests := []struct {
		name string
		info *debug.BuildInfo
		want string
	}{
		{"go install @version: no VCS in the module cache", info("v1.2.0", platform),
			"nectarhooks v1.2.0 (go1.24.4 linux/amd64)"},
		{"a tagged checkout: the commit too", info("v1.2.0", vcs("false")),
			"nectarhooks v1.2.0 commit 24100c5a1b2c 2026-12-04T21:40:00Z (go1.24.4 linux/amd64)"},
		{"a pseudo-version already holds the commit", info("v0.0.0-20261204214000-24100c5a1b2c+dirty", vcs("true")),
			"nectarhooks v0.0.0-20261204214000-24100c5a1b2c+dirty (go1.24.4 linux/amd64)"},
		{"(devel) with a clean checkout", info("(devel)", vcs("false")),
			"nectarhooks (devel) commit 24100c5a1b2c 2026-12-04T21:40:00Z (go1.24.4 linux/amd64)"},
		{"(devel) with a modified checkout", info("(devel)", vcs("true")),
			"nectarhooks (devel) commit 24100c5a1b2c 2026-12-04T21:40:00Z, modified (go1.24.4 linux/amd64)"},
		{"(devel) without VCS: -buildvcs=false, go run", info("(devel)", platform),
			"nectarhooks (devel), no commit recorded (go1.24.4 linux/amd64)"},
		{"no version at all", info("", nil),
			"nectarhooks (devel), no commit recorded (go1.24.4)"},
		{"a short revision is kept whole", info("(devel)", []debug.BuildSetting{{Key: "vcs.revision", Value: "abc123"}}),
			"nectarhooks (devel) commit abc123 (go1.24.4)"},
		{"no build information", nil,
			"nectarhooks (unknown version: the binary carries no build information)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, formatVersion(tt.info))
		})
	}
}
