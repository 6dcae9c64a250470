package nectarhooks

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// errOracleNotObject marks a top level that json.Unmarshal accepts into a
// struct (null) but Parse must not.
var errOracleNotObject = errors.New("oracle: top level is not an object")

// oracleParse is Parse's contract spelled out with encoding/json: the type
// from "eventType", else from the shape of the top-level keys, then
// json.Unmarshal into the typed struct.
func oracleParse(payload []byte) (Event, error) {
	var peek struct {
		EventType *string `json:"eventType"`
	}
	if err := json.Unmarshal(payload, &peek); err != nil {
		return nil, err
	}
	// Unmarshal has validated the JSON; only null and non-objects remain.
	if trimmed := bytes.TrimLeft(payload, " \t\r\n"); len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, errOracleNotObject
	}
	var typ EventType
	if peek.EventType != nil {
		typ = EventType(*peek.EventType)
	}
	if typ == "" {
		var top map[string]json.RawMessage
		if err := json.Unmarshal(payload, &top); err != nil {
			return nil, err
		}
		has := func(name string) bool {
			for k := range top {
				if bytes.EqualFold([]byte(k), []byte(name)) {
					return true
				}
			}
			return false
		}
		switch {
		case has("protectedChanges"):
			typ = EventConnectionUpdated
		case has("datasource") || has("sitesRelations"):
			typ = EventConnectionCreated
		case has("site") && has("old"):
			typ = EventDocumentUpdated
		case has("site"):
			typ = EventDocumentCreated
		}
	}
	var ev Event
	switch typ {
	case EventConnectionCreated:
		ev = &ConnectionCreated{}
	case EventConnectionValidated:
		ev = &ConnectionValidated{}
	case EventConnectionUpdated:
		ev = &ConnectionUpdated{}
	case EventDocumentCreated:
		ev = &DocumentCreated{}
	case EventDocumentUpdated:
		ev = &DocumentUpdated{}
	default:
		return &UnknownEvent{EventType: typ, Raw: payload}, nil
	}
	if err := json.Unmarshal(payload, ev); err != nil {
		return nil, err
	}
	setRaw(ev, payload)
	return ev, nil
}

// checkAgainstOracle requires Parse and PeekEventType to agree with
// oracleParse on payload.
func checkAgainstOracle(t *testing.T, payload []byte) {
	t.Helper()
	orig := bytes.Clone(payload)
	got, err := Parse(payload)
	require.Equal(t, orig, payload, "Parse modified the payload")
	want, oerr := oracleParse(payload)
	peek := PeekEventType(payload)

	if oerr != nil {
		require.Error(t, err, "Parse accepted what encoding/json rejects (%v): %q", oerr, clip(payload))
		require.Nil(t, got)
		require.ErrorIs(t, err, ErrInvalidPayload)
		var pe *PayloadError
		require.ErrorAs(t, err, &pe)
		require.GreaterOrEqual(t, pe.Offset, 0)
		require.LessOrEqual(t, pe.Offset, len(payload))
		if pe.Field == "" || pe.Field == "eventType" {
			require.Equal(t, EventType(""), peek, "PeekEventType typed a payload Parse cannot")
		}
		return
	}
	require.NoError(t, err, "Parse rejected what encoding/json accepts: %q", clip(payload))
	require.IsType(t, want, got)
	require.Equal(t, want.Type(), got.Type())
	require.Equal(t, got.Type(), peek, "PeekEventType")
	raw := rawOf(got)
	require.Equal(t, len(payload), len(raw))
	if len(payload) > 0 {
		require.Same(t, &payload[0], &raw[0], "Raw is not the payload")
	}
	setRaw(want, nil)
	setRaw(got, nil)
	require.Equal(t, normalizeTimes(want), normalizeTimes(got), "times")
	require.Equal(t, want, got)
}

// deepNest wraps inner in n arrays.
func deepNest(n int, inner string) string {
	return strings.Repeat("[", n) + inner + strings.Repeat("]", n)
}

// trickyInputs are the cases the oracle is most likely to catch the
// decoder out on. They seed FuzzParse and run in TestParseMatchesOracle.
var trickyInputs = map[string]string{
	// Key matching: escapes, case folding (ſ folds to s, K to k; ı and İ
	// fold to nothing ASCII), near misses.
	"escaped-key":            `{"s\u0069te":{"\u0069d":"x"}}`,
	"escaped-eventtype-key":  `{"event\u0054ype":"document.created.v2","site":{}}`,
	"upper-keys":             `{"SITE":{"ID":"x","NAME":"n"},"OLD":{"SITE":{"ID":"o"}}}`,
	"long-s-keys":            `{"ſite":{"id":"x"},"ſtatus":"CONNECTED","ſitesRelations":[{"ſite":{"id":"y"}}]}`,
	"kelvin-key":             `{"eventType":"connection.created.v2","\u212a":1,"id":"k"}`,
	"dotless-i":              `{"sıte":{"ıd":"x"},"SİTE":{}}`,
	"mixed-case-all":         `{"EventType":"connection.updated.v2","pRoTeCtEdChAnGeS":["a"],"OlD":{"StAtUs":"P","CoMpAnY":{"PuBlIcId":"p"}},"CoMpAnY":{"ExTeRnAlId":"e"}}`,
	"exact-beats-fold":       `{"ID":"fold","id":"exact","Id":"fold2","eventType":"document.created.v2"}`,
	"empty-key":              `{"":1,"site":{"":2}}`,
	"near-miss-keys":         `{"sitee":{},"site ":{},"protectedChange":[],"data source":{}}`,
	"key-with-escaped-quote": `{"si\"te":{},"site":{"i\"d":1}}`,

	// Duplicate keys decode into what the earlier ones left.
	"dup-scalars":         `{"eventType":"document.created.v2","id":"a","id":null,"ID":"b","id":"c"}`,
	"dup-eventtype-null":  `{"eventType":"document.created.v2","eventType":null,"datasource":{}}`,
	"dup-eventtype-empty": `{"eventType":"x.v3","eventType":"","site":{}}`,
	"dup-eventtype-last":  `{"eventType":null,"eventType":"document.updated.v2"}`,
	"dup-objects":         `{"site":{"id":"a","name":"n"},"site":{"id":"b"},"site":null,"company":{"id":"c"},"company":{"name":"d"}}`,
	"dup-slice-shrink":    `{"protectedChanges":["a","b","c"],"protectedChanges":["x"]}`,
	"dup-slice-reexpose":  `{"protectedChanges":["a","b"],"protectedChanges":["c"],"protectedChanges":[null,null]}`,
	"dup-slice-grow":      `{"protectedChanges":["a"],"protectedChanges":[null,null,"z"]}`,
	"dup-slice-empty":     `{"protectedChanges":["a"],"protectedChanges":[],"protectedChanges":[null]}`,
	"dup-struct-slice":    `{"sitesRelations":[{"accountIds":["a","b"],"site":{"id":"1","name":"one"}},{"site":{"id":"2"}}],"sitesRelations":[{"accountIds":[null],"site":{"name":"uno"}}],"sitesRelations":[{},{}]}`,
	"dup-nested-slice":    `{"sitesRelations":[{"datasourceTypes":["E","G"]}],"sitesRelations":[{"datasourceTypes":["W"]}],"sitesRelations":[{"datasourceTypes":[null,null]}]}`,
	"dup-old-pointers":    `{"protectedChanges":[],"old":{"company":{"id":"a"},"status":"S","url":"u"},"old":{"company":{"name":"b"},"status":null},"old":null}`,
	"dup-old-slice":       `{"protectedChanges":[],"old":{"sitesRelations":[{"site":{"id":"a"}}]},"old":{"sitesRelations":[{"accountIds":[]}]}}`,
	"dup-old-time":        `{"site":{},"old":{"created":"2024-09-06T00:15:43.073014","created":null,"updated":"2024-09-06T00:15:43Z","updated":"2024-09-07T00:00:00.000000"}}`,
	"dup-time":            `{"site":{},"created":"2024-09-06T00:15:43.073014","created":null,"updated":null,"updated":"2024-09-06T00:15:43Z"}`,

	// Nulls everywhere.
	"null-elements":    `{"sitesRelations":[null,{"site":null,"accountIds":[null,"a"],"datasourceTypes":null}],"protectedChanges":[null]}`,
	"null-values":      `{"eventType":"connection.updated.v2","id":null,"company":null,"datasource":null,"sitesRelations":null,"status":null,"url":null,"created":null,"updated":null,"protectedChanges":null,"old":null}`,
	"null-old-fields":  `{"site":null,"old":{"id":null,"company":null,"site":null,"created":null,"updated":null,"status":null}}`,
	"null-eventtype":   `{"eventType":null}`,
	"empty-containers": `{"sitesRelations":[{"accountIds":[],"datasourceTypes":[],"site":{}}],"protectedChanges":[],"old":{"sitesRelations":[]},"company":{}}`,

	// Strings: escapes, invalid UTF-8, surrogates.
	"escaped-eventtype":   `{"eventType":"\u0063onnection.created.v\u0032","id":"x"}`,
	"escapes":             `{"site":{"id":"\"\\\/\b\f\n\r\t","name":"\u00e9\ud83d\ude00\u2028"}}`,
	"lone-surrogate":      `{"site":{"id":"\ud800","name":"\udc00x\ud800\u0041"}}`,
	"invalid-utf8-value":  "{\"site\":{\"id\":\"\xff\xfe\",\"name\":\"a\xc3(b\"}}",
	"invalid-utf8-key":    "{\"s\xffte\":{},\"\xff\":1,\"site\":{\"id\":\"ok\"}}",
	"invalid-utf8-type":   "{\"eventType\":\"document.created.v2\xff\",\"site\":{}}",
	"surrogate-in-utf8":   "{\"site\":{\"id\":\"\xed\xa0\x80\"}}",
	"overlong-utf8":       "{\"site\":{\"id\":\"\xc0\xaf\"}}",
	"utf8-noncharacter":   "{\"site\":{\"id\":\"\xef\xbf\xbf\xf4\x8f\xbf\xbf\"}}",
	"control-char":        "{\"site\":{\"id\":\"a\x01b\"}}",
	"control-char-1f":     "{\"site\":{\"id\":\"a\x1fb\"},\"x\x1f\":1}",
	"del-char":            "{\"site\":{\"id\":\"a\x7fb\"}}",
	"bad-escape":          `{"site":{"id":"\a"}}`,
	"bad-unicode-escape":  `{"site":{"id":"\u00g0"}}`,
	"backslash-at-end":    `{"site":{"id":"\`,
	"html-chars":          `{"site":{"name":"<script>&amp;</script>"}}`,
	"eventtype-non-ascii": `{"eventType":"ünknown.v2","site":{}}`,

	// Wrong types, in fields of the resolved kind and of others.
	"wrong-eventtype-number":   `{"eventType":1,"site":{}}`,
	"wrong-eventtype-later":    `{"eventType":"x.v3","eventType":false}`,
	"wrong-type-other-kind":    `{"site":{},"status":1,"datasource":2,"protectedChanges":3}`,
	"wrong-type-unknown":       `{"eventType":"x.v3","id":1,"site":2,"old":3,"created":"never"}`,
	"wrong-type-nested":        `{"sitesRelations":[{"site":{"id":1}}]}`,
	"wrong-type-array-elem":    `{"sitesRelations":[{"accountIds":["a",1,"b"]}]}`,
	"wrong-type-then-fine":     `{"site":{"id":1},"site":{"id":"x"}}`,
	"wrong-type-old":           `{"protectedChanges":[],"old":{"status":{}}}`,
	"wrong-type-old-doc-field": `{"protectedChanges":[],"old":{"site":1}}`,
	"wrong-type-old-for-doc":   `{"site":{},"old":{"status":1,"url":[],"datasource":"d","sitesRelations":{}}}`,
	"wrong-old-created-kind":   `{"eventType":"connection.created.v2","old":5,"protectedChanges":"x"}`,
	"wrong-time-number":        `{"site":{},"created":20240906}`,
	"wrong-time-object":        `{"site":{},"updated":{"t":1}}`,
	"wrong-time-bool":          `{"site":{},"updated":true}`,

	// Times the decoder and Time.UnmarshalJSON must read alike.
	"time-rfc3339":        `{"site":{},"created":"2024-09-06T02:15:43.5+02:00","updated":"2024-09-06T00:15:43Z"}`,
	"time-no-fraction":    `{"site":{},"created":"2024-09-06T00:15:43"}`,
	"time-nanos":          `{"site":{},"created":"2024-09-06T00:15:43.123456789"}`,
	"time-comma":          `{"site":{},"created":"2024-09-06T00:15:43,073014"}`,
	"time-escaped":        `{"site":{},"created":"2024-09-06T00:15:43.07301\u0034"}`,
	"time-bad-day":        `{"site":{},"created":"2024-02-30T00:00:00.000000"}`,
	"time-zero":           `{"site":{},"created":"0001-01-01T00:00:00.000000","old":{"created":"0001-01-01T00:00:00Z"}}`,
	"time-empty":          `{"site":{},"created":""}`,
	"time-invalid-utf8":   "{\"site\":{},\"created\":\"2024-09-06T00:15:43.07301\xff\"}",
	"time-one-hour-digit": `{"site":{},"created":"2024-09-06T1:15:43.073014"}`,
	"time-empty-after":    `{"eventType":"document.created.v2","created":"2024-09-06T00:15:43.073014","created":""}`,
	"time-empty-old":      `{"eventType":"connection.updated.v2","old":{"created":"","updated":null}}`,

	// Several type errors: only the first of the resolved type's counts.
	"errors-foreign-then-own": `{"eventType":"document.created.v2","status":1,"status":2,"created":"x","id":3}`,
	"errors-own-then-foreign": `{"eventType":"document.created.v2","id":3,"status":1,"created":"x"}`,
	"errors-old-repeated":     `{"eventType":"document.updated.v2","old":{"created":"x"},"old":{"created":1},"id":3}`,
	"errors-old-foreign":      `{"eventType":"connection.created.v2","old":{"created":"x","created":"y","url":1},"url":"u"}`,
	"errors-before-shape":     `{"status":1,"created":"x","site":{}}`,

	// Numbers and literals in skipped values.
	"numbers":        `{"site":{},"a":-0,"b":-0.0e+00,"c":1E400,"d":123456789012345678901234567890,"e":0.1e-9}`,
	"bad-number":     `{"site":{},"a":01}`,
	"bad-number-2":   `{"site":{},"a":1.e5}`,
	"bad-number-3":   `{"site":{},"a":-.5}`,
	"bad-literal":    `{"site":{},"a":nulL}`,
	"literal-prefix": `{"site":{},"a":truex}`,

	// Structure: top level, trailing bytes, white space, nesting.
	"empty":            ``,
	"space-only":       " \t\r\n",
	"null":             `null`,
	"array":            `[{"site":{}}]`,
	"string":           `"site"`,
	"number":           `0`,
	"empty-object":     `{}`,
	"white-space":      " \t\r\n{ \"site\" : { } , \"id\" :\n\"x\" }\r\n\t ",
	"trailing-garbage": `{"site":{}} x`,
	"trailing-comma":   `{"site":{}},`,
	"trailing-brace":   `{"site":{}}}`,
	"trailing-nul":     "{\"site\":{}}\x00",
	"two-objects":      `{"site":{}}{"datasource":{}}`,
	"bom":              "\xef\xbb\xbf{\"site\":{}}",
	"form-feed-space":  "{\f\"site\":{}}",
	"unclosed":         `{"site":{"id":"x"}`,
	"unclosed-array":   `{"protectedChanges":["a"`,
	"missing-colon":    `{"site" {}}`,
	"missing-comma":    `{"site":{} "id":"x"}`,
	"array-trailing":   `{"protectedChanges":["a",]}`,
	"object-trailing":  `{"site":{"id":"x",}}`,
	"deep-skipped":     `{"site":{},"x":` + deepNest(200, `{"a":null}`) + `}`,
	"deep-typed":       `{"site":{},"company":` + deepNest(200, "") + `}`,
	"deep-unclosed":    `{"site":{},"x":` + strings.Repeat("[", 300) + `}`,
	"deep-objects":     `{"site":{},"x":` + strings.Repeat(`{"a":`, 300) + `1` + strings.Repeat("}", 300) + `}`,
}

// bigInputs are too large for seed files; they run only in the table test.
var bigInputs = map[string]string{
	"depth-10000":       `{"site":{},"x":` + deepNest(9999, "") + `}`,
	"depth-10001":       `{"site":{},"x":` + deepNest(10000, "") + `}`,
	"depth-10000-typed": `{"site":{},"sitesRelations":[{"site":` + deepNest(9997, "") + `}]}`,
	"depth-10001-typed": `{"site":{},"sitesRelations":[{"site":` + deepNest(9998, "") + `}]}`,
	"depth-10001-empty": `{"site":{},"x":` + strings.Repeat(`{"a":`, 9999) + `{}` + strings.Repeat("}", 9999) + `}`,
}

func TestParseMatchesOracle(t *testing.T) {
	run := func(name string, payload []byte) {
		t.Run(name, func(t *testing.T) { checkAgainstOracle(t, payload) })
	}
	for name, in := range trickyInputs {
		run(name, []byte(in))
	}
	for name, in := range bigInputs {
		run(name, []byte(in))
	}
	for _, name := range testdataFiles(t) {
		run(name, readTestdata(t, name))
	}
}

// The oracle must be able to fail: it has to tell these apart.
func TestOracleSelfCheck(t *testing.T) {
	_, err := oracleParse([]byte(`null`))
	assert.ErrorIs(t, err, errOracleNotObject)
	_, err = oracleParse([]byte(`{"eventType":1}`))
	assert.Error(t, err)
	ev, err := oracleParse([]byte(`{"ſite":{"ID":"x"}}`))
	require.NoError(t, err)
	assert.Equal(t, &DocumentCreated{Document: Document{Site: Site{ID: "x"}}, Raw: []byte(`{"ſite":{"ID":"x"}}`)}, ev)
	ev, err = oracleParse([]byte(`{"site":{},"eventType":"x.v3","id":1}`))
	require.NoError(t, err)
	assert.Equal(t, &UnknownEvent{EventType: "x.v3", Raw: []byte(`{"site":{},"eventType":"x.v3","id":1}`)}, ev)
}

var updateFuzzCorpus = flag.Bool("update-fuzz-corpus", false, "rewrite testdata/fuzz/FuzzParse seed files from trickyInputs and testdata")

// seedName turns a testdata path into a seed file name.
func seedName(prefix, name string) string {
	return prefix + strings.NewReplacer("/", "-", ".json", "").Replace(name)
}

// TestFuzzParseCorpus keeps the checked-in seed corpus in step with
// trickyInputs and the testdata files; -update-fuzz-corpus rewrites it.
func TestFuzzParseCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzParse")
	want := map[string][]byte{}
	for name, in := range trickyInputs {
		want[seedName("tricky-", name)] = []byte(in)
	}
	for _, name := range testdataFiles(t) {
		want[seedName("file-", name)] = readTestdata(t, name)
	}
	for name, in := range want {
		content := fmt.Sprintf("go test fuzz v1\n[]byte(%s)\n", strconv.Quote(string(in)))
		path := filepath.Join(dir, name)
		if *updateFuzzCorpus {
			require.NoError(t, os.MkdirAll(dir, 0o755))
			require.NoError(t, os.WriteFile(path, []byte(content), 0o644))
			continue
		}
		got, err := os.ReadFile(path)
		require.NoError(t, err, "missing seed: run go test -run TestFuzzParseCorpus -update-fuzz-corpus")
		assert.Equal(t, content, string(got), path)
	}
}

func FuzzParse(f *testing.F) {
	// The seed files under testdata/fuzz/FuzzParse are loaded by go test.
	// bigInputs stay in TestParseMatchesOracle: as seeds, the fuzzer spent
	// its time mutating 50 KB of nesting (146 executions in CI's 15 s,
	// against 120,260 without them).
	f.Fuzz(func(t *testing.T, payload []byte) {
		checkAgainstOracle(t, payload)
	})
}
