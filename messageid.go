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

// CheckMessageID returns nil when id is a message id the Handler,
// Verifier.Middleware and Handler.DispatchVerified process, and otherwise
// an error matching ErrInvalidMessageID that says which byte or length is
// wrong (never repeating the id): for code that makes or stores ids of
// its own, such as a Queue's consumer or a tool that sends test deliveries.
func CheckMessageID(id string) error {
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
