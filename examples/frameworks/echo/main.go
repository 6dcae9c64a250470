// Command echo mounts a nectarhooks Handler on an echo server.
//
//	cd examples/frameworks && NECTAR_WEBHOOK_SECRET=whsec_... go run ./echo
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
	h, err := nectarhooks.NewHandler(os.Getenv("NECTAR_WEBHOOK_SECRET"))
	if err != nil {
		log.Fatal(err)
	}
	h.OnConnectionCreated(func(ctx context.Context, e *nectarhooks.ConnectionCreated) error {
		log.Printf("connection %s created for %s", e.ID, e.Company.Name)
		return nil
	})
	srv := &http.Server{
		Addr:              "127.0.0.1:8080",
		Handler:           newServer(h),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      20 * time.Second,
	}
	// examples/server shows graceful shutdown; it works the same here.
	log.Fatal(srv.ListenAndServe())
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
