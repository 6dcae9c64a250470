package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"strings"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
)

// payload is one body to sign: a bundled sample or a file's bytes.
type payload struct {
	label string // the event type, or the file name and the event type it holds
	path  string // the file it came from; empty for a sample
	body  []byte
}

// sampleTypes lists the event types with a bundled sample, in the order
// Nectar documents them.
func sampleTypes() []nectarhooks.EventType {
	var ts []nectarhooks.EventType
	for _, t := range nectarhooks.EventTypes() {
		if nectarhookstest.Sample(t) != nil {
			ts = append(ts, t)
		}
	}
	return ts
}

func sampleList() string {
	var names []string
	for _, t := range sampleTypes() {
		names = append(names, string(t))
	}
	return strings.Join(names, ", ")
}

// resolvePayloads turns EVENT|FILE arguments into payloads, all of them
// before anything is sent, so that a typo in the third argument does not
// leave two deliveries made. "all" stands for every sample when allowAll.
func resolvePayloads(args []string, allowAll bool) ([]payload, error) {
	var ps []payload
	for _, arg := range args {
		if arg == "all" && allowAll {
			for _, t := range sampleTypes() {
				ps = append(ps, payload{label: string(t), body: nectarhookstest.Sample(t)})
			}
			continue
		}
		p, err := resolvePayload(arg)
		if err != nil {
			return nil, err
		}
		ps = append(ps, p)
	}
	return ps, nil
}

// resolvePayload reads one EVENT|FILE argument. An event type name wins
// over a file of the same name; "./name" reaches the file.
func resolvePayload(arg string) (payload, error) {
	if body := nectarhookstest.Sample(nectarhooks.EventType(arg)); body != nil {
		return payload{label: arg, body: body}, nil
	}
	body, err := readFileCapped(arg, maxFileBytes)
	switch {
	case errors.Is(err, fs.ErrNotExist) && looksLikeEventType(arg):
		return payload{}, fmt.Errorf("%q is neither a bundled sample nor a file; the samples are %s", arg, sampleList())
	case err != nil:
		return payload{}, fmt.Errorf("reading the payload: %w", err)
	}
	label := arg
	if t := nectarhooks.PeekEventType(body); t != "" {
		label += " (" + string(t) + ")"
	}
	return payload{label: label, path: arg, body: body}, nil
}

// looksLikeEventType reports whether a missing file's name was more
// likely meant as an event type, such as a misspelt "conection.created.v2".
func looksLikeEventType(arg string) bool {
	return !strings.ContainsAny(arg, `/\`) && !strings.HasSuffix(arg, ".json") && strings.Count(arg, ".") >= 2
}

// warnIfNotJSON returns a warning for a file payload that is not JSON: it
// is still sent as it is (the endpoint's answer to it may be the point),
// but a stray editor backup or the wrong file is the likelier cause.
func warnIfNotJSON(p payload) string {
	if p.path == "" || json.Valid(p.body) {
		return ""
	}
	return fmt.Sprintf("warning: %s is not valid JSON; a receiver answers 400 for it after verifying the signature", p.path)
}

// isHTTPURL reports whether s is an absolute http:// or https:// URL with a
// host, the only kind a delivery can be sent to.
func isHTTPURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

// shellQuote quotes s for a POSIX shell: as it is when it holds only
// characters no shell treats specially, otherwise in single quotes, inside
// which every byte, newlines included, is literal.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_@%+=:,./-") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
