package otelhooks_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
	"github.com/nectarhooks/nectarhooks/otelhooks"
)

// TestTroubleSignals: an aborted delivery and a WithAsync failure each
// count one dead letter written; the failing streak grows with every
// delivery not answered 2xx and drops to 0 at the first success; the dead
// letters gauge reads the store.
func TestTroubleSignals(t *testing.T) {
	dead := nectarhooks.NewMemoryDeadLetters(0)
	for _, tt := range []struct {
		name  string
		async bool
		// answers are the statuses of three deliveries, the last a success.
		answers []int
	}{
		{name: "aborted deliveries", answers: []int{500, 500, 200}},
		{name: "failures after a WithAsync answer", async: true, answers: []int{202, 202, 202}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			opts := []nectarhooks.Option{nectarhooks.WithDeadLetters(dead)}
			if tt.async {
				opts = append(opts, nectarhooks.WithAsync(1, 4))
			}
			r := newRig(t, opts...)
			calls := 0
			r.h.OnDocumentCreated(func(context.Context, *nectarhooks.DocumentCreated) error {
				calls++
				if calls < 3 {
					return nectarhooks.Permanent(errors.New("refused"))
				}
				return nil
			})
			streak := func() int64 {
				g, ok := r.metrics(t)[otelhooks.FailingStreakName].(metricdata.Gauge[int64])
				require.True(t, ok)
				require.Len(t, g.DataPoints, 1)
				return g.DataPoints[0].Value
			}
			var streaks []int64
			for _, want := range tt.answers {
				rr := httptest.NewRecorder()
				r.h.ServeHTTP(rr, r.signer.Request("/", nectarhookstest.Sample(nectarhooks.EventDocumentCreated)))
				require.Equal(t, want, rr.Code)
				streaks = append(streaks, streak())
			}
			require.NoError(t, r.h.Shutdown(context.Background()))
			if tt.async {
				assert.Equal(t, []int64{0, 0, 0}, streaks, "a 202 is answered 2xx")
			} else {
				assert.Equal(t, []int64{1, 2, 0}, streaks)
			}
			written, _ := sum(t, r.metrics(t)[otelhooks.DeadLettersWrittenName],
				map[string]string{string(otelhooks.EventTypeKey): "document.created.v2"})
			assert.Equal(t, int64(2), written)
		})
	}

	r := newRig(t)
	now := time.Now()
	reg, err := r.obs.ObserveDeadLetters(otelhooks.DeadLetterReader(dead, func() time.Time { return now }))
	require.NoError(t, err)
	defer func() { require.NoError(t, reg.Unregister()) }()
	letters, err := dead.List(t.Context(), nectarhooks.DeadLetterFilter{})
	require.NoError(t, err)
	require.Len(t, letters, 4)
	m := r.metrics(t)
	g, ok := m[otelhooks.DeadLettersName].(metricdata.Gauge[int64])
	require.True(t, ok)
	assert.Equal(t, int64(4), g.DataPoints[0].Value)
	age, ok := m[otelhooks.DeadLettersAgeName].(metricdata.Gauge[float64])
	require.True(t, ok)
	assert.InDelta(t, now.Sub(letters[0].LastFailedAt).Seconds(), age.DataPoints[0].Value, 1e-6)
	_, err = r.obs.ObserveDeadLetters(nil)
	assert.Error(t, err)
}
