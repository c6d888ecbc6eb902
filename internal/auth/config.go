// Package auth authenticates the requests on Pharos's HTTP and gRPC
// listeners and builds their TLS configuration.
//
// A listener requires an identity on every request (except the kubelet's
// probes, see ExemptPaths) when an identities file is configured
// (auth.config_file) or when its TLS verifies client certificates. An
// identity comes from HTTP basic auth (bcrypt password hashes), a bearer
// token (its SHA-256 is stored) or a verified client certificate; it may
// carry a tenant, which handlers read with IdentityFrom.
//
// Certificates, keys, client CAs and the identities file are re-read when
// their files change (checked at most once a second), so that rotation
// needs no restart.
package auth

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"
)

// Config is the authentication shared by every listener of the process.
type Config struct {
	// ConfigFile is the identities file (YAML, see File). Empty means no
	// password or token identities: listeners are open unless their TLS
	// verifies client certificates.
	ConfigFile string `yaml:"config_file"`
	// AllowUnauthenticated lets a listener bound to a non-loopback address
	// run without authentication; without it such a configuration is
	// refused at start.
	AllowUnauthenticated bool `yaml:"allow_unauthenticated"`
	// Client is the credential this process presents to the listeners of
	// Pharos processes (its own self-scrape, the query fan-out).
	Client ClientConfig `yaml:"client"`
}

// RegisterFlags registers the -auth.* options.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.StringVar(&c.ConfigFile, "auth.config-file", "", "YAML file of the identities accepted on every HTTP and OTLP listener (basic_users, bearer_tokens, client_certs). When set, every request but /ready, /-/ready and /-/healthy needs one; re-read when it changes.")
	f.BoolVar(&c.AllowUnauthenticated, "auth.allow-unauthenticated", false, "Allow listeners on non-loopback addresses without authentication (only behind a network policy, mesh or proxy that authenticates).")
	c.Client.RegisterFlags(f)
}

// Validate reports every invalid field, including the identities file's.
func (c *Config) Validate() error {
	errs := []error{c.Client.Validate()}
	if c.ConfigFile != "" {
		if _, err := LoadFile(c.ConfigFile); err != nil {
			errs = append(errs, fmt.Errorf("auth.config_file: %w", err))
		}
	}
	return errors.Join(errs...)
}

// Client-authentication modes of TLSConfig.ClientAuth.
const (
	ClientAuthNone             = "none"
	ClientAuthRequest          = "request"
	ClientAuthRequire          = "require"
	ClientAuthVerifyIfGiven    = "verify-if-given"
	ClientAuthRequireAndVerify = "require-and-verify"
)

var clientAuthTypes = map[string]tls.ClientAuthType{
	ClientAuthNone:             tls.NoClientCert,
	ClientAuthRequest:          tls.RequestClientCert,
	ClientAuthRequire:          tls.RequireAnyClientCert,
	ClientAuthVerifyIfGiven:    tls.VerifyClientCertIfGiven,
	ClientAuthRequireAndVerify: tls.RequireAndVerifyClientCert,
}

var tlsVersions = map[string]uint16{
	"TLS10": tls.VersionTLS10,
	"TLS11": tls.VersionTLS11,
	"TLS12": tls.VersionTLS12,
	"TLS13": tls.VersionTLS13,
}

// TLSConfig is the server TLS of a family of listeners. TLS is on when
// CertFile is set.
type TLSConfig struct {
	CertFile     string `yaml:"cert_file"`
	KeyFile      string `yaml:"key_file"`
	ClientCAFile string `yaml:"client_ca_file"`
	// ClientAuth is none, request, require, verify-if-given or
	// require-and-verify; empty means require-and-verify when ClientCAFile
	// is set and none otherwise.
	ClientAuth string `yaml:"client_auth"`
	// MinVersion is TLS10, TLS11, TLS12 (default) or TLS13.
	MinVersion string `yaml:"min_version"`
}

// RegisterFlagsWithPrefix registers the options as <prefix>.cert-file and
// so on (prefix "http.tls" or "otlp.tls"); what names the listeners in
// the help text.
func (c *TLSConfig) RegisterFlagsWithPrefix(prefix, what string, f *flag.FlagSet) {
	f.StringVar(&c.CertFile, prefix+".cert-file", "", "PEM certificate (chain) of "+what+"; TLS is on when set. Re-read when it changes.")
	f.StringVar(&c.KeyFile, prefix+".key-file", "", "PEM private key of "+what+".")
	f.StringVar(&c.ClientCAFile, prefix+".client-ca-file", "", "PEM CA bundle that client certificates of "+what+" are verified against (mTLS).")
	f.StringVar(&c.ClientAuth, prefix+".client-auth", "", "Client certificates on "+what+": none, request, require, verify-if-given or require-and-verify (default require-and-verify when a client CA is set, else none).")
	f.StringVar(&c.MinVersion, prefix+".min-version", "TLS12", "Minimum TLS version of "+what+": TLS10, TLS11, TLS12 or TLS13.")
}

// Enabled reports whether the listeners serve TLS.
func (c TLSConfig) Enabled() bool { return c.CertFile != "" }

// clientAuth is the effective client-certificate mode.
func (c TLSConfig) clientAuth() tls.ClientAuthType {
	if c.ClientAuth == "" {
		if c.ClientCAFile != "" {
			return tls.RequireAndVerifyClientCert
		}
		return tls.NoClientCert
	}
	return clientAuthTypes[c.ClientAuth]
}

// VerifiesClients reports whether client certificates, when given, are
// verified against the client CA: they can then serve as identities.
func (c TLSConfig) VerifiesClients() bool {
	ca := c.clientAuth()
	return c.Enabled() && (ca == tls.VerifyClientCertIfGiven || ca == tls.RequireAndVerifyClientCert)
}

// Validate reports every invalid field; prefix is the field path
// ("http.tls").
func (c TLSConfig) Validate(prefix string) error {
	var errs []error
	if _, ok := tlsVersions[c.MinVersion]; !ok && c.MinVersion != "" {
		errs = append(errs, fmt.Errorf("%s.min_version: unknown version %q (want TLS10, TLS11, TLS12 or TLS13)", prefix, c.MinVersion))
	}
	if _, ok := clientAuthTypes[c.ClientAuth]; !ok && c.ClientAuth != "" {
		errs = append(errs, fmt.Errorf("%s.client_auth: unknown mode %q (want none, request, require, verify-if-given or require-and-verify)", prefix, c.ClientAuth))
	}
	if !c.Enabled() {
		if c.KeyFile != "" || c.ClientCAFile != "" {
			errs = append(errs, fmt.Errorf("%s.cert_file: required when key_file or client_ca_file is set", prefix))
		}
		return errors.Join(errs...)
	}
	if c.KeyFile == "" {
		errs = append(errs, fmt.Errorf("%s.key_file: required with cert_file", prefix))
	} else if _, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile); err != nil {
		errs = append(errs, fmt.Errorf("%s.cert_file: %w", prefix, err))
	}
	ca := c.clientAuth()
	if c.ClientCAFile == "" && (ca == tls.VerifyClientCertIfGiven || ca == tls.RequireAndVerifyClientCert) {
		errs = append(errs, fmt.Errorf("%s.client_ca_file: required with client_auth %s", prefix, c.ClientAuth))
	}
	if c.ClientCAFile != "" {
		if _, err := loadCAPool(c.ClientCAFile); err != nil {
			errs = append(errs, fmt.Errorf("%s.client_ca_file: %w", prefix, err))
		}
	}
	return errors.Join(errs...)
}

// ClientConfig is the credential of this process's own calls to Pharos
// listeners. Its TLS is used for every such call when enabled.
type ClientConfig struct {
	BearerTokenFile string          `yaml:"bearer_token_file"`
	Username        string          `yaml:"username"`
	PasswordFile    string          `yaml:"password_file"`
	TLS             ClientTLSConfig `yaml:"tls"`
}

// ClientTLSConfig is the TLS of this process's own calls.
type ClientTLSConfig struct {
	// Enabled makes the calls use https; it is implied when this process's
	// own HTTP listener serves TLS.
	Enabled            bool   `yaml:"enabled"`
	CAFile             string `yaml:"ca_file"`
	CertFile           string `yaml:"cert_file"`
	KeyFile            string `yaml:"key_file"`
	ServerName         string `yaml:"server_name"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
}

// RegisterFlags registers the -auth.client.* options.
func (c *ClientConfig) RegisterFlags(f *flag.FlagSet) {
	f.StringVar(&c.BearerTokenFile, "auth.client.bearer-token-file", "", "File holding the bearer token this process sends to Pharos listeners (self-scrape, query fan-out to aggregators); read at every request.")
	f.StringVar(&c.Username, "auth.client.username", "", "Basic-auth user this process sends to Pharos listeners (with -auth.client.password-file).")
	f.StringVar(&c.PasswordFile, "auth.client.password-file", "", "File holding the basic-auth password of -auth.client.username.")
	f.BoolVar(&c.TLS.Enabled, "auth.client.tls.enabled", false, "Use TLS (https) for this process's calls to Pharos listeners; implied when -http.tls.cert-file is set.")
	f.StringVar(&c.TLS.CAFile, "auth.client.tls.ca-file", "", "PEM CA bundle that the certificates of Pharos listeners are verified against (default: the system roots).")
	f.StringVar(&c.TLS.CertFile, "auth.client.tls.cert-file", "", "PEM client certificate this process presents to Pharos listeners (mTLS).")
	f.StringVar(&c.TLS.KeyFile, "auth.client.tls.key-file", "", "PEM key of -auth.client.tls.cert-file.")
	f.StringVar(&c.TLS.ServerName, "auth.client.tls.server-name", "", "Server name expected in the certificates of Pharos listeners (default: the host dialled).")
	f.BoolVar(&c.TLS.InsecureSkipVerify, "auth.client.tls.insecure-skip-verify", false, "Do not verify the certificates of Pharos listeners (tests only).")
}

// Validate reports every invalid field.
func (c ClientConfig) Validate() error {
	var errs []error
	if c.BearerTokenFile != "" && c.Username != "" {
		errs = append(errs, errors.New("auth.client.username: set either a bearer token file or a basic-auth user, not both"))
	}
	if (c.Username == "") != (c.PasswordFile == "") {
		errs = append(errs, errors.New("auth.client.password_file: username and password_file go together"))
	}
	for _, f := range []struct{ name, path string }{
		{"auth.client.bearer_token_file", c.BearerTokenFile},
		{"auth.client.password_file", c.PasswordFile},
		{"auth.client.tls.ca_file", c.TLS.CAFile},
	} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", f.name, err))
		}
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		errs = append(errs, errors.New("auth.client.tls.key_file: cert_file and key_file go together"))
	} else if c.TLS.CertFile != "" {
		if _, err := tls.LoadX509KeyPair(c.TLS.CertFile, c.TLS.KeyFile); err != nil {
			errs = append(errs, fmt.Errorf("auth.client.tls.cert_file: %w", err))
		}
	}
	return errors.Join(errs...)
}

// IsLoopback reports whether a listen address (host:port) binds only the
// loopback interface. An empty host, 0.0.0.0 or a name other than
// localhost is taken to be reachable from the network.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// CheckExposure refuses a listener on a non-loopback address that has no
// authentication, unless the configuration allows it. field names the
// listen address in the error ("http.listen_address").
func (c *Config) CheckExposure(field, addr string, tlsCfg TLSConfig) error {
	if addr == "" || c.AllowUnauthenticated || IsLoopback(addr) || c.ConfigFile != "" || tlsCfg.clientAuth() == tls.RequireAndVerifyClientCert && tlsCfg.Enabled() {
		return nil
	}
	return fmt.Errorf("%s: %s is reachable from the network but no authentication is configured: set auth.config_file (-auth.config-file) or client certificates (a client_ca_file with client_auth require-and-verify), or accept it consciously with auth.allow_unauthenticated (-auth.allow-unauthenticated)", field, addr)
}
