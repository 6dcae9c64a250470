// Package exampletest runs an example's program as a process of its own in
// the example's tests, as an operator would run it: built with go build,
// started with an environment, its JSON log (log/slog's JSONHandler on
// stderr) read as it comes, signalled, and waited for. The examples that
// start processes (durable, effects, production) share it, so that a fix
// to how a process is watched is made once.
package exampletest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nectarhooks/nectarhooks/nectarhookstest"
)

// Wait bounds every wait for a process: for a log record, or for its exit.
// It is not a timing assertion: on an idle machine each takes well under a
// second; it keeps a bug from hanging the run.
const Wait = 90 * time.Second

// Build compiles the package in the test's working directory (the
// example's) into a temporary directory, as name, and returns the binary's
// path.
func Build(t testing.TB, name string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), name)
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v: %s", err, out)
	}
	return bin
}

// Env is what the examples that keep messages in PostgreSQL read from
// their environment: a database (DATABASE_URL) and the webhook secret
// (NECTAR_WEBHOOK_SECRET).
type Env struct {
	DatabaseURL string
	Secret      string
}

// NewEnv creates a database of the test's own, named prefix and random
// digits and dropped when the test ends (nectarhookstest.PostgresDatabase:
// the test is skipped when there is no server), and a new secret.
func NewEnv(t testing.TB, prefix string) Env {
	t.Helper()
	return Env{DatabaseURL: nectarhookstest.PostgresDatabase(t, prefix), Secret: nectarhookstest.NewSecret()}
}

// Start runs bin with args and e's database and secret, as Start does.
func (e Env) Start(t testing.TB, bin string, args ...string) *Process {
	t.Helper()
	return Start(t, bin, []string{"DATABASE_URL=" + e.DatabaseURL, "NECTAR_WEBHOOK_SECRET=" + e.Secret}, args...)
}

// Process is a running example, its JSON log records read as they come.
type Process struct {
	cmd   *exec.Cmd
	lines chan map[string]any
	done  chan struct{} // closed once stderr has been read to its end
	mu    sync.Mutex
	log   bytes.Buffer // everything it wrote, for failure messages
}

// Start runs bin with args, and env added to the test's environment. The
// process is killed when the test ends, if it is still running, and what it
// wrote is logged when the test failed.
func Start(t testing.TB, bin string, env []string, args ...string) *Process {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &Process{cmd: cmd, lines: make(chan map[string]any, 1024), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.mu.Lock()
			p.log.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
			var rec map[string]any
			if json.Unmarshal(sc.Bytes(), &rec) == nil {
				select {
				case p.lines <- rec:
				default: // nobody waits for it
				}
			}
		}
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			p.Wait(t)
		}
		if t.Failed() {
			t.Logf("%s %s wrote:\n%s", filepath.Base(bin), strings.Join(args, " "), p.Output())
		}
	})
	return p
}

// Signal sends sig to the process.
func (p *Process) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// WaitFor returns the first log record whose msg is msg, failing the test
// if the process ends first or none comes within Wait.
func (p *Process) WaitFor(t testing.TB, msg string) map[string]any {
	t.Helper()
	timeout := time.After(Wait)
	for {
		select {
		case rec := <-p.lines:
			if rec["msg"] == msg {
				return rec
			}
		case <-p.done:
			t.Fatalf("process ended before logging %q:\n%s", msg, p.Output())
		case <-timeout:
			t.Fatalf("no %q in the log:\n%s", msg, p.Output())
		}
	}
}

// Wait waits for the process to end and returns its exit status (-1 when
// killed by a signal); a process still running after Wait is killed, and
// the test fails.
func (p *Process) Wait(t testing.TB) int {
	t.Helper()
	select {
	case <-p.done: // the log is read to the end first, as exec.Cmd.Wait requires
	case <-time.After(Wait):
		p.cmd.Process.Kill()
		<-p.done
		t.Errorf("process still running after %s; killed", Wait)
	}
	err := p.cmd.Wait()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("waiting: %v", err)
	}
	return p.cmd.ProcessState.ExitCode()
}

// Output returns everything the process has written to stderr so far.
func (p *Process) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}
