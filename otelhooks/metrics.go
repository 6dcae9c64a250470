package otelhooks

import (
	"context"
	"errors"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/nectarhooks/nectarhooks"
)

// The names of the instruments, as OpenTelemetry names them; the
// Prometheus exporter turns dots into underscores and adds unit and
// "_total" suffixes (nectarhooks_deliveries_total,
// nectarhooks_delivery_duration_seconds).
const (
	// DeliveriesName counts deliveries (StageReceive) by event type,
	// outcome and status answered.
	DeliveriesName = "nectarhooks.deliveries"
	// DeliveryDurationName is the histogram, in seconds, of deliveries
	// from the start of the request to the answer, with the attributes of
	// DeliveriesName.
	DeliveryDurationName = "nectarhooks.delivery.duration"
	// CallbackDurationName is the histogram, in seconds, of callback runs
	// by event type and outcome; its count is the number of runs.
	CallbackDurationName = "nectarhooks.callback.duration"
	// QueueWaitName is the histogram, in seconds, of the time messages
	// waited in the WithAsync queue, by event type.
	QueueWaitName = "nectarhooks.queue.wait"
	// DuplicatesName counts deliveries of messages processed already (an
	// idempotency store had them), or queued already (a Queue of WithQueue
	// returned ErrAlreadyQueued), by event type: OutcomeDuplicate. They are
	// counted in DeliveriesName too, with the outcome "duplicate".
	DuplicatesName = "nectarhooks.duplicates"
	// VerificationFailuresName counts deliveries that failed verification,
	// by reason (VerificationReasonKey).
	VerificationFailuresName = "nectarhooks.verification.failures"
	// QueueDepthName is the gauge of messages waiting in the WithAsync
	// queue, for the Handlers given to Observer.ObserveQueue.
	QueueDepthName = "nectarhooks.queue.depth"
	// OverrunningName is the gauge of callbacks running past their
	// deadline (Handler.Overrunning, bounded by WithMaxOverrunning), for
	// the Handlers given to Observer.ObserveQueue: callbacks that ignore
	// their context show here before they exhaust memory.
	OverrunningName = "nectarhooks.callbacks.overrunning"
	// BacklogName is the gauge of messages a durable queue holds for its
	// workers (accepted with 202, not taken by a worker yet), and
	// BacklogAgeName the gauge, in seconds, of how long the oldest of them
	// has waited, for the function given to Observer.ObserveBacklog.
	BacklogName    = "nectarhooks.queue.backlog"
	BacklogAgeName = "nectarhooks.queue.backlog.age"
)

// DurationBuckets are the explicit bucket bounds, in seconds, of the
// duration histograms: fine below a second, where deliveries should be,
// then up to the 10 s default callback deadline and Svix's 15 s window.
var DurationBuckets = []float64{
	0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
	1, 2.5, 5, 7.5, 10, 12.5, 15, 20,
}

// instruments are the Observer's metrics.
type instruments struct {
	meter                metric.Meter
	deliveries           metric.Int64Counter
	deliveryDuration     metric.Float64Histogram
	callbackDuration     metric.Float64Histogram
	queueWait            metric.Float64Histogram
	duplicates           metric.Int64Counter
	verificationFailures metric.Int64Counter
	queueDepth           metric.Int64ObservableGauge
	overrunning          metric.Int64ObservableGauge
	backlog              metric.Int64ObservableGauge
	backlogAge           metric.Float64ObservableGauge

	// sets caches the attribute sets of known event types, outcomes and
	// statuses, so that recording a delivery neither builds them again nor
	// allocates for the options: setKey -> *measurement.
	sets sync.Map
	// reasons holds the measurement of each verification failure reason.
	reasons map[string]*measurement
}

// measurement is the options of a measurement with one attribute set, as
// the Add and Record methods take them.
type measurement struct {
	add    []metric.AddOption
	record []metric.RecordOption
}

func newMeasurement(attrs ...attribute.KeyValue) *measurement {
	opt := metric.WithAttributeSet(attribute.NewSet(attrs...))
	return &measurement{add: []metric.AddOption{opt}, record: []metric.RecordOption{opt}}
}

func newInstruments(m metric.Meter) (*instruments, error) {
	in := &instruments{meter: m}
	var err, e error
	in.deliveries, e = m.Int64Counter(DeliveriesName, metric.WithUnit("{delivery}"),
		metric.WithDescription("Deliveries received, by event type, outcome and HTTP status answered."))
	err = errors.Join(err, e)
	in.deliveryDuration, e = m.Float64Histogram(DeliveryDurationName, metric.WithUnit("s"),
		metric.WithDescription("Time from the start of a delivery to its answer."),
		metric.WithExplicitBucketBoundaries(DurationBuckets...))
	err = errors.Join(err, e)
	in.callbackDuration, e = m.Float64Histogram(CallbackDurationName, metric.WithUnit("s"),
		metric.WithDescription("Time callbacks ran, by event type and outcome."),
		metric.WithExplicitBucketBoundaries(DurationBuckets...))
	err = errors.Join(err, e)
	in.queueWait, e = m.Float64Histogram(QueueWaitName, metric.WithUnit("s"),
		metric.WithDescription("Time messages waited in the WithAsync queue for a worker."),
		metric.WithExplicitBucketBoundaries(DurationBuckets...))
	err = errors.Join(err, e)
	in.duplicates, e = m.Int64Counter(DuplicatesName, metric.WithUnit("{delivery}"),
		metric.WithDescription("Deliveries of messages processed or queued already, acknowledged without running the callback or queuing again."))
	err = errors.Join(err, e)
	in.verificationFailures, e = m.Int64Counter(VerificationFailuresName, metric.WithUnit("{delivery}"),
		metric.WithDescription("Deliveries that failed signature verification, by reason."))
	err = errors.Join(err, e)
	in.queueDepth, e = m.Int64ObservableGauge(QueueDepthName, metric.WithUnit("{message}"),
		metric.WithDescription("Messages waiting in the WithAsync queue (see Observer.ObserveQueue)."))
	err = errors.Join(err, e)
	in.overrunning, e = m.Int64ObservableGauge(OverrunningName, metric.WithUnit("{callback}"),
		metric.WithDescription("Callbacks running past their deadline, left to finish (see Observer.ObserveQueue)."))
	err = errors.Join(err, e)
	in.backlog, e = m.Int64ObservableGauge(BacklogName, metric.WithUnit("{message}"),
		metric.WithDescription("Messages a durable queue holds for its workers (see Observer.ObserveBacklog)."))
	err = errors.Join(err, e)
	in.backlogAge, e = m.Float64ObservableGauge(BacklogAgeName, metric.WithUnit("s"),
		metric.WithDescription("How long the oldest message in a durable queue has waited for a worker (see Observer.ObserveBacklog)."))
	err = errors.Join(err, e)
	if err != nil {
		return nil, err
	}
	in.reasons = map[string]*measurement{}
	for _, r := range []string{"missing_headers", "invalid_headers", "no_matching_signature", "message_too_old", "message_too_new", "other"} {
		in.reasons[r] = newMeasurement(VerificationReasonKey.String(r))
	}
	return in, nil
}

// setKey is what a delivery's metric attributes are made of; zero fields
// are left out.
type setKey struct {
	stage     nectarhooks.Stage
	eventType nectarhooks.EventType
	outcome   nectarhooks.Outcome
	status    int
}

// measurement returns the measurement for k, from the cache when the
// event type is one this version knows (the set of those is small; others
// are built each time, so that no sender can grow the cache).
func (in *instruments) measurement(k setKey) *measurement {
	if v, ok := in.sets.Load(k); ok {
		return v.(*measurement)
	}
	attrs := make([]attribute.KeyValue, 0, 3)
	if k.eventType != "" {
		attrs = append(attrs, EventTypeKey.String(string(k.eventType)))
	}
	if k.outcome != 0 {
		attrs = append(attrs, OutcomeKey.String(k.outcome.String()))
	}
	if k.stage == nectarhooks.StageReceive {
		attrs = append(attrs, semconv.HTTPResponseStatusCode(k.status))
	}
	m := newMeasurement(attrs...)
	if k.eventType == "" || k.eventType.Known() {
		in.sets.Store(k, m)
	}
	return m
}

// record adds a stage's measurements.
func (in *instruments) record(ctx context.Context, d nectarhooks.Delivery) {
	k := setKey{stage: d.Stage, outcome: d.Outcome, status: d.Status}
	if d.Message != nil {
		k.eventType = d.Message.EventType
	}
	switch d.Stage {
	case nectarhooks.StageReceive:
		m := in.measurement(k)
		in.deliveries.Add(ctx, 1, m.add...)
		in.deliveryDuration.Record(ctx, d.Total.Seconds(), m.record...)
		switch {
		case d.Outcome == nectarhooks.OutcomeDuplicate:
			in.duplicates.Add(ctx, 1, in.measurement(setKey{eventType: k.eventType}).add...)
		case d.Err != nil:
			if reason := verificationReason(d.Err); reason != "" {
				in.verificationFailures.Add(ctx, 1, in.reasons[reason].add...)
			}
		}
	case nectarhooks.StageProcess:
		if d.Outcome == nectarhooks.OutcomeUnhandled {
			return // no callback ran
		}
		k.status = 0 // callbacks are counted by outcome alone
		in.callbackDuration.Record(ctx, d.Callback.Seconds(), in.measurement(k).record...)
		if d.Detached {
			in.queueWait.Record(ctx, d.Queue.Seconds(), in.measurement(setKey{eventType: k.eventType}).record...)
		}
	}
}
