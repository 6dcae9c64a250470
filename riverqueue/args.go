package riverqueue

import (
	"time"

	"github.com/riverqueue/river"

	"github.com/nectarhooks/nectarhooks"
)

// Kind is the River job kind of Args: the value of river_job.kind for the
// jobs this package inserts.
const Kind = "nectarhooks_message"

// CompletedJobRetention is the least river.Config.CompletedJobRetentionPeriod
// that keeps a completed message's job, and so its uniqueness, for as long
// as nectarhooks keeps a processed message in an idempotency store
// (nectarhooks.DefaultIdempotencyTTL, 48 hours): longer than Svix's 28 hours
// of retries. River's own default is 24 hours.
const CompletedJobRetention = nectarhooks.DefaultIdempotencyTTL

// Args is the River job of one verified message: what the Handler verified,
// kept so that the worker can run the callback as the intake would have.
// River stores it as JSON in river_job.args.
type Args struct {
	// ID is the message's svix-id, the same for every delivery of it. With
	// Account, it makes the job's unique key.
	ID string `json:"id" river:"unique"`
	// Account is Message.Account: the account of a Handler of
	// nectarhooks.NewAccountHandler the message was delivered to, which
	// the Worker gives back to the callbacks; "" (and left out of the
	// JSON, so that the unique key of a message without one is its id
	// alone, as before accounts) otherwise. Svix sends one svix-id to
	// every endpoint: each account's message is a job of its own.
	Account string `json:"account,omitempty" river:"unique"`
	// Timestamp is when Svix signed the delivery that was taken, in UTC.
	Timestamp time.Time `json:"timestamp"`
	// EventType is the payload's event type, as the intake decoded it.
	EventType nectarhooks.EventType `json:"event_type"`
	// Payload is the body exactly as received and verified. As a []byte it
	// is stored base64-encoded, which keeps every byte: a json.RawMessage
	// would be compacted by encoding/json and normalized again by
	// PostgreSQL's jsonb (whitespace, key order, duplicate keys).
	Payload []byte `json:"payload"`
	// Trace is the trace context of the delivery that inserted the job, as
	// the Queue's WithTraceInjector wrote it (W3C traceparent and the
	// like), for the Worker's WithTraceExtractor; nil without one. It is
	// not part of the job's unique key.
	Trace map[string]string `json:"trace,omitempty"`
}

// NewArgs returns the Args of msg.
func NewArgs(msg nectarhooks.Message) Args {
	return Args{ID: msg.ID, Account: msg.Account, Timestamp: msg.Timestamp, EventType: msg.EventType, Payload: msg.Payload}
}

// Kind returns Kind, River's name for the job.
func (Args) Kind() string { return Kind }

// InsertOpts makes every insert of Args unique by the message's account and id, in River's
// default unique states, whoever inserts it (Queue or a direct
// river.Client.Insert); options given at insert time add to it.
func (Args) InsertOpts() river.InsertOpts {
	return river.InsertOpts{UniqueOpts: river.UniqueOpts{ByArgs: true}}
}

// Message returns the nectarhooks.Message a stores.
func (a Args) Message() nectarhooks.Message {
	return nectarhooks.Message{ID: a.ID, Account: a.Account, Timestamp: a.Timestamp, EventType: a.EventType, Payload: a.Payload}
}

// key is what River tells jobs apart by (see InsertOpts), as one string:
// the account and the id, apart by a space, which neither holds.
func (a Args) key() string {
	if a.Account == "" {
		return a.ID
	}
	return a.Account + " " + a.ID
}
