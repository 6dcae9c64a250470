package nectarhooks

import (
	"encoding/json"
)

// EventType names a kind of Nectar event, such as "connection.updated.v2".
// Values this version does not declare are valid too: Nectar may add event
// types at any time, and they reach [UnknownEvent] and OnUnhandled.
type EventType string

// The v2 event types Nectar documents. The ".v2" suffix versions the payload
// shape: a future ".v3" is a different event type, not a change to these.
const (
	EventConnectionCreated   EventType = "connection.created.v2"
	EventConnectionUpdated   EventType = "connection.updated.v2"
	EventConnectionValidated EventType = "connection.validated.v2"
	EventDocumentCreated     EventType = "document.created.v2"
	EventDocumentUpdated     EventType = "document.updated.v2"
)

// EventTypes lists the event types this version decodes into typed structs,
// in the order Nectar documents them. It returns a new slice on every call.
func EventTypes() []EventType {
	return []EventType{
		EventConnectionCreated,
		EventConnectionUpdated,
		EventConnectionValidated,
		EventDocumentCreated,
		EventDocumentUpdated,
	}
}

// Known reports whether t is one of the event types this version decodes
// into a typed struct.
func (t EventType) Known() bool {
	switch t {
	case EventConnectionCreated, EventConnectionUpdated, EventConnectionValidated,
		EventDocumentCreated, EventDocumentUpdated:
		return true
	}
	return false
}

// ConnectionStatus is a connection's state as Nectar reports it. Values not
// declared here pass through unchanged.
type ConnectionStatus string

// Connection statuses seen in Nectar's documentation.
const (
	StatusConnected ConnectionStatus = "CONNECTED"
	StatusPending   ConnectionStatus = "PENDING"
)

// DatasourceType is a kind of utility data, such as "ELECTRICITY". Values
// not declared here pass through unchanged.
type DatasourceType string

// Datasource types seen in Nectar's documentation.
const (
	DatasourceElectricity DatasourceType = "ELECTRICITY"
)

// Company identifies the Nectar customer a connection or document belongs to.
type Company struct {
	ExternalID string `json:"externalId"` // the id the customer gave the company in Nectar
	ID         string `json:"id"`         // Nectar's id of the company
	Name       string `json:"name"`       // e.g. "Demo Company"
	PublicID   string `json:"publicId"`   // Nectar's public id of the company
}

// Datasource is the utility a connection pulls data from.
type Datasource struct {
	Name string `json:"name"` // e.g. "Los Angeles Department of Water and Power"
}

// Site is a physical location of the company.
type Site struct {
	ID   string `json:"id"`   // Nectar's id of the site
	Name string `json:"name"` // e.g. "California Facility 1"
}

// SiteRelation ties a connection to one site: the utility accounts and the
// kinds of data the connection provides for it.
type SiteRelation struct {
	AccountIDs      []string         `json:"accountIds"`      // the utility account numbers, e.g. ["0137746423"]
	DatasourceTypes []DatasourceType `json:"datasourceTypes"` // e.g. [ELECTRICITY]
	Site            Site             `json:"site"`            // the site the accounts supply
}

// Connection is a link between a company and a utility's data source, the
// shared body of the connection.* events.
type Connection struct {
	ID             string           `json:"id"`             // Nectar's id of the connection
	Company        Company          `json:"company"`        // whose connection it is
	Datasource     Datasource       `json:"datasource"`     // the utility it connects to
	SitesRelations []SiteRelation   `json:"sitesRelations"` // the sites and accounts it covers
	Status         ConnectionStatus `json:"status"`         // e.g. StatusConnected
	URL            string           `json:"url"`            // the utility's site, e.g. "https://ladwp.com"
	Created        Time             `json:"created"`        // when the connection was created
	Updated        Time             `json:"updated"`        // when it last changed
}

// Document is a utility document (a bill, say) Nectar has processed, the
// shared body of the document.* events.
type Document struct {
	ID      string  `json:"id"`      // Nectar's id of the document
	Company Company `json:"company"` // whose document it is
	Site    Site    `json:"site"`    // the site it concerns
	Created Time    `json:"created"` // when it was first processed
	Updated Time    `json:"updated"` // when it was last processed
}

// Event is a decoded Nectar webhook payload. [Parse] returns one of
// *ConnectionCreated, *ConnectionUpdated, *ConnectionValidated,
// *DocumentCreated, *DocumentUpdated, or *UnknownEvent; a type switch picks
// them apart.
type Event interface {
	// Type reports the event type the payload was decoded as.
	Type() EventType
}

// ConnectionCreated is the payload of connection.created.v2, sent when a
// connection is created.
type ConnectionCreated struct {
	Connection
	// Raw is the payload exactly as received. Parse does not copy it: it is
	// the slice passed to Parse, so treat it as read-only.
	Raw json.RawMessage `json:"-"`
}

// ConnectionValidated is the payload of connection.validated.v2, sent when
// Nectar has validated a connection. Its shape is that of ConnectionCreated.
type ConnectionValidated struct {
	Connection
	// Raw is the payload exactly as received (see ConnectionCreated.Raw).
	Raw json.RawMessage `json:"-"`
}

// ConnectionUpdated is the payload of connection.updated.v2, sent when a
// connection's status or details change.
type ConnectionUpdated struct {
	Connection
	// ProtectedChanges names the fields that changed, e.g. ["status"].
	ProtectedChanges []string `json:"protectedChanges"`
	// Old holds the previous values of the changed fields.
	Old ConnectionOld `json:"old"`
	// Raw is the payload exactly as received (see ConnectionCreated.Raw).
	Raw json.RawMessage `json:"-"`
}

// ConnectionOld holds the values a connection had before an update. A nil
// field was not in "old": it did not change, or Nectar did not report it.
// SitesRelations is nil when absent and non-nil (possibly empty) when present.
type ConnectionOld struct {
	ID             *string           `json:"id,omitempty"`            // the previous Connection.ID
	Company        *Company          `json:"company,omitempty"`       // the previous Connection.Company
	Datasource     *Datasource       `json:"datasource,omitempty"`    // the previous Connection.Datasource
	SitesRelations []SiteRelation    `json:"sitesRelations,omitzero"` // the previous Connection.SitesRelations
	Status         *ConnectionStatus `json:"status,omitempty"`        // the previous Connection.Status, e.g. StatusPending
	URL            *string           `json:"url,omitempty"`           // the previous Connection.URL
	Created        *Time             `json:"created,omitempty"`       // the previous Connection.Created
	Updated        *Time             `json:"updated,omitempty"`       // the previous Connection.Updated
}

// DocumentCreated is the payload of document.created.v2, sent when a new
// document is processed.
type DocumentCreated struct {
	Document
	// Raw is the payload exactly as received (see ConnectionCreated.Raw).
	Raw json.RawMessage `json:"-"`
}

// DocumentUpdated is the payload of document.updated.v2, sent when a
// document is reprocessed or updated.
type DocumentUpdated struct {
	Document
	// Old holds the previous values of the changed fields.
	Old DocumentOld `json:"old"`
	// Raw is the payload exactly as received (see ConnectionCreated.Raw).
	Raw json.RawMessage `json:"-"`
}

// DocumentOld holds the values a document had before an update. A nil field
// was not in "old".
type DocumentOld struct {
	ID      *string  `json:"id,omitempty"`      // the previous Document.ID
	Company *Company `json:"company,omitempty"` // the previous Document.Company
	Site    *Site    `json:"site,omitempty"`    // the previous Document.Site
	Created *Time    `json:"created,omitempty"` // the previous Document.Created
	Updated *Time    `json:"updated,omitempty"` // the previous Document.Updated
}

// UnknownEvent is an event this version of the package does not decode: a
// type Nectar added later, or a payload whose type could not be told from
// its shape. It keeps what is needed to handle or store it.
type UnknownEvent struct {
	// EventType is the payload's "eventType", or empty when it had none.
	EventType EventType
	// Raw is the payload exactly as received (see ConnectionCreated.Raw).
	Raw json.RawMessage
}

// Type reports EventConnectionCreated.
func (*ConnectionCreated) Type() EventType { return EventConnectionCreated }

// Type reports EventConnectionValidated.
func (*ConnectionValidated) Type() EventType { return EventConnectionValidated }

// Type reports EventConnectionUpdated.
func (*ConnectionUpdated) Type() EventType { return EventConnectionUpdated }

// Type reports EventDocumentCreated.
func (*DocumentCreated) Type() EventType { return EventDocumentCreated }

// Type reports EventDocumentUpdated.
func (*DocumentUpdated) Type() EventType { return EventDocumentUpdated }

// Type reports the payload's "eventType", which may be empty.
func (e *UnknownEvent) Type() EventType { return e.EventType }
