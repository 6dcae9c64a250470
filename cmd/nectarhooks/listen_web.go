package main

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// webPrefix starts the paths of the web page's resources and API; a POST
// to any other path is a delivery.
const webPrefix = "/_nectarhooks/"

// The pages' templates (listen's page, load -html's report) and the
// listen page's script and style (static/), built into the binary: nothing
// is fetched from elsewhere, and it works offline.
//
//go:embed web
var webFiles embed.FS

// listenPage renders the page. html/template, not text/template: what it
// shows of a delivery (svix-id, event type, the verdict, which can quote
// a header) is escaped for where it lands, text or attribute. It costs
// the binary about 3.4 MB: text/template's reflection (MethodByName)
// makes the linker keep every exported method of the program
// (golang/go#72895).
var listenPage = template.Must(template.ParseFS(webFiles, "web/listen.html"))

// contentSecurityPolicy lets the page run only its own script and style,
// and talk only to its own origin: should a payload ever reach the page
// as markup, the browser still refuses to run anything it carries.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

func (l *listener) webHandler() http.Handler {
	mux := http.NewServeMux()
	static, _ := fs.Sub(webFiles, "web/static")
	mux.Handle("GET "+webPrefix+"static/", http.StripPrefix(webPrefix+"static/", http.FileServerFS(static)))
	mux.HandleFunc("GET /{$}", l.page)
	mux.HandleFunc("GET "+webPrefix+"events", l.events)
	mux.HandleFunc("GET "+webPrefix+"deliveries/{seq}", l.detail)
	mux.HandleFunc("POST "+webPrefix+"deliveries/{seq}/replay", l.replay)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "nectarhooks listen: POST deliveries to any path; the web page is at /", http.StatusMethodNotAllowed)
	})
	return webGuard(mux)
}

// webGuard sets the headers every page and API answer carries, and
// refuses requests whose Host is not a loopback name: a site the browser
// visits could otherwise point its own name at 127.0.0.1 (DNS rebinding)
// and read the deliveries, and a tunnel passing deliveries in must not
// pass the page out.
func webGuard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		if !loopbackHost(r.Host) {
			http.Error(w, "nectarhooks listen: the web page answers only at a loopback address (127.0.0.1, [::1] or localhost)", http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// loopbackHost reports whether a Host header names this machine.
func loopbackHost(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		host = hostport
	}
	host = strings.Trim(host, "[]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// pageView is what the page's template is given.
type pageView struct {
	Config  string // how listen runs: forwarding or not, tolerance, history
	SelfURL string // where to send deliveries: this page's own origin
	Rows    []rowView
	Types   []string // the event types of the rows, for the filter
}

// rowView is one delivery in the page's list, newest first. app.js draws
// the same row from a summary (upsert): the two say the same thing.
type rowView struct {
	Seq     int64
	Time    string
	ID      string
	Type    string
	OK      bool
	Verdict string // "verified", or the check that failed in a few words
	Answer  string
}

func newRowView(s summary) rowView {
	v := rowView{Seq: s.Seq, Time: s.Received.Local().Format("15:04:05"), ID: s.ID, Type: s.Type, OK: s.Verdict.OK, Verdict: s.Verdict.Title}
	if s.Verdict.OK {
		v.Verdict = "verified"
	}
	f, tag := s.Forward, ""
	if s.LastReplay != nil {
		f, tag = s.LastReplay, "replay "
	}
	switch {
	case f == nil:
		v.Answer = s.Answer.Text
	case f.Answer != nil:
		v.Answer = fmt.Sprintf("%s→ %s in %.1f ms", tag, f.Answer.Text, f.Millis)
	default:
		v.Answer = tag + "→ no answer: " + f.Error
	}
	return v
}

// page serves the web page: the deliveries kept so far as rows, rendered
// here so that they show before the event stream connects; the script
// then keeps the list live from the stream.
func (l *listener) page(w http.ResponseWriter, r *http.Request) {
	v := pageView{
		Config:  "not forwarding (start listen with -forward-to URL to replay)",
		SelfURL: "http://" + r.Host + "/", // a loopback name: webGuard saw to it
	}
	if l.cfg.forwardTo != "" {
		v.Config = "forwarding verified deliveries to " + l.cfg.forwardTo
	}
	v.Config += fmt.Sprintf(" · tolerance %s · history %d deliveries", l.cfg.tolerance, l.cfg.history)
	kept := l.hist.list()
	seen := map[string]bool{}
	for i := range kept {
		d := &kept[len(kept)-1-i]
		v.Rows = append(v.Rows, newRowView(summarize(d)))
		if t := kept[i].Type; t != "" && !seen[t] {
			seen[t] = true
			v.Types = append(v.Types, t)
		}
	}
	var b bytes.Buffer
	if err := listenPage.Execute(&b, v); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(b.Bytes())
}

// events is the server-sent event stream of delivery summaries: every
// kept delivery first, then each new one and each replay as it happens.
// A summary may come twice (a delivery recorded while the stream starts,
// a replay): the page replaces a row by its seq.
func (l *listener) events(w http.ResponseWriter, r *http.Request) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	ch, unsubscribe := l.hub.subscribe()
	defer unsubscribe()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	for _, d := range l.hist.list() {
		msg, err := json.Marshal(summarize(&d))
		if err == nil {
			fmt.Fprintf(w, "event: delivery\ndata: %s\n\n", msg)
		}
	}
	// "ready" tells the page (and its tests) the backlog is all there.
	fmt.Fprint(w, "event: ready\ndata: {}\n\n")
	flusher.Flush()
	keepAlive := time.NewTicker(20 * time.Second)
	defer keepAlive.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-keepAlive.C:
			fmt.Fprint(w, ": keep-alive\n\n")
		case msg, ok := <-ch:
			if !ok {
				return
			}
			fmt.Fprintf(w, "event: delivery\ndata: %s\n\n", msg)
		}
		flusher.Flush()
	}
}

// detailView is one delivery as the page's detail panel shows it.
type detailView struct {
	record
	// Body is the body as text, and Pretty the same JSON indented; the
	// page shows both with textContent, never as markup.
	BodyText  string      `json:"bodyText"`
	Pretty    string      `json:"pretty,omitempty"`
	Headers   [][2]string `json:"headers"`
	CanReplay bool        `json:"canReplay"`
}

func (l *listener) detail(w http.ResponseWriter, r *http.Request) {
	d, ok := l.lookup(w, r)
	if !ok {
		return
	}
	v := detailView{record: d, BodyText: string(d.Body), CanReplay: l.signer != nil && d.Verdict.OK}
	var pretty bytes.Buffer
	if json.Indent(&pretty, d.Body, "", "  ") == nil {
		v.Pretty = pretty.String()
	}
	for _, name := range sortedKeys(d.Header) {
		for _, value := range d.Header[name] {
			v.Headers = append(v.Headers, [2]string{name, value})
		}
	}
	v.record.Body, v.record.Header = nil, nil // sent once, as text and as Headers
	writeJSON(w, http.StatusOK, v)
}

// replay sends a kept delivery to the forward target again: the same
// svix-id and body, a new timestamp and signature. The request must carry
// the X-Nectarhooks-Replay header, which a form or a link on another site
// cannot add (and a script there only after a preflight this server does
// not grant), so that no page but this one can make replays.
func (l *listener) replay(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("X-Nectarhooks-Replay") == "" {
		writeJSON(w, http.StatusForbidden, map[string]string{"error": "a replay needs the X-Nectarhooks-Replay header"})
		return
	}
	d, ok := l.lookup(w, r)
	if !ok {
		return
	}
	switch {
	case l.signer == nil:
		writeJSON(w, http.StatusConflict, map[string]string{"error": "nothing to replay to: start listen with -forward-to URL"})
		return
	case !d.Verdict.OK:
		// Re-signed, it would verify at the target: a replay must not
		// turn a forgery into a delivery.
		writeJSON(w, http.StatusConflict, map[string]string{"error": "it did not verify, so it is not replayed"})
		return
	}
	f := l.forward(r.Context(), d.ID, d.Body)
	updated, ok := l.hist.update(d.Seq, func(d *record) { d.Replays = append(d.Replays, f) })
	if ok {
		l.hub.publish(&updated)
	}
	writeJSON(w, http.StatusOK, f)
}

// lookup finds the delivery the path's {seq} names, or answers 404.
func (l *listener) lookup(w http.ResponseWriter, r *http.Request) (record, bool) {
	seq, err := strconv.ParseInt(r.PathValue("seq"), 10, 64)
	if err == nil {
		if d, ok := l.hist.get(seq); ok {
			return d, true
		}
	}
	writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such delivery (the history keeps the latest only)"})
	return record{}, false
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(b)
}

func sortedKeys(h http.Header) []string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
