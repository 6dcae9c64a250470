package nectarhooks

import "time"

// WithRefusalClock replaces the monotonic clock that spaces the warnings of
// refused requests with elapsed, the time since the options were made, so
// that tests can step it. Exported for the external test package.
func WithRefusalClock(elapsed func() time.Duration) Option {
	return func(o *options) error {
		o.refusals.elapsed = elapsed
		return nil
	}
}
