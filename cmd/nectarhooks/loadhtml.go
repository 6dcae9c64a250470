package main

import (
	"fmt"
	"html"
	"math"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// percentilePoint is one point of the latency percentile curve: the
// latency, in milliseconds, that percentile P of the genuine deliveries
// stayed within.
type percentilePoint struct {
	P  float64
	MS float64
}

// curveNines is how far the curve goes: 99.999%, five nines. Past the
// number of deliveries, further points repeat the maximum.
const curveNines = 5

// percentileCurve reads the curve off the histogram at ten points per
// nine (0, 20.6, 36.9, ... 90, ... 99, ... 99.999) and at 100: the
// spacing of HdrHistogram's own percentile plots, which show the tail
// that averages hide.
func percentileCurve(h *hdrhistogram.Histogram) []percentilePoint {
	if h.TotalCount() == 0 {
		return nil
	}
	var pts []percentilePoint
	for i := 0; i <= curveNines*10; i++ {
		p := 100 * (1 - math.Pow(10, -float64(i)/10))
		pts = append(pts, percentilePoint{P: p, MS: usToMS(h.ValueAtPercentile(p))})
	}
	return append(pts, percentilePoint{P: 100, MS: usToMS(h.Max())})
}

func usToMS(v int64) float64 { return float64(v) * float64(latencyUnit) / float64(time.Millisecond) }

// writeLoadHTML writes the report as one HTML file that needs nothing
// else: no script, no font, no file beside it; the curve is inline SVG.
// Everything from the run (URLs, reasons the receiver gave, errors) is
// escaped.
func writeLoadHTML(path string, r loadReport, run string) error {
	var b strings.Builder
	esc := html.EscapeString
	b.WriteString(`<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<title>nectarhooks load report</title>
<style>
body { font: 14px/1.45 system-ui, sans-serif; margin: 1.5em auto; max-width: 62em; color: #1a1a1a; padding: 0 1em; }
h1 { font-size: 1.3em; margin-bottom: .2em; } h2 { font-size: 1.05em; margin: 1.6em 0 .4em; }
.run { color: #555; font-family: ui-monospace, monospace; font-size: .9em; overflow-wrap: anywhere; }
.verdict { font-size: 1.1em; font-weight: 600; padding: .4em .7em; border-radius: .3em; display: inline-block; }
.pass { background: #e3f4e8; color: #17663a; } .fail { background: #fbe4e4; color: #a3161d; }
table { border-collapse: collapse; margin: .3em 0; } th, td { text-align: left; padding: .25em .8em; border-bottom: 1px solid #ddd; }
td.n { text-align: right; font-variant-numeric: tabular-nums; } th { background: #f3f4f6; }
svg { background: #fff; border: 1px solid #ddd; } .axis { stroke: #999; } .grid { stroke: #eee; }
svg text { font: 12px system-ui, sans-serif; fill: #444; } .curve { fill: none; stroke: #2563eb; stroke-width: 2; }
.mark { fill: #2563eb; }
</style></head><body>
<h1>nectarhooks load report</h1>
`)
	fmt.Fprintf(&b, "<p class=\"run\">%s</p>\n", esc(run))
	cls := "pass"
	if !r.Pass {
		cls = "fail"
	}
	fmt.Fprintf(&b, "<p class=\"verdict %s\" id=\"verdict\">%s</p>\n", cls, esc(verdict(r)))
	fmt.Fprintf(&b, "<p id=\"headline\">%.0f deliveries/s acknowledged: %d of %d answered 2xx in %.2f s; %d refused, %d without an answer.</p>\n",
		r.Answered2xxPerSecond, r.Answered2xx, r.Deliveries, r.Seconds, r.Refused, r.NoAnswer)

	b.WriteString("<h2>Latency of genuine deliveries, by percentile</h2>\n")
	if len(r.curve) == 0 {
		b.WriteString("<p>No genuine delivery was answered: there is no latency to plot.</p>\n")
	} else {
		writeCurveSVG(&b, r.curve, r.Latency)
		l := r.Latency
		fmt.Fprintf(&b, "<table id=\"latency\"><tr><th>count</th><th>mean</th><th>p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>max</th></tr>\n<tr><td class=\"n\">%d</td><td class=\"n\">%s</td><td class=\"n\">%s</td><td class=\"n\">%s</td><td class=\"n\">%s</td><td class=\"n\">%s</td><td class=\"n\">%s</td></tr></table>\n",
			l.Count, fmtMS(l.Mean), fmtMS(l.P50), fmtMS(l.P90), fmtMS(l.P99), fmtMS(l.P999), fmtMS(l.Max))
	}

	b.WriteString("<h2>Answers, by status</h2>\n<table id=\"status\"><tr><th>status</th><th>deliveries</th></tr>\n")
	keys := make([]string, 0, len(r.Status))
	for k := range r.Status {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "<tr><td>%s</td><td class=\"n\">%d</td></tr>\n", esc(k), r.Status[k])
	}
	b.WriteString("</table>\n")

	b.WriteString("<h2>Verdicts: what must be acknowledged, and what must be refused</h2>\n<table id=\"verdicts\"><tr><th></th><th>sent</th><th>acknowledged</th><th>must be</th></tr>\n")
	row := func(what string, sent, acked int64, want string, ok bool) {
		mark := "✓"
		if !ok {
			mark = "✗"
		}
		fmt.Fprintf(&b, "<tr><td>%s</td><td class=\"n\">%d</td><td class=\"n\">%d</td><td>%s %s</td></tr>\n", what, sent, acked, mark, want)
	}
	row("genuine messages", int64(r.Messages), int64(r.Acknowledged), "all", r.Unacknowledged == 0)
	if r.Resent > 0 {
		row("resent (same svix-id)", r.Resent, r.ResentAccepted, "2xx, handled once", true)
	}
	row("forged", r.Forged.Sent, r.Forged.Accepted, "none", r.Forged.Accepted == 0)
	row("stale", r.Stale.Sent, r.Stale.Accepted, "none", r.Stale.Accepted == 0)
	b.WriteString("</table>\n")

	if len(r.Refusals) > 0 {
		b.WriteString("<h2>Refusals</h2>\n<table id=\"refusals\"><tr><th>what</th><th>status</th><th>count</th><th>reason given</th></tr>\n")
		for _, rf := range r.Refusals {
			fmt.Fprintf(&b, "<tr><td>%s</td><td>%s</td><td class=\"n\">%d</td><td>%s</td></tr>\n", esc(rf.What), esc(rf.Status), rf.Count, esc(rf.Reason))
		}
		b.WriteString("</table>\n")
	}
	if len(r.Failures) > 0 {
		b.WriteString("<h2>Deliveries without an answer</h2>\n<table id=\"failures\"><tr><th>count</th><th>error</th></tr>\n")
		for _, f := range r.Failures {
			fmt.Fprintf(&b, "<tr><td class=\"n\">%d</td><td>%s</td></tr>\n", f.Count, esc(f.Error))
		}
		b.WriteString("</table>\n")
	}
	if len(r.Hints) > 0 {
		b.WriteString("<h2>Hints</h2>\n<ul>\n")
		for _, h := range r.Hints {
			fmt.Fprintf(&b, "<li>%s</li>\n", esc(h))
		}
		b.WriteString("</ul>\n")
	}
	b.WriteString("</body></html>\n")
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// writeCurveSVG draws the percentile curve: x is the percentile on a
// scale of nines (each step right is ten times fewer deliveries slower),
// y the latency in milliseconds from 0; the report's p50, p90, p99 and
// p99.9 are marked on it.
func writeCurveSVG(b *strings.Builder, pts []percentilePoint, l latencyReport) {
	const w, h, left, right, top, bottom = 760.0, 320.0, 64.0, 36.0, 16.0, 40.0
	maxNines := 0.0
	for _, p := range pts[:len(pts)-1] {
		maxNines = max(maxNines, nines(p.P))
	}
	maxMS := pts[len(pts)-1].MS
	ceil := niceCeil(maxMS)
	x := func(n float64) float64 { return left + (w-left-right)*n/maxNines }
	y := func(ms float64) float64 { return top + (h-top-bottom)*(1-ms/ceil) }
	fmt.Fprintf(b, "<svg id=\"curve\" role=\"img\" aria-label=\"latency by percentile\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\">\n", w, h, w, h)
	for i := 0; i <= 4; i++ {
		ms := ceil * float64(i) / 4
		fmt.Fprintf(b, "<line class=\"grid\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"/><text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n",
			left, w-right, y(ms), y(ms), left-6, y(ms)+4, fmtMS(ms))
	}
	labels := []string{"0%", "90%", "99%", "99.9%", "99.99%", "99.999%"}
	for n := 0; n <= int(maxNines) && n < len(labels); n++ {
		fmt.Fprintf(b, "<line class=\"grid\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"/><text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n",
			x(float64(n)), x(float64(n)), top, h-bottom, x(float64(n)), h-bottom+16, labels[n])
	}
	fmt.Fprintf(b, "<line class=\"axis\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"/>\n", left, w-right, h-bottom, h-bottom)
	fmt.Fprintf(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">percentile of genuine deliveries</text>\n", (left+w-right)/2, h-6)
	var poly strings.Builder
	for _, p := range pts[:len(pts)-1] {
		fmt.Fprintf(&poly, "%.1f,%.1f ", x(nines(p.P)), y(p.MS))
	}
	fmt.Fprintf(b, "<polyline class=\"curve\" points=\"%s\"/>\n", strings.TrimSpace(poly.String()))
	for _, m := range []struct {
		p  float64
		ms float64
	}{{50, l.P50}, {90, l.P90}, {99, l.P99}, {99.9, l.P999}} {
		if nines(m.p) <= maxNines {
			fmt.Fprintf(b, "<circle class=\"mark\" cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\"><title>p%g: %s</title></circle>\n", x(nines(m.p)), y(m.ms), m.p, fmtMS(m.ms))
			fmt.Fprintf(b, "<text x=\"%.1f\" y=\"%.1f\">p%g %s</text>\n", x(nines(m.p))+6, y(m.ms)-6, m.p, fmtMS(m.ms))
		}
	}
	fmt.Fprintf(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">max %s</text>\n", w-right-4, top+12, fmtMS(maxMS))
	b.WriteString("</svg>\n")
}

// nines is a percentile on the curve's x scale: 90% is 1, 99% 2, 99.9% 3.
func nines(p float64) float64 {
	if p >= 100 {
		return curveNines
	}
	return math.Log10(100 / (100 - p))
}

// niceCeil rounds ms up to 1, 2 or 5 times a power of ten, for the axis.
func niceCeil(ms float64) float64 {
	if ms <= 0 {
		return 1
	}
	pow := math.Pow(10, math.Floor(math.Log10(ms)))
	for _, m := range []float64{1, 2, 5, 10} {
		if ms <= m*pow {
			return m * pow
		}
	}
	return 10 * pow
}
