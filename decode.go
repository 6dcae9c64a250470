package nectarhooks

import (
	"encoding/json"
	"fmt"
	"time"
	"unicode"
	"unicode/utf8"
)

// This file is the JSON decoder behind Parse. It is written for the five
// event types instead of using reflection because decoding is most of what
// a webhook receiver spends its time on: encoding/json takes several times
// longer than the signature check on a documented payload. It reads the
// payload once, validating it as strictly as encoding/json does, and
// produces what json.Unmarshal would: keys match exactly, else by Unicode
// case folding; null leaves values as they are (and clears pointers and
// slices); repeated keys decode into what the earlier ones left; a value of
// the wrong type is an error that does not stop the decoding. Strings
// without escapes are substrings of one copy of the payload; the rare ones
// with escapes or invalid UTF-8 are handed to encoding/json, so that they
// come out exactly as it would write them.

// maxDepth is how deeply arrays and objects may nest, the same limit as
// encoding/json's.
const maxDepth = 10000

type decoder struct {
	data  []byte
	str   string // string(data), which unescaped strings slice
	pos   int
	depth int
	err   *PayloadError // the first syntax error; decoding stops there

	// mask is the set of event kinds the value being decoded belongs to,
	// and typeErrs the type errors found so far, each with the mask of its
	// field. Only those that belong to the kind finally resolved count:
	// a document payload may carry a "status" of any type, since a
	// document has none.
	mask     eventKind
	typeErrs []typeError
	// reported is the union of the masks in typeErrs: the kinds that
	// already have their first type error. Only the first counts, so a
	// field whose kinds are all in it need not build another error (or
	// parse a timestamp): that bounds the work a payload full of bad values
	// costs to what reading it costs, and typeErrs to one entry per kind.
	reported eventKind

	// strs is the unused rest of a block of strings that []string fields
	// and *string fields are cut from: a payload's few small string slices
	// and pointers then cost one allocation between them, not one each.
	strs []string
}

// stringBlock is the size of a new block of strs: enough for every
// []string and *string of a documented payload.
const stringBlock = 8

// take returns a zeroed []string of length and capacity n cut from the
// block, starting a new block when the rest is too small. The capacity is
// capped so that appending to one field's slice cannot write into another's.
func (d *decoder) take(n int) []string {
	if n > len(d.strs) {
		d.strs = make([]string, max(n, stringBlock))
	}
	s := d.strs[:n:n]
	d.strs = d.strs[n:]
	return s
}

// countElements counts the elements of the array at the current position
// without consuming it or reporting errors; decoding it reports them.
func (d *decoder) countElements() int {
	pos, depth := d.pos, d.depth
	n := 0
	for first := true; d.next('[', ']', &first); n++ {
		d.skipValue()
	}
	d.pos, d.depth, d.err = pos, depth, nil
	return n
}

// stringPointer is pointer for a *string field, cutting a new target from
// the block.
func (d *decoder) stringPointer(p **string) (*string, bool) {
	if d.ws() == 'n' {
		d.null()
		*p = nil
		return nil, false
	}
	if *p == nil {
		*p = &d.take(1)[0]
	}
	return *p, true
}

type typeError struct {
	mask eventKind
	err  *PayloadError
}

// firstTypeError returns the first type error of a field of kind k.
func (d *decoder) firstTypeError(k eventKind) error {
	for _, te := range d.typeErrs {
		if te.mask&k != 0 {
			return te.err
		}
	}
	return nil
}

func (d *decoder) syntaxError(format string, args ...any) {
	if d.err == nil {
		d.err = &PayloadError{Offset: d.pos, Err: fmt.Errorf(format, args...)}
	}
}

// counts reports whether a type error in the field being decoded could
// still be the one Parse returns: whether one of its kinds has none yet.
func (d *decoder) counts() bool { return d.mask&^d.reported != 0 }

func (d *decoder) typeMismatch(parent, name, want string) {
	if !d.counts() {
		d.skipValue()
		return
	}
	got := "invalid"
	if d.pos < len(d.data) {
		switch c := d.data[d.pos]; {
		case c == '{':
			got = "object"
		case c == '[':
			got = "array"
		case c == '"':
			got = "string"
		case c == 't' || c == 'f':
			got = "boolean"
		case c == 'n':
			got = "null"
		default:
			got = "number"
		}
	}
	d.addTypeError(parent, name, fmt.Errorf("want %s, got %s", want, got))
	d.skipValue()
}

func (d *decoder) addTypeError(parent, name string, err error) {
	if !d.counts() {
		return
	}
	d.typeErrs = append(d.typeErrs, typeError{mask: d.mask, err: &PayloadError{Field: join(parent, name), Offset: d.pos, Err: err}})
	d.reported |= d.mask
}

// ws skips JSON white space and reports the next byte, or 0 at the end.
func (d *decoder) ws() byte {
	for d.pos < len(d.data) {
		switch c := d.data[d.pos]; c {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return c
		}
	}
	return 0
}

// payload decodes the top-level object into w.
func (d *decoder) payload(w *wire) {
	if d.ws() != '{' {
		if d.pos >= len(d.data) {
			d.syntaxError("empty payload")
		} else if d.skipValue(); d.err == nil {
			d.pos = 0
			d.syntaxError("payload is not a JSON object")
		}
		return
	}
	for first := true; d.next('{', '}', &first); {
		key := d.key()
		if d.err != nil {
			return
		}
		switch matchField(key, payloadFields) {
		case 0: // eventType
			d.mask = kindsAll
			switch d.ws() {
			case '"':
				w.eventType = d.string()
			case 'n':
				d.null()
				w.eventType = ""
			default:
				d.typeMismatch("", "eventType", "string")
			}
		case 1:
			d.mask = kindsTyped
			d.stringInto(&w.conn.ID, "", "id")
		case 2:
			d.mask = kindsTyped
			d.company(&w.conn.Company, "company")
		case 3:
			d.mask, w.hasDatasource = kindsConnection, true
			d.datasource(&w.conn.Datasource, "datasource")
		case 4:
			d.mask, w.hasSitesRelations = kindsConnection, true
			d.siteRelations(&w.conn.SitesRelations, "sitesRelations", "sitesRelations.site")
		case 5:
			d.mask = kindsConnection
			d.stringInto((*string)(&w.conn.Status), "", "status")
		case 6:
			d.mask = kindsConnection
			d.stringInto(&w.conn.URL, "", "url")
		case 7:
			d.mask = kindsTyped
			d.time(&w.conn.Created, "", "created")
		case 8:
			d.mask = kindsTyped
			d.time(&w.conn.Updated, "", "updated")
		case 9:
			d.mask, w.hasSite = kindsDocument, true
			d.site(&w.site, "site")
		case 10:
			d.mask, w.hasProtectedChanges = kindConnectionUpdated, true
			d.strings(&w.protectedChanges, "", "protectedChanges")
		case 11:
			w.hasOld = true
			d.old(&w.old)
		default:
			d.skipValue()
		}
	}
	if d.err == nil {
		if d.ws(); d.pos < len(d.data) {
			d.syntaxError("invalid character %q after the payload", d.data[d.pos])
		}
	}
}

var payloadFields = fields("eventType", "id", "company", "datasource", "sitesRelations",
	"status", "url", "created", "updated", "site", "protectedChanges", "old")

// old decodes "old", the previous values of connection.updated and
// document.updated, into the union of their fields. Each field belongs to
// the "old" of the kinds that have it.
func (d *decoder) old(o *wireOld) {
	d.mask = kindsUpdated
	if !d.object("", "old") {
		return
	}
	for first := true; d.next('{', '}', &first); {
		key := d.key()
		if d.err != nil {
			return
		}
		switch matchField(key, oldFields) {
		case 0:
			d.mask = kindsUpdated
			if p, ok := d.stringPointer(&o.ID); ok {
				d.stringInto(p, "old", "id")
			}
		case 1:
			d.mask = kindsUpdated
			if p, ok := pointer(d, &o.Company); ok {
				d.company(p, "old.company")
			}
		case 2:
			d.mask = kindConnectionUpdated
			if p, ok := pointer(d, &o.Datasource); ok {
				d.datasource(p, "old.datasource")
			}
		case 3:
			d.mask = kindConnectionUpdated
			d.siteRelations(&o.SitesRelations, "old.sitesRelations", "old.sitesRelations.site")
		case 4:
			d.mask = kindConnectionUpdated
			if p, ok := d.stringPointer(&o.Status); ok {
				d.stringInto(p, "old", "status")
			}
		case 5:
			d.mask = kindConnectionUpdated
			if p, ok := d.stringPointer(&o.URL); ok {
				d.stringInto(p, "old", "url")
			}
		case 6:
			d.mask = kindsUpdated
			if p, ok := pointer(d, &o.Created); ok {
				d.time(p, "old", "created")
			}
		case 7:
			d.mask = kindsUpdated
			if p, ok := pointer(d, &o.Updated); ok {
				d.time(p, "old", "updated")
			}
		case 8:
			d.mask = kindDocumentUpdated
			if p, ok := pointer(d, &o.Site); ok {
				d.site(p, "old.site")
			}
		default:
			d.skipValue()
		}
	}
}

var oldFields = fields("id", "company", "datasource", "sitesRelations", "status", "url",
	"created", "updated", "site")

// pointer handles a pointer field as encoding/json does: null sets it to nil
// (and pointer reports false); any other value is decoded into the existing
// target, or a new one.
func pointer[T any](d *decoder, p **T) (*T, bool) {
	if d.ws() == 'n' {
		d.null()
		*p = nil
		return nil, false
	}
	if *p == nil {
		*p = new(T)
	}
	return *p, true
}

// company, datasource, site and siteRelation decode an object into a struct
// whose own path (for error messages) is path.
func (d *decoder) company(c *Company, path string) {
	if !d.object("", path) {
		return
	}
	for first := true; d.next('{', '}', &first); {
		key := d.key()
		if d.err != nil {
			return
		}
		switch matchField(key, companyFields) {
		case 0:
			d.stringInto(&c.ExternalID, path, "externalId")
		case 1:
			d.stringInto(&c.ID, path, "id")
		case 2:
			d.stringInto(&c.Name, path, "name")
		case 3:
			d.stringInto(&c.PublicID, path, "publicId")
		default:
			d.skipValue()
		}
	}
}

var companyFields = fields("externalId", "id", "name", "publicId")

func (d *decoder) datasource(ds *Datasource, path string) {
	if !d.object("", path) {
		return
	}
	for first := true; d.next('{', '}', &first); {
		key := d.key()
		if d.err != nil {
			return
		}
		if matchField(key, datasourceFields) == 0 {
			d.stringInto(&ds.Name, path, "name")
		} else {
			d.skipValue()
		}
	}
}

var datasourceFields = fields("name")

func (d *decoder) site(s *Site, path string) {
	if !d.object("", path) {
		return
	}
	for first := true; d.next('{', '}', &first); {
		key := d.key()
		if d.err != nil {
			return
		}
		switch matchField(key, siteFields) {
		case 0:
			d.stringInto(&s.ID, path, "id")
		case 1:
			d.stringInto(&s.Name, path, "name")
		default:
			d.skipValue()
		}
	}
}

var siteFields = fields("id", "name")

func (d *decoder) siteRelation(r *SiteRelation, path, sitePath string) {
	if !d.object("", path) {
		return
	}
	for first := true; d.next('{', '}', &first); {
		key := d.key()
		if d.err != nil {
			return
		}
		switch matchField(key, siteRelationFields) {
		case 0:
			d.strings(&r.AccountIDs, path, "accountIds")
		case 1:
			d.datasourceTypes(&r.DatasourceTypes, path, "datasourceTypes")
		case 2:
			d.site(&r.Site, sitePath)
		default:
			d.skipValue()
		}
	}
}

var siteRelationFields = fields("accountIds", "datasourceTypes", "site")

// siteRelations, strings and datasourceTypes decode arrays the way
// encoding/json decodes into a slice: null sets nil, [] an empty slice,
// and elements are decoded into those the slice already holds, which
// matters only for a key that appears twice.
func (d *decoder) siteRelations(dst *[]SiteRelation, path, sitePath string) {
	if !array(d, dst, "", path) {
		return
	}
	s, i := *dst, 0
	for first := true; d.next('[', ']', &first); i++ {
		s = extend(s, i)
		d.siteRelation(&s[i], path, sitePath)
	}
	*dst = truncate(s, i)
}

func (d *decoder) strings(dst *[]string, parent, name string) {
	if !array(d, dst, parent, name) {
		return
	}
	s, i := *dst, 0
	if s == nil {
		// A key seen once, as usual: cut the slice to size from the block.
		// (A repeated key decodes into what the first left, as encoding/json
		// does, so that case keeps growing its slice.)
		s = d.take(d.countElements())
	}
	for first := true; d.next('[', ']', &first); i++ {
		s = extend(s, i)
		d.stringInto(&s[i], parent, name)
	}
	*dst = truncate(s, i)
}

func (d *decoder) datasourceTypes(dst *[]DatasourceType, parent, name string) {
	if !array(d, dst, parent, name) {
		return
	}
	s, i := *dst, 0
	for first := true; d.next('[', ']', &first); i++ {
		s = extend(s, i)
		d.stringInto((*string)(&s[i]), parent, name)
	}
	*dst = truncate(s, i)
}

// extend makes s[i] addressable as encoding/json does: reusing capacity the
// slice already has, growing by one element otherwise.
func extend[T any](s []T, i int) []T {
	if i < len(s) {
		return s
	}
	if i < cap(s) {
		return s[:i+1]
	}
	var zero T
	return append(s, zero)
}

// truncate ends a decoded array of n elements.
func truncate[T any](s []T, n int) []T {
	if n == 0 {
		return []T{}
	}
	return s[:n]
}

// join builds a field's dotted path; only error paths call it.
func join(parent, name string) string {
	if parent == "" {
		return name
	}
	return parent + "." + name
}

// object reports whether the next value is an object to decode into. It
// consumes null (the struct stays as it is) and records and skips a value
// of another type.
func (d *decoder) object(parent, name string) bool {
	switch d.ws() {
	case '{':
		return true
	case 'n':
		d.null()
	default:
		d.typeMismatch(parent, name, "object")
	}
	return false
}

// array reports whether the next value is an array to decode into *dst. It
// consumes null, setting *dst to nil, and records and skips a value of
// another type.
func array[T any](d *decoder, dst *[]T, parent, name string) bool {
	switch d.ws() {
	case '[':
		return true
	case 'n':
		d.null()
		*dst = nil
	default:
		d.typeMismatch(parent, name, "array")
	}
	return false
}

// next steps through an object or array that starts at the current
// position: on the first call it consumes the opening byte, then the commas
// between members, and reports false at the closing byte (consumed) or at
// a syntax error. In an object, the caller reads the key next.
func (d *decoder) next(open, close byte, first *bool) bool {
	if d.err != nil {
		return false
	}
	if *first {
		*first = false
		d.pos++ // open, checked by the caller
		d.depth++
		if d.depth > maxDepth {
			d.syntaxError("nested too deeply")
			return false
		}
		if d.ws() == close {
			d.pos++
			d.depth--
			return false
		}
		return true
	}
	switch d.ws() {
	case ',':
		d.pos++
		return true
	case close:
		d.pos++
		d.depth--
		return false
	case 0:
		d.syntaxError("unexpected end of payload")
	default:
		d.syntaxError("invalid character %q in %s", d.data[d.pos], containerName(open))
	}
	return false
}

func containerName(open byte) string {
	if open == '{' {
		return "object"
	}
	return "array"
}

// key reads an object key and the colon after it.
func (d *decoder) key() []byte {
	if d.ws() != '"' {
		if d.pos >= len(d.data) {
			d.syntaxError("unexpected end of payload")
		} else {
			d.syntaxError("invalid character %q where an object key was expected", d.data[d.pos])
		}
		return nil
	}
	start := d.pos
	simple := d.scanString()
	if d.err != nil {
		return nil
	}
	key := d.data[start+1 : d.pos-1]
	if !simple {
		key = []byte(d.unquote(start))
	}
	if d.ws() != ':' {
		d.syntaxError("missing ':' after object key")
		return nil
	}
	d.pos++
	return key
}

// stringInto decodes a string value into *dst; null leaves it unchanged.
func (d *decoder) stringInto(dst *string, parent, name string) {
	switch d.ws() {
	case '"':
		*dst = d.string()
	case 'n':
		d.null()
	default:
		d.typeMismatch(parent, name, "string")
	}
}

// string reads the string at the current position.
func (d *decoder) string() string {
	start := d.pos
	simple := d.scanString()
	if d.err != nil {
		return ""
	}
	if simple {
		return d.str[start+1 : d.pos-1]
	}
	return d.unquote(start)
}

// unquote decodes the string token that starts at start and ends at d.pos,
// one with escapes or non-ASCII bytes, exactly as encoding/json does.
func (d *decoder) unquote(start int) string {
	var s string
	if err := json.Unmarshal(d.data[start:d.pos], &s); err != nil {
		// scanString accepted the token, so this is not expected; report it
		// rather than lose it.
		d.pos = start
		d.syntaxError("%v", err)
	}
	return s
}

// scanString moves past the string token at the current position,
// validating it, and reports whether it is simple: no escapes, and only
// valid UTF-8, so that its bytes are its value.
func (d *decoder) scanString() bool {
	d.pos++ // opening quote
	simple := true
	for d.pos < len(d.data) {
		c := d.data[d.pos]
		switch {
		case c == '"':
			d.pos++
			return simple
		case c == '\\':
			simple = false
			d.pos++
			if d.pos >= len(d.data) {
				break
			}
			switch d.data[d.pos] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				d.pos++
			case 'u':
				d.pos++
				for i := 0; i < 4; i++ {
					if d.pos >= len(d.data) || !isHex(d.data[d.pos]) {
						d.syntaxError("invalid \\u escape in string")
						return false
					}
					d.pos++
				}
			default:
				d.syntaxError("invalid escape in string")
				return false
			}
		case c < 0x20:
			d.syntaxError("control character in string")
			return false
		case c < utf8.RuneSelf:
			d.pos++
		default:
			r, n := utf8.DecodeRune(d.data[d.pos:])
			if r == utf8.RuneError && n == 1 {
				simple = false // encoding/json writes U+FFFD for it
			}
			d.pos += n
		}
	}
	d.syntaxError("unexpected end of payload in string")
	return false
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// time decodes a timestamp into t as Time.UnmarshalJSON would.
func (d *decoder) time(t *Time, parent, name string) {
	switch d.ws() {
	case '"':
		start := d.pos
		d.scanString()
		if d.err != nil {
			return
		}
		if !d.counts() {
			// The value cannot matter: every kind this field belongs to
			// already fails with an earlier error.
			return
		}
		text := d.data[start+1 : d.pos-1]
		if len(text) == 0 {
			t.Time = time.Time{} // as Time.UnmarshalJSON reads ""
			return
		}
		parsed, err := parseTime(text)
		if err != nil {
			d.pos = start
			d.addTypeError(parent, name, err)
			d.skipValue()
			return
		}
		t.Time = parsed
	case 'n':
		d.null()
	default:
		d.typeMismatch(parent, name, "timestamp string")
	}
}

func (d *decoder) null() { d.literal("null") }

func (d *decoder) literal(lit string) {
	if len(d.data)-d.pos >= len(lit) && string(d.data[d.pos:d.pos+len(lit)]) == lit {
		d.pos += len(lit)
		return
	}
	d.syntaxError("invalid literal, want %s", lit)
}

// skipValue moves past one JSON value of any type, validating it.
func (d *decoder) skipValue() {
	if d.err != nil {
		return
	}
	switch c := d.ws(); {
	case c == '{':
		for first := true; d.next('{', '}', &first); {
			if d.key(); d.err != nil {
				return
			}
			d.skipValue()
		}
	case c == '[':
		for first := true; d.next('[', ']', &first); {
			d.skipValue()
		}
	case c == '"':
		d.scanString()
	case c == 't':
		d.literal("true")
	case c == 'f':
		d.literal("false")
	case c == 'n':
		d.literal("null")
	case c == '-' || '0' <= c && c <= '9':
		d.number()
	case d.pos >= len(d.data):
		d.syntaxError("unexpected end of payload")
	default:
		d.syntaxError("invalid character %q looking for a value", c)
	}
}

// number moves past a number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (d *decoder) number() {
	if d.data[d.pos] == '-' {
		d.pos++
	}
	switch {
	case d.pos < len(d.data) && d.data[d.pos] == '0':
		d.pos++
	case d.digits() == 0:
		d.syntaxError("invalid number")
		return
	}
	if d.pos < len(d.data) && d.data[d.pos] == '.' {
		d.pos++
		if d.digits() == 0 {
			d.syntaxError("invalid number")
			return
		}
	}
	if d.pos < len(d.data) && (d.data[d.pos] == 'e' || d.data[d.pos] == 'E') {
		d.pos++
		if d.pos < len(d.data) && (d.data[d.pos] == '+' || d.data[d.pos] == '-') {
			d.pos++
		}
		if d.digits() == 0 {
			d.syntaxError("invalid number")
		}
	}
}

func (d *decoder) digits() int {
	n := 0
	for d.pos < len(d.data) && '0' <= d.data[d.pos] && d.data[d.pos] <= '9' {
		d.pos++
		n++
	}
	return n
}

// peek reads only the top level of a payload: the "eventType" string and
// which shape-revealing keys are present. ok is false for malformed JSON.
func (d *decoder) peek() (typ EventType, protectedChanges, connectionFields, site, old, ok bool) {
	if d.ws() != '{' {
		return "", false, false, false, false, false
	}
	for first := true; d.next('{', '}', &first); {
		key := d.key()
		if d.err != nil {
			break
		}
		switch matchField(key, payloadFields) {
		case 0:
			switch d.ws() {
			case '"':
				start := d.pos
				if d.scanString() {
					typ = internEventType(d.data[start+1 : d.pos-1])
					continue
				}
				if d.err == nil {
					typ = EventType(d.unquote(start))
				}
				continue
			case 'n':
				typ = ""
			default:
				// Parse rejects a non-string eventType, so cannot type it.
				return "", false, false, false, false, false
			}
		case 3, 4:
			connectionFields = true
		case 9:
			site = true
		case 10:
			protectedChanges = true
		case 11:
			old = true
		}
		d.skipValue()
	}
	if d.ws(); d.err != nil || d.pos < len(d.data) {
		return "", false, false, false, false, false
	}
	return typ, protectedChanges, connectionFields, site, old, true
}

// internEventType returns the constant for a documented event type, so that
// reading one allocates nothing.
func internEventType(b []byte) EventType {
	for _, t := range [...]EventType{EventConnectionCreated, EventConnectionUpdated,
		EventConnectionValidated, EventDocumentCreated, EventDocumentUpdated} {
		if string(b) == string(t) {
			return t
		}
	}
	return EventType(b)
}

// fieldNames is a struct's JSON field names, with their case-folded forms
// for the case-insensitive match encoding/json falls back to.
type fieldNames struct {
	exact, folded []string
}

func fields(names ...string) fieldNames {
	f := fieldNames{exact: names}
	for _, n := range names {
		f.folded = append(f.folded, string(foldName([]byte(n))))
	}
	return f
}

// matchField returns the index of the field key names, or -1.
func matchField(key []byte, f fieldNames) int {
	for i, n := range f.exact {
		if string(key) == n {
			return i
		}
	}
	for i, n := range f.folded {
		if foldedEqual(key, n) {
			return i
		}
	}
	return -1
}

// foldedEqual reports whether key, case-folded, equals folded.
func foldedEqual(key []byte, folded string) bool {
	j := 0
	for i := 0; i < len(key); {
		var r rune
		n := 1
		if c := key[i]; c < utf8.RuneSelf {
			r = rune(c)
		} else {
			r, n = utf8.DecodeRune(key[i:])
		}
		i += n
		var buf [utf8.UTFMax]byte
		f := buf[:utf8.EncodeRune(buf[:], foldRune(r))]
		if len(folded)-j < len(f) || folded[j:j+len(f)] != string(f) {
			return false
		}
		j += len(f)
	}
	return j == len(folded)
}

// foldName folds every rune of name, for foldedEqual to compare against.
func foldName(name []byte) []byte {
	var out []byte
	for _, r := range string(name) {
		out = utf8.AppendRune(out, foldRune(r))
	}
	return out
}

// foldRune maps r to the smallest rune it case-folds to, the canonical
// representative encoding/json compares names by.
func foldRune(r rune) rune {
	if r < utf8.RuneSelf {
		if 'a' <= r && r <= 'z' {
			r -= 'a' - 'A'
		}
		return r
	}
	min := r
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		if f < min {
			min = f
		}
	}
	return min
}
