package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nectarhooks/nectarhooks/nectarhookstest"
)

// TestLoadHTML runs load against the example receiver with forged and
// stale deliveries mixed in, and reads the HTML report it writes: the
// curve, the tables, and the receiver's reasons escaped.
func TestLoadHTML(t *testing.T) {
	secret := nectarhookstest.NewSecret()
	rcv := newReceiver(t, secret)
	path := filepath.Join(t.TempDir(), "report.html")
	res := runCLI(t, invocation{vars: map[string]string{secretEnv: secret}},
		"load", "-url", rcv.url, "-n", "300", "-c", "4", "-tamper", "0.1", "-stale", "0.1", "-html", path)
	require.Equal(t, exitOK, res.code, res.stdout+res.stderr)
	assert.Contains(t, res.stderr, "report written to "+path)
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	page := string(data)

	points := regexp.MustCompile(`<polyline class="curve" points="([^"]+)"`).FindStringSubmatch(page)
	require.NotNil(t, points, "the curve is drawn")
	assert.Len(t, strings.Fields(points[1]), curveNines*10+1, "ten points per nine, 0% to 99.999%")
	assert.Contains(t, page, `<p class="verdict pass" id="verdict">PASS: `)
	assert.Regexp(t, `<tr><td>200</td><td class="n">300</td></tr>`, page)
	assert.Regexp(t, `<tr><td>401</td><td class="n">60</td></tr>`, page)
	assert.Regexp(t, `<tr><td>forged</td><td class="n">30</td><td class="n">0</td><td>✓ none</td></tr>`, page)
	assert.Contains(t, page, "p99 ")
	assert.NotContains(t, page, "<script", "nothing runs")
	assert.NotRegexp(t, `(src|href|xmlns)=`, page, "nothing is fetched")
}

// TestLoadHTMLEscapes writes a report whose strings are hostile.
func TestLoadHTMLEscapes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "report.html")
	r := loadReport{
		Status:   map[string]int64{"<b>500</b>": 1},
		Refusals: []refusalReport{{What: "genuine", Status: "500", Reason: `<script>alert(1)</script>`, Count: 1}},
		Failures: []failureReport{{Error: `<img src=x onerror=alert(1)>`, Count: 1}},
		Hints:    []string{"<i>hint</i>"},
	}
	require.NoError(t, writeLoadHTML(path, r, `load -url "http://x/<svg onload=alert(1)>"`))
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	page := string(data)
	for _, raw := range []string{"<script>", "<img src=x", "<b>500", "<i>hint", "<svg onload"} {
		assert.NotContains(t, page, raw)
	}
	assert.Contains(t, page, "&lt;script&gt;alert(1)&lt;/script&gt;")
	assert.Contains(t, page, "No genuine delivery was answered")
}
