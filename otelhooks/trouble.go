package otelhooks

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/metric"

	"github.com/nectarhooks/nectarhooks"
)

// Svix disables an endpoint after five days of failed deliveries. These
// instruments give an alert what it needs to fire well before that: dead
// letters written (messages the Handler gave up on), how many are waiting
// and for how long, and how many deliveries in a row were not acknowledged.
const (
	// DeadLettersWrittenName counts the messages recorded as dead letters
	// by a Handler with WithDeadLetters (outcome dead_lettered), by event
	// type.
	DeadLettersWrittenName = "nectarhooks.dead_letters.written"
	// DeadLettersName is the gauge of dead letters waiting for a replay,
	// and DeadLettersAgeName how long ago the oldest of them last failed,
	// in seconds (see Observer.ObserveDeadLetters).
	DeadLettersName    = "nectarhooks.dead_letters"
	DeadLettersAgeName = "nectarhooks.dead_letters.age"
	// FailingStreakName is the gauge of deliveries answered other than
	// 2xx since the last one answered 2xx: it grows while every delivery
	// fails (a wrong secret, a callback failing for every message, a
	// store that is down) and drops to 0 with the first success.
	FailingStreakName = "nectarhooks.deliveries.failing_streak"
)

// trouble holds those instruments.
type trouble struct {
	written metric.Int64Counter
	streak  atomic.Int64
	count   metric.Int64ObservableGauge
	age     metric.Float64ObservableGauge
}

func newTrouble(m metric.Meter) (*trouble, error) {
	t := &trouble{}
	var err, e error
	t.written, e = m.Int64Counter(DeadLettersWrittenName, metric.WithUnit("{message}"),
		metric.WithDescription("Messages recorded as dead letters: aborted deliveries and callbacks that failed after a WithAsync answer."))
	err = errors.Join(err, e)
	_, e = m.Int64ObservableGauge(FailingStreakName, metric.WithUnit("{delivery}"),
		metric.WithDescription("Deliveries answered other than 2xx since the last one answered 2xx."),
		metric.WithInt64Callback(func(_ context.Context, obs metric.Int64Observer) error {
			obs.Observe(t.streak.Load())
			return nil
		}))
	err = errors.Join(err, e)
	t.count, e = m.Int64ObservableGauge(DeadLettersName, metric.WithUnit("{message}"),
		metric.WithDescription("Dead letters waiting for a replay (see Observer.ObserveDeadLetters)."))
	err = errors.Join(err, e)
	t.age, e = m.Float64ObservableGauge(DeadLettersAgeName, metric.WithUnit("s"),
		metric.WithDescription("How long ago the oldest dead letter last failed (see Observer.ObserveDeadLetters)."))
	err = errors.Join(err, e)
	return t, err
}

// record counts a stage's dead letter and keeps the failing streak.
func (t *trouble) record(ctx context.Context, d nectarhooks.Delivery, in *instruments) {
	if d.Outcome == nectarhooks.OutcomeDeadLettered {
		var et nectarhooks.EventType
		if d.Message != nil {
			et = d.Message.EventType
		}
		t.written.Add(ctx, 1, in.measurement(setKey{eventType: et}).add...)
	}
	if d.Stage != nectarhooks.StageReceive {
		return
	}
	if d.Outcome.Acknowledged() {
		t.streak.Store(0)
	} else {
		t.streak.Add(1)
	}
}

// ObserveDeadLetters reports what read returns, each time metrics are
// collected, as the nectarhooks.dead_letters gauge (dead letters waiting)
// and nectarhooks.dead_letters.age (seconds since the oldest last failed),
// until the returned Registration is unregistered. For a
// nectarhooks.DeadLetterStore, DeadLetterReader reads them; for River, read
// riverqueue.ListDeadLetters. An error of read skips that collection's
// values and is returned to the MeterProvider. The gauges have no
// attributes: call it once per MeterProvider.
func (o *Observer) ObserveDeadLetters(read func(ctx context.Context) (waiting int64, oldest time.Duration, err error)) (metric.Registration, error) {
	if read == nil {
		return nil, errors.New("otelhooks: ObserveDeadLetters(nil)")
	}
	return observeCountAge(o.metrics.meter, o.trouble.count, o.trouble.age, read)
}

// DeadLetterReader returns a read function for ObserveDeadLetters over
// store: it lists the dead letters (every collection, so keep the
// collection interval at tens of seconds or more) and reports their number
// and the age of the oldest last failure, measured on now.
func DeadLetterReader(store nectarhooks.DeadLetterStore, now func() time.Time) func(ctx context.Context) (int64, time.Duration, error) {
	return func(ctx context.Context) (int64, time.Duration, error) {
		letters, err := store.List(ctx, nectarhooks.DeadLetterFilter{})
		if err != nil || len(letters) == 0 {
			return 0, 0, err
		}
		return int64(len(letters)), max(0, now().Sub(letters[0].LastFailedAt)), nil
	}
}
