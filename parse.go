package nectarhooks

import (
	"errors"
	"fmt"
)

// ErrInvalidPayload is the error, matched with errors.Is, of a payload that
// is not a JSON object, is malformed JSON, or holds a value of the wrong
// type in a field this package decodes. The *PayloadError that wraps it says
// where.
var ErrInvalidPayload = errors.New("nectarhooks: invalid payload")

// PayloadError describes why a payload could not be decoded. errors.Is(err,
// ErrInvalidPayload) reports true for every PayloadError.
type PayloadError struct {
	// Field is the dotted path of the offending field, such as
	// "sitesRelations.site.id", or empty for malformed JSON.
	Field string
	// Offset is the byte offset in the payload where the problem was found.
	Offset int
	// Err is the cause.
	Err error
}

// Error describes the problem without quoting the payload.
func (e *PayloadError) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("nectarhooks: invalid payload: field %q at offset %d: %v", e.Field, e.Offset, e.Err)
	}
	return fmt.Sprintf("nectarhooks: invalid payload at offset %d: %v", e.Offset, e.Err)
}

// Unwrap returns the cause.
func (e *PayloadError) Unwrap() error { return e.Err }

// Is reports whether target is ErrInvalidPayload.
func (e *PayloadError) Is(target error) bool { return target == ErrInvalidPayload }

// Parse decodes a Nectar webhook payload into its typed event: one of
// *ConnectionCreated, *ConnectionUpdated, *ConnectionValidated,
// *DocumentCreated, *DocumentUpdated, or *UnknownEvent for an event type
// this version does not know. Parse does not verify signatures: use it on
// payloads a [Verifier] has accepted.
//
// The event type comes from the payload's "eventType" field. When that is
// missing, null or empty (Nectar's documented connection.created.v2 sample
// has none, and neither do the Svix portal's example events) Parse infers
// the type from the fields present, whatever their values:
//
//	"protectedChanges"              connection.updated.v2
//	"datasource" or "sitesRelations" connection.created.v2
//	"site" and "old"                document.updated.v2
//	"site"                          document.created.v2
//	anything else                   *UnknownEvent with an empty EventType
//
// connection.validated.v2 has the shape of connection.created.v2, so without
// "eventType" it is reported as connection.created.v2.
//
// Field names match as encoding/json matches them (exactly, else without
// regard to case) and the typed result is the one json.Unmarshal would
// produce into the same struct; the package's tests hold it to that. Fields
// Nectar adds later are ignored. Parse reads the payload once, makes one
// copy of it for the strings to share, and keeps the payload itself as the
// event's Raw field, so do not modify payload while the event is in use.
//
// Malformed JSON, a payload that is not an object, an "eventType" that is
// not a string, or a value of the wrong type in a field of the event's own
// type fail with a *PayloadError, which matches ErrInvalidPayload.
func Parse(payload []byte) (Event, error) {
	var w wire
	d := decoder{data: payload, str: string(payload)}
	d.payload(&w)
	if d.err != nil {
		return nil, d.err
	}
	kind, typ := w.kind()
	if err := d.firstTypeError(kind); err != nil {
		return nil, err
	}
	switch kind {
	case kindConnectionCreated:
		return &ConnectionCreated{Connection: w.conn, Raw: payload}, nil
	case kindConnectionValidated:
		return &ConnectionValidated{Connection: w.conn, Raw: payload}, nil
	case kindConnectionUpdated:
		return &ConnectionUpdated{
			Connection:       w.conn,
			ProtectedChanges: w.protectedChanges,
			Old: ConnectionOld{
				ID: w.old.ID, Company: w.old.Company, Datasource: w.old.Datasource,
				SitesRelations: w.old.SitesRelations, Status: (*ConnectionStatus)(w.old.Status), URL: w.old.URL,
				Created: w.old.Created, Updated: w.old.Updated,
			},
			Raw: payload,
		}, nil
	case kindDocumentCreated:
		return &DocumentCreated{Document: w.document(), Raw: payload}, nil
	case kindDocumentUpdated:
		return &DocumentUpdated{
			Document: w.document(),
			Old: DocumentOld{
				ID: w.old.ID, Company: w.old.Company, Site: w.old.Site,
				Created: w.old.Created, Updated: w.old.Updated,
			},
			Raw: payload,
		}, nil
	}
	return &UnknownEvent{EventType: typ, Raw: payload}, nil
}

// eventKind is a bit per event type, so that a field can say which event
// types it belongs to.
type eventKind uint8

const (
	kindConnectionCreated eventKind = 1 << iota
	kindConnectionUpdated
	kindConnectionValidated
	kindDocumentCreated
	kindDocumentUpdated
	kindUnknown

	kindsConnection = kindConnectionCreated | kindConnectionUpdated | kindConnectionValidated
	kindsDocument   = kindDocumentCreated | kindDocumentUpdated
	kindsUpdated    = kindConnectionUpdated | kindDocumentUpdated
	kindsTyped      = kindsConnection | kindsDocument
	kindsAll        = kindsTyped | kindUnknown
)

// wire is the union of every field the five event types have. Parse decodes
// a payload into it in one pass, before it knows the event type (the
// "eventType" field may come last, or not at all), and then copies the
// fields that belong to that type into the typed event.
type wire struct {
	eventType string
	conn      Connection // with the document's common fields
	site      Site
	// protectedChanges is connection.updated's list of changed fields.
	protectedChanges []string
	old              wireOld
	// present records which shape-revealing fields were seen (kind bits are
	// not used here: these are presence flags).
	hasDatasource, hasSitesRelations, hasSite, hasProtectedChanges, hasOld bool
}

// wireOld is the union of ConnectionOld and DocumentOld.
type wireOld struct {
	ID             *string
	Company        *Company
	Datasource     *Datasource
	SitesRelations []SiteRelation
	Status         *string // a *ConnectionStatus, kept as *string to share the decoder's block
	URL            *string
	Created        *Time
	Updated        *Time
	Site           *Site
}

// kind resolves the event type: "eventType" when present, else the shape.
func (w *wire) kind() (eventKind, EventType) {
	if w.eventType != "" {
		switch t := EventType(w.eventType); t {
		case EventConnectionCreated:
			return kindConnectionCreated, t
		case EventConnectionUpdated:
			return kindConnectionUpdated, t
		case EventConnectionValidated:
			return kindConnectionValidated, t
		case EventDocumentCreated:
			return kindDocumentCreated, t
		case EventDocumentUpdated:
			return kindDocumentUpdated, t
		default:
			return kindUnknown, t
		}
	}
	return inferKind(w.hasProtectedChanges, w.hasDatasource || w.hasSitesRelations, w.hasSite, w.hasOld)
}

// inferKind applies the shape rule documented on Parse.
func inferKind(protectedChanges, connectionFields, site, old bool) (eventKind, EventType) {
	switch {
	case protectedChanges:
		return kindConnectionUpdated, EventConnectionUpdated
	case connectionFields:
		return kindConnectionCreated, EventConnectionCreated
	case site && old:
		return kindDocumentUpdated, EventDocumentUpdated
	case site:
		return kindDocumentCreated, EventDocumentCreated
	}
	return kindUnknown, ""
}

func (w *wire) document() Document {
	return Document{
		ID: w.conn.ID, Company: w.conn.Company, Site: w.site,
		Created: w.conn.Created, Updated: w.conn.Updated,
	}
}

// PeekEventType reports a payload's event type without decoding it and
// without allocating for the documented types: the "eventType" field, or
// the shape rule of [Parse] when that is missing. It reports the empty
// string for malformed JSON, a payload that is not an object, an
// "eventType" that is not a string, and a payload whose type cannot be
// told. It does not check the other fields' types, as Parse does.
func PeekEventType(payload []byte) EventType {
	d := decoder{data: payload}
	typ, protectedChanges, connectionFields, site, old, ok := d.peek()
	if !ok {
		return ""
	}
	if typ != "" {
		return typ
	}
	_, t := inferKind(protectedChanges, connectionFields, site, old)
	return t
}
