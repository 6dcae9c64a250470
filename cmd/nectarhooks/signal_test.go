//go:build unix

package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nectarhooks/nectarhooks/nectarhookstest"
)

// program is the command run as a process of its own: this test binary,
// which TestMain turns into the program.
type program struct {
	cmd            *exec.Cmd
	stdout, stderr *syncBuffer
	exited         chan struct{} // closed when it has ended
}

// startProgram runs the program with args and env added to the test's
// environment, killed at the end of the test if still running.
func startProgram(t *testing.T, env []string, args ...string) *program {
	t.Helper()
	p := &program{stdout: &syncBuffer{}, stderr: &syncBuffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(os.Args[0], args...)
	p.cmd.Env = append(os.Environ(), append(env, "NECTARHOOKS_TEST_MAIN=1")...)
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	require.NoError(t, p.cmd.Start())
	go func() {
		p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.exited
		if t.Failed() {
			t.Logf("%v wrote:\n%s\n%s", args, p.stderr.String(), p.stdout.String())
		}
	})
	return p
}

// waitFor returns the first match of re in what the program wrote to
// stderr, failing the test if it ends first or writes none in 30s.
func (p *program) waitFor(t *testing.T, re *regexp.Regexp) []string {
	t.Helper()
	var m []string
	require.Eventually(t, func() bool {
		m = re.FindStringSubmatch(p.stderr.String())
		select {
		case <-p.exited:
			return m != nil || assert.Fail(t, "ended early", p.stderr.String())
		default:
		}
		return m != nil
	}, 30*time.Second, 10*time.Millisecond, "no %s in: %s", re, p.stderr.String())
	return m
}

// stop sends sig and returns the exit status, failing the test if the
// program has not ended 30s later (it should within a second).
func (p *program) stop(t *testing.T, sig syscall.Signal) int {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(sig))
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("still running 30s after %v", sig)
	}
	return p.cmd.ProcessState.ExitCode() // -1 when the signal killed it
}

// TestStopSignals stops the long-running commands, run as processes, as a
// user (Ctrl-C: SIGINT) and a container or service manager (SIGTERM) do:
// each signal ends them the same clean way, with their summary and their
// usual exit status, not killed mid-run.
func TestStopSignals(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run("listen/"+sig.String(), func(t *testing.T) {
			secret := nectarhookstest.NewSecret()
			p := startProgram(t, []string{secretEnv + "=" + secret}, "listen", "-addr", "127.0.0.1:0")
			url := p.waitFor(t, regexp.MustCompile(`receiving deliveries at (http://127\.0\.0\.1:\d+/)`))[1]
			signer, err := nectarhookstest.NewSigner(secret)
			require.NoError(t, err)
			body := nectarhookstest.Sample("document.created.v2")
			resp, _ := postTo(t, url+"webhooks/nectar", signer.HeaderFor("msg_signal", time.Now(), body), body)
			require.Equal(t, http.StatusOK, resp.StatusCode)
			// A page's event stream, open when the signal comes, ends.
			stream, err := http.Get(url + "_nectarhooks/events")
			require.NoError(t, err)
			defer stream.Body.Close()

			assert.Equal(t, exitOK, p.stop(t, sig))
			rest, err := io.ReadAll(stream.Body)
			assert.NoError(t, err, "the stream ended, not cut")
			assert.Contains(t, string(rest), "event: ready")
			assert.Contains(t, p.stderr.String(), "nectarhooks listen: stopped after 1 deliveries")
			assert.Contains(t, p.stdout.String(), "msg_signal  document.created.v2  verified  200 OK")
		})
		t.Run("load/"+sig.String(), func(t *testing.T) {
			// A receiver that answers nothing until the load is stopped:
			// the signal comes with deliveries in flight.
			got, release := make(chan struct{}, 1), make(chan struct{})
			rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				select {
				case got <- struct{}{}:
				default:
				}
				select {
				case <-r.Context().Done():
				case <-release:
				}
			}))
			t.Cleanup(rcv.Close)
			t.Cleanup(func() { close(release) })
			p := startProgram(t, []string{secretEnv + "=" + nectarhookstest.NewSecret()}, "load", "-url", rcv.URL, "-n", "100", "-c", "1", "-timeout", "1m")
			select {
			case <-got:
			case <-p.exited:
				t.Fatalf("load ended before a delivery: %s", p.stderr.String())
			case <-time.After(30 * time.Second):
				t.Fatal("no delivery in 30s")
			}

			assert.Equal(t, exitRefused, p.stop(t, sig), "an interrupted run fails, with its report")
			assert.Regexp(t, `verdict +FAIL: .*interrupted`, p.stdout.String())
			assert.Contains(t, p.stdout.String(), "interrupted: 1")
		})
	}
}
