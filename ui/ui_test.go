package ui

import (
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func serve(t *testing.T, cfg Config, method, target string) *http.Response {
	t.Helper()
	mux := http.NewServeMux()
	Register(mux, cfg)
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(method, target, nil))
	return rec.Result()
}

func TestRoutes(t *testing.T) {
	cfg := Config{Enabled: true}
	for _, tc := range []struct {
		target   string
		status   int
		location string
		ctype    string
	}{
		{"/", http.StatusFound, "/ui/metrics", ""},
		{"/ui/", http.StatusFound, "/ui/metrics", ""},
		{"/ui/metrics", http.StatusOK, "", "text/html"},
		{"/ui/logs?q=%7Bapp%3D%22x%22%7D", http.StatusOK, "", "text/html"},
		{"/ui/cluster", http.StatusOK, "", "text/html"},
		{"/ui/nope", http.StatusNotFound, "", ""},
		{"/ui/assets/js/app.js", http.StatusOK, "", "text/javascript"},
		{"/ui/assets/style.css", http.StatusOK, "", "text/css"},
		{"/ui/assets/", http.StatusNotFound, "", ""},
		{"/ui/assets/js/", http.StatusNotFound, "", ""},
		{"/ui/assets/index.html", http.StatusNotFound, "", ""},
		{"/ui/assets/../ui.go", http.StatusTemporaryRedirect, "/ui/ui.go", ""}, // cleaned by the mux, then no route
		{"/ui/ui.go", http.StatusNotFound, "", ""},
	} {
		t.Run(tc.target, func(t *testing.T) {
			res := serve(t, cfg, http.MethodGet, tc.target)
			defer res.Body.Close()
			require.Equal(t, tc.status, res.StatusCode)
			if tc.location != "" {
				require.Equal(t, tc.location, res.Header.Get("Location"))
			}
			if tc.ctype != "" {
				require.Contains(t, res.Header.Get("Content-Type"), tc.ctype)
				require.Equal(t, ContentSecurityPolicy, res.Header.Get("Content-Security-Policy"))
				require.Equal(t, "nosniff", res.Header.Get("X-Content-Type-Options"))
				require.Equal(t, "DENY", res.Header.Get("X-Frame-Options"))
			}
		})
	}
}

func TestDisabled(t *testing.T) {
	res := serve(t, Config{}, http.MethodGet, "/ui/metrics")
	require.Equal(t, http.StatusNotFound, res.StatusCode)
}

func TestAssetsDir(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "index.html"), []byte("dev shell"), 0o644))
	cfg := Config{Enabled: true, AssetsDir: dir}
	require.NoError(t, cfg.Validate())
	res := serve(t, cfg, http.MethodGet, "/ui/logs")
	body, _ := io.ReadAll(res.Body)
	require.Equal(t, "dev shell", string(body))

	err := (&Config{Enabled: true, AssetsDir: filepath.Join(dir, "missing")}).Validate()
	require.ErrorContains(t, err, "ui.assets_dir")
}

// The CSP forbids inline script and style; this keeps the shell and the
// modules honest before a browser ever sees them, and keeps data out of
// markup parsers.
func TestNoInlineCodeOrMarkupSinks(t *testing.T) {
	sinks := regexp.MustCompile(`\.innerHTML|\.outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function\(|setAttribute\(\s*['"]on|createContextualFragment|DOMParser`)
	inline := regexp.MustCompile(`(?i)<script(?:\s[^>]*)?>\s*[^<\s]|\sstyle=|\son[a-z]+=|javascript:`)
	sub, err := fs.Sub(static, "static")
	require.NoError(t, err)
	n := 0
	require.NoError(t, fs.WalkDir(sub, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(sub, p)
		if err != nil {
			return err
		}
		switch {
		case strings.HasSuffix(p, ".js"):
			n++
			for i, line := range strings.Split(string(b), "\n") {
				trimmed := strings.TrimSpace(line)
				if strings.HasPrefix(trimmed, "//") {
					continue
				}
				require.False(t, sinks.MatchString(line), "%s:%d uses a markup sink: %s", p, i+1, trimmed)
			}
		case strings.HasSuffix(p, ".html"), strings.HasSuffix(p, ".svg"):
			require.False(t, inline.Match(b), "%s has inline script, style or handlers", p)
		}
		return nil
	}))
	require.Positive(t, n)
}
