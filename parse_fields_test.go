package nectarhooks

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// This file keeps the hand-written decoder honest about the event structs:
// every exported field of every event type is filled with a value of its
// own, marshaled with encoding/json, and must come back from Parse. A field
// added to events.go but not to decode.go fails here at once, whatever its
// type, without anyone having to remember to write a payload for it.

// filler gives every field it visits a distinct non-zero value.
type filler struct {
	n int
	// paths lists the fields filled, for the failure message and to check
	// that the walk reached as far as expected.
	paths []string
}

// fillTimeBase is the first timestamp filler hands out; later ones differ
// by more than a day, an hour, a second and a microsecond, so that a field
// read into another's place, or truncated, is noticed.
var fillTimeBase = time.Date(2024, 9, 6, 0, 15, 43, 73014000, time.UTC)

// fill sets v, which is settable, and everything it contains. Struct fields
// tagged `json:"-"` (Raw) are left alone: they are not on the wire.
func (f *filler) fill(t *testing.T, v reflect.Value, path string) {
	t.Helper()
	f.n++
	n := f.n
	if v.Type() == reflect.TypeFor[Time]() {
		d := time.Duration(n) * (25*time.Hour + time.Minute + time.Second + time.Microsecond)
		v.Set(reflect.ValueOf(Time{fillTimeBase.Add(d)}))
		f.paths = append(f.paths, path)
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			sf := v.Type().Field(i)
			if !sf.IsExported() || sf.Tag.Get("json") == "-" {
				continue
			}
			name := sf.Name
			if sf.Anonymous {
				name = "" // embedded: its fields are the parent's on the wire
			}
			f.fill(t, v.Field(i), joinPath(path, name))
		}
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		f.fill(t, v.Elem(), path)
	case reflect.Slice:
		// Two elements, so that the decoder must keep them apart and in order.
		v.Set(reflect.MakeSlice(v.Type(), 2, 2))
		for i := range 2 {
			f.fill(t, v.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
	case reflect.String:
		v.SetString(fmt.Sprintf("%s#%d", path, n))
		f.paths = append(f.paths, path)
	case reflect.Bool:
		v.SetBool(true)
		f.paths = append(f.paths, path)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(int64(n))
		f.paths = append(f.paths, path)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(uint64(n))
		f.paths = append(f.paths, path)
	case reflect.Float32, reflect.Float64:
		v.SetFloat(float64(n) + 0.5)
		f.paths = append(f.paths, path)
	default:
		// A new kind of field (a map, an interface): teach fill about it, and
		// the decoder too.
		t.Fatalf("%s: fill does not know how to fill a %s", path, v.Type())
	}
}

func joinPath(parent, name string) string {
	switch {
	case name == "":
		return parent
	case parent == "":
		return name
	}
	return parent + "." + name
}

// eventStructType is the struct Parse decodes an event type into, found by
// asking Parse, so that a new event type needs no entry here.
func eventStructType(t *testing.T, typ EventType) reflect.Type {
	t.Helper()
	ev, err := Parse([]byte(`{"eventType":"` + string(typ) + `"}`))
	require.NoError(t, err)
	require.NotEqual(t, reflect.TypeFor[*UnknownEvent](), reflect.TypeOf(ev), "%s is in EventTypes but Parse does not decode it", typ)
	return reflect.TypeOf(ev).Elem()
}

func TestParseReadsEveryField(t *testing.T) {
	for _, typ := range EventTypes() {
		t.Run(string(typ), func(t *testing.T) {
			st := eventStructType(t, typ)
			want := reflect.New(st)
			var f filler
			f.fill(t, want.Elem(), "")
			require.NotEmpty(t, f.paths)

			body, err := json.Marshal(want.Interface())
			require.NoError(t, err)
			// The structs do not carry their event type; the wire does.
			payload := append([]byte(`{"eventType":"`+string(typ)+`",`), body[1:]...)

			// The filled value must survive encoding/json itself, so that a
			// failure below is the decoder's.
			viaJSON := reflect.New(st)
			require.NoError(t, json.Unmarshal(payload, viaJSON.Interface()))
			require.Equal(t, want.Interface(), viaJSON.Interface(), "encoding/json does not round-trip the filled %s", st)

			got, err := Parse(payload)
			require.NoError(t, err)
			require.IsType(t, want.Interface(), got)
			assert.Equal(t, payload, []byte(rawOf(got)))
			setRaw(got, nil)
			assert.Equal(t, want.Interface(), got)
		})
	}
}

// TestFillReachesEveryField checks the filler itself: every exported field
// on the wire of every event struct ends up non-zero, down to the elements
// of slices and the targets of pointers.
func TestFillReachesEveryField(t *testing.T) {
	for _, typ := range EventTypes() {
		t.Run(string(typ), func(t *testing.T) {
			v := reflect.New(eventStructType(t, typ)).Elem()
			var f filler
			f.fill(t, v, "")
			var zeros []string
			walkWireFields(v, "", func(path string, fv reflect.Value) {
				if fv.IsZero() {
					zeros = append(zeros, path)
				}
			})
			assert.Empty(t, zeros, "fields left zero")
			// Distinct: no two leaves share a value.
			seen := map[string]string{}
			walkWireFields(v, "", func(path string, fv reflect.Value) {
				if fv.Kind() == reflect.String || fv.Type() == reflect.TypeFor[Time]() {
					key := fmt.Sprint(fv.Interface())
					assert.NotContains(t, seen, key, "%s has the value of %s", path, seen[key])
					seen[key] = path
				}
			})
		})
	}
}

// walkWireFields calls visit for every value reachable from v through
// exported fields not tagged `json:"-"`, pointers and slice elements.
func walkWireFields(v reflect.Value, path string, visit func(string, reflect.Value)) {
	visit(path, v)
	if v.Type() == reflect.TypeFor[Time]() {
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			sf := v.Type().Field(i)
			if sf.IsExported() && sf.Tag.Get("json") != "-" {
				walkWireFields(v.Field(i), joinPath(path, sf.Name), visit)
			}
		}
	case reflect.Pointer:
		if !v.IsNil() {
			walkWireFields(v.Elem(), path, visit)
		}
	case reflect.Slice:
		for i := range v.Len() {
			walkWireFields(v.Index(i), fmt.Sprintf("%s[%d]", path, i), visit)
		}
	}
}
