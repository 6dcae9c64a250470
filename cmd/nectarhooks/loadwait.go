package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// A receiver that queues its deliveries (WithAsync, River) answers 2xx
// before it has done the work, so a load that passed says the deliveries
// were accepted, not processed: the backlog may still be growing. With
// -wait-url, load then reads the backlog until it is 0.
const (
	defaultWaitTimeout = time.Minute
	// waitPollEvery is how often the backlog is read: the drain time is
	// known to within it.
	waitPollEvery = 100 * time.Millisecond
	// waitPollTimeout bounds one read, so that a hung metrics endpoint
	// is read again instead of holding the whole wait.
	waitPollTimeout = 5 * time.Second
	// maxWaitBody caps what one read takes in: a Prometheus page of a
	// busy process runs to hundreds of KiB.
	maxWaitBody = 8 << 20
)

// waitConfig is what -wait-url, -wait-metric and -wait-timeout ask for.
type waitConfig struct {
	url     string
	metric  string // "" for a body that is one number
	timeout time.Duration
	every   time.Duration
}

// waitReport is what waiting for the backlog found, as -json prints it.
type waitReport struct {
	URL    string `json:"url"`
	Metric string `json:"metric,omitempty"`
	// Drained is true once a read gave 0; Seconds is then the time from
	// the load's end to that read, else how long load waited.
	Drained bool    `json:"drained"`
	Seconds float64 `json:"seconds"`
	// AtStart and Last are the first and last backlog read; null when
	// no read gave a number.
	AtStart *float64 `json:"at_start"`
	Last    *float64 `json:"last"`
	Reads   int      `json:"reads"`
	// Error is why the last read gave no number, if it did not.
	Error string `json:"error,omitempty"`
	// Skipped says why load did not wait: nothing was acknowledged, or
	// the run was interrupted.
	Skipped string `json:"skipped,omitempty"`
}

// waitDrained reads the backlog at cfg.url every cfg.every until it is 0,
// cfg.timeout has passed, or ctx is cancelled; on progress, a terminal,
// it shows the backlog as it goes.
func waitDrained(ctx context.Context, cfg waitConfig, progress io.Writer) waitReport {
	r := waitReport{URL: cfg.url, Metric: cfg.metric}
	start := time.Now()
	waitCtx, cancel := context.WithDeadline(ctx, start.Add(cfg.timeout))
	defer cancel()
	transport := http.DefaultTransport.(*http.Transport).Clone()
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport, Timeout: waitPollTimeout}
	tick := time.NewTicker(cfg.every)
	defer tick.Stop()
	if progress != nil {
		defer fmt.Fprint(progress, "\r\x1b[K")
	}
	for {
		v, err := readBacklog(waitCtx, client, cfg.url, cfg.metric)
		r.Reads++
		switch {
		case err == nil:
			r.Error = ""
			r.Last = &v
			if r.AtStart == nil {
				r.AtStart = &v
			}
		case waitCtx.Err() == nil:
			// A read cut short by the end of the wait says nothing
			// about the receiver: the last real problem is kept.
			r.Error = err.Error()
		}
		if err == nil && v == 0 {
			r.Drained = true
			r.Seconds = time.Since(start).Seconds()
			return r
		}
		if progress != nil {
			left := "?"
			if r.Last != nil {
				left = strconv.FormatFloat(*r.Last, 'g', -1, 64)
			}
			fmt.Fprintf(progress, "\r\x1b[K%6.1fs  waiting for the backlog to drain: %s", time.Since(start).Seconds(), left)
		}
		select {
		case <-waitCtx.Done():
			r.Seconds = time.Since(start).Seconds()
			return r
		case <-tick.C:
		}
	}
}

// readBacklog GETs target and reads the backlog from the answer: the
// whole body as one number when metric is "", else the sum of the
// metric's samples in a Prometheus text exposition. What it quotes from
// the answer is escaped.
func readBacklog(ctx context.Context, client *http.Client, target, metric string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("User-Agent", "nectarhooks-cli")
	resp, err := client.Do(req)
	if err != nil {
		return 0, errors.New(escapeControl(err.Error()))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxWaitBody))
	if err != nil {
		return 0, fmt.Errorf("reading the answer: %s", escapeControl(err.Error()))
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return 0, fmt.Errorf("answered %s: %s", statusText(resp.StatusCode), oneLine(string(body), maxShownBody))
	}
	if metric != "" {
		return promValue(string(body), metric)
	}
	text := strings.TrimSpace(string(body))
	v, err := strconv.ParseFloat(text, 64)
	switch {
	case err != nil && strings.Contains(text, "\n"):
		return 0, fmt.Errorf("the answer is not one number (a metrics page? name the metric with -wait-metric): %s", oneLine(text, maxShownBody))
	case err != nil:
		return 0, fmt.Errorf("the answer %q is not a number", oneLine(text, maxShownBody))
	case math.IsNaN(v) || math.IsInf(v, 0):
		return 0, fmt.Errorf("the answer %q is not a backlog", text)
	}
	return v, nil
}

// promValue returns the sum of the samples of the metric called name in
// a Prometheus text exposition: one series per queue adds up to the whole
// backlog. Only the lines "name value" and "name{labels} value" count,
// not those of longer names that start with it (name_total).
func promValue(text, name string) (float64, error) {
	sum, found := 0.0, false
	for line := range strings.SplitSeq(text, "\n") {
		line = strings.TrimSpace(line)
		rest, ok := strings.CutPrefix(line, name)
		if !ok || line[0] == '#' {
			continue
		}
		switch {
		case strings.HasPrefix(rest, "{"):
			end := labelsEnd(rest)
			if end < 0 {
				return 0, fmt.Errorf("the line %q has no end to its labels", oneLine(line, maxShownBody))
			}
			rest = rest[end+1:]
		case rest == "" || (rest[0] != ' ' && rest[0] != '\t'):
			continue // another metric, whose name starts with this one's
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			return 0, fmt.Errorf("the line %q has no value", oneLine(line, maxShownBody))
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			return 0, fmt.Errorf("the line %q has no number for a value", oneLine(line, maxShownBody))
		}
		sum += v
		found = true
	}
	switch {
	case !found:
		return 0, fmt.Errorf("no metric %s in the answer", name)
	case math.IsInf(sum, 0):
		return 0, fmt.Errorf("the samples of %s add up past what a float64 holds", name)
	}
	return sum, nil
}

// labelsEnd returns the index of the "}" that closes the labels s starts
// with, skipping quoted label values, in which "}" and \" may appear; -1
// when there is none.
func labelsEnd(s string) int {
	quoted := false
	for i := 1; i < len(s); i++ {
		switch c := s[i]; {
		case quoted && c == '\\':
			i++
		case c == '"':
			quoted = !quoted
		case !quoted && c == '}':
			return i
		}
	}
	return -1
}

// validMetricName reports whether s is a Prometheus metric name.
func validMetricName(s string) bool {
	for i, c := range s {
		letter := c == '_' || c == ':' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
		if !letter && (i == 0 || c < '0' || c > '9') {
			return false
		}
	}
	return s != ""
}
