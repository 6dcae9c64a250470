package nectarhooks

import (
	"context"
	"os"
	"testing"
)

// BenchmarkCallbackRun measures what running a callback on a goroutine of
// its own (runCallback) costs over calling it inline under the same
// deadline, the choice callbackrun.go explains, in the same run:
//
//	go test -run '^$' -bench CallbackRun -benchmem -count 10 .
func BenchmarkCallbackRun(b *testing.B) {
	payload, err := os.ReadFile("testdata/connection.updated.v2.json")
	if err != nil {
		b.Fatal(err)
	}
	h, err := NewHandler(vtSecret)
	if err != nil {
		b.Fatal(err)
	}
	h.OnConnectionUpdated(func(context.Context, *ConnectionUpdated) error { return nil })
	ev, err := Parse(payload)
	if err != nil {
		b.Fatal(err)
	}
	msg := &Message{ID: "msg_bench", EventType: ev.Type(), Payload: payload}
	parent := &msgContext{Context: context.Background(), msg: *msg}

	b.Run("inline", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			ctx, cancel := context.WithTimeout(parent, h.opts.callbackTimeout)
			err := h.call(ctx, msg, ev)
			cancel()
			if err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("own-goroutine", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := h.runCallback(parent, msg, ev, "", false); err != nil {
				b.Fatal(err)
			}
		}
	})
}
