package nectarhooks

import (
	"errors"
	"time"
)

// TimeLayout is the layout Nectar writes timestamps in, for use with
// time.Format and time.Parse: microseconds and no time zone. Nectar's
// timestamps are UTC.
const TimeLayout = "2006-01-02T15:04:05.000000"

// Time is a timestamp in a Nectar payload. It reads Nectar's layout
// ("2024-09-06T00:15:43.073014": any number of fractional digits, or none,
// and no zone, meaning UTC) as well as RFC 3339 with a zone, and writes
// [TimeLayout] in UTC, so a documented timestamp round-trips byte for byte.
// A JSON null or an absent field leaves the zero Time, which is written back
// as null.
//
// As text (MarshalText, AppendText, UnmarshalText), which is also its form
// as a JSON object key in a map[Time]V, a Time is the same characters
// without the quotes, and the zero Time is the empty string. Reading accepts
// the empty string, as JSON or as text, as the zero Time, so that a map key
// written by one Go release reads back the same with any other (Go 1.26's
// encoding/json reads keys with UnmarshalJSON, Go 1.27's with UnmarshalText).
type Time struct{ time.Time }

// errTimeFormat is the cause of a timestamp that is neither Nectar's layout
// nor RFC 3339; the decoder wraps it with the field's path.
var errTimeFormat = errors.New("timestamp is neither 2006-01-02T15:04:05.999999 (UTC) nor RFC 3339")

// MarshalJSON writes t as a JSON string in TimeLayout, converted to UTC, or
// null for the zero Time.
func (t Time) MarshalJSON() ([]byte, error) {
	if t.IsZero() {
		return []byte("null"), nil
	}
	b := make([]byte, 0, len(TimeLayout)+2)
	b = append(b, '"')
	b = t.UTC().AppendFormat(b, TimeLayout)
	return append(b, '"'), nil
}

// UnmarshalJSON reads a JSON string in Nectar's layout or RFC 3339. Like the
// encoding/json convention, null leaves t unchanged; the empty string sets
// the zero Time, as UnmarshalText does.
func (t *Time) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	if len(b) < 2 || b[0] != '"' || b[len(b)-1] != '"' {
		return errors.New("nectarhooks: timestamp is not a JSON string")
	}
	// Timestamps contain no characters JSON must escape; one that does is
	// not a timestamp either, and parseTime rejects the backslash.
	return t.UnmarshalText(b[1 : len(b)-1])
}

// MarshalText writes t in TimeLayout, converted to UTC, or nothing for the
// zero Time. It overrides the RFC 3339 form time.Time would write. This is
// what a Time looks like as a JSON object key (a map[Time]V), and wherever
// else a text form is asked for: the same characters as MarshalJSON, without
// the quotes.
func (t Time) MarshalText() ([]byte, error) {
	return t.AppendText(make([]byte, 0, len(TimeLayout)))
}

// AppendText appends what MarshalText writes to b. Time must declare it:
// otherwise time.Time's AppendText, which writes RFC 3339, is promoted, and
// encoders that prefer encoding.TextAppender over encoding.TextMarshaler
// (encoding/json from Go 1.27 on, for map keys) would write the other form.
func (t Time) AppendText(b []byte) ([]byte, error) {
	if t.IsZero() {
		if b == nil {
			b = []byte{} // MarshalText's promise: empty, not nil
		}
		return b, nil
	}
	return t.UTC().AppendFormat(b, TimeLayout), nil
}

// UnmarshalText reads Nectar's layout or RFC 3339; empty text leaves the
// zero Time.
func (t *Time) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		t.Time = time.Time{}
		return nil
	}
	parsed, err := parseTime(b)
	if err != nil {
		return err
	}
	t.Time = parsed
	return nil
}

// parseTime reads Nectar's own layout without time.Parse when it has all six
// fractional digits (every documented value does: it is the hot path), and
// otherwise lets time.Parse try the zoneless layout, then RFC 3339.
func parseTime(b []byte) (time.Time, error) {
	if t, ok := parseNectarLayout(b); ok {
		return t, nil
	}
	s := string(b)
	if t, err := time.ParseInLocation("2006-01-02T15:04:05", s, time.UTC); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	return time.Time{}, errTimeFormat
}

// parseNectarLayout parses exactly "2006-01-02T15:04:05.000000" as UTC,
// applying the same range checks as time.Parse. It reports false for
// anything else, which the caller then hands to time.Parse.
func parseNectarLayout(b []byte) (time.Time, bool) {
	if len(b) != len(TimeLayout) || b[4] != '-' || b[7] != '-' || b[10] != 'T' ||
		b[13] != ':' || b[16] != ':' || b[19] != '.' {
		return time.Time{}, false
	}
	num := func(from, to int) (int, bool) {
		n := 0
		for _, c := range b[from:to] {
			if c < '0' || c > '9' {
				return 0, false
			}
			n = n*10 + int(c-'0')
		}
		return n, true
	}
	year, ok1 := num(0, 4)
	month, ok2 := num(5, 7)
	day, ok3 := num(8, 10)
	hour, ok4 := num(11, 13)
	minute, ok5 := num(14, 16)
	sec, ok6 := num(17, 19)
	micro, ok7 := num(20, 26)
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6 && ok7) ||
		month < 1 || month > 12 || day < 1 || day > daysIn(time.Month(month), year) ||
		hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, false
	}
	return time.Date(year, time.Month(month), day, hour, minute, sec, micro*1000, time.UTC), true
}

// daysIn reports the number of days in month m of year y.
func daysIn(m time.Month, y int) int {
	// Day 0 of the next month is the last day of this one.
	return time.Date(y, m+1, 0, 0, 0, 0, 0, time.UTC).Day()
}
