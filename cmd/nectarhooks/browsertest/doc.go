// Package browsertest tests the nectarhooks command's web pages in a real
// browser: the live page of "nectarhooks listen" and the report of
// "load -html", built and run as a user runs them, and looked at through
// headless Chromium driven by chromedp.
//
// It is a module of its own so that chromedp and its protocol package
// never reach the command's go.mod: the command builds with what it
// needs alone, and its go line stays where it is.
//
// The tests need Chromium (Debian: apt-get install chromium; or set
// NECTARHOOKS_CHROMIUM to a Chrome or Chromium binary). Without it they
// skip, saying so; under CI=true they fail instead. With
// NECTARHOOKS_SCREENSHOTS=DIR they save the screenshots the README and
// docs/cli.md show into DIR.
package browsertest
