package auth

import (
	"net/http"
	"time"

	config_util "github.com/prometheus/common/config"
)

// UsesTLS reports whether this process's calls to Pharos listeners use
// https: when asked to, or when its own HTTP listener serves TLS (a
// cluster is configured alike).
func (c ClientConfig) UsesTLS(own TLSConfig) bool { return c.TLS.Enabled || own.Enabled() }

// Scheme is "https" or "http", as UsesTLS.
func (c ClientConfig) Scheme(own TLSConfig) string {
	if c.UsesTLS(own) {
		return "https"
	}
	return "http"
}

// HTTPClientConfig is the credential as Prometheus's client configuration
// (as used by scrape configs and the remote-read client). Secrets stay in
// their files, which are read at every request.
func (c ClientConfig) HTTPClientConfig() config_util.HTTPClientConfig {
	hc := config_util.DefaultHTTPClientConfig
	switch {
	case c.BearerTokenFile != "":
		hc.Authorization = &config_util.Authorization{Type: "Bearer", CredentialsFile: c.BearerTokenFile}
	case c.Username != "":
		hc.BasicAuth = &config_util.BasicAuth{Username: c.Username, PasswordFile: c.PasswordFile}
	}
	hc.TLSConfig = config_util.TLSConfig{
		CAFile:             c.TLS.CAFile,
		CertFile:           c.TLS.CertFile,
		KeyFile:            c.TLS.KeyFile,
		ServerName:         c.TLS.ServerName,
		InsecureSkipVerify: c.TLS.InsecureSkipVerify,
	}
	return hc
}

// HTTPClient is an *http.Client for this process's calls to Pharos
// listeners: it sends the credential and, when UsesTLS, turns the
// http:// URLs that Pharos builds for its peers into https:// ones, so
// that callers need not know whether the cluster runs TLS.
func (c ClientConfig) HTTPClient(name string, own TLSConfig, timeout time.Duration) (*http.Client, error) {
	rt, err := config_util.NewRoundTripperFromConfig(c.HTTPClientConfig(), name)
	if err != nil {
		return nil, err
	}
	if c.UsesTLS(own) {
		rt = upgradeTransport{rt}
	}
	return &http.Client{Transport: rt, Timeout: timeout}, nil
}

// upgradeTransport sends http:// requests as https://.
type upgradeTransport struct{ next http.RoundTripper }

func (t upgradeTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Scheme == "http" {
		r = r.Clone(r.Context())
		r.URL.Scheme = "https"
	}
	return t.next.RoundTrip(r)
}
