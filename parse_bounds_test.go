package nectarhooks

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Parse decodes every field before it knows the event type (the
// "eventType" may come last), so a field of another event type is decoded
// too and its type errors noted, in case the payload turns out to be of
// that type. A sender could fill a payload with such errors: these tests
// and benchmarks hold Parse to work proportional to the bytes, with a
// bounded number of allocations, as encoding/json's is.

// foreignErrorPayloads are payloads of about size bytes, each made of one
// bad value repeated, in a field the resolved type does not have or (the
// last ones) in one it has.
func foreignErrorPayloads(size int) []struct{ name, payload string } {
	repeat := func(head, member, tail string) string {
		n := (size - len(head) - len(tail)) / (len(member) + 1)
		return head + strings.TrimSuffix(strings.Repeat(member+",", n), ",") + tail
	}
	return []struct{ name, payload string }{
		{"old.created strings in connection.created", repeat(`{"eventType":"connection.created.v2","old":{`, `"created":"not a time"`, `}}`)},
		{"old.created numbers in document.created", repeat(`{"eventType":"document.created.v2","old":{`, `"created":12345`, `}}`)},
		{"status numbers in document.updated", repeat(`{"eventType":"document.updated.v2",`, `"status":1`, `}`)},
		{"site strings in connection.updated", repeat(`{"eventType":"connection.updated.v2",`, `"site":"x"`, `}`)},
		{"protectedChanges objects in document.created", repeat(`{"eventType":"document.created.v2",`, `"protectedChanges":{}`, `}`)},
		{"old.created strings in connection.updated", repeat(`{"eventType":"connection.updated.v2","old":{`, `"created":"not a time"`, `}}`)},
		{"created strings, no eventType", repeat(`{"site":{},`, `"created":"yesterday"`, `}`)},
	}
}

// TestParseForeignTypeErrorsAllocations is named for CI's allocation step,
// which runs it without the race detector (under it, parsing is slow
// enough to matter, and the count is the same). Before the bound, a
// megabyte of bad old.created values cost one error (and time.Parse's
// attempts) per value: over 300,000 allocations; a quarter of that here.
func TestParseForeignTypeErrorsAllocations(t *testing.T) {
	if RaceEnabled {
		t.Skip("slow under the race detector; CI runs the allocation tests without it")
	}
	for _, tc := range foreignErrorPayloads(256 << 10) {
		t.Run(tc.name, func(t *testing.T) {
			payload := []byte(tc.payload)
			require.Greater(t, len(payload), 128<<10)
			allocs := testing.AllocsPerRun(3, func() { _, _ = Parse(payload) })
			// The copy of the payload for strings, the result or its error,
			// a few pointers: a constant, whatever the size.
			assert.LessOrEqual(t, allocs, 40.0)
		})
	}
}

// The bound must not change what Parse answers: encoding/json still agrees
// on the same payloads, small enough to compare quickly.
func TestParseForeignTypeErrorsMatchOracle(t *testing.T) {
	for _, tc := range foreignErrorPayloads(2000) {
		t.Run(tc.name, func(t *testing.T) {
			checkAgainstOracle(t, []byte(tc.payload))
		})
	}
}

// TestParseReportsFirstTypeErrorOfItsKind checks which error is reported
// when several are seen: the first one of a field the resolved type has,
// even after errors in fields it does not have.
func TestParseReportsFirstTypeErrorOfItsKind(t *testing.T) {
	tests := []struct {
		name, payload, field string
	}{
		{"foreign then own", `{"eventType":"document.created.v2","status":1,"status":2,"created":"x","id":3}`, "created"},
		{"own then foreign", `{"eventType":"document.created.v2","id":3,"status":1,"created":"x"}`, "id"},
		{"updated-only then own", `{"eventType":"connection.created.v2","old":{"created":"x"},"old":{"url":1},"url":2}`, "url"},
		{"updated-only reported for updated", `{"eventType":"document.updated.v2","old":{"created":"x"},"old":{"created":"y"},"id":3}`, "old.created"},
		{"shape decides afterwards", `{"status":1,"created":"x","site":{}}`, "created"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.payload))
			var pe *PayloadError
			require.ErrorAs(t, err, &pe)
			assert.Equal(t, tt.field, pe.Field)
			checkAgainstOracle(t, []byte(tt.payload))
		})
	}
}

// BenchmarkParseForeignTypeErrors compares Parse with what it replaces,
// encoding/json into the resolved type, on a megabyte of bad values.
func BenchmarkParseForeignTypeErrors(b *testing.B) {
	for _, tc := range foreignErrorPayloads(1 << 20)[:3] {
		payload := []byte(tc.payload)
		typ := PeekEventType(payload)
		b.Run("nectarhooks/"+tc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(payload)))
			for b.Loop() {
				_, _ = Parse(payload)
			}
		})
		b.Run("encoding-json/"+tc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(payload)))
			for b.Loop() {
				ev, _ := eventStructFor(typ)
				_ = json.Unmarshal(payload, ev)
			}
		})
	}
}

// eventStructFor returns a new, empty struct of typ's type.
func eventStructFor(typ EventType) (Event, bool) {
	switch typ {
	case EventConnectionCreated:
		return &ConnectionCreated{}, true
	case EventConnectionUpdated:
		return &ConnectionUpdated{}, true
	case EventConnectionValidated:
		return &ConnectionValidated{}, true
	case EventDocumentCreated:
		return &DocumentCreated{}, true
	case EventDocumentUpdated:
		return &DocumentUpdated{}, true
	}
	return &UnknownEvent{}, false
}
