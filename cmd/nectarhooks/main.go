// Command nectarhooks sends, signs, receives and checks Nectar webhooks the
// way Svix delivers them, for developing and debugging a receiver without
// waiting for Nectar or the Svix portal, and replays the dead letters a
// service kept.
//
//	nectarhooks listen -forward-to http://127.0.0.1:8080/webhooks/nectar
//	nectarhooks send -url http://127.0.0.1:8080/webhooks/nectar all
//	nectarhooks load -url http://127.0.0.1:8080/webhooks/nectar -n 10000 -dup 0.1 -retry
//	nectarhooks sign -url https://example.com/hooks connection.updated.v2
//	nectarhooks verify -headers headers.txt -body body.json
//	nectarhooks samples connection.created.v2
//	nectarhooks dead list -db "$DATABASE_URL"
//
// The signing secret comes from -secret or, better (it stays out of shell
// history and process listings), from NECTAR_WEBHOOK_SECRET. Run
// "nectarhooks help" for every command's flags and examples.
//
// Install it from a checkout of the repository (its go.mod replaces the
// library with the checkout's, which "go install ...@latest" refuses until
// a cmd/nectarhooks/vX.Y.Z tag is released):
//
//	go -C cmd/nectarhooks install .
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/nectarhooks/nectarhooks/nectarhookstest"
)

// Exit statuses. "Refused" is a result, not a failure of the tool: send got
// an answer other than 2xx (or none), or verify found the capture does not
// verify. Scripts can tell it from a mistake on the command line.
const (
	exitOK      = 0
	exitRefused = 1
	exitUsage   = 2
)

// stopSignals are the signals that stop a command cleanly, by cancelling
// its context.
var stopSignals = []os.Signal{os.Interrupt, syscall.SIGTERM}

func main() {
	// Ctrl-C cancels a send between or during deliveries instead of killing
	// the process mid-line, so the summary still says what was sent; load
	// reports the run so far, listen stops after the deliveries in flight.
	// SIGTERM (kill, a container's or a service manager's stop) does the
	// same: a command stopped that way must end as cleanly.
	ctx, stop := signal.NotifyContext(context.Background(), stopSignals...)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the whole program behind main: args are the command-line
// arguments without the program name. It returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	e := &env{
		stdout: stdout,
		stderr: stderr,
		getenv: os.Getenv,
		now:    time.Now,
		newID:  nectarhookstest.NewMessageID,
	}
	if isTerminal(stderr) {
		e.progress = stderr
	}
	return e.run(ctx, args)
}

// env is what the commands need from the outside world, so that tests can
// substitute the environment, the clock and message ids.
type env struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	now            func() time.Time
	newID          func() string
	// progress is where load draws its live progress line: stderr when
	// it is a terminal, else nil (no progress on a pipe or in a file).
	progress io.Writer
}

// command is one subcommand: its synopsis, its help text and its body.
type command struct {
	name     string
	synopsis string                  // the usage line, after "nectarhooks "
	help     string                  // what it does, before the flags
	examples string                  // after the flags
	flags    func(*flag.FlagSet) any // defines the flags, returns their holder
	run      func(ctx context.Context, e *env, fs *flag.FlagSet, opts any, args []string) int
}

// commands lists the subcommands in the order help shows them.
func commands() []*command {
	return []*command{sendCommand(), loadCommand(), listenCommand(), signCommand(), verifyCommand(), keygenCommand(), samplesCommand(), deadCommand(), versionCommand()}
}

func lookup(name string) *command {
	for _, c := range commands() {
		if c.name == name {
			return c
		}
	}
	return nil
}

func (e *env) run(ctx context.Context, args []string) int {
	if len(args) == 0 {
		// A bare "nectarhooks" asks what the program does: the whole
		// usage is the answer, not an error buried above it.
		fmt.Fprint(e.stderr, "nectarhooks: no command given\n\n")
		writeUsage(e.stderr)
		return exitUsage
	}
	name, rest := args[0], args[1:]
	switch name {
	case "help", "-h", "-help", "--help":
		return e.help(rest)
	}
	c := lookup(name)
	if c == nil {
		return e.topLevelError("unknown command %q", name)
	}
	fs := flag.NewFlagSet("nectarhooks "+c.name, flag.ContinueOnError)
	// Parse's own messages and usage are replaced by ours, written to the
	// right stream with the right exit status.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	opts := c.flags(fs)
	counts := countSets(fs)
	positional, err := parseInterspersed(fs, rest)
	if errors.Is(err, flag.ErrHelp) {
		writeCommandUsage(e.stdout, c)
		return exitOK
	}
	if err != nil {
		return e.usageError(c, "%v", err)
	}
	if name, n := counts.repeated(); n > 1 {
		// The flag package keeps the last value and drops the others
		// without a word: "load -url A -url B" used to load B alone.
		// The values are not quoted back: one may be the secret.
		return e.usageError(c, "-%s is given %d times; it takes one value, so give it once", name, n)
	}
	return c.run(ctx, e, fs, opts, positional)
}

// repeatable marks a flag.Value that collects every occurrence of its
// flag (load's -url), which countSets leaves alone.
type repeatable interface {
	flag.Value
	repeatable()
}

// setCounts counts, for each flag of a FlagSet, how often the command
// line set it.
type setCounts struct {
	order []string // the flags, in the order they were first set
	n     map[string]int
}

// repeated returns the first flag the command line set more than once,
// and how often; n is 0 when there is none.
func (s *setCounts) repeated() (name string, n int) {
	for _, name := range s.order {
		if s.n[name] > 1 {
			return name, s.n[name]
		}
	}
	return "", 0
}

// countSets wraps every single-value flag of fs, once its flags are
// defined, so that each occurrence on the command line is counted: the
// flag package itself keeps no count. Doing it here, for every command's
// FlagSet, means no command can forget to refuse a repeated flag.
func countSets(fs *flag.FlagSet) *setCounts {
	counts := &setCounts{n: make(map[string]int)}
	fs.VisitAll(func(f *flag.Flag) {
		if _, ok := f.Value.(repeatable); ok {
			return
		}
		f.Value = &countedValue{Value: f.Value, name: f.Name, counts: counts}
	})
	return counts
}

// countedValue is a flag.Value that counts its Sets.
type countedValue struct {
	flag.Value
	name   string
	counts *setCounts
}

func (v *countedValue) Set(s string) error {
	if v.counts.n[v.name] == 0 {
		v.counts.order = append(v.counts.order, v.name)
	}
	v.counts.n[v.name]++
	return v.Value.Set(s)
}

// IsBoolFlag passes on the wrapped value's, without which the flag
// package would take "-json" to need a value.
func (v *countedValue) IsBoolFlag() bool {
	b, ok := v.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// Get passes on the wrapped value's, for flag.Getter.
func (v *countedValue) Get() any {
	if g, ok := v.Value.(flag.Getter); ok {
		return g.Get()
	}
	return v.Value.String()
}

// help serves "nectarhooks help [COMMAND]".
func (e *env) help(args []string) int {
	switch {
	case len(args) == 0:
		writeUsage(e.stdout)
		return exitOK
	case len(args) == 1 && lookup(args[0]) != nil:
		writeCommandUsage(e.stdout, lookup(args[0]))
		return exitOK
	case len(args) == 1:
		return e.topLevelError("help: unknown command %q", args[0])
	}
	return e.topLevelError("help: want at most one command name")
}

// topLevelError reports a command line whose command is missing or
// unknown, and points to the list of commands.
func (e *env) topLevelError(format string, a ...any) int {
	fmt.Fprintf(e.stderr, "nectarhooks: %s\n", fmt.Sprintf(format, a...))
	fmt.Fprintln(e.stderr, "Run 'nectarhooks help' for usage.")
	return exitUsage
}

// usageError reports a malformed command line, or one that cannot be
// carried out (an unknown event type, an unreadable file, an invalid
// secret): one line saying what is wrong, and one pointing to the
// command's usage. Printing the whole usage here would scroll the line
// that matters out of sight.
// The library's own "nectarhooks: " prefix is dropped from the message,
// which already starts with the command's name.
func (e *env) usageError(c *command, format string, a ...any) int {
	msg := strings.TrimPrefix(fmt.Sprintf(format, a...), "nectarhooks: ")
	fmt.Fprintf(e.stderr, "nectarhooks %s: %s\n", c.name, escapeControl(msg))
	fmt.Fprintf(e.stderr, "Run 'nectarhooks help %s' for usage.\n", c.name)
	return exitUsage
}

// parseInterspersed parses flags wherever they appear among the
// positional arguments, so "send all -repeat 2" works as well as
// "send -repeat 2 all"; the flag package alone stops at the first
// positional argument and would silently take "-repeat" for a file name.
// Everything after "--" is positional.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return positional, nil
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(positional, rest...), nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

// flagWasSet reports whether the command line set the named flag, for
// flags whose zero value is meaningful (a Unix time of 0).
func flagWasSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) {
		if f.Name == name {
			set = true
		}
	})
	return set
}

const usageText = `nectarhooks sends, signs, receives and checks Nectar webhooks exactly as
Svix signs them, to develop and debug the endpoint that receives them.

Usage:
  nectarhooks send    -url URL [flags] EVENT|FILE...   POST signed deliveries
  nectarhooks load    -url URL [flags] [EVENT|FILE...] many deliveries at once: throughput,
                                                       latency, and whether each was acknowledged
  nectarhooks listen  [-addr HOST:PORT] [flags]        receive, check and show deliveries, in the
                                                       terminal and a live web page; forward, replay
  nectarhooks sign    [flags] EVENT|FILE               print the headers and a curl command
  nectarhooks verify  -headers FILE -body FILE [flags] check a captured delivery
  nectarhooks keygen  [-public-of whsk_...]            make an ed25519 key pair (v1a signatures)
  nectarhooks samples [EVENT]                          list or print the bundled samples
  nectarhooks dead    list|show|replay -db DSN [flags] the service's dead letters; replay them
  nectarhooks help    [COMMAND]                        this text, or one command's
  nectarhooks version                                  the build's version

EVENT is a documented event type, such as connection.updated.v2, whose
sample payload (as Nectar documents it) is built into the program; send
and load also take "all" for the five. FILE is a JSON payload, used byte for byte.
A file named like an event type needs a path: ./connection.updated.v2.

The signing secret is the endpoint's "whsec_..." secret from the Svix
portal, or for ed25519 (v1a) signatures a "whsk_..." private key to sign
with and its "whpk_..." public key to check with. Commands read it from -secret or, when that is absent, from the
NECTAR_WEBHOOK_SECRET environment variable, which keeps it out of shell
history and process listings.

Exit status: 0 on success; 1 when refused (send: an answer other than
2xx, or none; load: a message never acknowledged, or a forgery accepted;
verify: the capture does not verify); 2 for usage errors.

Run 'nectarhooks help COMMAND' for a command's flags and examples.
`

func writeUsage(w io.Writer) { io.WriteString(w, usageText) }

func writeCommandUsage(w io.Writer, c *command) {
	fmt.Fprintf(w, "Usage: nectarhooks %s\n\n%s", c.synopsis, c.help)
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	c.flags(fs)
	hasFlags := false
	fs.VisitAll(func(*flag.Flag) { hasFlags = true })
	if hasFlags {
		fmt.Fprint(w, "\nFlags:\n")
		fs.SetOutput(w)
		fs.PrintDefaults()
	}
	if c.examples != "" {
		fmt.Fprintf(w, "\nExamples:\n%s", c.examples)
	}
}

func versionCommand() *command {
	return &command{
		name:     "version",
		synopsis: "version",
		help: `Print which build this is, to tell two builds apart (the one on a CI
runner and the one on a laptop, say): the module version, the commit it
was built from, that commit's time and whether the checkout had
uncommitted changes, then the Go version and platform.

A binary installed with "go install ...@VERSION" names its version. One
built from a checkout (go build, go install in the repository) has a
pseudo-version that holds its commit and that commit's time, with
"+dirty" when the working tree differed from the commit, so that the
commit alone does not say what was built; or it is "(devel)" followed by
the commit, its time and "modified". "go run" and -buildvcs=false record
no commit: such a build says so.
`,
		flags: func(*flag.FlagSet) any { return nil },
		run: func(_ context.Context, e *env, _ *flag.FlagSet, _ any, args []string) int {
			if len(args) > 0 {
				return e.usageError(lookup("version"), "unexpected argument %q", args[0])
			}
			info, ok := debug.ReadBuildInfo()
			if !ok {
				info = nil
			}
			fmt.Fprintln(e.stdout, formatVersion(info))
			return exitOK
		},
	}
}

// formatVersion is the line version prints for a build's info, nil when
// the binary carries none (built without module support):
//
//	nectarhooks v1.2.0 (go1.24.4 linux/amd64)
//	nectarhooks v0.0.0-20261204214000-24100c5a1b2c+dirty (go1.24.4 linux/amd64)
//	nectarhooks (devel) commit 24100c5a1b2c 2026-12-04T21:40:00Z, modified (go1.24.4 linux/amd64)
//	nectarhooks (devel), no commit recorded (go1.24.4 linux/amd64)
//
// The commit is cut to 12 hex digits, as in a pseudo-version: enough for
// git to find it, short enough to read.
func formatVersion(info *debug.BuildInfo) string {
	if info == nil {
		return "nectarhooks (unknown version: the binary carries no build information)"
	}
	v := info.Main.Version
	if v == "" {
		v = "(devel)"
	}
	var rev, at, goos, goarch string
	modified := false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		case "GOOS":
			goos = s.Value
		case "GOARCH":
			goarch = s.Value
		}
	}
	var b strings.Builder
	b.WriteString("nectarhooks " + v)
	if len(rev) > 12 {
		rev = rev[:12]
	}
	switch {
	case rev != "" && strings.Contains(v, rev):
		// Go 1.24 and later name a build from a checkout with a
		// pseudo-version, which holds the commit, its time, and
		// "+dirty" for a modified tree: all there is to say.
	case rev != "":
		b.WriteString(" commit " + rev)
		if at != "" {
			b.WriteString(" " + at)
		}
		if modified {
			b.WriteString(", modified")
		}
	case v == "(devel)":
		// Nothing tells this build from another: say so, rather than
		// print a version that looks like an answer.
		b.WriteString(", no commit recorded")
	}
	goVersion := info.GoVersion
	if goVersion == "" {
		goVersion = "unknown Go"
	}
	if goos != "" && goarch != "" {
		goVersion += " " + goos + "/" + goarch
	}
	fmt.Fprintf(&b, " (%s)", goVersion)
	return b.String()
}
