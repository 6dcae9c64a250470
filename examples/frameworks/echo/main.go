// Command echo mounts a nectarhooks Handler on an echo server.
//
//	cd examples/frameworks && NECTAR_WEBHOOK_SECRET=whsec_... go run ./echo -addr 127.0.0.1:8080
//
// echo.WrapHandler turns the Handler, an http.Handler, into an echo
// handler. Two of echo's middlewares need care. CSRF protection refuses
// Svix's deliveries, which carry no CSRF token: skip it for the webhook
// route, as below, or apply it only to the groups that serve browsers. And
// the Handler must be the first to read the body, because the signature
// covers the bytes exactly as sent: never c.Bind before it.
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

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/nectarhooks/nectarhooks"
)

// webhookPath is the route Svix delivers to.
const webhookPath = "/webhooks/nectar"

func main() {
	addr, err := parseFlags(os.Args[1:], os.Stderr)
	if err != nil {
		os.Exit(2) // the flag package has printed the error and the usage
	}
	h, err := nectarhooks.NewHandler(os.Getenv("NECTAR_WEBHOOK_SECRET"))
	if err != nil {
		log.Fatal(err)
	}
	h.OnConnectionCreated(func(ctx context.Context, e *nectarhooks.ConnectionCreated) error {
		log.Printf("connection %s created for %s", e.ID, e.Company.Name)
		return nil
	})
	srv := &http.Server{
		Addr:              addr,
		Handler:           newServer(h),
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
	fs := flag.NewFlagSet("echo", flag.ContinueOnError)
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

// newServer returns the service's echo instance with the webhook route on
// it, and CSRF protection on every other route.
func newServer(h *nectarhooks.Handler) *echo.Echo {
	e := echo.New()
	e.HideBanner = true
	e.Use(middleware.Recover())
	e.Use(middleware.CSRFWithConfig(middleware.CSRFConfig{
		// Svix is not a browser and sends no token; the signature is
		// what authenticates its deliveries.
		Skipper: func(c echo.Context) bool { return c.Path() == webhookPath },
	}))

	e.POST(webhookPath, echo.WrapHandler(h))

	// A browser form of the service, which CSRF protection is for.
	e.POST("/account/settings", func(c echo.Context) error {
		var settings struct {
			Email string `json:"email" form:"email"`
		}
		if err := c.Bind(&settings); err != nil {
			return err
		}
		return c.NoContent(http.StatusNoContent)
	})
	return e
}
