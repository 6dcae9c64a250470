package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/pgxstore"
)

// dbEnv is where dead reads the database's DSN when -db is not given.
const dbEnv = "DATABASE_URL"

// replayLease is how long a replay holds a dead letter it took: the
// service's answer comes within Svix's 15 seconds, and a replay that dies
// leaves the dead letter to the next one after this.
const replayLease = time.Minute

type deadFlags struct {
	db, table, secret, url string
	json, all, river       bool
	since, typ, id, acct   string
	timeout                time.Duration
}

func deadCommand() *command {
	return &command{
		name:     "dead",
		synopsis: "dead list|show|replay [-db DSN] [-table T] [-json] [-since T] [-type EVENT] [-id ID] [-account A] [-all] [-url URL] [-secret whsec_...] [-river]",
		help: `Work with the dead letters a service keeps in PostgreSQL with
pgxstore.DeadLetters: the messages its Handler gave up on (a callback's
Permanent error, a verified payload that does not decode, a WithAsync
callback that failed after the 202).

  list    one line per dead letter, oldest last failure first: its id,
          event type, attempts, last failure and error
  show    everything about the dead letters selected, the payload byte
          for byte (with -json, in payload_base64)
  replay  send each selected dead letter to the service again at -url,
          signed anew with the endpoint's secret under its own svix-id, so
          that the service runs its callbacks on it under its idempotency
          store. Each is taken from the table first, so that two replays
          running at once never send one message twice. A 2xx answer
          removes it; an answer with webhook-delivery: abort-message means
          the service recorded it again; any other answer records it
          again here, with one more attempt. Needs -id ID or -all.

A dead letter of a Handler of NewAccountHandler names its account (list,
show, "account" in -json). Each account has its own secret, so replay
sends an account's dead letters only with -account naming it, signed with
that account's -secret; a {account} in -url is replaced by the account
(-url 'https://app.example.com/webhooks/nectar/{account}'). Without
-account, replay leaves any account's dead letter where it is and says so
("needs -account"); with it, it replays only that account's.

-river works on River's jobs instead (the riverqueue module): the dead
letters are its discarded and cancelled jobs, and replay hands each back to
River's workers (as River's JobRetry does), exactly once however many
replays run, without -url; "queued" means a worker will run it, and a job
that fails again is discarded again with its attempts counted on.

-db is the service's database (default: $DATABASE_URL), -table its
dead-letter table (default nectarhooks_dead_letters). Filters: -id one
message, -type one event type, -since a time (RFC 3339) or a duration
back from now ("24h"), -account one account's. -json prints one JSON object per line.

Exit status 1 when replay left any message failing.
`,
		examples: `  nectarhooks dead list -db postgres://app@db/app
  nectarhooks dead list -db postgres://app@db/app -since 24h -type document.created.v2 -json
  nectarhooks dead show -db postgres://app@db/app -id msg_2Lr...
  export NECTAR_WEBHOOK_SECRET=whsec_...
  nectarhooks dead replay -db postgres://app@db/app -url https://app.example.com/webhooks/nectar -all
  nectarhooks dead replay -db postgres://app@db/app -river -all
  NECTAR_WEBHOOK_SECRET=whsec_acme... nectarhooks dead replay -db postgres://app@db/app -all \
      -account acme -url 'https://app.example.com/webhooks/nectar/{account}'`,
		flags: func(fs *flag.FlagSet) any {
			f := &deadFlags{}
			fs.StringVar(&f.db, "db", "", "the service's PostgreSQL `DSN` (default $DATABASE_URL)")
			fs.StringVar(&f.table, "table", pgxstore.DefaultDeadLetterTable, "the dead-letter `table`")
			fs.BoolVar(&f.json, "json", false, "one JSON object per line")
			fs.StringVar(&f.since, "since", "", "only those whose last attempt failed since `T` (RFC 3339, or a duration such as 24h)")
			fs.StringVar(&f.typ, "type", "", "only those of `EVENT` type")
			fs.StringVar(&f.id, "id", "", "only the message `ID`")
			fs.StringVar(&f.acct, "account", "", "only the dead letters of account `A` (replay: needed for an account's, with its -secret)")
			fs.BoolVar(&f.all, "all", false, "replay: every dead letter the filters select")
			fs.BoolVar(&f.river, "river", false, "read River's jobs (riverqueue) instead of the dead-letter table")
			fs.StringVar(&f.url, "url", "", "replay: the service's webhook `URL`; {account} in it is replaced by the account")
			fs.StringVar(&f.secret, "secret", "", "replay: the endpoint's signing secret (default $NECTAR_WEBHOOK_SECRET)")
			fs.DurationVar(&f.timeout, "timeout", 15*time.Second, "replay: wait up to `D` for each answer")
			return f
		},
		run: runDead,
	}
}

func runDead(ctx context.Context, e *env, _ *flag.FlagSet, opts any, args []string) int {
	c, f := lookup("dead"), opts.(*deadFlags)
	if len(args) != 1 || (args[0] != "list" && args[0] != "show" && args[0] != "replay") {
		return e.usageError(c, "want one of list, show or replay")
	}
	action := args[0]
	filter := nectarhooks.DeadLetterFilter{ID: f.id, EventType: nectarhooks.EventType(f.typ), Account: f.acct}
	if f.since != "" {
		since, err := parseSince(f.since, e.now())
		if err != nil {
			return e.usageError(c, "%v", err)
		}
		filter.Since = since
	}
	if f.db == "" {
		f.db = e.getenv(dbEnv)
	}
	if f.db == "" {
		return e.usageError(c, "-db is required (or $%s)", dbEnv)
	}
	var replay *replayer
	if action == "replay" {
		switch {
		case f.id == "" && !f.all:
			return e.usageError(c, "replay needs -id ID or -all")
		case f.river:
			// River's workers run it: nothing is sent.
		case f.url == "" || !isHTTPURL(f.url):
			return e.usageError(c, "replay needs -url, the service's http:// or https:// webhook URL")
		case f.timeout <= 0:
			return e.usageError(c, "-timeout must be positive, got %s", f.timeout)
		case strings.Contains(f.url, "{account}") && f.acct == "":
			return e.usageError(c, "-url has {account}: replay an account's dead letters with -account and its -secret")
		}
		if !f.river {
			signer, err := e.signer(f.secret)
			if err != nil {
				return e.usageError(c, "%v", err)
			}
			replay = &replayer{sign: signer.HeaderFor, url: f.url, account: f.acct, now: e.now,
				client: &http.Client{Timeout: f.timeout, CheckRedirect: noRedirect}}
		}
	}
	pool, err := pgxpool.New(ctx, f.db)
	if err != nil {
		fmt.Fprintf(e.stderr, "nectarhooks dead: %v\n", err)
		return exitUsage
	}
	defer pool.Close()
	if f.river {
		return e.deadRiver(ctx, pool, action, filter, f.json)
	}
	store, err := pgxstore.NewDeadLetters(ctx, pool, f.table)
	if err != nil {
		fmt.Fprintf(e.stderr, "nectarhooks dead: %v\n", err)
		return exitRefused
	}
	letters, err := store.List(ctx, filter)
	if err != nil {
		fmt.Fprintf(e.stderr, "nectarhooks dead: %v\n", err)
		return exitRefused
	}
	switch action {
	case "list":
		for _, d := range letters {
			e.printDead(d, f.json, false)
		}
		if !f.json {
			fmt.Fprintf(e.stdout, "%d dead letters\n", len(letters))
		}
		return exitOK
	case "show":
		for _, d := range letters {
			e.printDead(d, f.json, true)
		}
		return exitOK
	}
	return e.replayAll(ctx, replay, store, letters, f.json)
}

// deadRiver is runDead on River's jobs (-river).
func (e *env) deadRiver(ctx context.Context, pool *pgxpool.Pool, action string, filter nectarhooks.DeadLetterFilter, asJSON bool) int {
	dead, err := riverList(ctx, pool, filter)
	if err != nil {
		fmt.Fprintf(e.stderr, "nectarhooks dead: %v\n", err)
		return exitRefused
	}
	if action != "replay" {
		for _, r := range dead {
			e.printDead(r.letter, asJSON, action == "show")
		}
		if action == "list" && !asJSON {
			fmt.Fprintf(e.stdout, "%d dead letters\n", len(dead))
		}
		return exitOK
	}
	retried := 0
	for _, r := range dead {
		took, err := riverRetry(ctx, pool, r.job)
		if err != nil {
			fmt.Fprintf(e.stderr, "nectarhooks dead: replaying %s (job %d): %v\n", r.letter.Message.ID, r.job, err)
			return exitRefused
		}
		what := "skipped"
		if took {
			what = "queued"
			retried++
		}
		if asJSON {
			j := toJSON(r.letter)
			j.Replay = what
			_ = json.NewEncoder(e.stdout).Encode(j)
		} else {
			fmt.Fprintf(e.stdout, "%s  %s  %s (job %d)\n", r.letter.Message.ID, orDash(string(r.letter.Message.EventType)), what, r.job)
		}
	}
	if !asJSON {
		fmt.Fprintf(e.stdout, "%d dead letters: %d queued for River's workers again, %d skipped (taken by another replay)\n",
			len(dead), retried, len(dead)-retried)
	}
	return exitOK
}

// parseSince reads -since: an RFC 3339 time, or a duration back from now.
func parseSince(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("-since %q is neither an RFC 3339 time nor a duration such as 24h", s)
	}
	return t, nil
}

// deadJSON is one line of -json: the fields the issue names first.
type deadJSON struct {
	ID string `json:"id"`
	// Account is the account of a Handler of NewAccountHandler the
	// message was delivered to; absent otherwise.
	Account       string    `json:"account,omitempty"`
	EventType     string    `json:"event_type"`
	Error         string    `json:"error"`
	Attempts      int       `json:"attempts"`
	FailedAt      time.Time `json:"failed_at"`
	FirstFailedAt time.Time `json:"first_failed_at"`
	SvixTimestamp time.Time `json:"svix_timestamp"`
	PayloadBytes  int       `json:"payload_bytes"`
	// PayloadBase64 is the payload exactly (show only): a JSON string
	// could not carry bytes that are not UTF-8.
	PayloadBase64 string `json:"payload_base64,omitempty"`
	// Replay is what a replay did: replayed, failed, aborted or skipped.
	Replay string `json:"replay,omitempty"`
	// Answer is the service's answer to the replay.
	Answer string `json:"answer,omitempty"`
}

func toJSON(d nectarhooks.DeadLetter) deadJSON {
	return deadJSON{ID: d.Message.ID, Account: d.Message.Account, EventType: string(d.Message.EventType), Error: d.Error, Attempts: d.Attempts,
		FailedAt: d.LastFailedAt, FirstFailedAt: d.FirstFailedAt, SvixTimestamp: d.Message.Timestamp,
		PayloadBytes: len(d.Message.Payload)}
}

// printDead prints one dead letter: a line, or with payload its fields and
// then the payload as it was received.
func (e *env) printDead(d nectarhooks.DeadLetter, asJSON, payload bool) {
	if asJSON {
		j := toJSON(d)
		if payload {
			j.PayloadBase64 = base64.StdEncoding.EncodeToString(d.Message.Payload)
		}
		_ = json.NewEncoder(e.stdout).Encode(j)
		return
	}
	if !payload {
		fmt.Fprintf(e.stdout, "%s  %s  %d attempts  last failed %s  %s\n", labelOf(d.Message), orDash(string(d.Message.EventType)),
			d.Attempts, d.LastFailedAt.Format(time.RFC3339), oneLine(d.Error, maxShownBody))
		return
	}
	if d.Message.Account != "" {
		fmt.Fprintf(e.stdout, "account:         %s\n", d.Message.Account)
	}
	fmt.Fprintf(e.stdout, "id:              %s\nevent type:      %s\nsvix-timestamp:  %s\nattempts:        %d\nfirst failed at: %s\nlast failed at:  %s\nerror:           %s\npayload (%d bytes):\n",
		d.Message.ID, orDash(string(d.Message.EventType)), d.Message.Timestamp.Format(time.RFC3339), d.Attempts,
		d.FirstFailedAt.Format(time.RFC3339Nano), d.LastFailedAt.Format(time.RFC3339Nano), oneLine(d.Error, 4096), len(d.Message.Payload))
	e.stdout.Write(d.Message.Payload)
	fmt.Fprintln(e.stdout)
}

// labelOf names a dead letter on one line: its id, and its account in
// parentheses when it has one.
func labelOf(m nectarhooks.Message) string {
	if m.Account == "" {
		return m.ID
	}
	return m.ID + " (account " + m.Account + ")"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// replayer sends dead letters to the service again.
type replayer struct {
	sign    func(id string, ts time.Time, payload []byte) http.Header
	url     string
	account string // -account: the one account whose secret sign holds
	now     func() time.Time
	client  *http.Client
}

// replayAll replays each listed dead letter in turn (see the command's
// help). It returns exitRefused when any failed.
func (e *env) replayAll(ctx context.Context, r *replayer, store *pgxstore.DeadLetters, letters []nectarhooks.DeadLetter, asJSON bool) int {
	counts := map[string]int{}
	for _, listed := range letters {
		if ctx.Err() != nil {
			break
		}
		what, answer, d := e.replayOne(ctx, r, store, listed.Message)
		if what == "" {
			return exitRefused
		}
		counts[what]++
		if asJSON {
			j := toJSON(d)
			j.Replay, j.Answer = what, answer
			_ = json.NewEncoder(e.stdout).Encode(j)
		} else {
			fmt.Fprintf(e.stdout, "%s  %s  %s  %s\n", labelOf(listed.Message), orDash(string(listed.Message.EventType)), what, answer)
		}
	}
	if !asJSON {
		fmt.Fprintf(e.stdout, "%d dead letters: %d replayed, %d failed again, %d aborted again, %d skipped (held by another replay)\n",
			len(letters), counts["replayed"], counts["failed"], counts["aborted"], counts["skipped"])
		if n := counts["needs -account"]; n > 0 {
			fmt.Fprintf(e.stdout, "%d left: an account's, sent only with -account and that account's -secret\n", n)
		}
	}
	if counts["failed"]+counts["aborted"]+counts["needs -account"] > 0 {
		return exitRefused
	}
	return exitOK
}

// replayOne takes, sends and settles one dead letter. It returns what
// happened ("" after an error of the store, which it reports), the
// service's answer, and the dead letter as taken.
func (e *env) replayOne(ctx context.Context, r *replayer, store *pgxstore.DeadLetters, listed nectarhooks.Message) (string, string, nectarhooks.DeadLetter) {
	account, id := listed.Account, listed.ID
	if account != r.account {
		// Signed with another account's secret, it would be refused.
		return "needs -account", "", nectarhooks.DeadLetter{Message: listed}
	}
	d, token, ok, err := store.Take(ctx, account, id, replayLease)
	if err != nil {
		fmt.Fprintf(e.stderr, "nectarhooks dead: %v\n", err)
		return "", "", d
	}
	if !ok {
		return "skipped", "", nectarhooks.DeadLetter{Message: nectarhooks.Message{ID: id, Account: account}}
	}
	status, aborted, answer, err := r.send(ctx, d.Message)
	switch {
	case err == nil && status >= 200 && status < 300:
		if err := store.Remove(ctx, account, id, token); err != nil {
			fmt.Fprintf(e.stderr, "nectarhooks dead: %v\n", err)
			return "", "", d
		}
		return "replayed", answer, d
	case err == nil && aborted:
		// The service recorded it again itself, counting the attempt.
		return "aborted", answer, d
	}
	if err != nil {
		answer = "no answer: " + escapeControl(err.Error())
	}
	now := e.now().UTC()
	again := nectarhooks.DeadLetter{Message: d.Message, Error: "replay answered " + answer,
		Attempts: 1, FirstFailedAt: now, LastFailedAt: now}
	if err := store.Record(ctx, again); err != nil {
		fmt.Fprintf(e.stderr, "nectarhooks dead: %v\n", err)
		return "", "", d
	}
	return "failed", answer, d
}

// send POSTs msg's payload, signed now under its own id, as send's post
// does, and returns the status, whether the answer carried abort-message,
// and the status code and the answer's body on one line.
func (r *replayer) send(ctx context.Context, msg nectarhooks.Message) (int, bool, string, error) {
	target := strings.ReplaceAll(r.url, "{account}", url.PathEscape(msg.Account))
	st, shown, err := post(ctx, r.client, target, r.sign(msg.ID, r.now(), msg.Payload), msg.Payload)
	if err != nil {
		return 0, false, "", err
	}
	return st.code, st.aborted, fmt.Sprintf("%d %s", st.code, shown), nil
}
