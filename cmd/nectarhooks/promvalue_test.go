package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestPromValue checks the reading of a metric from a Prometheus text
// exposition: samples of the named metric summed, over label sets and
// whatever the labels' values hold, and no other metric's.
func TestPromValue(t *testing.T) {
	tests := []struct {
		name, text, metric string
		want               float64
		wantErr            string
	}{
		{"one sample", "q 3\n", "q", 3, ""},
		{"with a timestamp", "q 3 1700000000000\n", "q", 3, ""},
		{"summed over label sets", "q{a=\"1\"} 2\nq{a=\"2\"} 5\n", "q", 7, ""},
		{"a } and a quote inside a label value", "q{a=\"}\\\"{\"} 4\n", "q", 4, ""},
		{"comments and other metrics left out", "# HELP q the backlog\n# TYPE q gauge\nq_total 9\nqq 8\nq 1\nother{q=\"q\"} 7\n", "q", 1, ""},
		{"a float and an exponent", "q 0.5\nq{b=\"x\"} 1e1\n", "q", 10.5, ""},
		{"zero", "q{a=\"1\"} 0\nq{a=\"2\"} 0.0\n", "q", 0, ""},
		{"CRLF and indentation", "  q 2\r\n", "q", 2, ""},
		{"absent", "q_total 3\n", "q", 0, "no metric q in the answer"},
		{"in a comment only", "# q 3\n", "q", 0, "no metric q in the answer"},
		{"labels never closed", "q{a=\"1\" 3\n", "q", 0, "has no end to its labels"},
		{"no value", "q{a=\"1\"}\n", "q", 0, "has no value"},
		{"not a number", "q three\n", "q", 0, "has no number for a value"},
		{"NaN is no backlog", "q NaN\n", "q", 0, "has no number for a value"},
		{"an escape in the quoted line", "q \x1b[2J\n", "q", 0, `\x1b[2J`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := promValue(tt.text, tt.metric)
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				requireInert(t, err.Error())
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestValidMetricName(t *testing.T) {
	for name, want := range map[string]bool{
		"nectarhooks_queue_depth": true, "river:jobs_available": true, "_x": true, "a1": true,
		"": false, "1a": false, "a-b": false, "a b": false, `a{b="c"}`: false, "é": false,
	} {
		t.Run(name, func(t *testing.T) {
			assert.Equal(t, want, validMetricName(name))
		})
	}
}
