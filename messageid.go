package nectarhooks

import (
	"errors"
	"fmt"
)

// MaxMessageIDLength is the longest svix-id a Handler or
// Verifier.Middleware accepts, in bytes. Svix's ids are about 31 bytes.
const MaxMessageIDLength = 256

// ErrInvalidMessageID is the error, answered with 400, of a verified
// delivery whose svix-id (or webhook-id) is not 1 to MaxMessageIDLength
// bytes of printable ASCII without spaces; Svix's ids are "msg_" and 27
// letters and digits. The Handler, Verifier.Middleware and
// Handler.DispatchVerified refuse such ids before anything runs, because
// every place a message is kept by its id treats other bytes its own way:
// encoding/json replaces invalid UTF-8 with U+FFFD (two ids become one job),
// PostgreSQL's text refuses NUL, terminals and logs interpret control
// bytes. Verifier.Verify, which only checks a signature, accepts any id.
var ErrInvalidMessageID = errors.New("nectarhooks: invalid message id")

// checkMessageID returns an error matching ErrInvalidMessageID unless id
// is one the SDK processes (see ErrInvalidMessageID).
func checkMessageID(id string) error {
	if len(id) == 0 || len(id) > MaxMessageIDLength {
		return fmt.Errorf("%w: %d bytes, want 1 to %d", ErrInvalidMessageID, len(id), MaxMessageIDLength)
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c <= ' ' || c > '~' {
			return fmt.Errorf("%w: byte %#02x at %d, want printable ASCII without spaces", ErrInvalidMessageID, c, i)
		}
	}
	return nil
}
