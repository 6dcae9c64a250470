// Command gin mounts a nectarhooks Handler on a gin engine.
//
//	cd examples/frameworks && NECTAR_WEBHOOK_SECRET=whsec_... go run ./gin
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
	"log"
	"net/http"
	"os"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/nectarhooks/nectarhooks"
)

func main() {
	h, err := nectarhooks.NewHandler(os.Getenv("NECTAR_WEBHOOK_SECRET"))
	if err != nil {
		log.Fatal(err)
	}
	h.OnDocumentCreated(func(ctx context.Context, e *nectarhooks.DocumentCreated) error {
		log.Printf("document %s for site %s", e.ID, e.Site.Name)
		return nil
	})
	srv := &http.Server{
		Addr:              "127.0.0.1:8080",
		Handler:           newRouter(h),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      20 * time.Second,
	}
	// examples/server shows graceful shutdown; it works the same here.
	log.Fatal(srv.ListenAndServe())
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
