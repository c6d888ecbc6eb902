package app

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/grafana/dskit/services"

	"github.com/pharos-obs/pharos/collector/receive/otlp"
	"github.com/pharos-obs/pharos/collector/scrape"
	"github.com/pharos-obs/pharos/internal/auth"
	"github.com/pharos-obs/pharos/query"
)

// Listener names: the listener label of pharos_http_auth_failures_total.
const (
	listenerHTTP  = "http"
	listenerAdmin = "admin"
)

// authState is the process's authentication: built by the first module
// that needs it (the admin listener starts before the HTTP server).
type authState struct {
	authn *auth.Authenticator
	// internalRT carries this process's credential to Pharos listeners.
	internalRT http.RoundTripper
}

// checkExposure refuses listeners reachable from the network without
// authentication (unless auth.allow_unauthenticated).
func (c *Config) checkExposure() error {
	errs := []error{
		c.Auth.CheckExposure("http.listen_address", c.HTTP.ListenAddress, c.HTTP.TLS),
		c.Auth.CheckExposure("http.admin_listen_address", c.HTTP.AdminListenAddress, c.HTTP.TLS),
	}
	if c.has(TargetAgent) {
		errs = append(errs,
			c.Auth.CheckExposure("otlp.grpc.listen_address", c.OTLP.GRPC.ListenAddress, c.otlpTLS()),
			c.Auth.CheckExposure("otlp.http.listen_address", c.OTLP.HTTP.ListenAddress, c.otlpTLS()))
	}
	return errors.Join(errs...)
}

// otlpTLS is the OTLP listeners' TLS: their own when otlp.tls.cert_file
// is set, else the HTTP listener's, so that turning TLS on for the HTTP
// port leaves no listener in clear text by mistake.
func (c *Config) otlpTLS() auth.TLSConfig {
	if c.OTLP.TLS.Enabled() {
		return c.OTLP.TLS
	}
	return c.HTTP.TLS
}

func (a *App) authenticator() (*auth.Authenticator, error) {
	if a.authn != nil {
		return a.authn, nil
	}
	authn, err := auth.New(a.cfg.Auth, a.logger.With("component", "auth"), a.reg)
	if err != nil {
		return nil, fmt.Errorf("auth.config_file: %w", err)
	}
	client, err := a.cfg.Auth.Client.HTTPClient("pharos-internal", a.cfg.HTTP.TLS, 0)
	if err != nil {
		return nil, fmt.Errorf("auth.client: %w", err)
	}
	a.authn, a.internalRT = authn, client.Transport
	return authn, nil
}

// secureServer puts the HTTP listener behind TLS and authentication.
func (a *App) secureServer() error {
	authn, err := a.authenticator()
	if err != nil {
		return err
	}
	tlsCfg, err := auth.ServerTLS(a.cfg.HTTP.TLS, "http/1.1")
	if err != nil {
		return fmt.Errorf("http.tls: %w", err)
	}
	a.server.secure(tlsCfg, authn.Listener(listenerHTTP, a.cfg.HTTP.TLS))
	return nil
}

// newAdmin is the admin listener (reload, pprof), with the HTTP
// listener's TLS and authentication.
func (a *App) newAdmin() (services.Service, error) {
	authn, err := a.authenticator()
	if err != nil {
		return nil, err
	}
	tlsCfg, err := auth.ServerTLS(a.cfg.HTTP.TLS, "http/1.1")
	if err != nil {
		return nil, fmt.Errorf("http.tls: %w", err)
	}
	return newAdminServer(a.cfg.HTTP.AdminListenAddress, tlsCfg, authn.Listener(listenerAdmin, a.cfg.HTTP.TLS), a.handleReload, a.logger.With("component", "admin")), nil
}

// otlpConfig is the OTLP receiver's configuration with its effective TLS,
// and its authentication.
func (a *App) otlpConfig() (otlp.Config, otlp.Option) {
	cfg := a.cfg.OTLP
	cfg.TLS = a.cfg.otlpTLS()
	return cfg, otlp.WithAuth(a.authn)
}

// internalClient is an HTTP client for this process's calls to Pharos
// listeners (query fan-out, status fan-out, rules fan-out): it carries
// -auth.client.* and speaks TLS when the cluster does.
func (a *App) internalClient(timeout time.Duration) *http.Client {
	return &http.Client{Transport: a.internalRT, Timeout: timeout}
}

// remoteOption makes the metrics fan-out use the internal credential.
func (a *App) remoteOption() query.RemoteOption {
	return query.WithHTTPClientConfig(a.cfg.Auth.Client.Scheme(a.cfg.HTTP.TLS), a.cfg.Auth.Client.HTTPClientConfig())
}

// selfScrapeOption makes the default self-scrape use the internal
// credential against this process's own listener.
func (a *App) selfScrapeOption() scrape.Option {
	return scrape.WithSelfClient(a.cfg.Auth.Client.Scheme(a.cfg.HTTP.TLS), a.cfg.Auth.Client.HTTPClientConfig())
}
