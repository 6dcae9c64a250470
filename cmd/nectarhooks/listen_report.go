package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
)

// summary is a delivery as the web page's list and -json show it: no
// headers and no body, which the page fetches when one is opened.
type summary struct {
	Seq      int64     `json:"seq"`
	Received time.Time `json:"received"`
	ID       string    `json:"id"`
	Type     string    `json:"type"`
	Path     string    `json:"path"`
	Size     int64     `json:"size"`
	Verdict  diagnosis `json:"verdict"`
	Answer   answer    `json:"answer"`
	// Forward is the first forward's outcome; Replays how many replays
	// were made and LastReplay the latest's.
	Forward    *forwarded `json:"forward,omitempty"`
	Replays    int        `json:"replays"`
	LastReplay *forwarded `json:"lastReplay,omitempty"`
}

func summarize(d *record) summary {
	s := summary{
		Seq: d.Seq, Received: d.Received, ID: d.ID, Type: d.Type, Path: d.Path, Size: d.Size,
		Verdict: d.Verdict, Answer: d.Answer, Forward: trimmed(d.Forward), Replays: len(d.Replays),
	}
	s.Answer.Body = ""
	if n := len(d.Replays); n > 0 {
		s.LastReplay = trimmed(&d.Replays[n-1])
	}
	return s
}

// trimmed is f without the answer's body, for a summary.
func trimmed(f *forwarded) *forwarded {
	if f == nil {
		return nil
	}
	c := *f
	if f.Answer != nil {
		a := *f.Answer
		a.Body = ""
		c.Answer = &a
	}
	return &c
}

// writeDeliveryLine prints a delivery as one line, and for one that did
// not verify the lines that say why, indented:
//
//	12:04:05  msg_2LJ…  connection.created.v2  verified  200 OK
//	12:04:06  msg_8Xs…  document.created.v2  NOT VERIFIED timestamp too old: signed 10m0s before the clock (tolerance 5m0s)  401 Unauthorized
//	    svix-timestamp 1796427962 is 2026-12-04T23:46:02Z, 10m0s before the clock (2026-12-04T23:56:02Z),
//	    …
//
// With -forward-to, the answer is the forward target's: "-> 200 OK in 1.2ms".
// Everything from the request is escaped: it is untrusted text.
func writeDeliveryLine(w io.Writer, d *record) {
	var b strings.Builder
	id, typ := d.ID, d.Type
	if id == "" {
		id = "(no id)"
	}
	if typ == "" {
		typ = "(no event type)"
	}
	fmt.Fprintf(&b, "%s  %s  %s  ", d.Received.Format("15:04:05"), shownText(id, 64), shownText(typ, 64))
	if d.Verdict.OK {
		b.WriteString("verified")
	} else {
		b.WriteString("NOT VERIFIED " + escapeControl(d.Verdict.Title))
	}
	switch f := d.Forward; {
	case f == nil:
		b.WriteString("  " + d.Answer.Text)
	case f.Answer != nil:
		fmt.Fprintf(&b, "  -> %s in %s", f.Answer.Text, millis(f.Millis))
	default:
		fmt.Fprintf(&b, "  -> no answer (%s): %s", escapeControl(f.Error), d.Answer.Text)
	}
	b.WriteByte('\n')
	for _, line := range d.Verdict.Reason {
		b.WriteString("    " + escapeControl(line) + "\n")
	}
	io.WriteString(w, b.String())
}

// writeDeliveryJSON prints a delivery's summary as one line of JSON, for
// scripts: encoding/json escapes what a terminal would act on.
func writeDeliveryJSON(w io.Writer, d *record) {
	b, err := json.Marshal(summarize(d))
	if err != nil {
		return
	}
	w.Write(append(b, '\n'))
}

func millis(ms float64) string {
	return time.Duration(ms * float64(time.Millisecond)).Round(10 * time.Microsecond).String()
}
