package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"sync"
)

// history keeps the latest deliveries, bounded by count and by bytes:
// the oldest go first. With a file (persist), every delivery and every
// update of one (a replay) is appended to it as a line of JSON.
type history struct {
	mu       sync.Mutex
	items    []*record // oldest first
	bytes    int64
	maxN     int
	maxBytes int64
	seq      int64 // the last sequence number given
	file     *os.File
	fileErr  error // the first write error, after which the file is left alone
}

func newHistory(maxN int, maxBytes int64) *history {
	return &history{maxN: maxN, maxBytes: maxBytes}
}

// add numbers d and keeps it, dropping the oldest deliveries beyond the
// bounds (d itself is kept even if it alone is over the byte bound: the
// newest delivery is the one being looked at). It returns a copy of d,
// for reading while a replay adds to d.
func (h *history) add(d *record) record {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.seq++
	d.Seq = h.seq
	h.items = append(h.items, d)
	h.bytes += d.size()
	h.evict()
	h.write(d)
	return d.snapshot()
}

func (h *history) evict() {
	for len(h.items) > 1 && (len(h.items) > h.maxN || h.bytes > h.maxBytes) {
		h.bytes -= h.items[0].size()
		h.items[0] = nil
		h.items = h.items[1:]
	}
}

// update runs fn on delivery seq under the history's lock, accounts for
// what it adds, and returns a copy of the result; ok is false when the
// delivery is no longer (or never was) kept.
func (h *history) update(seq int64, fn func(*record)) (d record, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, it := range h.items {
		if it.Seq == seq {
			before := it.size()
			fn(it)
			h.bytes += it.size() - before
			h.write(it)
			return it.snapshot(), true
		}
	}
	return record{}, false
}

// get returns a copy of delivery seq, safe to read while replays add to
// the original.
func (h *history) get(seq int64) (record, bool) {
	return h.update(seq, func(*record) {})
}

// snapshot copies d deep enough that later updates (Replays) do not show.
func (d *record) snapshot() record {
	c := *d
	c.Replays = append([]forwarded(nil), d.Replays...)
	return c
}

// list returns copies of the kept deliveries, oldest first.
func (h *history) list() []record {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]record, len(h.items))
	for i, it := range h.items {
		out[i] = it.snapshot()
	}
	return out
}

// total is how many deliveries were recorded since the start.
func (h *history) total() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.seq
}

// persist reads the deliveries a previous run left in path (the later
// line of a delivery replacing the earlier), keeps what the bounds allow,
// writes the file anew with those alone, so that it does not grow from
// run to run, and appends to it from now on.
func (h *history) persist(path string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	f, err := os.Open(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return err
	default:
		err = h.read(f)
		f.Close()
		if err != nil {
			return err
		}
	}
	tmp := path + ".tmp"
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(out)
	for _, it := range h.items {
		if err := enc.Encode(it); err != nil {
			out.Close()
			return err
		}
	}
	if err := out.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	h.file, err = os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0o600)
	return err
}

// read loads deliveries from a history file; a line that is not one (a
// line cut short when the last run was killed) is skipped.
func (h *history) read(f *os.File) error {
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	bySeq := map[int64]*record{}
	for sc.Scan() {
		d := new(record)
		if json.Unmarshal(sc.Bytes(), d) != nil || d.Seq <= 0 {
			continue
		}
		if old, ok := bySeq[d.Seq]; ok {
			*old = *d
			continue
		}
		bySeq[d.Seq] = d
		h.items = append(h.items, d)
	}
	for _, d := range h.items {
		h.bytes += d.size()
		h.seq = max(h.seq, d.Seq)
	}
	h.evict()
	return sc.Err()
}

// write appends d to the file, if any; called with the lock held.
func (h *history) write(d *record) {
	if h.file == nil || h.fileErr != nil {
		return
	}
	b, err := json.Marshal(d)
	if err == nil {
		_, err = h.file.Write(append(b, '\n'))
	}
	h.fileErr = err
}

func (h *history) closeFile() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.file != nil {
		h.file.Close()
		h.file = nil
	}
}

// hub passes delivery summaries on to the web pages' event streams.
type hub struct {
	mu     sync.Mutex
	subs   map[chan []byte]struct{}
	closed bool
}

func newHub() *hub { return &hub{subs: map[chan []byte]struct{}{}} }

// subscribe returns a channel of events for one page, closed when the
// hub closes or the page falls too far behind (its EventSource then
// reconnects and is sent the whole list again), and the function that
// ends the subscription.
func (b *hub) subscribe() (<-chan []byte, func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	ch := make(chan []byte, 256)
	if b.closed {
		close(ch)
		return ch, func() {}
	}
	b.subs[ch] = struct{}{}
	return ch, func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		if _, ok := b.subs[ch]; ok {
			delete(b.subs, ch)
			close(ch)
		}
	}
}

// publish sends d's summary to every page.
func (b *hub) publish(d *record) {
	msg, err := json.Marshal(summarize(d))
	if err != nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for ch := range b.subs {
		select {
		case ch <- msg:
		default:
			delete(b.subs, ch)
			close(ch)
		}
	}
}

// close ends every page's stream, and any opened later.
func (b *hub) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	for ch := range b.subs {
		delete(b.subs, ch)
		close(ch)
	}
}
