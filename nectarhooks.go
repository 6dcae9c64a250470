package nectarhooks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// DefaultMaxBodyBytes is the largest request body read by default: Nectar's
// payloads are a few KiB.
const DefaultMaxBodyBytes = 1 << 20

// DefaultCallbackTimeout is how long a callback may run by default before
// its context is cancelled: well inside the 15 seconds Svix waits for an
// answer, so the answer still arrives in time.
const DefaultCallbackTimeout = 10 * time.Second

// DefaultStoreTimeout is how long a Handler waits for each call of its
// idempotency store (Claim, Complete, Release) by default: a store that
// answers in milliseconds when healthy and not within a second is not
// going to answer in time for Svix's 15 seconds. See WithStoreTimeout.
const DefaultStoreTimeout = time.Second

// DefaultMaxOverrunning is how many callbacks a Handler lets run past their
// deadline at once by default (see WithMaxOverrunning).
const DefaultMaxOverrunning = 64

// maxTimeout bounds WithCallbackTimeout and WithStoreTimeout: a day is
// past any callback a webhook should run, and keeps the arithmetic of
// leases and deadlines far from overflowing. "No timeout" spelled
// math.MaxInt64 is refused rather than taken literally.
const maxTimeout = 24 * time.Hour

// An Option configures a Verifier or a Handler. The same options serve both
// NewVerifier and NewHandler; each says which it affects.
type Option func(*options) error

type options struct {
	secrets         []string
	tolerance       time.Duration
	clock           func() time.Time
	maxBodyBytes    int64
	logger          *slog.Logger
	callbackTimeout time.Duration
	storeTimeout    time.Duration
	maxOverrunning  int
	onError         func(ctx context.Context, status int, err error)
	idempotency     IdempotencyStore
	async           *asyncConfig
	queue           Queue
	refusals        refusalLog // bounds the warnings of unverified refusals
	observer        Observer
	deadLetters     DeadLetterStore
	keyCacheSize    int
	keyCacheTTL     time.Duration
}

func newOptions(opts []Option) (*options, error) {
	o := &options{
		tolerance:       DefaultTolerance,
		clock:           time.Now,
		maxBodyBytes:    DefaultMaxBodyBytes,
		callbackTimeout: DefaultCallbackTimeout,
		storeTimeout:    DefaultStoreTimeout,
		maxOverrunning:  DefaultMaxOverrunning,
		keyCacheSize:    DefaultKeyCacheSize,
		keyCacheTTL:     DefaultKeyCacheTTL,
	}
	o.refusals.start = time.Now()
	for _, opt := range opts {
		if opt == nil {
			continue
		}
		if err := opt(o); err != nil {
			return nil, err
		}
	}
	return o, nil
}

// errInvalidOption is wrapped by the errors of options given impossible
// values, such as a negative tolerance.
var errInvalidOption = errors.New("nectarhooks: invalid option")

// WithSecrets accepts messages signed with any of more, in addition to the
// secret passed to NewVerifier or NewHandler. During a secret rotation,
// list the new secret and the old one until Svix has switched over. Each
// follows the rules of NewVerifier. Default: none.
func WithSecrets(more ...string) Option {
	return func(o *options) error {
		o.secrets = append(o.secrets, more...)
		return nil
	}
}

// WithTolerance sets how far a message's timestamp may be from the clock,
// in either direction, before it is refused as a replay. It must be
// positive. Default: DefaultTolerance (5 minutes).
func WithTolerance(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return fmt.Errorf("%w: WithTolerance(%s): want a positive duration", errInvalidOption, d)
		}
		o.tolerance = d
		return nil
	}
}

// WithClock sets the clock timestamps are checked against, for tests.
// (The warnings of refused requests are spaced on the monotonic clock,
// whatever this one says; see WithLogger.) Default: time.Now.
func WithClock(now func() time.Time) Option {
	return func(o *options) error {
		if now == nil {
			return fmt.Errorf("%w: WithClock(nil)", errInvalidOption)
		}
		o.clock = now
		return nil
	}
}

// WithMaxBodyBytes sets the largest request body the Handler and
// Verifier.Middleware read; larger ones are answered 413 without reading
// them further. It must be positive. Default: DefaultMaxBodyBytes (1 MiB).
func WithMaxBodyBytes(n int64) Option {
	return func(o *options) error {
		if n <= 0 {
			return fmt.Errorf("%w: WithMaxBodyBytes(%d): want a positive size", errInvalidOption, n)
		}
		o.maxBodyBytes = n
		return nil
	}
}

// WithLogger sets where the Handler and Verifier.Middleware log. Without
// an error handler (WithErrorHandler) they log each delivery they refuse
// (warning for 4xx) or fail (error for 5xx, with the stack of a panic);
// with one, those go to the error handler alone, every one of them.
//
// Requests refused before they were verified (401, and 400, 405 or 413
// for requests not read far enough to verify) can come from anyone who
// reaches the endpoint, so their log volume is bounded: at most one
// warning per RefusalLogInterval (10 seconds, on the monotonic clock), the
// others logged at debug level; the next warning's "suppressed" attribute
// counts the refusals logged at debug level since the one before. A wrong
// secret, which refuses every real delivery, still shows as a warning
// every 10 seconds. Refusals of verified deliveries (a payload that does
// not decode, 409) come from Svix alone and are each warned of.
//
// They also log messages acknowledged without a callback (debug, or info
// for event types this version does not know), idempotency store failures
// (error), callbacks that return after their delivery was answered 503
// (warning), and panics recovered from an error handler, store or logger
// off the request's goroutine (error). A nil logger logs nothing. Default:
// slog.Default() at the time of each record.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		if l == nil {
			l = slog.New(slog.DiscardHandler)
		}
		o.logger = l
		return nil
	}
}

// WithCallbackTimeout sets how long a Handler's callback may run before
// its context is cancelled; a callback that then returns an error gets a
// 503, and Svix retries. Callbacks should watch their context. One that
// has not returned half a second after the deadline is not waited for:
// the delivery is answered 503 (an async worker moves on to the next
// message) and the callback is left running on its goroutine; when it
// returns, its idempotency claim is settled as usual, and its error, if
// other than the deadline's, reaches the error handler with status 0.
// Until then the claim's lease (d + LeaseGrace) refuses redeliveries with
// 409; after it, a redelivery runs beside the hung callback. How many may
// be left running at once is bounded (WithMaxOverrunning).
//
// d must be positive and at most 24 hours; "no timeout" is not on offer,
// since a callback that never returns holds its message's claim for ever.
// Default: DefaultCallbackTimeout (10 seconds, inside Svix's 15).
func WithCallbackTimeout(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 || d > maxTimeout {
			return fmt.Errorf("%w: WithCallbackTimeout(%s): want a positive duration of at most %s", errInvalidOption, d, maxTimeout)
		}
		o.callbackTimeout = d
		return nil
	}
}

// WithStoreTimeout bounds each call a Handler makes to its idempotency
// store (WithIdempotency): Claim, Complete and Release each get a context
// with this deadline, and the Handler stops waiting for a call that has not
// returned shortly after it, also for a store that ignores its context.
// A Claim past it answers the delivery 503 (ErrStoreUnavailable), and Svix
// retries; should the store grant the claim later, the Handler releases it.
// A Complete or Release past it does not change the answer, which the
// callback's outcome decides: the call goes on in the background, bounded
// by the same deadline, and a failure is logged.
//
// With the defaults, a delivery is answered within the Claim (1 s), the
// callback (10 s, WithCallbackTimeout) and half a second of grace, and the
// settling (1 s): 12.5 s, inside the 15 s Svix waits, whatever the store
// does. d must be positive and at most 24 hours. Default:
// DefaultStoreTimeout (1 second).
func WithStoreTimeout(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 || d > maxTimeout {
			return fmt.Errorf("%w: WithStoreTimeout(%s): want a positive duration of at most %s", errInvalidOption, d, maxTimeout)
		}
		o.storeTimeout = d
		return nil
	}
}

// WithMaxOverrunning bounds the callbacks a Handler leaves running past
// their deadline (see WithCallbackTimeout). Each keeps a goroutine, its
// payload and whatever it holds, so callbacks that ignore their context
// and hang would otherwise pile up until the process runs out of memory.
// While n are running, a Handler that runs callbacks before answering
// refuses new deliveries with 503 (ErrOverrunning) at once, and Svix
// retries them later; a WithAsync worker waits for its callback instead of
// leaving it, so the queue fills and intake answers 503 (ErrQueueFull).
// Handler.Overrunning reports the count. n must be positive. Default:
// DefaultMaxOverrunning (64).
func WithMaxOverrunning(n int) Option {
	return func(o *options) error {
		if n <= 0 {
			return fmt.Errorf("%w: WithMaxOverrunning(%d): want a positive count", errInvalidOption, n)
		}
		o.maxOverrunning = n
		return nil
	}
}

// WithErrorHandler sets fn to be called once for every delivery the Handler
// or Verifier.Middleware does not acknowledge with 2xx, and for every
// callback that fails after an asynchronous Handler has answered, in place
// of logging them. status is the HTTP status answered, or 0 when the answer
// had already been sent. err tells the cause apart with errors.Is and
// errors.As (see StatusCode; a *PanicError carries the panic's stack), and
// ctx holds the Message when the delivery was verified. fn runs on the
// request's goroutine for the deliveries it answers, and for failures after
// the answer (status 0) on an async worker's goroutine or that of a
// callback that overran its deadline; it may run concurrently, and should
// be quick. A panic of fn on a request's goroutine is net/http's to
// recover; elsewhere it is recovered and logged, so that it cannot end
// the process. Default: none; failures are logged (WithLogger). To see
// every delivery, successes included, with timings, use WithObserver,
// which is called in addition.
func WithErrorHandler(fn func(ctx context.Context, status int, err error)) Option {
	return func(o *options) error {
		o.onError = fn
		return nil
	}
}

// log returns the logger to use now.
func (o *options) log() *slog.Logger {
	if o.logger != nil {
		return o.logger
	}
	return slog.Default()
}
