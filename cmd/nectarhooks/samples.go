package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
)

func samplesCommand() *command {
	return &command{
		name:     "samples",
		synopsis: "samples [EVENT]",
		help: `Without an argument, list the event types whose sample payload is built
into the program, one a line. With one, print that sample byte for byte:
the payload Nectar documents for it (Nectar publishes no sample of
connection.validated.v2; its sample is connection.created.v2's with the
eventType set). Start a payload of your own from one.
`,
		examples: `  nectarhooks samples
  nectarhooks samples connection.updated.v2 > payload.json
`,
		flags: func(*flag.FlagSet) any { return nil },
		run:   runSamples,
	}
}

func runSamples(_ context.Context, e *env, _ *flag.FlagSet, _ any, args []string) int {
	c := lookup("samples")
	switch len(args) {
	case 0:
		for _, t := range sampleTypes() {
			fmt.Fprintln(e.stdout, t)
		}
		return exitOK
	case 1:
		body := nectarhookstest.Sample(nectarhooks.EventType(args[0]))
		if body == nil {
			return e.usageError(c, "no sample for %q; the samples are %s", args[0], sampleList())
		}
		e.stdout.Write(body)
		return exitOK
	}
	return e.usageError(c, "want at most one event type, got %d arguments", len(args))
}
