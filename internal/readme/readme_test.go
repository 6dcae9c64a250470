package readme_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The rule this file enforces (CONTRIBUTING.md explains it to authors):
// every ```go block of README.md and of the manual beside it (docs/*.md)
// compiles.
//
//   - A block that starts with a package clause is a complete file. It is
//     compiled as it stands, in a package directory of its own that exists
//     only in a go build overlay (only an empty directory is made, and
//     removed, in the module), in
//     the module the block is marked for, by `go vet` (which compiles test
//     files too); a file of an external test package (`package x_test`) is
//     also run with `go test`.
//   - Any other block is a fragment. Each of its paragraphs (runs of lines
//     between blank lines) must appear, line for line up to indentation, in
//     a Go file of the module the block is marked for whose path contains
//     "readme" (for the core module: this directory). That module's own
//     `go vet` and `go test` compile the copy; this test keeps the two texts
//     from drifting apart.
//
// A block belongs to the core module unless the line just before its fence
// names another one, by its directory relative to the repository root:
//
//	<!-- go-snippet module=pgxstore -->

// repoRoot is the repository root, from this package's directory.
const repoRoot = "../.."

// snippet is one ```go block of README.md or of a page of docs/.
type snippet struct {
	file   string // the markdown file, relative to the repository root
	line   int    // the line of its opening fence, 1-based
	module string // the module directory it belongs to, "." for the core
	code   string // its text, without the fences
}

// complete reports whether the snippet is a whole Go file.
func (s snippet) complete() bool {
	for _, l := range strings.Split(s.code, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "//") {
			continue
		}
		return strings.HasPrefix(l, "package ")
	}
	return false
}

var markerPattern = regexp.MustCompile(`^<!--\s*go-snippet\s+module=(\S+)\s*-->$`)

// where names the snippet's place in messages and test names.
func (s snippet) where() string { return fmt.Sprintf("%s:%d", s.file, s.line) }

// readmeSnippets returns the ```go blocks of the markdown in src, read
// from file.
func readmeSnippets(t *testing.T, file string, src []byte) []snippet {
	t.Helper()
	var (
		out      []snippet
		cur      *snippet
		body     []string
		previous string // the line before the current one
		fence    string // the opening fence of a block of another language
	)
	// closes reports whether line closes a block opened by open: backticks
	// only, at least as many.
	closes := func(line, open string) bool {
		return len(line) >= len(open) && strings.Trim(line, "`") == ""
	}
	sc := bufio.NewScanner(bytes.NewReader(src))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		switch {
		case cur != nil && closes(trimmed, "```"):
			cur.code = strings.Join(body, "\n")
			out = append(out, *cur)
			cur, body = nil, nil
		case cur != nil:
			body = append(body, line)
		case fence != "":
			if closes(trimmed, fence) {
				fence = ""
			}
		case trimmed == "```go":
			cur = &snippet{file: file, line: n, module: "."}
			if m := markerPattern.FindStringSubmatch(strings.TrimSpace(previous)); m != nil {
				cur.module = filepath.Clean(m[1])
			}
		case strings.HasPrefix(trimmed, "```"):
			fence = trimmed[:len(trimmed)-len(strings.TrimLeft(trimmed, "`"))]
		}
		previous = line
	}
	require.NoError(t, sc.Err())
	require.Nil(t, cur, "%s: the ```go block at line %d is not closed", file, func() int {
		if cur == nil {
			return 0
		}
		return cur.line
	}())
	return out
}

// paragraphs splits code at blank lines, each paragraph dedented.
func paragraphs(code string) [][]string {
	var out [][]string
	var cur []string
	flush := func() {
		if len(cur) > 0 {
			out = append(out, dedent(cur))
			cur = nil
		}
	}
	for _, l := range strings.Split(code, "\n") {
		if strings.TrimSpace(l) == "" {
			flush()
			continue
		}
		cur = append(cur, strings.TrimRight(l, " \t"))
	}
	flush()
	return out
}

// dedent removes the indentation the lines have in common.
func dedent(lines []string) []string {
	common := -1
	for _, l := range lines {
		if strings.TrimSpace(l) == "" {
			continue
		}
		n := len(l) - len(strings.TrimLeft(l, " \t"))
		if common < 0 || n < common {
			common = n
		}
	}
	out := make([]string, len(lines))
	for i, l := range lines {
		if len(l) >= common && common > 0 {
			l = l[common:]
		}
		out[i] = strings.TrimRight(l, " \t")
	}
	return out
}

// containsLines reports whether want appears as consecutive lines of have,
// up to a common indentation.
func containsLines(have, want []string) bool {
	for i := 0; i+len(want) <= len(have); i++ {
		if slices.Equal(dedent(have[i:i+len(want)]), want) {
			return true
		}
	}
	return false
}

// copies returns the lines of every Go file of module whose path, relative
// to the module, contains "readme", by file name.
func copies(t *testing.T, module string) map[string][]string {
	t.Helper()
	dir := filepath.Join(repoRoot, module)
	out := map[string][]string{}
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != dir {
			if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
				return filepath.SkipDir // another module
			}
			if d.Name() == "testdata" {
				return filepath.SkipDir
			}
		}
		rel, _ := filepath.Rel(dir, path)
		if d.IsDir() || !strings.HasSuffix(path, ".go") || !strings.Contains(strings.ToLower(rel), "readme") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		var lines []string
		for _, l := range strings.Split(string(b), "\n") {
			lines = append(lines, strings.TrimRight(l, " \t\r"))
		}
		out[rel] = lines
		return nil
	})
	require.NoError(t, err, "module %s of a README snippet", module)
	return out
}

// markdownFiles returns README.md and every page of docs/ (docs/*.md, and
// below), relative to the repository root, with forward slashes.
func markdownFiles(t *testing.T) []string {
	t.Helper()
	files := []string{"README.md"}
	err := filepath.WalkDir(filepath.Join(repoRoot, "docs"), func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(path, ".md") {
			rel, err := filepath.Rel(repoRoot, path)
			if err != nil {
				return err
			}
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	require.NoError(t, err, "reading docs/")
	require.Greater(t, len(files), 1, "docs/ has no pages: is this the right directory?")
	return files
}

// readREADME returns the ```go blocks of README.md and of the docs/ pages.
func readREADME(t *testing.T) []snippet {
	t.Helper()
	var snippets []snippet
	for _, file := range markdownFiles(t) {
		src, err := os.ReadFile(filepath.Join(repoRoot, filepath.FromSlash(file)))
		require.NoError(t, err)
		found := readmeSnippets(t, file, src)
		if file == "README.md" {
			require.NotEmpty(t, found, "README.md has no ```go blocks: is this the right file?")
		}
		snippets = append(snippets, found...)
	}
	return snippets
}

// TestREADMEFragmentsHaveCompiledCopies checks the fragments.
func TestREADMEFragmentsHaveCompiledCopies(t *testing.T) {
	for _, s := range readREADME(t) {
		if s.complete() {
			continue
		}
		t.Run(s.where(), func(t *testing.T) {
			files := copies(t, s.module)
			require.NotEmpty(t, files, "module %s has no Go file with \"readme\" in its path to hold the compiled copy of this snippet", s.module)
			for _, p := range paragraphs(s.code) {
				found := false
				for _, lines := range files {
					if containsLines(lines, p) {
						found = true
						break
					}
				}
				assert.True(t, found, "%s: this paragraph is in no Go file of module %q whose path contains \"readme\" (add a compiled copy, or mark the block's module):\n%s",
					s.where(), s.module, strings.Join(p, "\n"))
			}
		})
	}
}

// TestREADMECompleteFilesCompile compiles (and, for test files, runs) the
// snippets that are whole files.
func TestREADMECompleteFilesCompile(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH to compile the README's programs with")
	}
	byModule := map[string][]snippet{}
	for _, s := range readREADME(t) {
		if s.complete() {
			byModule[s.module] = append(byModule[s.module], s)
		}
	}
	require.NotEmpty(t, byModule, "README.md has no complete programs: the quick start is one")

	for module, snippets := range byModule {
		t.Run(module, func(t *testing.T) {
			moduleDir, err := filepath.Abs(filepath.Join(repoRoot, module))
			require.NoError(t, err)
			_, err = os.Stat(filepath.Join(moduleDir, "go.mod"))
			require.NoError(t, err, "README snippets are marked for module %q, which has no go.mod", module)

			tmp := t.TempDir()
			overlay := map[string]string{}
			var pkgs, testPkgs []string
			for _, s := range snippets {
				// One package directory per snippet. The go command needs
				// the directory to exist (vet and test binaries run in it),
				// so an empty one is made in the module and removed after;
				// the file itself lives only in the overlay, named after the
				// snippet's line so that compiler messages say which failed.
				// The file and line make the names unique across pages.
				tag := strings.NewReplacer("/", "_", ".", "_", "-", "_").Replace(strings.TrimSuffix(s.file, ".md")) + fmt.Sprintf("_line%d", s.line)
				dir, err := os.MkdirTemp(moduleDir, "zz_readme_"+tag+"_")
				require.NoError(t, err)
				t.Cleanup(func() { _ = os.RemoveAll(dir) })
				pkgDir := filepath.Base(dir)
				name := "readme_" + tag + ".go"
				isTest := regexp.MustCompile(`(?m)^package \w+_test\s*$`).MatchString(s.code)
				if isTest {
					name = "readme_" + tag + "_test.go"
					testPkgs = append(testPkgs, "./"+pkgDir)
				}
				src := filepath.Join(tmp, name)
				require.NoError(t, os.WriteFile(src, []byte(s.code+"\n"), 0o644))
				overlay[filepath.Join(dir, name)] = src
				pkgs = append(pkgs, "./"+pkgDir)
			}
			overlayFile := filepath.Join(tmp, "overlay.json")
			b, err := json.Marshal(map[string]any{"Replace": overlay})
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(overlayFile, b, 0o644))

			run := func(args ...string) {
				t.Helper()
				cmd := exec.Command(goTool, args...)
				cmd.Dir = moduleDir
				// The module's own go.mod and go.sum, unchanged: a snippet
				// may import only what the module already requires. (The
				// module cache normally has it all, from building the
				// module's tests; a fresh one fills from GOPROXY.)
				cmd.Env = append(os.Environ(), "GOFLAGS=-mod=readonly")
				out, err := cmd.CombinedOutput()
				require.NoError(t, err, "go %s in %s:\n%s", strings.Join(args, " "), module, out)
			}
			run(append([]string{"vet", "-overlay", overlayFile}, pkgs...)...)
			if len(testPkgs) > 0 {
				run(append([]string{"test", "-count=1", "-vet=off", "-overlay", overlayFile}, testPkgs...)...)
			}
		})
	}
}

// TestReadmeSnippetsParser checks the extraction on a small document.
func TestReadmeSnippetsParser(t *testing.T) {
	doc := "# T\n\n```go\nx := 1\n```\n\n```sh\n```go\nnot go\n```\n\n<!-- go-snippet module=pgxstore -->\n```go\npackage main\n\nfunc main() {}\n```\n\n````\n```go\ninside a longer fence\n```\n````\n"
	got := readmeSnippets(t, "docs/x.md", []byte(doc))
	require.Len(t, got, 2)
	assert.Equal(t, snippet{file: "docs/x.md", line: 3, module: ".", code: "x := 1"}, got[0])
	assert.False(t, got[0].complete())
	assert.Equal(t, snippet{file: "docs/x.md", line: 13, module: "pgxstore", code: "package main\n\nfunc main() {}"}, got[1])
	assert.True(t, got[1].complete())

	assert.Equal(t, [][]string{{"a", "\tb"}, {"c"}}, paragraphs("\ta\n\t\tb\n\n\tc\n"))
	assert.True(t, containsLines([]string{"func f() {", "\ta := 1", "\t\tb()", "}"}, []string{"a := 1", "\tb()"}))
	assert.False(t, containsLines([]string{"func f() {", "\ta := 1", "\tb()", "}"}, []string{"a := 1", "\tb()"}), "indentation within a paragraph counts")
	assert.False(t, containsLines([]string{"a := 1"}, []string{"a := 1", "b()"}))
}
