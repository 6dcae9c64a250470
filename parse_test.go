package nectarhooks

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// ts is a Nectar timestamp: UTC, microsecond precision.
func ts(y int, mo time.Month, d, h, mi, s, micro int) Time {
	return Time{time.Date(y, mo, d, h, mi, s, micro*1000, time.UTC)}
}

func ptr[T any](v T) *T { return &v }

var (
	demoCompany = Company{
		ExternalID: "269350a4-8595-42cc-96ee-bf047d093505",
		ID:         "91c21c6b-5f3f-4d5f-9fb9-02530ef4b13c",
		Name:       "Demo Company",
		PublicID:   "cb78b85c-e68e-48de-a99e-e88862076823",
	}
	demoSite = Site{ID: "67e72ddf-9e9c-42b6-81da-13c1130c691a", Name: "California Facility 1"}
)

// sampleConnection is the connection of the documented connection samples;
// only "updated" differs between them.
func sampleConnection(updated Time) Connection {
	return Connection{
		ID:         "a6c70a54-34e7-4277-80b0-412869ce087c",
		Company:    demoCompany,
		Datasource: Datasource{Name: "Los Angeles Department of Water and Power"},
		SitesRelations: []SiteRelation{{
			AccountIDs:      []string{"0137746423"},
			DatasourceTypes: []DatasourceType{DatasourceElectricity},
			Site:            demoSite,
		}},
		Status:  StatusConnected,
		URL:     "https://ladwp.com",
		Created: ts(2024, 9, 6, 0, 15, 43, 73014),
		Updated: updated,
	}
}

func sampleDocument(updated Time) Document {
	return Document{
		ID:      "b2d4e6f8-1234-5678-9abc-def012345678",
		Company: demoCompany,
		Site:    demoSite,
		Created: ts(2024, 9, 10, 14, 22, 0, 0),
		Updated: updated,
	}
}

// rawOf and setRaw reach the Raw field every event type has.
func rawOf(ev Event) []byte {
	switch e := ev.(type) {
	case *ConnectionCreated:
		return e.Raw
	case *ConnectionValidated:
		return e.Raw
	case *ConnectionUpdated:
		return e.Raw
	case *DocumentCreated:
		return e.Raw
	case *DocumentUpdated:
		return e.Raw
	case *UnknownEvent:
		return e.Raw
	}
	panic("unexpected event type " + reflect.TypeOf(ev).String())
}

func setRaw(ev Event, raw []byte) {
	switch e := ev.(type) {
	case *ConnectionCreated:
		e.Raw = raw
	case *ConnectionValidated:
		e.Raw = raw
	case *ConnectionUpdated:
		e.Raw = raw
	case *DocumentCreated:
		e.Raw = raw
	case *DocumentUpdated:
		e.Raw = raw
	case *UnknownEvent:
		e.Raw = raw
	default:
		panic("unexpected event type " + reflect.TypeOf(ev).String())
	}
}

var timeType = reflect.TypeFor[Time]()

// walkTimes calls f for every Time reachable from v.
func walkTimes(v reflect.Value, f func(*Time)) {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			walkTimes(v.Elem(), f)
		}
	case reflect.Struct:
		if v.Type() == timeType {
			f(v.Addr().Interface().(*Time))
			return
		}
		for i := range v.NumField() {
			walkTimes(v.Field(i), f)
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			walkTimes(v.Index(i), f)
		}
	}
}

// normalizeTimes moves every Time in ev to UTC and returns what they were,
// with their offsets. time.Parse gives each zoned value its own *Location,
// which reflect.DeepEqual would tell apart although the values are equal.
func normalizeTimes(ev any) []string {
	var seen []string
	walkTimes(reflect.ValueOf(ev), func(t *Time) {
		seen = append(seen, t.Format(time.RFC3339Nano))
		if !t.IsZero() {
			t.Time = t.UTC()
		}
	})
	return seen
}

// assertSameEvent compares two events field by field (Raw included);
// it normalizes their times in place.
func assertSameEvent(t *testing.T, want, got Event) {
	t.Helper()
	require.IsType(t, want, got)
	assert.Equal(t, want.Type(), got.Type())
	assert.Equal(t, normalizeTimes(want), normalizeTimes(got), "times")
	assert.Equal(t, want, got)
}

// assertRawIsPayload checks that Raw is the very slice passed to Parse.
func assertRawIsPayload(t *testing.T, payload []byte, ev Event) {
	t.Helper()
	raw := rawOf(ev)
	require.Equal(t, len(payload), len(raw))
	assert.True(t, bytes.Equal(payload, raw), "Raw differs from the payload")
	if len(payload) > 0 {
		assert.Same(t, &payload[0], &raw[0], "Raw is a copy, not the payload")
	}
}

type parseErrorWant struct {
	field string
	// at is what the payload holds at the error's Offset; empty for
	// syntax errors, whose offset is only checked to be in range.
	at string
}

// requirePayloadError checks err is a *PayloadError matching
// ErrInvalidPayload at the wanted field.
func requirePayloadError(t *testing.T, payload []byte, err error, want parseErrorWant) *PayloadError {
	t.Helper()
	require.Error(t, err)
	require.ErrorIs(t, err, ErrInvalidPayload)
	var pe *PayloadError
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, want.field, pe.Field, "Field (%v)", err)
	assert.GreaterOrEqual(t, pe.Offset, 0)
	assert.LessOrEqual(t, pe.Offset, len(payload))
	if want.at != "" && pe.Offset <= len(payload) {
		assert.True(t, strings.HasPrefix(string(payload[pe.Offset:]), want.at),
			"offset %d points at %q, want %q", pe.Offset, clip(payload[pe.Offset:]), want.at)
	}
	assert.NotNil(t, pe.Err, "PayloadError without a cause")
	assert.True(t, strings.HasPrefix(err.Error(), "nectarhooks: invalid payload"), err.Error())
	return pe
}

func clip(b []byte) string {
	if len(b) > 40 {
		b = b[:40]
	}
	return string(b)
}

type fileCase struct {
	want Event // nil when Parse must fail
	err  parseErrorWant
	peek EventType
}

// fileCases holds the expected decoding of every file in testdata/ and
// testdata/edge/; TestParseFiles fails for a file missing here.
func fileCases() map[string]fileCase {
	return map[string]fileCase{
		"connection.created.v2.json": {
			want: &ConnectionCreated{Connection: sampleConnection(ts(2024, 9, 6, 0, 15, 43, 73032))},
			peek: EventConnectionCreated,
		},
		"connection.validated.v2.json": {
			want: &ConnectionValidated{Connection: sampleConnection(ts(2024, 9, 6, 0, 15, 43, 73032))},
			peek: EventConnectionValidated,
		},
		"connection.updated.v2.json": {
			want: &ConnectionUpdated{
				Connection:       sampleConnection(ts(2024, 9, 7, 12, 30, 0, 0)),
				ProtectedChanges: []string{"status"},
				Old:              ConnectionOld{Status: ptr(StatusPending)},
			},
			peek: EventConnectionUpdated,
		},
		"document.created.v2.json": {
			want: &DocumentCreated{Document: sampleDocument(ts(2024, 9, 10, 14, 22, 0, 0))},
			peek: EventDocumentCreated,
		},
		"document.updated.v2.json": {
			want: &DocumentUpdated{
				Document: sampleDocument(ts(2024, 9, 12, 8, 15, 0, 0)),
				Old:      DocumentOld{Updated: ptr(ts(2024, 9, 10, 14, 22, 0, 0))},
			},
			peek: EventDocumentUpdated,
		},
		"edge/unknown-type.json": {
			want: &UnknownEvent{EventType: "invoice.created.v3"},
			peek: "invoice.created.v3",
		},
		"edge/extra-fields.json": {
			want: &ConnectionUpdated{
				Connection: Connection{
					ID:         "conn-1",
					Company:    Company{ExternalID: "ext-1", ID: "company-1", Name: "Extra Co", PublicID: "pub-1"},
					Datasource: Datasource{Name: "Pacific Gas and Electric"},
					SitesRelations: []SiteRelation{{
						AccountIDs:      []string{"acct-1", "acct-2"},
						DatasourceTypes: []DatasourceType{"ELECTRICITY", "GAS"},
						Site:            Site{ID: "site-1", Name: "Plant 1"},
					}},
					Status:  StatusConnected,
					URL:     "https://pge.com",
					Created: ts(2024, 9, 6, 0, 15, 43, 73014),
					Updated: ts(2024, 9, 7, 12, 30, 0, 0),
				},
				ProtectedChanges: []string{"status", "url"},
				Old:              ConnectionOld{Status: ptr(StatusPending), URL: ptr("https://old.example.com")},
			},
			peek: EventConnectionUpdated,
		},
		"edge/missing-fields.json": {
			want: &ConnectionCreated{Connection: Connection{
				ID:             "conn-2",
				Company:        Company{Name: "Sparse Co"},
				SitesRelations: []SiteRelation{{Site: Site{ID: "site-2"}}},
			}},
			peek: EventConnectionCreated,
		},
		"edge/null-times.json": {
			want: &DocumentUpdated{Document: Document{ID: "doc-3", Site: Site{ID: "site-3"}}},
			peek: EventDocumentUpdated,
		},
		"edge/wrong-types.json": {
			err:  parseErrorWant{field: "company.id", at: "91,"},
			peek: EventConnectionCreated, // PeekEventType does not decode fields
		},
		"edge/rfc3339-times.json": {
			want: &DocumentUpdated{
				Document: Document{
					ID:      "doc-4",
					Company: Company{ID: "company-4"},
					Site:    Site{ID: "site-4", Name: "Berlin Office"},
					Created: Time{time.Date(2024, 9, 10, 16, 22, 0, 500_000_000, time.FixedZone("", 2*3600))},
					Updated: Time{time.Date(2024, 9, 12, 1, 15, 0, 123_456_789, time.FixedZone("", -7*3600))},
				},
				Old: DocumentOld{Updated: ptr(ts(2024, 9, 10, 14, 22, 0, 0))},
			},
			peek: EventDocumentUpdated,
		},
		"edge/no-eventtype-document-updated.json": {
			want: &DocumentUpdated{
				Document: sampleDocument(ts(2024, 9, 12, 8, 15, 0, 0)),
				Old:      DocumentOld{Updated: ptr(ts(2024, 9, 10, 14, 22, 0, 0))},
			},
			peek: EventDocumentUpdated,
		},
		"edge/no-eventtype-document-created.json": {
			want: &DocumentCreated{Document: Document{
				ID:      "doc-5",
				Company: Company{ID: "company-5", Name: "Doc Co"},
				Site:    Site{ID: "site-5", Name: "Warehouse"},
				Created: ts(2024, 9, 10, 14, 22, 0, 0),
				Updated: ts(2024, 9, 10, 14, 22, 0, 0),
			}},
			peek: EventDocumentCreated,
		},
		"edge/no-eventtype-connection-updated.json": {
			want: &ConnectionUpdated{
				Connection:       Connection{ID: "conn-6", Status: StatusPending, Updated: ts(2024, 9, 8, 9, 0, 0, 1)},
				ProtectedChanges: []string{"status", "datasource", "sitesRelations"},
				Old: ConnectionOld{
					Status:         ptr(StatusConnected),
					Datasource:     &Datasource{Name: "Old Utility"},
					SitesRelations: []SiteRelation{},
				},
			},
			peek: EventConnectionUpdated,
		},
		"edge/no-eventtype-unknown.json": {
			want: &UnknownEvent{},
			peek: "",
		},
		"edge/null-eventtype.json": {
			want: &DocumentCreated{Document: Document{ID: "doc-8", Site: Site{ID: "site-8"}}},
			peek: EventDocumentCreated,
		},
		"edge/empty-eventtype.json": {
			want: &ConnectionCreated{Connection: Connection{ID: "conn-9"}},
			peek: EventConnectionCreated,
		},
		"edge/eventtype-number.json": {
			err:  parseErrorWant{field: "eventType", at: "2,"},
			peek: "",
		},
		"edge/case-folded-keys.json": {
			want: &ConnectionUpdated{
				Connection: Connection{
					ID:      "conn-11",
					Company: Company{ExternalID: "ext-11", PublicID: "pub-11"},
					SitesRelations: []SiteRelation{{
						AccountIDs:      []string{"a-11"},
						DatasourceTypes: []DatasourceType{"WATER"},
						Site:            Site{ID: "site-11", Name: "Pump ſtation"},
					}},
					Status:  StatusConnected,
					URL:     "https://new.example",
					Created: ts(2024, 9, 6, 0, 15, 43, 73014),
				},
				ProtectedChanges: []string{"status"},
				Old:              ConnectionOld{Status: ptr(StatusPending), URL: ptr("https://old.example")},
			},
			peek: EventConnectionUpdated,
		},
		"edge/duplicate-keys.json": {
			// Later keys decode into what earlier ones left, and null
			// leaves strings and times as they were.
			want: &ConnectionUpdated{
				Connection: Connection{
					ID:      "second",
					Company: Company{ID: "company-12", Name: "Renamed"},
					SitesRelations: []SiteRelation{{
						AccountIDs: []string{"a", "b"},
						Site:       Site{ID: "s1", Name: "Uno"},
					}},
					Status:  StatusPending,
					Created: ts(2024, 9, 6, 0, 15, 43, 73014),
				},
				ProtectedChanges: nil,
				Old:              ConnectionOld{URL: ptr("https://a.example")},
			},
			peek: EventConnectionUpdated,
		},
		"edge/escaped-strings.json": {
			want: &DocumentCreated{Document: Document{
				ID:      `doc-"13"\`,
				Company: Company{Name: "Ünïcödé Gmbh", ID: `\u0041`},
				Site:    Site{ID: "site-13", Name: "Café \U0001F600 <&> / tab\there"},
			}},
			peek: EventDocumentCreated,
		},
		"edge/wrong-type-other-kind.json": {
			// Wrong types in fields a document does not have are ignored.
			want: &DocumentCreated{Document: Document{ID: "doc-14", Site: Site{ID: "site-14"}}},
			peek: EventDocumentCreated,
		},
		"edge/bad-time.json": {
			err:  parseErrorWant{field: "created", at: `"2024-02-30`},
			peek: EventDocumentCreated,
		},
		"edge/old-nulls.json": {
			want: &ConnectionUpdated{Connection: Connection{ID: "conn-16"}, ProtectedChanges: []string{}},
			peek: EventConnectionUpdated,
		},
		"edge/old-all-fields.json": {
			want: &ConnectionUpdated{
				Connection:       Connection{ID: "conn-17", Status: StatusConnected},
				ProtectedChanges: []string{"id", "company", "datasource", "sitesRelations", "status", "url", "created", "updated"},
				Old: ConnectionOld{
					ID:         ptr("conn-old"),
					Company:    &Company{ExternalID: "ext-old", ID: "company-old", Name: "Old Co", PublicID: "pub-old"},
					Datasource: &Datasource{Name: "Old Utility"},
					SitesRelations: []SiteRelation{{
						AccountIDs:      []string{},
						DatasourceTypes: []DatasourceType{"GAS"},
						Site:            Site{ID: "site-old", Name: "Old Site"},
					}},
					Status:  ptr(StatusPending),
					URL:     ptr("https://old.example"),
					Created: ptr(ts(2023, 1, 1, 0, 0, 0, 0)),
					Updated: ptr(ts(2023, 6, 30, 23, 59, 59, 999999)),
				},
			},
			peek: EventConnectionUpdated,
		},
		"edge/document-old-all-fields.json": {
			want: &DocumentUpdated{
				Document: Document{ID: "doc-18", Site: Site{ID: "site-18"}},
				Old: DocumentOld{
					ID:      ptr("doc-old"),
					Company: &Company{ID: "company-old"},
					Site:    &Site{ID: "site-old", Name: "Old Site"},
					Created: ptr(ts(2024, 2, 29, 12, 0, 0, 0)),
					Updated: ptr(ts(2024, 3, 1, 0, 0, 0, 0)),
				},
			},
			peek: EventDocumentUpdated,
		},
		"edge/not-object.json":       {err: parseErrorWant{field: ""}, peek: ""},
		"edge/truncated.json":        {err: parseErrorWant{field: ""}, peek: ""},
		"edge/trailing-garbage.json": {err: parseErrorWant{field: ""}, peek: ""},
	}
}

// testdataFiles lists the JSON files under testdata/ (fuzz corpora aside),
// relative to it.
func testdataFiles(t testing.TB) []string {
	t.Helper()
	var names []string
	for _, pattern := range []string{"testdata/*.json", "testdata/edge/*.json"} {
		m, err := filepath.Glob(pattern)
		require.NoError(t, err)
		for _, p := range m {
			names = append(names, filepath.ToSlash(strings.TrimPrefix(p, "testdata"+string(filepath.Separator))))
		}
	}
	sort.Strings(names)
	return names
}

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", filepath.FromSlash(name)))
	require.NoError(t, err)
	return b
}

func TestParseFiles(t *testing.T) {
	cases := fileCases()
	files := testdataFiles(t)
	require.Len(t, files, len(cases), "every testdata file needs a case and every case a file")
	for _, name := range files {
		t.Run(name, func(t *testing.T) {
			tc, ok := cases[name]
			require.True(t, ok, "no expectation for %s", name)
			payload := readTestdata(t, name)
			orig := bytes.Clone(payload)

			ev, err := Parse(payload)
			assert.Equal(t, orig, payload, "Parse modified the payload")
			assert.Equal(t, tc.peek, PeekEventType(payload), "PeekEventType")
			if tc.want == nil {
				assert.Nil(t, ev)
				requirePayloadError(t, payload, err, tc.err)
				return
			}
			require.NoError(t, err)
			assertRawIsPayload(t, payload, ev)
			assert.Equal(t, tc.want.Type(), PeekEventType(payload), "PeekEventType disagrees with Parse")
			setRaw(tc.want, orig)
			assertSameEvent(t, tc.want, ev)
		})
	}
}

// The documented samples must keep their documented types; this guards
// the sample files against edits as much as it tests Parse.
func TestParseDocumentedSamples(t *testing.T) {
	for name, want := range map[string]EventType{
		"connection.created.v2.json":   EventConnectionCreated,
		"connection.updated.v2.json":   EventConnectionUpdated,
		"connection.validated.v2.json": EventConnectionValidated,
		"document.created.v2.json":     EventDocumentCreated,
		"document.updated.v2.json":     EventDocumentUpdated,
	} {
		t.Run(name, func(t *testing.T) {
			ev, err := Parse(readTestdata(t, name))
			require.NoError(t, err)
			assert.Equal(t, want, ev.Type())
			assert.True(t, ev.Type().Known())
		})
	}
	// The created sample has no eventType: Parse must infer it.
	assert.NotContains(t, string(readTestdata(t, "connection.created.v2.json")), "eventType")
}

func TestParseInference(t *testing.T) {
	tests := []struct {
		name    string
		payload string
		want    Event
	}{
		{"protectedChanges even null", `{"protectedChanges":null}`, &ConnectionUpdated{}},
		{"protectedChanges beats site and old", `{"protectedChanges":[],"site":{"id":"s"},"old":{}}`,
			&ConnectionUpdated{ProtectedChanges: []string{}}},
		{"protectedChanges beats datasource", `{"datasource":{"name":"d"},"protectedChanges":["url"]}`,
			&ConnectionUpdated{Connection: Connection{Datasource: Datasource{Name: "d"}}, ProtectedChanges: []string{"url"}}},
		{"datasource even null", `{"datasource":null,"id":"c"}`, &ConnectionCreated{Connection: Connection{ID: "c"}}},
		{"sitesRelations alone", `{"sitesRelations":[]}`, &ConnectionCreated{Connection: Connection{SitesRelations: []SiteRelation{}}}},
		{"connection fields beat site and old", `{"site":{},"old":{"status":"X"},"sitesRelations":null}`, &ConnectionCreated{}},
		{"site and old", `{"site":null,"old":null}`, &DocumentUpdated{}},
		{"old before site", `{"old":{"id":"o"},"site":{"id":"s"}}`,
			&DocumentUpdated{Document: Document{Site: Site{ID: "s"}}, Old: DocumentOld{ID: ptr("o")}}},
		{"site alone", `{"site":{"id":"s"},"id":"d"}`, &DocumentCreated{Document: Document{ID: "d", Site: Site{ID: "s"}}}},
		{"old alone", `{"old":{"status":"X"}}`, &UnknownEvent{}},
		{"empty object", `{}`, &UnknownEvent{}},
		{"common fields only", `{"id":"x","company":{},"status":"CONNECTED","url":"u","created":null}`, &UnknownEvent{}},
		{"upper-case key", `{"SITE":{"ID":"s"}}`, &DocumentCreated{Document: Document{Site: Site{ID: "s"}}}},
		{"long s folds to s", `{"ſite":{"id":"s"}}`, &DocumentCreated{Document: Document{Site: Site{ID: "s"}}}},
		{"escaped key", `{"s\u0069te":{"id":"s"}}`, &DocumentCreated{Document: Document{Site: Site{ID: "s"}}}},
		{"folded protectedChanges", `{"PROTECTEDCHANGES":[],"site":{}}`, &ConnectionUpdated{ProtectedChanges: []string{}}},
		{"folded datasource", `{"DataSource":{}}`, &ConnectionCreated{}},
		{"dotless i does not fold", `{"sıte":{}}`, &UnknownEvent{}},
		{"near miss", `{"sites":{},"site ":{},"protectedChange":[]}`, &UnknownEvent{}},
		{"eventType beats shape", `{"eventType":"document.created.v2","datasource":{},"protectedChanges":[],"site":{"id":"s"}}`,
			&DocumentCreated{Document: Document{Site: Site{ID: "s"}}}},
		{"eventType last", `{"site":{},"eventType":"connection.validated.v2","id":"v"}`,
			&ConnectionValidated{Connection: Connection{ID: "v"}}},
		{"eventType null", `{"eventType":null,"site":{},"old":{}}`, &DocumentUpdated{}},
		{"eventType empty", `{"eventType":"","datasource":{}}`, &ConnectionCreated{}},
		{"eventType cleared by null", `{"eventType":"document.created.v2","eventType":null,"datasource":{}}`, &ConnectionCreated{}},
		{"eventType cleared by empty", `{"eventType":"x.v3","eventType":"","site":{}}`, &DocumentCreated{}},
		{"later eventType wins", `{"eventType":"x.v3","EventType":"connection.updated.v2"}`, &ConnectionUpdated{}},
		{"validated needs eventType", `{"datasource":{"name":"d"}}`,
			&ConnectionCreated{Connection: Connection{Datasource: Datasource{Name: "d"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			payload := []byte(tt.payload)
			ev, err := Parse(payload)
			require.NoError(t, err)
			assertRawIsPayload(t, payload, ev)
			setRaw(tt.want, payload)
			assertSameEvent(t, tt.want, ev)
			assert.Equal(t, tt.want.Type(), PeekEventType(payload), "PeekEventType")
		})
	}
}

func TestParseUnknownTypes(t *testing.T) {
	for _, typ := range []EventType{
		"invoice.created.v3",
		"connection.created.v3",
		"connection.created.v1",
		"connection.created",
		"CONNECTION.CREATED.V2", // event types match exactly, unlike keys
		"connection.created.v2 ",
		"document.deleted.v2",
		"ünïcode.v2",
	} {
		t.Run(string(typ), func(t *testing.T) {
			// The fields of known types may hold anything: they are not
			// decoded for an unknown type, only validated as JSON.
			eventType, err := json.Marshal(typ)
			require.NoError(t, err)
			payload := []byte(`{"id":1,"company":"c","eventType":` + string(eventType) +
				`,"site":[],"protectedChanges":{},"created":"soon","old":true,"new":{"x":[1,2]}}`)
			ev, err := Parse(payload)
			require.NoError(t, err)
			require.IsType(t, &UnknownEvent{}, ev)
			u := ev.(*UnknownEvent)
			assert.Equal(t, typ, u.EventType)
			assert.Equal(t, typ, u.Type())
			assert.False(t, u.Type().Known())
			assertRawIsPayload(t, payload, ev)
			assert.Equal(t, typ, PeekEventType(payload))
		})
	}
}

// Fields Nectar adds, at any level and of any type, change nothing.
func TestParseIgnoresExtraFields(t *testing.T) {
	for _, name := range []string{"connection.created.v2.json", "connection.updated.v2.json", "document.created.v2.json", "document.updated.v2.json"} {
		t.Run(name, func(t *testing.T) {
			payload := readTestdata(t, name)
			want, err := Parse(payload)
			require.NoError(t, err)

			extra := `"zzNew":{"a":[1,{"b":null}],"c":"d"},"zzFlag":true,"zzNum":-1.25e-7,`
			augmented := bytes.ReplaceAll(payload, []byte("{"), []byte("{"+extra))
			require.Greater(t, bytes.Count(augmented, []byte("zzNew")), 2, "extra fields must reach nested objects")
			got, err := Parse(augmented)
			require.NoError(t, err)
			setRaw(want, augmented)
			assertSameEvent(t, want, got)
		})
	}
}

func TestParseErrors(t *testing.T) {
	deep := func(n int) string {
		return `{"x":` + strings.Repeat("[", n-1) + strings.Repeat("]", n-1) + `}`
	}
	tests := []struct {
		name    string
		payload string
		want    parseErrorWant
	}{
		// Malformed JSON and non-objects: no field.
		{"empty", ``, parseErrorWant{}},
		{"white space", " \n\t\r ", parseErrorWant{}},
		{"null", `null`, parseErrorWant{}},
		{"string", `"connection.created.v2"`, parseErrorWant{}},
		{"number", `42`, parseErrorWant{}},
		{"array", `[{"site":{}}]`, parseErrorWant{}},
		{"true", `true`, parseErrorWant{}},
		{"unclosed object", `{"site":{}`, parseErrorWant{}},
		{"unclosed string", `{"site`, parseErrorWant{}},
		{"missing value", `{"id":}`, parseErrorWant{}},
		{"missing colon", `{"id" "x"}`, parseErrorWant{}},
		{"trailing comma", `{"id":"x",}`, parseErrorWant{}},
		{"trailing comma in array", `{"protectedChanges":["a",]}`, parseErrorWant{}},
		{"leading comma", `{,"id":"x"}`, parseErrorWant{}},
		{"single quotes", `{'id':'x'}`, parseErrorWant{}},
		{"unquoted key", `{id:"x"}`, parseErrorWant{}},
		{"leading zero", `{"x":01}`, parseErrorWant{}},
		{"bare minus", `{"x":-}`, parseErrorWant{}},
		{"dot without digits", `{"x":1.}`, parseErrorWant{}},
		{"exponent without digits", `{"x":1e+}`, parseErrorWant{}},
		{"plus sign", `{"x":+1}`, parseErrorWant{}},
		{"bad literal", `{"x":tru}`, parseErrorWant{}},
		{"bad null in typed field", `{"id":nul}`, parseErrorWant{}},
		{"bad escape", `{"id":"\x"}`, parseErrorWant{}},
		{"short unicode escape", `{"id":"\u12"}`, parseErrorWant{}},
		{"control character", "{\"id\":\"a\nb\"}", parseErrorWant{}},
		{"control character 0x1f", "{\"site\":{\"name\":\"a\x1fb\"}}", parseErrorWant{}},
		{"control character in key", "{\"x\x1f\":1}", parseErrorWant{}},
		{"trailing garbage", `{"site":{}} x`, parseErrorWant{}},
		{"two objects", `{"site":{}}{}`, parseErrorWant{}},
		{"extra brace", `{"site":{}}}`, parseErrorWant{}},
		{"byte order mark", "\xef\xbb\xbf{\"site\":{}}", parseErrorWant{}},
		{"nested too deeply", deep(10001), parseErrorWant{}},
		{"syntax error wins over type error", `{"eventType":1,"id":}`, parseErrorWant{}},
		{"syntax error after type error in skipped value", `{"eventType":"document.created.v2","site":[1,}`, parseErrorWant{}},

		// Wrong types: the field's dotted path, the offset of its value.
		{"eventType number", `{"eventType":2}`, parseErrorWant{"eventType", "2}"}},
		{"eventType bool", `{"site":{},"eventType":true}`, parseErrorWant{"eventType", "true"}},
		{"eventType object", `{"eventType":{"v":2}}`, parseErrorWant{"eventType", `{"v"`}},
		{"eventType array for unknown", `{"eventType":["x"],"eventType":"x.v3"}`, parseErrorWant{"eventType", `["x"]`}},
		{"id", `{"eventType":"connection.created.v2","id":7}`, parseErrorWant{"id", "7}"}},
		{"company", `{"datasource":{},"company":"acme"}`, parseErrorWant{"company", `"acme"`}},
		{"company.name", `{"site":{},"company":{"name":false}}`, parseErrorWant{"company.name", "false"}},
		{"datasource", `{"datasource":["d"]}`, parseErrorWant{"datasource", `["d"]`}},
		{"datasource.name", `{"datasource":{"name":1.5}}`, parseErrorWant{"datasource.name", "1.5"}},
		{"sitesRelations", `{"sitesRelations":{}}`, parseErrorWant{"sitesRelations", "{}"}},
		{"sitesRelations element", `{"sitesRelations":["x"]}`, parseErrorWant{"sitesRelations", `"x"`}},
		{"accountIds", `{"sitesRelations":[{"accountIds":"a"}]}`, parseErrorWant{"sitesRelations.accountIds", `"a"`}},
		{"accountIds element", `{"sitesRelations":[{"accountIds":["a",3]}]}`, parseErrorWant{"sitesRelations.accountIds", "3]"}},
		{"datasourceTypes element", `{"sitesRelations":[{"datasourceTypes":[{}]}]}`, parseErrorWant{"sitesRelations.datasourceTypes", "{}"}},
		{"sitesRelations.site", `{"sitesRelations":[{"site":"s"}]}`, parseErrorWant{"sitesRelations.site", `"s"`}},
		{"sitesRelations.site.id", `{"sitesRelations":[{},{"site":{"id":9}}]}`, parseErrorWant{"sitesRelations.site.id", "9}"}},
		{"status", `{"datasource":{},"status":0}`, parseErrorWant{"status", "0}"}},
		{"url", `{"datasource":{},"url":[]}`, parseErrorWant{"url", "[]"}},
		{"created number", `{"site":{},"created":1725581743}`, parseErrorWant{"created", "1725581743"}},
		{"created bad format", `{"site":{},"created":"2024-09-06 00:15:43"}`, parseErrorWant{"created", `"2024-09-06 00:15:43"`}},
		{"updated escaped", `{"site":{},"updated":"2024-09-06T00:15:43.07301\u0034"}`, parseErrorWant{"updated", `"2024`}},
		{"updated out of range", `{"datasource":{},"updated":"2024-09-06T24:00:00.000000"}`, parseErrorWant{"updated", `"2024`}},
		{"protectedChanges", `{"protectedChanges":"status"}`, parseErrorWant{"protectedChanges", `"status"`}},
		{"protectedChanges element", `{"protectedChanges":[null,1]}`, parseErrorWant{"protectedChanges", "1]"}},
		{"old", `{"protectedChanges":[],"old":[]}`, parseErrorWant{"old", "[]"}},
		{"old for document", `{"site":{},"old":"x"}`, parseErrorWant{"old", `"x"`}},
		{"old.id", `{"site":{},"old":{"id":1}}`, parseErrorWant{"old.id", "1}"}},
		{"old.status", `{"protectedChanges":[],"old":{"status":1}}`, parseErrorWant{"old.status", "1}"}},
		{"old.url", `{"protectedChanges":[],"old":{"url":true}}`, parseErrorWant{"old.url", "true"}},
		{"old.company.id", `{"protectedChanges":[],"old":{"company":{"id":[]}}}`, parseErrorWant{"old.company.id", "[]"}},
		{"old.datasource.name", `{"protectedChanges":[],"old":{"datasource":{"name":{}}}}`, parseErrorWant{"old.datasource.name", "{}"}},
		{"old.sitesRelations.site.name", `{"protectedChanges":[],"old":{"sitesRelations":[{"site":{"name":2}}]}}`,
			parseErrorWant{"old.sitesRelations.site.name", "2}"}},
		{"old.created", `{"protectedChanges":[],"old":{"created":"yesterday"}}`, parseErrorWant{"old.created", `"yesterday"`}},
		{"old.updated for document", `{"site":{},"old":{"updated":5}}`, parseErrorWant{"old.updated", "5}"}},
		{"site", `{"site":"s"}`, parseErrorWant{"site", `"s"`}},
		{"site.name", `{"site":{"name":["n"]}}`, parseErrorWant{"site.name", `["n"]`}},
		{"old.site.id", `{"site":{},"old":{"site":{"id":0}}}`, parseErrorWant{"old.site.id", "0}"}},
		{"old.site for document updated", `{"eventType":"document.updated.v2","old":{"site":1}}`, parseErrorWant{"old.site", "1}"}},
		{"first of several", `{"site":{},"id":1,"created":2}`, parseErrorWant{"id", "1,"}},
		{"first of the resolved kind", `{"status":1,"site":{"id":2}}`, parseErrorWant{"site.id", "2}"}},
		{"case-folded key", `{"SITE":{"ID":false}}`, parseErrorWant{"site.id", "false"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			payload := []byte(tt.payload)
			ev, err := Parse(payload)
			assert.Nil(t, ev)
			requirePayloadError(t, payload, err, tt.want)
		})
	}
}

func TestParseAcceptsDepthLimit(t *testing.T) {
	// encoding/json allows 10000 levels, counting the payload itself.
	payload := []byte(`{"site":{},"x":` + strings.Repeat("[", 9999) + strings.Repeat("]", 9999) + `}`)
	ev, err := Parse(payload)
	require.NoError(t, err)
	assert.IsType(t, &DocumentCreated{}, ev)
	assert.Equal(t, EventDocumentCreated, PeekEventType(payload))

	payload = []byte(`{"site":{},"x":` + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + `}`)
	_, err = Parse(payload)
	requirePayloadError(t, payload, err, parseErrorWant{})
	assert.Equal(t, EventType(""), PeekEventType(payload))
}

// Errors locate the problem without echoing payload content, which may be
// sensitive and ends up in logs.
func TestParseErrorDoesNotQuotePayload(t *testing.T) {
	for _, payload := range []string{
		`{"site":{},"created":"s3cr3t-value"}`,
		`{"site":{},"id":"s3cr3t-value","company":{"name":7}}`,
		`{"site":{"id":"s3cr3t-value"},"x":"s3cr3t-value`,
		`{"eventType":"s3cr3t-value","eventType":{}}`,
	} {
		_, err := Parse([]byte(payload))
		require.Error(t, err, payload)
		assert.NotContains(t, err.Error(), "s3cr3t", payload)
	}
}

func TestPayloadError(t *testing.T) {
	cause := errors.New("cause")
	err := error(&PayloadError{Field: "site.id", Offset: 12, Err: cause})
	assert.ErrorIs(t, err, ErrInvalidPayload)
	assert.ErrorIs(t, err, cause)
	assert.NotErrorIs(t, err, errors.New("cause"))
	assert.Equal(t, `nectarhooks: invalid payload: field "site.id" at offset 12: cause`, err.Error())
	assert.Equal(t, `nectarhooks: invalid payload at offset 3: cause`, (&PayloadError{Offset: 3, Err: cause}).Error())
}

func TestPeekEventType(t *testing.T) {
	tests := []struct {
		payload string
		want    EventType
	}{
		{`{"eventType":"document.updated.v2"}`, EventDocumentUpdated},
		{`{"id":"x","eventType":"connection.validated.v2"}`, EventConnectionValidated},
		{`{"eventType":"connection.created.v\u0032"}`, EventConnectionCreated},
		{`{"EventType":"invoice.paid.v9"}`, "invoice.paid.v9"},
		{`{"eventType":"a.v3","eventType":null,"site":{}}`, EventDocumentCreated},
		{`{"eventType":"","protectedChanges":1}`, EventConnectionUpdated},
		{`{"ſitesRelations":"x"}`, EventConnectionCreated},
		{`{"site":1,"old":2}`, EventDocumentUpdated},
		{`{"old":{"site":{},"protectedChanges":[]}}`, ""}, // only the top level counts
		{`{}`, ""},
		{`{"site":{}`, ""},
		{`{"site":{}} x`, ""},
		{`{"site":{"a":tru}}`, ""},
		{`[{"eventType":"document.created.v2"}]`, ""},
		{`"document.created.v2"`, ""},
		{`{"eventType":"document.created.v2","x":"\q"}`, ""},
		{`{"eventType":5,"site":{}}`, ""},
		{`{"eventType":"document.created.v2","eventType":[]}`, ""},
		{``, ""},
	}
	for _, tt := range tests {
		t.Run(tt.payload, func(t *testing.T) {
			assert.Equal(t, tt.want, PeekEventType([]byte(tt.payload)))
		})
	}
}

func TestPeekEventTypeDoesNotAllocate(t *testing.T) {
	for _, name := range []string{"connection.created.v2.json", "connection.updated.v2.json",
		"connection.validated.v2.json", "document.created.v2.json", "document.updated.v2.json"} {
		payload := readTestdata(t, name)
		var got EventType
		allocs := testing.AllocsPerRun(50, func() { got = PeekEventType(payload) })
		assert.NotEmpty(t, got, name)
		assert.Zero(t, allocs, name)
	}
}

// Parse documents that strings share its own copy of the payload: only
// Raw aliases the caller's buffer.
func TestParseStringsDoNotAliasPayload(t *testing.T) {
	payload := readTestdata(t, "document.created.v2.json")
	ev, err := Parse(payload)
	require.NoError(t, err)
	for i := range payload {
		payload[i] = 'x'
	}
	d := ev.(*DocumentCreated)
	assert.Equal(t, "b2d4e6f8-1234-5678-9abc-def012345678", d.ID)
	assert.Equal(t, demoCompany, d.Company)
	assert.Equal(t, demoSite, d.Site)
}

// The typed structs are plain encoding/json types: marshaling one and
// unmarshaling the result gives it back, except where the format loses
// information by design (noted below).
func TestEventsJSONRoundTrip(t *testing.T) {
	cases := fileCases()
	for _, name := range testdataFiles(t) {
		if cases[name].want == nil {
			continue
		}
		t.Run(name, func(t *testing.T) {
			ev, err := Parse(readTestdata(t, name))
			require.NoError(t, err)
			b, err := json.Marshal(ev)
			require.NoError(t, err)

			back := reflect.New(reflect.TypeOf(ev).Elem()).Interface().(Event)
			require.NoError(t, json.Unmarshal(b, back))

			if u, ok := ev.(*UnknownEvent); ok {
				// No tags: both fields travel, Raw compacted as RawMessage is.
				var compact bytes.Buffer
				require.NoError(t, json.Compact(&compact, u.Raw))
				assert.Equal(t, u.EventType, back.(*UnknownEvent).EventType)
				assert.Equal(t, compact.Bytes(), []byte(back.(*UnknownEvent).Raw))
				return
			}
			assert.NotContains(t, string(b), `"Raw"`, "Raw must not be marshaled")
			setRaw(ev, nil)
			// Time writes UTC with microseconds.
			walkTimes(reflect.ValueOf(ev), func(t *Time) {
				if !t.IsZero() {
					t.Time = t.UTC().Truncate(time.Microsecond)
				}
			})
			assertSameEvent(t, ev, back)
		})
	}
}

// Marshaled typed events use the documented field names, so Parse reads
// them back (without eventType, by shape).
func TestParseReadsMarshaledEvents(t *testing.T) {
	for _, name := range []string{"connection.created.v2.json", "connection.updated.v2.json", "document.created.v2.json", "document.updated.v2.json"} {
		t.Run(name, func(t *testing.T) {
			ev, err := Parse(readTestdata(t, name))
			require.NoError(t, err)
			b, err := json.Marshal(ev)
			require.NoError(t, err)
			again, err := Parse(b)
			require.NoError(t, err)
			setRaw(ev, b)
			assertSameEvent(t, ev, again)
		})
	}
}
