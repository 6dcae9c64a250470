package nectarhooks_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
)

func TestHandlerReportError(t *testing.T) {
	msg := nectarhooks.Message{
		ID:        "msg_report",
		Timestamp: time.Unix(1700000000, 0).UTC(),
		EventType: nectarhooks.EventDocumentCreated,
		Payload:   []byte(`{"type":"document.created.v2"}`),
	}
	cause := &nectarhooks.CallbackError{EventType: msg.EventType, MessageID: msg.ID, Err: errors.New("disk full")}

	t.Run("error handler gets status, error and Message", func(t *testing.T) {
		type report struct {
			status int
			err    error
			msg    nectarhooks.Message
			hasMsg bool
		}
		var got []report
		h, err := nectarhooks.NewHandler(nectarhookstest.NewSecret(),
			nectarhooks.WithErrorHandler(func(ctx context.Context, status int, err error) {
				m, ok := nectarhooks.MessageFromContext(ctx)
				got = append(got, report{status, err, m, ok})
			}))
		require.NoError(t, err)

		h.ReportError(nectarhooks.ContextWithMessage(context.Background(), msg), 0, cause)

		require.Len(t, got, 1)
		assert.Equal(t, 0, got[0].status)
		assert.Same(t, cause, got[0].err)
		require.True(t, got[0].hasMsg)
		assert.Equal(t, msg.ID, got[0].msg.ID)
		assert.Equal(t, msg.EventType, got[0].msg.EventType)
	})

	logCases := []struct {
		name      string
		status    int
		wantLevel string
		wantText  string
	}{
		{"after the answer", 0, "level=ERROR", "callback failed after the delivery was acknowledged"},
		{"service failure", 503, "level=ERROR", "delivery failed"},
		{"refusal", 400, "level=WARN", "delivery refused"},
	}
	for _, tc := range logCases {
		t.Run("logged without an error handler: "+tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			h, err := nectarhooks.NewHandler(nectarhookstest.NewSecret(),
				nectarhooks.WithLogger(slog.New(slog.NewTextHandler(&buf, nil))))
			require.NoError(t, err)

			h.ReportError(nectarhooks.ContextWithMessage(context.Background(), msg), tc.status, cause)

			out := buf.String()
			assert.Contains(t, out, tc.wantLevel)
			assert.Contains(t, out, tc.wantText)
			assert.Contains(t, out, "message_id="+msg.ID)
			assert.Contains(t, out, "event_type="+string(msg.EventType))
			assert.Contains(t, out, "disk full")
		})
	}
}
