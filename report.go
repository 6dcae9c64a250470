package nectarhooks

import "context"

// ReportError hands err to the Handler's error handler (WithErrorHandler)
// or, when none is set, to its log (WithLogger), exactly as the Handler
// reports the deliveries it fails itself. It is for the consumer of a
// WithQueue queue, whose failures happen after the delivery was answered:
// pass status 0 for those (the answer had already been sent), and a ctx
// carrying the Message (ContextWithMessage) so that the error handler, or
// the log record, can tell which message failed. It is safe for concurrent
// use.
func (h *Handler) ReportError(ctx context.Context, status int, err error) {
	h.opts.report(ctx, status, err)
}
