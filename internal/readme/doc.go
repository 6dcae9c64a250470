// Package readme holds the compiled copies of README.md's Go fragments and
// the test that keeps them and the README in step: see readme_test.go for
// the rule, and CONTRIBUTING.md for how to add a snippet. It has no API.
package readme
