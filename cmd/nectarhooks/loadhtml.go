package main

import (
	"bytes"
	"html/template"
	"maps"
	"math"
	"os"
	"slices"
	"strconv"
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

// loadReportPage renders the report. html/template: what comes from the
// run (URLs, the reasons the receiver gave, errors) is escaped for where
// it lands; the functions format the numbers the template draws with.
var loadReportPage = template.Must(template.New("loadreport.html").Funcs(template.FuncMap{
	"f1":   func(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) },
	"ms":   fmtMS,
	"add":  func(a, b float64) float64 { return a + b },
	"half": func(v float64) float64 { return v / 2 },
}).ParseFS(webFiles, "web/loadreport.html"))

// loadPageView is what the report's template is given.
type loadPageView struct {
	Run      string // the command line, as describeRun says it
	R        loadReport
	Verdict  string
	Curve    *curveView // nil when no genuine delivery was answered
	Status   []statusCount
	Verdicts []verdictRow
}

type statusCount struct {
	Status string
	N      int64
}

// verdictRow is one line of the verdicts table: how many were sent, how
// many acknowledged, and how many must be.
type verdictRow struct {
	What        string
	Sent, Acked int64
	Want        string
	OK          bool
}

// writeLoadHTML writes the report as one HTML file that needs nothing
// else: no script, no font, no file beside it; the curve is inline SVG.
func writeLoadHTML(path string, r loadReport, run string) error {
	v := loadPageView{Run: run, R: r, Verdict: verdict(r)}
	if len(r.curve) > 0 {
		v.Curve = newCurveView(r.curve, r.Latency)
	}
	for _, k := range slices.Sorted(maps.Keys(r.Status)) {
		v.Status = append(v.Status, statusCount{k, r.Status[k]})
	}
	v.Verdicts = append(v.Verdicts, verdictRow{"genuine messages", int64(r.Messages), int64(r.Acknowledged), "all", r.Unacknowledged == 0})
	if r.Resent > 0 {
		v.Verdicts = append(v.Verdicts, verdictRow{"resent (same svix-id)", r.Resent, r.ResentAccepted, "2xx, handled once", true})
	}
	v.Verdicts = append(v.Verdicts,
		verdictRow{"forged", r.Forged.Sent, r.Forged.Accepted, "none", r.Forged.Accepted == 0},
		verdictRow{"stale", r.Stale.Sent, r.Stale.Accepted, "none", r.Stale.Accepted == 0})
	var b bytes.Buffer
	if err := loadReportPage.Execute(&b, v); err != nil {
		return err
	}
	return os.WriteFile(path, b.Bytes(), 0o644)
}

// curveView is the percentile curve as the template draws it: every
// position in the SVG's units. x is the percentile on a scale of nines
// (each step right is ten times fewer deliveries slower), y the latency
// in milliseconds from 0; the report's p50, p90, p99 and p99.9 are
// marked on it.
type curveView struct {
	W, H   float64 // the picture
	X0, X1 float64 // the plot's left and right edges
	Y0, Y1 float64 // its bottom (0 ms) and top
	YTicks []curveTick
	XTicks []curveTick
	Points []curvePoint
	Marks  []curveMark
	MaxMS  float64
}

// curveTick is a grid line at Pos (y for latencies, x for percentiles).
type curveTick struct {
	Pos   float64
	Label string
}

type curvePoint struct{ X, Y float64 }

// curveMark is a percentile the text report names, on the curve.
type curveMark struct {
	X, Y  float64
	P, MS float64
}

func newCurveView(pts []percentilePoint, l latencyReport) *curveView {
	c := &curveView{W: 760, H: 320, X0: 64, X1: 760 - 36, Y0: 320 - 40, Y1: 16}
	maxNines := 0.0
	for _, p := range pts[:len(pts)-1] {
		maxNines = max(maxNines, nines(p.P))
	}
	c.MaxMS = pts[len(pts)-1].MS
	ceil := niceCeil(c.MaxMS)
	x := func(n float64) float64 { return c.X0 + (c.X1-c.X0)*n/maxNines }
	y := func(ms float64) float64 { return c.Y1 + (c.Y0-c.Y1)*(1-ms/ceil) }
	for i := 0; i <= 4; i++ {
		ms := ceil * float64(i) / 4
		c.YTicks = append(c.YTicks, curveTick{y(ms), fmtMS(ms)})
	}
	labels := []string{"0%", "90%", "99%", "99.9%", "99.99%", "99.999%"}
	for n := 0; n <= int(maxNines) && n < len(labels); n++ {
		c.XTicks = append(c.XTicks, curveTick{x(float64(n)), labels[n]})
	}
	for _, p := range pts[:len(pts)-1] {
		c.Points = append(c.Points, curvePoint{x(nines(p.P)), y(p.MS)})
	}
	for _, m := range []struct{ p, ms float64 }{{50, l.P50}, {90, l.P90}, {99, l.P99}, {99.9, l.P999}} {
		if nines(m.p) <= maxNines {
			c.Marks = append(c.Marks, curveMark{X: x(nines(m.p)), Y: y(m.ms), P: m.p, MS: m.ms})
		}
	}
	return c
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
