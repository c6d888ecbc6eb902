// Package ui serves the browser dashboard: static assets embedded with
// go:embed (no build step, no CDN) under a strict Content-Security-Policy.
// The pages are plain ES modules that read the same public APIs any other
// client does (Prometheus, Loki, Tempo and the status endpoints), so the
// dashboard has no private back door into the process.
package ui

import (
	"bytes"
	"embed"
	"flag"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path"
	"strings"
	"time"
)

//go:embed static
var static embed.FS

// Pages are the dashboard's routes under /ui/; each serves the same shell,
// whose script renders the page named by the path.
var Pages = []string{"metrics", "logs", "traces", "alerts", "targets", "cluster"}

// ContentSecurityPolicy allows scripts, styles and fetches from this origin
// only: no inline script or style, no eval, no plugins, no framing. Data
// the dashboard shows is set as text, never parsed as markup, and this
// policy is the second line should that rule ever be broken.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// Config is the dashboard's configuration.
type Config struct {
	// Enabled serves the dashboard on the query role's HTTP listener.
	Enabled bool `yaml:"enabled"`
	// AssetsDir serves the dashboard's files from a directory instead of
	// the copy embedded in the binary: for working on the dashboard
	// without rebuilding (point it at ui/static).
	AssetsDir string `yaml:"assets_dir"`
}

// RegisterFlags registers the -ui.* flags.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.BoolVar(&c.Enabled, "ui.enabled", true, "Serve the browser dashboard at / (query role).")
	f.StringVar(&c.AssetsDir, "ui.assets-dir", "", "Serve the dashboard's files from this directory instead of the embedded copy (for dashboard development).")
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if c.AssetsDir == "" {
		return nil
	}
	if _, err := os.Stat(c.AssetsDir + "/index.html"); err != nil {
		return fmt.Errorf("ui.assets_dir: %w", err)
	}
	return nil
}

// Register adds the dashboard's routes to mux: / redirects to the first
// page (as Prometheus's / does to its graph page), /ui/<page> serves the
// shell and /ui/assets/ the files.
func Register(mux *http.ServeMux, cfg Config) {
	if !cfg.Enabled {
		return
	}
	var sub fs.FS
	if cfg.AssetsDir != "" {
		sub = os.DirFS(cfg.AssetsDir)
	} else {
		var err error
		if sub, err = fs.Sub(static, "static"); err != nil {
			panic(err) // the embed pattern guarantees the directory
		}
	}
	started := time.Now()
	serveShell := func(w http.ResponseWriter, r *http.Request) {
		shell, err := fs.ReadFile(sub, "index.html")
		if err != nil {
			http.Error(w, "dashboard: "+err.Error(), http.StatusInternalServerError)
			return
		}
		securityHeaders(w.Header())
		w.Header().Set("Cache-Control", "no-cache")
		http.ServeContent(w, r, "index.html", started, bytes.NewReader(shell))
	}
	mux.Handle("GET /{$}", http.RedirectHandler("/ui/"+Pages[0], http.StatusFound))
	mux.Handle("GET /ui/{$}", http.RedirectHandler("/ui/"+Pages[0], http.StatusFound))
	for _, p := range Pages {
		mux.HandleFunc("GET /ui/"+p, serveShell)
	}
	files := http.StripPrefix("/ui/assets/", http.FileServerFS(sub))
	mux.Handle("GET /ui/assets/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, "/ui/assets/")
		if name == "" || strings.HasSuffix(name, "/") || path.Base(name) == "index.html" {
			// No directory listings, and the shell only at page routes.
			http.NotFound(w, r)
			return
		}
		securityHeaders(w.Header())
		// Assets change with the binary; revalidate rather than cache blind.
		w.Header().Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	}))
}

func securityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", ContentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
}
