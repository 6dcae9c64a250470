package nectarhooks

import (
	"encoding"
	"encoding/json"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// documentedTimestamps are the timestamps in Nectar's published samples.
var documentedTimestamps = []string{
	"2024-09-06T00:15:43.073014",
	"2024-09-06T00:15:43.073032",
	"2024-09-07T12:30:00.000000",
	"2024-09-10T14:22:00.000000",
	"2024-09-12T08:15:00.000000",
}

func TestDocumentedTimestampsAreListed(t *testing.T) {
	re := regexp.MustCompile(`"(\d{4}-\d\d-\d\dT[^"]*)"`)
	seen := map[string]bool{}
	for _, name := range []string{"connection.created.v2.json", "connection.updated.v2.json", "document.created.v2.json", "document.updated.v2.json"} {
		for _, m := range re.FindAllSubmatch(readTestdata(t, name), -1) {
			seen[string(m[1])] = true
		}
	}
	var found []string
	for s := range seen {
		found = append(found, s)
	}
	sort.Strings(found)
	assert.Equal(t, documentedTimestamps, found)
}

func TestTimeRoundTripsDocumentedTimestamps(t *testing.T) {
	for _, s := range documentedTimestamps {
		t.Run(s, func(t *testing.T) {
			quoted := []byte(`"` + s + `"`)
			var tm Time
			require.NoError(t, tm.UnmarshalJSON(quoted))
			assert.Equal(t, time.UTC, tm.Location())
			assert.Equal(t, 0, tm.Nanosecond()%1000, "microsecond precision")

			out, err := tm.MarshalJSON()
			require.NoError(t, err)
			assert.Equal(t, string(quoted), string(out))

			// Through encoding/json, as a field.
			var v struct{ T Time }
			require.NoError(t, json.Unmarshal([]byte(`{"T":`+string(quoted)+`}`), &v))
			assert.True(t, tm.Equal(v.T.Time))
			out, err = json.Marshal(v)
			require.NoError(t, err)
			assert.Equal(t, `{"T":`+string(quoted)+`}`, string(out))

			text, err := tm.MarshalText()
			require.NoError(t, err)
			assert.Equal(t, s, string(text))
			var back Time
			require.NoError(t, back.UnmarshalText(text))
			assert.Equal(t, tm, back)

			assert.Equal(t, s, tm.Format(TimeLayout))
		})
	}
}

func TestTimeUnmarshalJSON(t *testing.T) {
	tests := []struct {
		in     string
		want   time.Time // compared as an instant
		offset int       // seconds east of UTC the value keeps
		out    string    // what MarshalJSON writes back
	}{
		{`"2024-09-06T00:15:43.073014"`, time.Date(2024, 9, 6, 0, 15, 43, 73014000, time.UTC), 0, `"2024-09-06T00:15:43.073014"`},
		{`"2024-09-06T00:15:43"`, time.Date(2024, 9, 6, 0, 15, 43, 0, time.UTC), 0, `"2024-09-06T00:15:43.000000"`},
		{`"2024-09-06T00:15:43.5"`, time.Date(2024, 9, 6, 0, 15, 43, 500000000, time.UTC), 0, `"2024-09-06T00:15:43.500000"`},
		{`"2024-09-06T00:15:43.073"`, time.Date(2024, 9, 6, 0, 15, 43, 73000000, time.UTC), 0, `"2024-09-06T00:15:43.073000"`},
		// Nanoseconds are kept but written truncated to microseconds.
		{`"2024-09-06T00:15:43.073014999"`, time.Date(2024, 9, 6, 0, 15, 43, 73014999, time.UTC), 0, `"2024-09-06T00:15:43.073014"`},
		{`"2024-02-29T23:59:59.999999"`, time.Date(2024, 2, 29, 23, 59, 59, 999999000, time.UTC), 0, `"2024-02-29T23:59:59.999999"`},
		{`"0001-01-01T00:00:00.000001"`, time.Date(1, 1, 1, 0, 0, 0, 1000, time.UTC), 0, `"0001-01-01T00:00:00.000001"`},
		{`"9999-12-31T23:59:59.999999"`, time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC), 0, `"9999-12-31T23:59:59.999999"`},
		// RFC 3339: the zone is kept in the value, and written as UTC.
		{`"2024-09-06T00:15:43Z"`, time.Date(2024, 9, 6, 0, 15, 43, 0, time.UTC), 0, `"2024-09-06T00:15:43.000000"`},
		{`"2024-09-06T00:15:43.073014Z"`, time.Date(2024, 9, 6, 0, 15, 43, 73014000, time.UTC), 0, `"2024-09-06T00:15:43.073014"`},
		{`"2024-09-06T02:15:43.073014+02:00"`, time.Date(2024, 9, 6, 0, 15, 43, 73014000, time.UTC), 2 * 3600, `"2024-09-06T00:15:43.073014"`},
		{`"2024-09-05T19:15:43.073014-05:00"`, time.Date(2024, 9, 6, 0, 15, 43, 73014000, time.UTC), -5 * 3600, `"2024-09-06T00:15:43.073014"`},
		{`"2024-09-06T05:45:43+05:30"`, time.Date(2024, 9, 6, 0, 15, 43, 0, time.UTC), 5*3600 + 1800, `"2024-09-06T00:15:43.000000"`},
		{`"2025-01-01T01:00:00.5+02:00"`, time.Date(2024, 12, 31, 23, 0, 0, 500000000, time.UTC), 2 * 3600, `"2024-12-31T23:00:00.500000"`},
		{`"2024-09-06T00:15:43+00:00"`, time.Date(2024, 9, 6, 0, 15, 43, 0, time.UTC), 0, `"2024-09-06T00:15:43.000000"`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			var tm Time
			require.NoError(t, tm.UnmarshalJSON([]byte(tt.in)))
			assert.True(t, tt.want.Equal(tm.Time), "got %v, want %v", tm.Time, tt.want)
			_, offset := tm.Zone()
			assert.Equal(t, tt.offset, offset, "offset")
			out, err := tm.MarshalJSON()
			require.NoError(t, err)
			assert.Equal(t, tt.out, string(out))

			// What was written reads back as the same instant, to the
			// microsecond.
			var back Time
			require.NoError(t, back.UnmarshalJSON(out))
			assert.True(t, tm.Truncate(time.Microsecond).Equal(back.Time))
		})
	}
}

func TestTimeNullAndAbsent(t *testing.T) {
	preset := ts(2024, 9, 6, 0, 15, 43, 73014)

	tm := preset
	require.NoError(t, tm.UnmarshalJSON([]byte("null")))
	assert.Equal(t, preset, tm, "null leaves the value as it is")

	out, err := Time{}.MarshalJSON()
	require.NoError(t, err)
	assert.Equal(t, "null", string(out))

	type doc struct {
		Created Time  `json:"created"`
		Updated *Time `json:"updated,omitempty"`
	}
	var d doc
	require.NoError(t, json.Unmarshal([]byte(`{}`), &d))
	assert.True(t, d.Created.IsZero())
	assert.Nil(t, d.Updated)
	out, err = json.Marshal(d)
	require.NoError(t, err)
	assert.Equal(t, `{"created":null}`, string(out))

	d = doc{Created: preset, Updated: &preset}
	require.NoError(t, json.Unmarshal([]byte(`{"created":null,"updated":null}`), &d))
	assert.Equal(t, preset, d.Created, "null leaves a Time as it is")
	assert.Nil(t, d.Updated, "null clears a *Time")

	require.NoError(t, json.Unmarshal([]byte(`{"created":null,"updated":"2024-09-06T00:15:43.073014"}`), &d))
	require.NotNil(t, d.Updated)
	assert.Equal(t, preset, *d.Updated)
}

func TestTimeUnmarshalJSONInvalid(t *testing.T) {
	for _, in := range []string{
		`"yesterday"`,
		`"2024-09-06"`,
		`"2024-13-01T00:00:00.000000"`,
		`"2024-00-01T00:00:00.000000"`,
		`"2024-02-30T00:00:00.000000"`,
		`"2023-02-29T00:00:00.000000"`,
		`"2024-04-31T00:00:00.000000"`,
		`"2024-09-00T00:00:00.000000"`,
		`"2024-09-06T24:00:00.000000"`,
		`"2024-09-06T00:60:00.000000"`,
		`"2024-09-06T00:00:60.000000"`,
		`"2024-09-06 00:15:43.073014"`,
		`"2024-09-06T00:15:43."`,
		`"2024-09-06T00:15:43.073014 "`,
		`" 2024-09-06T00:15:43.073014"`,
		`"2024-09-06T00:15:43.073014+0200"`,
		`"2024-09-06T00:15:43.073014+25:00"`,
		`"2024-09-06T00:15:43.073014 UTC"`,
		`"2024/09/06T00:15:43.073014"`,
		`"2024-09-06T00:15:43.07301\u0034"`,
		`"１２３４-09-06T00:15:43.073014"`,
	} {
		t.Run(in, func(t *testing.T) {
			tm := ts(2000, 1, 1, 0, 0, 0, 0)
			err := tm.UnmarshalJSON([]byte(in))
			require.Error(t, err)
			assert.ErrorIs(t, err, errTimeFormat)
			assert.Equal(t, ts(2000, 1, 1, 0, 0, 0, 0), tm, "a failed unmarshal leaves the value")

			err = tm.UnmarshalText([]byte(in[1 : len(in)-1]))
			assert.ErrorIs(t, err, errTimeFormat)
		})
	}
	// Not JSON strings at all.
	for _, in := range []string{``, `"`, `20240906`, `true`, `{}`, `[]`, `2024-09-06T00:15:43.073014`,
		`"2024-09-06T00:15:43.073014`, `'2024-09-06T00:15:43.073014'`, `nul`, `NULL`} {
		t.Run("not a string "+in, func(t *testing.T) {
			var tm Time
			assert.Error(t, tm.UnmarshalJSON([]byte(in)))
			assert.True(t, tm.IsZero())
		})
	}
}

func TestTimeText(t *testing.T) {
	preset := ts(2024, 9, 6, 0, 15, 43, 73014)

	text, err := Time{}.MarshalText()
	require.NoError(t, err)
	assert.Empty(t, text)
	assert.NotNil(t, text)

	tm := preset
	require.NoError(t, tm.UnmarshalText(nil))
	assert.True(t, tm.IsZero(), "empty text resets to the zero Time")

	require.NoError(t, tm.UnmarshalText([]byte("2024-09-06T02:15:43.073014+02:00")))
	assert.True(t, preset.Equal(tm.Time))
	text, err = tm.MarshalText()
	require.NoError(t, err)
	assert.Equal(t, "2024-09-06T00:15:43.073014", string(text), "text is UTC in TimeLayout, not RFC 3339")

	tm = preset
	assert.ErrorIs(t, tm.UnmarshalText([]byte("2024-09-06T00:15:43.073014Q")), errTimeFormat)
	assert.Equal(t, preset, tm)

	// encoding/json uses the text form for map keys.
	m := map[Time]int{preset: 1, ts(2024, 9, 7, 12, 30, 0, 0): 2}
	b, err := json.Marshal(m)
	require.NoError(t, err)
	assert.Equal(t, `{"2024-09-06T00:15:43.073014":1,"2024-09-07T12:30:00.000000":2}`, string(b))
	var back map[Time]int
	require.NoError(t, json.Unmarshal(b, &back))
	assert.Equal(t, m, back)
}

// TestTimeTextForms holds every way of asking a Time for its text to the
// one form MarshalText defines, TimeLayout in UTC. Time embeds time.Time, so
// a text method it does not declare itself is promoted and writes RFC 3339:
// that is how Go 1.27's encoding/json, which prefers AppendText to
// MarshalText, came to write map keys differently from Go 1.26.
func TestTimeTextForms(t *testing.T) {
	zone := time.FixedZone("UTC+2", 2*60*60)
	tm := Time{time.Date(2024, 9, 6, 2, 15, 43, 73014123, zone)}
	const want = "2024-09-06T00:15:43.073014"

	tests := []struct {
		name string
		text func(Time) (string, error)
	}{
		{"MarshalText", func(tm Time) (string, error) {
			b, err := tm.MarshalText()
			return string(b), err
		}},
		{"AppendText to nil", func(tm Time) (string, error) {
			b, err := tm.AppendText(nil)
			return string(b), err
		}},
		{"AppendText to a prefix", func(tm Time) (string, error) {
			b, err := tm.AppendText([]byte("at "))
			return strings.TrimPrefix(string(b), "at "), err
		}},
		{"encoding.TextMarshaler", func(tm Time) (string, error) {
			b, err := encoding.TextMarshaler(tm).MarshalText()
			return string(b), err
		}},
		{"encoding.TextAppender", func(tm Time) (string, error) {
			b, err := encoding.TextAppender(tm).AppendText(nil)
			return string(b), err
		}},
		{"MarshalJSON without quotes", func(tm Time) (string, error) {
			b, err := tm.MarshalJSON()
			return strings.Trim(string(b), `"`), err
		}},
		{"json map key", func(tm Time) (string, error) {
			b, err := json.Marshal(map[Time]int{tm: 1})
			return strings.TrimSuffix(strings.TrimPrefix(string(b), `{"`), `":1}`), err
		}},
		{"json map key in a struct field", func(tm Time) (string, error) {
			b, err := json.Marshal(struct {
				M map[Time]bool `json:"m"`
			}{map[Time]bool{tm: true}})
			return strings.TrimSuffix(strings.TrimPrefix(string(b), `{"m":{"`), `":true}}`), err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.text(tm)
			require.NoError(t, err)
			assert.Equal(t, want, got)

			zero, err := tt.text(Time{})
			require.NoError(t, err)
			if tt.name == "MarshalJSON without quotes" {
				assert.Equal(t, "null", zero)
			} else {
				assert.Empty(t, zero, "the zero Time's text is empty")
			}
		})
	}

	t.Run("zero AppendText keeps the prefix", func(t *testing.T) {
		b, err := Time{}.AppendText([]byte("x"))
		require.NoError(t, err)
		assert.Equal(t, "x", string(b))
	})

	t.Run("map keys read back", func(t *testing.T) {
		m := map[Time]int{tm: 1, {}: 2}
		b, err := json.Marshal(m)
		require.NoError(t, err)
		var back map[Time]int
		require.NoError(t, json.Unmarshal(b, &back))
		require.Len(t, back, 2)
		assert.Equal(t, 1, back[Time{tm.UTC().Truncate(time.Microsecond)}])
		assert.Equal(t, 2, back[Time{}])
	})
}

func TestTimeEmptyStringIsZero(t *testing.T) {
	preset := ts(2024, 9, 6, 0, 15, 43, 73014)
	tests := []struct {
		name  string
		read  func(*Time) error
		wantZ bool
	}{
		{"UnmarshalJSON \"\"", func(tm *Time) error { return tm.UnmarshalJSON([]byte(`""`)) }, true},
		{"UnmarshalText empty", func(tm *Time) error { return tm.UnmarshalText([]byte{}) }, true},
		{"UnmarshalText nil", func(tm *Time) error { return tm.UnmarshalText(nil) }, true},
		{"UnmarshalJSON null leaves the value", func(tm *Time) error { return tm.UnmarshalJSON([]byte(`null`)) }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tm := preset
			require.NoError(t, tt.read(&tm))
			if tt.wantZ {
				assert.True(t, tm.IsZero())
			} else {
				assert.Equal(t, preset, tm)
			}
		})
	}
	t.Run("Parse agrees", func(t *testing.T) {
		ev, err := Parse([]byte(`{"eventType":"document.created.v2","created":"2024-09-06T00:15:43.073014","created":"","updated":""}`))
		require.NoError(t, err)
		doc := ev.(*DocumentCreated)
		assert.True(t, doc.Created.IsZero(), "a later empty string clears the timestamp, as UnmarshalJSON does")
		assert.True(t, doc.Updated.IsZero())
	})
}

// TestTimeDeclaresTextMethods guards against the next promoted method: every
// method of time.Time that writes or reads a text or JSON form must be
// declared by Time itself, so that its output is Nectar's layout. A method
// Go adds to time.Time in a later release (as AppendText was in 1.24) fails
// here until Time declares it too.
func TestTimeDeclaresTextMethods(t *testing.T) {
	declared := map[string]bool{
		"MarshalText": true, "AppendText": true, "UnmarshalText": true,
		"MarshalJSON": true, "UnmarshalJSON": true,
	}
	for _, typ := range []reflect.Type{reflect.TypeFor[time.Time](), reflect.TypeFor[*time.Time]()} {
		for i := range typ.NumMethod() {
			m := typ.Method(i)
			if !strings.Contains(m.Name, "Text") && !strings.Contains(m.Name, "JSON") {
				continue
			}
			t.Run(typ.String()+"."+m.Name, func(t *testing.T) {
				assert.True(t, declared[m.Name], "time.Time.%s would be promoted to Time: declare it in time.go", m.Name)
			})
		}
	}
	// The declared list is checked against the real thing: a method that
	// time.Time promoted would report time.Time's form.
	tm := Time{time.Date(2024, 9, 6, 2, 15, 43, 73014000, time.FixedZone("", 7200))}
	for name := range declared {
		m := reflect.ValueOf(&tm).MethodByName(name)
		require.True(t, m.IsValid(), name)
		if !strings.HasPrefix(name, "Marshal") && !strings.HasPrefix(name, "Append") {
			continue
		}
		t.Run("output of "+name, func(t *testing.T) {
			var in []reflect.Value
			if strings.HasPrefix(name, "Append") {
				in = []reflect.Value{reflect.ValueOf([]byte(nil))}
			}
			out := m.Call(in)
			require.Nil(t, out[1].Interface())
			assert.Contains(t, string(out[0].Bytes()), "2024-09-06T00:15:43.073014")
			assert.NotContains(t, string(out[0].Bytes()), "Z")
		})
	}
}

func TestParseNectarLayout(t *testing.T) {
	tests := []struct {
		in     string
		accept bool
	}{
		{"2024-09-06T00:15:43.073014", true},
		{"2024-02-29T00:00:00.000000", true},
		{"2000-02-29T00:00:00.000000", true},
		{"0000-02-29T00:00:00.000000", true},
		{"0000-01-01T00:00:00.000000", true},
		{"9999-12-31T23:59:59.999999", true},
		{"2024-12-31T23:59:59.999999", true},
		{"2024-01-31T12:00:00.000001", true},
		{"1900-02-29T00:00:00.000000", false}, // not a leap year
		{"2023-02-29T00:00:00.000000", false},
		{"2024-04-31T00:00:00.000000", false},
		{"2024-00-01T00:00:00.000000", false},
		{"2024-13-01T00:00:00.000000", false},
		{"2024-01-00T00:00:00.000000", false},
		{"2024-01-32T00:00:00.000000", false},
		{"2024-01-01T24:00:00.000000", false},
		{"2024-01-01T00:60:00.000000", false},
		{"2024-01-01T00:00:60.000000", false},
		{"2024-01-01 00:00:00.000000", false},
		{"2024-01-01T00:00:00,000000", false}, // time.Parse's job
		{"2024-01-01T00:00:00.00000", false},
		{"2024-01-01T00:00:00.0000000", false},
		{"2024-01-01T00:00:00", false},
		{"2024-1-01T00:00:00.0000000", false},
		{"+024-01-01T00:00:00.000000", false},
		{"2024-01-01T0 :00:00.000000", false},
		{"2024-01-01T00:00:00.00000a", false},
		{"2024-01-01T00:00:00.-00000", false},
		{"0000-01-01T00:00:00.+00000", false}, // time.Parse(TimeLayout) takes it
		{"2024-01-01T-0:00:00.000000", false},
		{"2024-01-01t00:00:00.000000", false},
		{"2024-01-01T00:00:00.000000Z", false},
		{"", false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, ok := parseNectarLayout([]byte(tt.in))
			require.Equal(t, tt.accept, ok)
			if !ok {
				assert.True(t, got.IsZero())
				return
			}
			want, err := time.ParseInLocation("2006-01-02T15:04:05", tt.in, time.UTC)
			require.NoError(t, err)
			assert.Equal(t, want, got)
			assert.Equal(t, tt.in, got.Format(TimeLayout))
		})
	}
}

// Every value written in TimeLayout takes the fast path.
func TestParseNectarLayoutAcceptsEveryValidValue(t *testing.T) {
	n := 0
	for _, year := range []int{0, 1, 4, 100, 400, 1600, 1900, 1970, 1999, 2000, 2023, 2024, 2100, 2400, 9999} {
		for d := time.Date(year, 1, 1, 0, 0, 0, 0, time.UTC); d.Year() == year; d = d.AddDate(0, 0, 1) {
			// Walk the clock too, hitting 0 and the maxima.
			tm := d.Add(time.Duration(n%24)*time.Hour + time.Duration(n*7%60)*time.Minute +
				time.Duration(n*13%60)*time.Second + time.Duration(n*999983%1000000)*time.Microsecond)
			for _, v := range []time.Time{tm, d, d.Add(24*time.Hour - time.Microsecond)} {
				s := v.Format(TimeLayout)
				got, ok := parseNectarLayout([]byte(s))
				require.True(t, ok, s)
				require.Equal(t, v, got, s)
			}
			n++
		}
	}
	require.Greater(t, n, 5000)
}

// checkNectarLayout holds the fast path to time.ParseInLocation.
func checkNectarLayout(t *testing.T, s string) {
	got, ok := parseNectarLayout([]byte(s))
	want, err := time.ParseInLocation("2006-01-02T15:04:05", s, time.UTC)
	if ok {
		require.NoError(t, err, "fast path accepted %q, time.Parse did not", s)
		require.Equal(t, want, got, "%q", s)
		require.Equal(t, s, got.Format(TimeLayout), "accepted a non-canonical %q", s)
	} else {
		require.True(t, got.IsZero())
	}
	// Valid means TimeLayout with six digits: time.Parse also reads a
	// signed fraction such as ".+00000", which is not one.
	if len(s) == len(TimeLayout) && s[19] == '.' && strings.Trim(s[20:], "0123456789") == "" {
		if _, err := time.ParseInLocation(TimeLayout, s, time.UTC); err == nil {
			require.True(t, ok, "fast path rejected valid %q", s)
		}
	}
	// Whatever the path, parseTime reads the zoneless layout as time.Parse does.
	if err == nil {
		pt, perr := parseTime([]byte(s))
		require.NoError(t, perr, "%q", s)
		require.Equal(t, want, pt, "%q", s)
	}
}

func FuzzParseNectarLayout(f *testing.F) {
	for _, s := range documentedTimestamps {
		f.Add(s)
	}
	for _, s := range []string{
		"0000-02-29T00:00:00.000000", "1900-02-28T23:59:59.999999", "2024-02-29T12:00:00.000000",
		"9999-12-31T23:59:59.999999", "2024-09-06T24:00:00.000000", "2024-09-06T00:15:43,073014",
		"2024-09-06T00:15:43.07301", "2024-09-06T00:15:43.0730145", "2024-09-06T0:15:43.0730145",
		"2024-09-31T00:15:43.073014", "2024-09-06T00:15:43Z", "2024-09-06T00:15:43.073014+02:00",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		checkNectarLayout(t, s)
	})
}
