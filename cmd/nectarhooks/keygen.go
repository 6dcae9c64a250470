package main

import (
	"context"
	"flag"
	"fmt"
	"strings"

	"github.com/nectarhooks/nectarhooks/internal/edkey"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
)

type keygenFlags struct {
	publicOf string
}

func keygenCommand() *command {
	return &command{
		name:     "keygen",
		synopsis: "keygen [-public-of whsk_...]",
		help: `Make an ed25519 key pair for Standard Webhooks' asymmetric signatures
(v1a), and print it: the whsk_ signing key, which the sender keeps and
nothing else holds, then the whpk_ public key, which receivers verify with
(nectarhooks.NewHandler takes it in place of a whsec_ secret). A leaked
public key lets nobody sign.

With -public-of, print the public key of an existing signing key instead.
The keys are the base64 of the 64-byte private key (seed and public key)
and of the 32-byte public key, as Svix shows them. Use them with send,
sign and load (-secret whsk_...) and verify (-secret whpk_...).
`,
		examples: `  nectarhooks keygen
  nectarhooks keygen -public-of "$SIGNING_KEY"
`,
		flags: func(fs *flag.FlagSet) any {
			f := &keygenFlags{}
			fs.StringVar(&f.publicOf, "public-of", "", "print the public key of the `whsk_...` signing key, and make none")
			return f
		},
		run: runKeygen,
	}
}

func runKeygen(_ context.Context, e *env, _ *flag.FlagSet, opts any, args []string) int {
	c, f := lookup("keygen"), opts.(*keygenFlags)
	if len(args) > 0 {
		return e.usageError(c, "unexpected argument %q", args[0])
	}
	if f.publicOf != "" {
		if !strings.HasPrefix(strings.TrimSpace(f.publicOf), edkey.SigningPrefix) {
			return e.usageError(c, "-public-of takes a whsk_ signing key")
		}
		pub, err := publicKeyOf(f.publicOf)
		if err != nil {
			return e.usageError(c, "the whsk_ signing key is not usable: %v", err)
		}
		fmt.Fprintln(e.stdout, pub)
		return exitOK
	}
	key, pub := nectarhookstest.NewKeyPair()
	fmt.Fprintf(e.stdout, "signing key (the sender's; keep it secret): %s\n", key)
	fmt.Fprintf(e.stdout, "public key (the receivers'):                 %s\n", pub)
	return exitOK
}
