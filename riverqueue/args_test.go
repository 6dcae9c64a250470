package riverqueue_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/riverqueue"
)

// Payloads whose bytes a JSON re-encoding would change.
var awkwardPayloads = map[string][]byte{
	"whitespace everywhere":   []byte("  {\n\t\"eventType\" :  \"document.created.v2\" ,\r\n \"id\":\"a\"  }\n\n"),
	"duplicate keys in order": []byte(`{"id":"b","eventType":"document.created.v2","id":"a"}`),
	"escapes kept as written": []byte(`{"eventType":"document.created.v2","id":"\u00e9\/\ud83d\ude00"}`),
	"big numbers":             []byte(`{"eventType":"x","n":123456789012345678901234567890.000000}`),
	"invalid UTF-8 and NUL":   {'{', '"', 0xff, 0x00, '"', ':', '1', '}'},
	"empty":                   {},
}

// TestArgsJSON checks that Args survive River's JSON encoding byte for
// byte; TestQueue checks the same through PostgreSQL.
func TestArgsJSON(t *testing.T) {
	for name, payload := range awkwardPayloads {
		t.Run(name, func(t *testing.T) {
			msg := nectarhooks.Message{ID: "msg_1", Timestamp: time.Unix(1700000000, 0).UTC(),
				EventType: nectarhooks.EventDocumentCreated, Payload: payload}
			encoded, err := json.Marshal(riverqueue.NewArgs(msg))
			require.NoError(t, err)
			var back riverqueue.Args
			require.NoError(t, json.Unmarshal(encoded, &back))
			got := back.Message()
			assert.Equal(t, string(payload), string(got.Payload))
			assert.Equal(t, msg.ID, got.ID)
			assert.True(t, msg.Timestamp.Equal(got.Timestamp))
			assert.Equal(t, msg.EventType, got.EventType)
		})
	}
}

func TestArgsInsertOpts(t *testing.T) {
	opts := riverqueue.Args{}.InsertOpts()
	assert.True(t, opts.UniqueOpts.ByArgs, "unique by the tagged id")
	assert.Nil(t, opts.UniqueOpts.ByState, "River's default unique states, completed included")
	assert.Zero(t, opts.UniqueOpts.ByPeriod)
	assert.Equal(t, "", opts.Queue, "River's default queue")
	assert.Equal(t, riverqueue.Kind, riverqueue.Args{}.Kind())
	var _ river.JobArgsWithInsertOpts = riverqueue.Args{}
}

// FuzzArgsJSON checks that any payload and id survive the JSON round trip
// River puts Args through.
func FuzzArgsJSON(f *testing.F) {
	for _, p := range awkwardPayloads {
		f.Add("msg_1", p)
	}
	f.Fuzz(func(t *testing.T, id string, payload []byte) {
		encoded, err := json.Marshal(riverqueue.Args{ID: id, Payload: payload})
		require.NoError(t, err)
		var back riverqueue.Args
		require.NoError(t, json.Unmarshal(encoded, &back))
		if string(back.Payload) != string(payload) {
			t.Fatalf("payload %q came back as %q", payload, back.Payload)
		}
	})
}
