package readme_test

import (
	"bufio"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Every relative link of README.md, CONTRIBUTING.md and the docs/ pages
// must lead somewhere: to a file or directory of the repository and, for
// a link with a #fragment into a markdown file, to one of its headings
// (as GitHub makes their anchors).

// mdLink matches an inline markdown link or image: [text](target).
var mdLink = regexp.MustCompile(`\]\(([^()\s]+)\)`)

// mdLinks returns the link targets of a markdown document outside code
// blocks and code spans, with the line each is on.
func mdLinks(src string) map[int][]string {
	out := map[int][]string{}
	fence := ""
	sc := bufio.NewScanner(strings.NewReader(src))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if marker := strings.TrimLeft(trimmed, "`"); len(trimmed)-len(marker) >= 3 {
			open := trimmed[:len(trimmed)-len(marker)]
			switch {
			case fence == "":
				fence = open
			case len(open) >= len(fence) && marker == "":
				fence = ""
			}
			continue
		}
		if fence != "" {
			continue
		}
		line = regexp.MustCompile("`[^`]*`").ReplaceAllString(line, "``")
		for _, m := range mdLink.FindAllStringSubmatch(line, -1) {
			out[n] = append(out[n], m[1])
		}
	}
	return out
}

// anchors returns the anchors GitHub gives the headings of a markdown
// document: lower case, punctuation dropped, spaces made hyphens, and a
// -1, -2 ... suffix for repeats.
func anchors(src string) map[string]bool {
	out := map[string]bool{}
	fence := false
	for _, line := range strings.Split(src, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			fence = !fence
			continue
		}
		if fence || !strings.HasPrefix(line, "#") {
			continue
		}
		title := strings.TrimSpace(strings.TrimLeft(line, "#"))
		var b strings.Builder
		for _, r := range strings.ToLower(title) {
			switch {
			case unicode.IsLetter(r), unicode.IsDigit(r), r == '-', r == '_':
				b.WriteRune(r)
			case r == ' ':
				b.WriteRune('-')
			}
		}
		slug := b.String()
		for i := 1; out[slug]; i++ {
			if !out[fmt.Sprintf("%s-%d", b.String(), i)] {
				slug = fmt.Sprintf("%s-%d", b.String(), i)
			}
		}
		out[slug] = true
	}
	return out
}

func TestMarkdownLinksResolve(t *testing.T) {
	files := append(markdownFiles(t), "CONTRIBUTING.md")
	for _, file := range files {
		src, err := os.ReadFile(filepath.Join(repoRoot, filepath.FromSlash(file)))
		require.NoError(t, err)
		for line, targets := range mdLinks(string(src)) {
			for _, target := range targets {
				if regexp.MustCompile(`^[a-z]+:`).MatchString(target) {
					continue // https:, mailto: ...
				}
				where := fmt.Sprintf("%s:%d: %s", file, line, target)
				ref, fragment, _ := strings.Cut(target, "#")
				dest := file
				if ref != "" {
					dest = path.Join(path.Dir(file), ref)
					if !assert.False(t, strings.HasPrefix(dest, "../"), "%s leaves the repository", where) {
						continue
					}
					_, err := os.Stat(filepath.Join(repoRoot, filepath.FromSlash(dest)))
					if !assert.NoError(t, err, "%s: no such file or directory", where) {
						continue
					}
				}
				if fragment == "" || !strings.HasSuffix(dest, ".md") {
					continue
				}
				destSrc, err := os.ReadFile(filepath.Join(repoRoot, filepath.FromSlash(dest)))
				require.NoError(t, err)
				assert.True(t, anchors(string(destSrc))[fragment], "%s: %s has no heading with the anchor #%s", where, dest, fragment)
			}
		}
	}
}

func TestLinkHelpers(t *testing.T) {
	doc := "# A title\n\nSee [b](b.md#x) and `[not](a link)`.\n\n```sh\n[no](link)\n```\n\n## Without net/http: `x`\n\n## A title\n"
	assert.Equal(t, map[int][]string{3: {"b.md#x"}}, mdLinks(doc))
	assert.Equal(t, map[string]bool{"a-title": true, "without-nethttp-x": true, "a-title-1": true}, anchors(doc))
}
