package chaos

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
)

// retrySchedule is Svix's retry schedule (5 s, 5 min, 30 min, 2 h, 5 h,
// 10 h, 10 h), compressed to fit a soak: the waits after the first
// failures, then retryEvery after each further one.
var retrySchedule = []time.Duration{100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond, time.Second, 2 * time.Second}

const retryEvery = 2 * time.Second

// attempt is one delivery of a message: one HTTP request.
type attempt struct {
	at      time.Duration // sent, since the run began
	replica int
	took    time.Duration // until the answer was read, or the request failed
	status  int           // 0 for a transport error or the client's timeout
	err     string
}

func (a attempt) String() string {
	s := fmt.Sprintf("%8s r%d -> ", a.at.Round(time.Millisecond), a.replica)
	if a.status == 0 {
		s += "error " + a.err
	} else {
		s += fmt.Sprint(a.status)
	}
	return s + fmt.Sprintf(" in %s", a.took.Round(time.Millisecond))
}

// message is one message Svix delivers until acknowledged.
type message struct {
	id       string
	payload  []byte
	start    time.Duration // its first delivery, since the run began
	attempts []attempt     // written by its sender alone, read after the senders are done
	acked    bool
}

// history is the message's deliveries, one a line, for failure reports.
func (m *message) history() string {
	var b bytes.Buffer
	for _, a := range m.attempts {
		fmt.Fprintf(&b, "\n\t\t%s", a)
	}
	return b.String()
}

// newMessages makes n messages whose first deliveries are spread evenly
// over d, with a little jitter, rotating through Nectar's event types.
func newMessages(n int, d time.Duration, rng *rand.Rand) []*message {
	types := nectarhooks.EventTypes()
	msgs := make([]*message, n)
	step := d / time.Duration(n)
	for i := range msgs {
		jitter := time.Duration(0)
		if step > 0 {
			jitter = time.Duration(rng.Int64N(int64(step)))
		}
		msgs[i] = &message{
			id:      nectarhookstest.NewMessageID(),
			payload: nectarhookstest.Sample(types[i%len(types)]),
			start:   time.Duration(i)*step + jitter,
		}
	}
	return msgs
}

// svix delivers messages to the replicas as Svix does: each to a random
// replica, retried on a non-2xx answer or a failed request, to a random
// replica, with the message's id and a fresh timestamp and signature.
type svix struct {
	signer *nectarhookstest.Signer
	client *http.Client
	urls   []string
	sem    chan struct{} // bounds the requests in flight
	seed   uint64
}

func newSvix(t *testing.T, secret string, urls []string, seed uint64) *svix {
	t.Helper()
	signer, err := nectarhookstest.NewSigner(secret)
	require.NoError(t, err)
	tr := &http.Transport{MaxIdleConns: 2 * senders, MaxIdleConnsPerHost: senders}
	return &svix{signer: signer, client: &http.Client{Transport: tr, Timeout: clientTimeout},
		urls: urls, sem: make(chan struct{}, senders), seed: seed}
}

// close drops the senders' idle connections, whose goroutines would
// otherwise outlive the soak.
func (s *svix) close() { s.client.Transport.(*http.Transport).CloseIdleConnections() }

// run delivers every message, starting each at its time after begin, and
// returns once each was acknowledged or given up on at deadline.
func (s *svix) run(msgs []*message, begin, deadline time.Time) {
	var wg sync.WaitGroup
	for i, m := range msgs {
		wg.Go(func() { s.deliverAll(m, uint64(i), begin, deadline) })
	}
	wg.Wait()
}

// deliverAll delivers m until it is acknowledged or the next try would
// start after deadline.
func (s *svix) deliverAll(m *message, n uint64, begin, deadline time.Time) {
	rng := rand.New(rand.NewPCG(s.seed, n)) // the message's own: a seed replays its replicas
	time.Sleep(time.Until(begin.Add(m.start)))
	for try := 0; ; try++ {
		r := rng.IntN(len(s.urls))
		s.sem <- struct{}{}
		a := s.deliver(r, m, begin)
		<-s.sem
		m.attempts = append(m.attempts, a)
		if a.status >= 200 && a.status < 300 {
			m.acked = true
			return
		}
		wait := retryEvery
		if try < len(retrySchedule) {
			wait = retrySchedule[try]
		}
		if time.Now().Add(wait).After(deadline) {
			return
		}
		time.Sleep(wait)
	}
}

// deliver sends one attempt of m to replica r.
func (s *svix) deliver(r int, m *message, begin time.Time) attempt {
	a := attempt{at: time.Since(begin), replica: r}
	req, err := http.NewRequest(http.MethodPost, s.urls[r], bytes.NewReader(m.payload))
	if err != nil {
		a.err = err.Error()
		return a
	}
	req.Header = s.signer.HeaderFor(m.id, time.Now(), m.payload)
	start := time.Now()
	resp, err := s.client.Do(req)
	if err == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err == nil {
			a.status = resp.StatusCode
		}
	}
	a.took = time.Since(start)
	if err != nil {
		a.err = err.Error()
	}
	return a
}
