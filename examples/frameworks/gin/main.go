// Command gin mounts a nectarhooks Handler on a gin engine.
//
//	cd examples/frameworks && NECTAR_WEBHOOK_SECRET=whsec_... go run ./gin -addr 127.0.0.1:8080
//
// gin.WrapH turns the Handler, an http.Handler, into a gin handler. The
// Handler must be the first to read the body, because the signature covers
// the bytes exactly as sent: mount it outside any group whose middleware
// binds or logs bodies, and never call c.ShouldBindJSON before it. gin has
// no CSRF protection of its own; if the service adds one, keep it off this
// route too, since Svix sends no CSRF token.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/nectarhooks/nectarhooks"
)

func main() {
	addr, err := parseFlags(os.Args[1:], os.Stderr)
	if err != nil {
		os.Exit(2) // the flag package has printed the error and the usage
	}
	h, err := nectarhooks.NewHandler(os.Getenv("NECTAR_WEBHOOK_SECRET"))
	if err != nil {
		log.Fatal(err)
	}
	h.OnDocumentCreated(func(ctx context.Context, e *nectarhooks.DocumentCreated) error {
		log.Printf("document %s for site %s", e.ID, e.Site.Name)
		return nil
	})
	srv := &http.Server{
		Addr:              addr,
		Handler:           newRouter(h),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      20 * time.Second,
	}
	// examples/server shows graceful shutdown; it works the same here.
	log.Printf("listening on %s", addr)
	log.Fatal(srv.ListenAndServe())
}

// parseFlags reads the command line: -addr, the address to listen on
// (default 127.0.0.1:8080, reachable only from this machine; use :8080 to
// listen on every interface), as the other examples do. Errors and the
// usage go to stderr.
func parseFlags(args []string, stderr io.Writer) (addr string, err error) {
	fs := flag.NewFlagSet("gin", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&addr, "addr", "127.0.0.1:8080", "`address` to listen on; use :8080 to listen on every interface")
	if err := fs.Parse(args); err != nil {
		return "", err
	}
	if fs.NArg() > 0 {
		err := fmt.Errorf("unexpected argument %q: the only flag is -addr", fs.Arg(0))
		fmt.Fprintln(fs.Output(), err)
		fs.Usage()
		return "", err
	}
	return addr, nil
}

// newRouter returns the service's engine with the webhook route on it.
func newRouter(h *nectarhooks.Handler) *gin.Engine {
	r := gin.New()
	// Middleware that leaves the body alone is fine on every route.
	r.Use(gin.Recovery())

	// The webhook route, ahead of and apart from the body-binding group.
	r.POST("/webhooks/nectar", gin.WrapH(h))

	// The rest of the service: its JSON API, whose middleware consumes
	// the body. Over the webhook route it would break every signature.
	api := r.Group("/api", bindJSON)
	api.POST("/notes", func(c *gin.Context) {
		c.Status(http.StatusCreated)
	})
	return r
}

// bindJSON stands for body-binding middleware a service may have: it
// decodes the body into the context, leaving c.Request.Body drained.
func bindJSON(c *gin.Context) {
	var body map[string]any
	if err := c.ShouldBindJSON(&body); err != nil {
		c.AbortWithStatusJSON(http.StatusBadRequest, gin.H{"error": "invalid JSON"})
		return
	}
	c.Set("body", body)
	c.Next()
}
