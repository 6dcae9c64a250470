package browsertest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/nectarhooks/nectarhooks"
)

// wait bounds every wait on the browser or a process. It is not a timing
// assertion: each takes well under a second on an idle machine; it stops a
// bug from hanging the run.
const wait = 60 * time.Second

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// cli builds the command once per test run, from the directory above, as
// a user builds it, and returns the binary's path.
func cli(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "nectarhooks-browsertest-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "nectarhooks")
		out, err := exec.Command("go", "-C", "..", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v: %s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// chromium returns the browser's path, or skips the test (fails it under
// CI=true) when there is none.
func chromium(t *testing.T) string {
	t.Helper()
	candidates := []string{os.Getenv("NECTARHOOKS_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"}
	for _, c := range candidates {
		if c == "" {
			continue
		}
		if _, err := os.Stat(c); err == nil {
			return c
		}
	}
	msg := "no Chromium for the browser tests: apt-get install chromium (Debian), or set NECTARHOOKS_CHROMIUM to a Chrome or Chromium binary"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// browser starts headless Chromium, with a profile of its own, and
// returns a chromedp context on one tab, closed when the test ends.
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium(t)),
		chromedp.Headless,
		chromedp.NoSandbox, // root in CI containers
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		// The machine's network is closed: without these, Chromium
		// keeps trying Google's hosts.
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1360, 860),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc()
	})
	// The first action starts the browser, which lives as long as this
	// context: no timeout on it (chromedp.Run's rule).
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting Chromium: %v", err)
	}
	return ctx
}

// do runs browser actions, failing the test on the first error, each
// call bounded by wait.
func do(t *testing.T, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("browser: %v", err)
	}
}

// get runs one browser action and returns its value.
func get[T any](t *testing.T, ctx context.Context, a chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatalf("browser: %v", err)
	}
	return v
}

// until waits until a JavaScript expression is true in the page.
func until(expr string) chromedp.Action[chromedp.Void] {
	return chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(wait))
}

// screenshot saves a PNG of the tab as NAME in $NECTARHOOKS_SCREENSHOTS,
// when that is set: the pictures of docs/.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv("NECTARHOOKS_SCREENSHOTS")
	if dir == "" {
		return
	}
	png := get(t, ctx, chromedp.CaptureScreenshot())
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("saved %s (%d bytes)", path, len(png))
}

// lockedBuffer collects a process's output while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// listening is a running "nectarhooks listen".
type listening struct {
	url            string
	stdout, stderr *lockedBuffer
}

// listen starts "nectarhooks listen" on a free loopback port with args,
// and stops it with SIGINT, as Ctrl-C does, when the test ends; a listen
// that does not stop fails the test.
func listen(t *testing.T, env []string, args ...string) *listening {
	t.Helper()
	l := &listening{stdout: &lockedBuffer{}, stderr: &lockedBuffer{}}
	cmd := exec.Command(cli(t), append([]string{"listen", "-addr", "127.0.0.1:0"}, args...)...)
	cmd.Env = append(environ(), env...)
	cmd.Stdout, cmd.Stderr = l.stdout, l.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGINT)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("listen exited with %v: %s", err, l.stderr.String())
			}
		case <-time.After(wait):
			cmd.Process.Kill()
			<-exited
			t.Errorf("listen did not stop on SIGINT")
		}
		if t.Failed() {
			t.Logf("listen's output:\n%s\n%s", l.stderr.String(), l.stdout.String())
		}
	})
	re := regexp.MustCompile(`receiving deliveries at (http://127\.0\.0\.1:\d+/)`)
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		if m := re.FindStringSubmatch(l.stderr.String()); m != nil {
			l.url = m[1]
			return l
		}
		select {
		case err := <-exited:
			t.Fatalf("listen exited: %v: %s", err, l.stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("listen did not start: %s", l.stderr.String())
	return nil
}

// environ is the test's environment without a signing secret: each test
// gives its own, or none.
func environ() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "NECTAR_WEBHOOK_SECRET=") {
			out = append(out, kv)
		}
	}
	return out
}

// run runs the command to its end and returns its stdout.
func run(t *testing.T, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command(cli(t), args...)
	cmd.Env = append(environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			t.Fatalf("%v: %v", args, err)
		}
	}
	return string(out)
}

// target is the developer's own receiver behind listen -forward-to: it
// records what it gets and checks it with the forward secret.
type target struct {
	srv      *httptest.Server
	verifier *nectarhooks.Verifier
	mu       sync.Mutex
	got      []http.Header
}

func newTarget(t *testing.T, secret string) *target {
	v, err := nectarhooks.NewVerifier(secret)
	if err != nil {
		t.Fatal(err)
	}
	tg := &target{verifier: v}
	tg.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := tg.verifier.Verify(body, r.Header); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		tg.mu.Lock()
		tg.got = append(tg.got, r.Header.Clone())
		tg.mu.Unlock()
		fmt.Fprintln(w, "ok")
	}))
	t.Cleanup(tg.srv.Close)
	return tg
}

// received returns the headers of the verified deliveries it got.
func (tg *target) received() []http.Header {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	return append([]http.Header(nil), tg.got...)
}
