// Package readme keeps the documentation honest. Its tests compile every
// Go snippet of README.md and of the manual in docs/ (readme_test.go, with
// the compiled copies of the fragments in fragments_test.go and
// conformance.go), check that every relative link of the markdown leads
// somewhere (links_test.go), and hold the tables of errors in
// docs/errors.md and in the package documentation to StatusCode
// (errors_test.go). CONTRIBUTING.md explains the rules to authors. It has
// no API.
package readme
