package browsertest

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nectarhooks/nectarhooks/nectarhookstest"
)

// hostilePayload is a delivery meant to script the page: in its event
// type (which lands in the list, the filter and the detail), in a field,
// and as a closing tag. The page must show all of it as text.
const hostilePayload = `{"eventType":"<img src=x onerror=\"window.pwned=1\">","id":"</pre><script>window.pwned=2</script>","company":{"name":"<b onmouseover=\"window.pwned=3\">bold?</b>"}}`

// TestListenFirstSession is the README's session: listen with no secret
// at all, send the five samples with the secret it printed, and look at
// the page.
func TestListenFirstSession(t *testing.T) {
	ctx := browser(t)
	l := listen(t, nil)
	m := regexp.MustCompile(`export NECTAR_WEBHOOK_SECRET=(whsec_\S+)`).FindStringSubmatch(l.stderr.String())
	require.NotNil(t, m, l.stderr.String())
	do(t, ctx,
		chromedp.Navigate(l.url),
		chromedp.WaitReady(chromedp.CSS(`body[data-ready="1"]`)),
	)
	out := run(t, []string{"NECTAR_WEBHOOK_SECRET=" + m[1]}, "send", "-url", l.url, "all")
	require.Contains(t, out, "5 deliveries: 5 answered 2xx, 0 not")
	do(t, ctx,
		until(`document.querySelectorAll("#deliveries tr").length === 5`),
		chromedp.Click(chromedp.CSS(`#deliveries tr[data-seq="1"]`)),
		until(`document.getElementById("d-verdict").textContent === "✓ verified"`),
		chromedp.Click(chromedp.CSS(`.tabs button[data-tab="decoded"]`)),
	)
	assert.Equal(t, 5, get(t, ctx, chromedp.Evaluate[int](`[...document.querySelectorAll("#deliveries tr td:nth-child(5)")].filter(td => td.textContent === "verified").length`)))
	assert.Contains(t, get(t, ctx, chromedp.Text(chromedp.CSS(`#d-decoded`))), "*nectarhooks.ConnectionCreated")
	assert.True(t, get(t, ctx, chromedp.Evaluate[bool](`document.getElementById("replay").disabled`)), "nothing to replay to without -forward-to")
	screenshot(t, ctx, "listen-first.png")
}

// TestListenPage is the newcomer's session, in a browser: listen with a
// forward target; open the page; send the five samples and a stale one
// with the CLI; see them arrive without a reload; open the stale one and
// read why it was refused; open a verified one and replay it to the
// target; filter; and check a hostile payload shows as text.
func TestListenPage(t *testing.T) {
	ctx := browser(t)
	secret, fwdSecret := nectarhookstest.NewSecret(), nectarhookstest.NewSecret()
	env := []string{"NECTAR_WEBHOOK_SECRET=" + secret}
	tg := newTarget(t, fwdSecret)
	l := listen(t, env, "-forward-to", tg.srv.URL+"/webhooks/nectar", "-forward-secret", fwdSecret)
	text := func(sel string) string { return get(t, ctx, chromedp.Text(chromedp.CSS(sel))) }
	rows := func(n int) chromedp.Action[chromedp.Void] {
		return until(`document.querySelectorAll("#deliveries tr").length === ` + strconv.Itoa(n))
	}

	do(t, ctx,
		chromedp.Navigate(l.url),
		chromedp.WaitReady(chromedp.CSS(`body[data-ready="1"]`)),
		until(`document.getElementById("status").textContent === "live"`),
		// Set on this page load only: still there at the end means no reload.
		chromedp.Evaluate[chromedp.Void](`window.sameLoad = "yes"`),
	)

	out := run(t, env, "send", "-url", l.url+"webhooks/nectar", "all")
	require.Contains(t, out, "5 answered 2xx", "forwarded, and answered with the target's 200")
	do(t, ctx, rows(5))

	out = run(t, env, "send", "-url", l.url+"webhooks/nectar", "-stale", "connection.updated.v2")
	require.Contains(t, out, "401 Unauthorized")
	do(t, ctx, rows(6))
	assert.Contains(t, text(`#deliveries tr[data-seq="6"] td:nth-child(5)`), "timestamp too old")
	do(t, ctx,
		chromedp.Click(chromedp.CSS(`#deliveries tr[data-seq="6"]`)),
		until(`document.getElementById("d-verdict").textContent.startsWith("✗")`),
	)
	assert.Regexp(t, `^✗ not verified: timestamp too old: signed 10m[01]s before the clock \(tolerance 5m0s\)$`, text(`#d-verdict`))
	assert.Contains(t, text(`#d-reason`), "The signature itself matches: only the time is off.")
	assert.True(t, get(t, ctx, chromedp.Evaluate[bool](`document.getElementById("replay").disabled`)), "what did not verify is not replayed")
	screenshot(t, ctx, "listen-refused.png")

	// A verified one, replayed to the target: the same svix-id again.
	id := text(`#deliveries tr[data-seq="2"] td:nth-child(3)`)
	do(t, ctx,
		chromedp.Click(chromedp.CSS(`#deliveries tr[data-seq="2"]`)),
		until(`document.getElementById("d-verdict").textContent === "✓ verified"`),
		until(`!document.getElementById("replay").disabled`),
		chromedp.Click(chromedp.CSS(`#replay`)),
		until(`document.getElementById("replay-result").textContent.startsWith("replayed: 200 OK")`),
		until(`document.getElementById("d-forward").textContent.includes("replay 1")`),
	)
	got := tg.received()
	require.Len(t, got, 6, "five forwarded, one replayed; the stale one never")
	assert.Equal(t, id, got[5].Get("svix-id"))
	assert.Equal(t, got[1].Get("svix-id"), got[5].Get("svix-id"))
	// The target records only what verifies under the forward secret: the
	// replay was signed anew (its timestamp is the clock's, which within
	// the same second is the first's; listen's Go tests check it moves).
	assert.GreaterOrEqual(t, got[5].Get("svix-timestamp"), got[1].Get("svix-timestamp"))
	assert.Contains(t, text(`#d-pretty`), `"eventType": "connection.updated.v2"`)
	screenshot(t, ctx, "listen.png")

	// The verdict filter hides the verified ones.
	do(t, ctx,
		chromedp.SetValue(chromedp.CSS(`#filter-verdict`), "failed"),
		chromedp.Evaluate[chromedp.Void](`document.getElementById("filter-verdict").dispatchEvent(new Event("change"))`),
	)
	visible := get(t, ctx, chromedp.Evaluate[int](`[...document.querySelectorAll("#deliveries tr")].filter(r => !r.hidden).length`))
	assert.Equal(t, 1, visible)
	do(t, ctx,
		chromedp.SetValue(chromedp.CSS(`#filter-verdict`), ""),
		chromedp.Evaluate[chromedp.Void](`document.getElementById("filter-verdict").dispatchEvent(new Event("change"))`),
		// The type filter offers the types seen, and shows one type's.
		chromedp.SetValue(chromedp.CSS(`#filter-type`), "connection.updated.v2"),
		chromedp.Evaluate[chromedp.Void](`document.getElementById("filter-type").dispatchEvent(new Event("change"))`),
	)
	visible = get(t, ctx, chromedp.Evaluate[int](`[...document.querySelectorAll("#deliveries tr")].filter(r => !r.hidden).length`))
	assert.Equal(t, 2, visible, "the verified connection.updated.v2 and the stale one")
	assert.Equal(t, 6, get(t, ctx, chromedp.Evaluate[int](`document.getElementById("filter-type").options.length`)), "all types, and the five seen")
	do(t, ctx,
		chromedp.SetValue(chromedp.CSS(`#filter-type`), ""),
		chromedp.Evaluate[chromedp.Void](`document.getElementById("filter-type").dispatchEvent(new Event("change"))`),
	)

	// A hostile payload shows as text, and runs nothing.
	file := filepath.Join(t.TempDir(), "hostile.json")
	require.NoError(t, os.WriteFile(file, []byte(hostilePayload), 0o600))
	run(t, env, "send", "-url", l.url+"webhooks/nectar", file)
	do(t, ctx,
		rows(7),
		chromedp.Click(chromedp.CSS(`#deliveries tr[data-seq="7"]`)),
		until(`document.getElementById("d-title").textContent.startsWith("#7")`),
		chromedp.Click(chromedp.CSS(`.tabs button[data-tab="raw"]`)),
	)
	assert.Equal(t, `<img src=x onerror="window.pwned=1">`, text(`#deliveries tr[data-seq="7"] td:nth-child(4)`))
	assert.Equal(t, hostilePayload, strings.TrimSpace(text(`#d-raw`)))
	assert.Equal(t, "nectarhooks listen", get(t, ctx, chromedp.Title()))
	assert.Equal(t, "undefined", get(t, ctx, chromedp.Evaluate[string](`String(window.pwned)`)), "no payload script ran")
	assert.Equal(t, 1, get(t, ctx, chromedp.Evaluate[int](`document.scripts.length`)), "the page's own script only")
	assert.Equal(t, 0, get(t, ctx, chromedp.Evaluate[int](`document.querySelectorAll("main img, main b, main script").length`)), "no element made from the payload")
	assert.Equal(t, "yes", get(t, ctx, chromedp.Evaluate[string](`String(window.sameLoad)`)), "every delivery arrived without a reload")
}

// TestListenPageWithoutScript opens the page with JavaScript off, after
// deliveries came in: the rows the server rendered are the history, as
// they are before the event stream connects.
func TestListenPageWithoutScript(t *testing.T) {
	ctx := browser(t)
	env := []string{"NECTAR_WEBHOOK_SECRET=" + nectarhookstest.NewSecret()}
	l := listen(t, env)
	out := run(t, env, "send", "-url", l.url, "all")
	require.Contains(t, out, "5 answered 2xx")
	run(t, env, "send", "-url", l.url, "-stale", "connection.updated.v2")
	scriptOff := func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		_, err := cdp.Call(ctx, tg, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true})
		return chromedp.Void{}, err
	}
	do(t, ctx, scriptOff, chromedp.Navigate(l.url), chromedp.WaitReady(chromedp.CSS(`#deliveries`)))
	text := func(sel string) string { return get(t, ctx, chromedp.Text(chromedp.CSS(sel))) }
	assert.Equal(t, "connecting…", text(`#status`), "the page's script did not run")
	assert.Equal(t, 6, get(t, ctx, chromedp.Evaluate[int](`document.querySelectorAll("#deliveries tr").length`)))
	assert.Equal(t, "6 deliveries", text(`#count`))
	assert.Equal(t, "6", text(`#deliveries tr:first-child td:first-child`), "newest first")
	assert.Contains(t, text(`#deliveries tr[data-seq="6"] td:nth-child(5)`), "timestamp too old")
	assert.Equal(t, "verified", text(`#deliveries tr[data-seq="1"] td:nth-child(5)`))
	assert.True(t, get(t, ctx, chromedp.Evaluate[bool](`document.getElementById("empty").hidden`)))
	assert.Equal(t, 6, get(t, ctx, chromedp.Evaluate[int](`document.getElementById("filter-type").options.length`)), "all types, and the five seen")
}
