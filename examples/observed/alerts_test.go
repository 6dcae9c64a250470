package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/util/teststorage"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
)

// The rules of alerts.yml are checked with Prometheus's own rule-file
// parser and PromQL engine (github.com/prometheus/prometheus, in this
// example's tests only): the file is parsed as Prometheus loads it, and
// each expression is evaluated against what this receiver's /metrics
// serves, scraped after a failing run and after a healthy one. promtool
// (Debian's prometheus package) would do the same, but would add a
// package and a daemon to every machine that runs the tests.

// TestAlertRules: every rule of alerts.yml parses, fires after a run whose
// deliveries fail (ten in a row answered 500, one Permanent error recorded
// as a dead letter two days before the scrape), and stays silent after a
// healthy run.
func TestAlertRules(t *testing.T) {
	groups, errs := rulefmt.ParseFile("alerts.yml", false, model.UTF8Validation, parser.NewParser(parser.Options{}), slog.New(slog.DiscardHandler))
	require.Empty(t, errs)
	var rules []rulefmt.Rule
	for _, g := range groups.Groups {
		rules = append(rules, g.Rules...)
	}
	require.Len(t, rules, 3)

	for _, run := range []struct {
		name    string
		failing bool
	}{{"failing run", true}, {"healthy run", false}} {
		t.Run(run.name, func(t *testing.T) {
			scraped := scrapeAfterRun(t, run.failing)
			store := teststorage.New(t)
			at := time.Now()
			app := store.Appender(context.Background())
			for _, s := range scraped {
				_, err := app.Append(0, s.labels, at.UnixMilli(), s.value)
				require.NoError(t, err)
			}
			require.NoError(t, app.Commit())
			engine := promql.NewEngine(promql.EngineOpts{MaxSamples: 100000, Timeout: 10 * time.Second, LookbackDelta: 5 * time.Minute})
			for _, r := range rules {
				q, err := engine.NewInstantQuery(context.Background(), store, nil, r.Expr, at)
				require.NoError(t, err, r.Alert)
				res := q.Exec(context.Background())
				require.NoError(t, res.Err, r.Alert)
				vec, err := res.Vector()
				require.NoError(t, err, r.Alert)
				if run.failing {
					assert.NotEmpty(t, vec, "%s (%s) does not fire on a failing run", r.Alert, r.Expr)
				} else {
					assert.Empty(t, vec, "%s (%s) fires on a healthy run", r.Alert, r.Expr)
				}
				q.Close()
			}
		})
	}
}

type sample struct {
	labels labels.Labels
	value  float64
}

// scrapeAfterRun runs the receiver, delivers to it, and returns the gauges
// and counters of its /metrics as Prometheus would scrape them.
func scrapeAfterRun(t *testing.T, failing bool) []sample {
	if failing {
		// The dead letter is read two days after it failed.
		now = func() time.Time { return time.Now().Add(48 * time.Hour) }
		t.Cleanup(func() { now = time.Now })
	}
	secret := nectarhookstest.NewSecret()
	reg := prometheus.NewRegistry()
	r, err := newReceiver(secret, 0, reg, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	defer func() { assert.NoError(t, r.shutdown(context.Background())) }()
	if failing {
		r.h.OnConnectionUpdated(func(context.Context, *nectarhooks.ConnectionUpdated) error {
			return errors.New("database down")
		})
		r.h.OnDocumentCreated(func(context.Context, *nectarhooks.DocumentCreated) error {
			return nectarhooks.Permanent(errors.New("document refused"))
		})
	}
	webhooks := httptest.NewServer(r.routes())
	defer webhooks.Close()
	metrics := httptest.NewServer(metricsRoutes(reg))
	defer metrics.Close()
	signer, err := nectarhookstest.NewSigner(secret)
	require.NoError(t, err)
	post := func(et nectarhooks.EventType) int {
		req, err := signer.NewRequest(context.Background(), webhooks.URL+"/webhooks/nectar", nectarhookstest.Sample(et))
		require.NoError(t, err)
		resp, err := webhooks.Client().Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode
	}
	want := map[bool]int{true: http.StatusInternalServerError, false: http.StatusOK}[failing]
	require.Equal(t, want, post(nectarhooks.EventDocumentCreated))
	for range 10 {
		require.Equal(t, want, post(nectarhooks.EventConnectionUpdated))
	}

	resp, err := metrics.Client().Get(metrics.URL + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	var out []sample
	for name, f := range families {
		for _, m := range f.GetMetric() {
			var v float64
			switch f.GetType() {
			case dto.MetricType_GAUGE:
				v = m.GetGauge().GetValue()
			case dto.MetricType_COUNTER:
				v = m.GetCounter().GetValue()
			default:
				continue
			}
			b := labels.NewBuilder(labels.EmptyLabels()).Set(model.MetricNameLabel, name)
			for _, l := range m.GetLabel() {
				b.Set(l.GetName(), l.GetValue())
			}
			out = append(out, sample{labels: b.Labels(), value: v})
		}
	}
	require.NotEmpty(t, out)
	return out
}
