package main

import (
	"fmt"
	"io"
	"time"
)

// progressEvery is how often the live progress line is redrawn.
const progressEvery = 250 * time.Millisecond

// showProgress redraws one line on w, a terminal, with what the run has
// done so far, until stop is closed; it then erases the line, so that the
// summary starts on a clean one. It returns once the line is erased.
func showProgress(w io.Writer, s *loadStats, start time.Time, stop <-chan struct{}) {
	tick := time.NewTicker(progressEvery)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			fmt.Fprint(w, "\r\x1b[K")
			return
		case now := <-tick.C:
			fmt.Fprint(w, "\r\x1b[K"+progressLine(s.done.Load(), s.ok.Load(), now.Sub(start)))
		}
	}
}

// progressLine is the text of the progress line: elapsed time, deliveries
// made, those answered 2xx and not, and the rate of 2xx answers so far:
// the rate of all deliveries is highest when every one fails at once.
func progressLine(done, ok int64, elapsed time.Duration) string {
	rate := 0.0
	if elapsed > 0 {
		rate = float64(ok) / elapsed.Seconds()
	}
	return fmt.Sprintf("%6.1fs  %d deliveries  %d 2xx  %d not  %.0f 2xx/s",
		elapsed.Seconds(), done, ok, done-ok, rate)
}
