package browsertest

import (
	"path/filepath"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nectarhooks/nectarhooks/nectarhookstest"
)

// TestLoadReportPage runs load against listen, with forged and stale
// deliveries mixed in, writes the -html report, and opens it from disk
// in the browser: the curve is drawn, the verdict and tables read right.
func TestLoadReportPage(t *testing.T) {
	ctx := browser(t)
	env := []string{"NECTAR_WEBHOOK_SECRET=" + nectarhookstest.NewSecret()}
	l := listen(t, env, "-history", "50")
	path := filepath.Join(t.TempDir(), "report.html")
	out := run(t, env, "load", "-url", l.url+"webhooks/nectar", "-n", "500", "-c", "4", "-tamper", "0.05", "-stale", "0.05", "-html", path)
	require.Contains(t, out, "verdict      PASS", out)

	do(t, ctx,
		chromedp.Navigate("file://"+path),
		chromedp.WaitReady(chromedp.CSS(`#curve`)),
	)
	text := func(sel string) string { return get(t, ctx, chromedp.Text(chromedp.CSS(sel))) }
	assert.Regexp(t, `^PASS: `, text(`#verdict`))
	assert.Equal(t, 51, get(t, ctx, chromedp.Evaluate[int](`document.querySelector("polyline.curve").points.numberOfItems`)), "0% to 99.999%, ten points per nine")
	assert.Greater(t, get(t, ctx, chromedp.Evaluate[float64](`document.querySelector("polyline.curve").getBBox().width`)), 600.0, "drawn across the plot")
	assert.Equal(t, 4, get(t, ctx, chromedp.Evaluate[int](`document.querySelectorAll("#curve circle.mark").length`)), "p50, p90, p99, p99.9")
	assert.Contains(t, text(`#status`), "200\t500")
	assert.Contains(t, text(`#verdicts`), "forged\t25\t0\t✓ none")
	assert.Contains(t, text(`#refusals`), "timestamp too old")
	screenshot(t, ctx, "load-report.png")
}
