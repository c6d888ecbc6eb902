package bus

import (
	"bytes"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"sync"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"go.yaml.in/yaml/v3"

	"github.com/pharos-obs/pharos/internal/auth"
)

// ClientTLSConfig is the TLS of this process's connections to -nats.url.
// TLS is used when any field is set, when a URL has the tls:// scheme, or
// when the server requires it (then with the system roots).
type ClientTLSConfig struct {
	// CAFile is the PEM bundle the server certificate is verified against;
	// empty means the system roots.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are the client certificate, for servers that
	// verify clients (mTLS).
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName is the name expected in the server certificate; empty
	// means the host dialled.
	ServerName string `yaml:"server_name"`
	// InsecureSkipVerify accepts any server certificate: encryption without
	// authentication of the server. For tests only.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

// enabled reports whether any TLS option is set.
func (c ClientTLSConfig) enabled() bool {
	return c.CAFile != "" || c.CertFile != "" || c.KeyFile != "" || c.ServerName != "" || c.InsecureSkipVerify
}

// ClientAuthConfig is how this process authenticates to -nats.url; at most
// one method is set. Secrets stay in their files: a password or token file
// is read at every (re)connect, a credentials or seed file at every
// signature, so rotating them needs no restart.
type ClientAuthConfig struct {
	// CredentialsFile is a NATS .creds file (user JWT and NKey seed), as
	// issued by nsc in operator mode.
	CredentialsFile string `yaml:"credentials_file"`
	// NkeySeedFile holds an NKey user seed (SU...).
	NkeySeedFile string `yaml:"nkey_seed_file"`
	// Username and PasswordFile are a user/password pair.
	Username     string `yaml:"username"`
	PasswordFile string `yaml:"password_file"`
	// TokenFile holds an authorization token.
	TokenFile string `yaml:"token_file"`
}

// RegisterFlags registers the client TLS options under -nats.tls.
func (c *ClientTLSConfig) RegisterFlags(f *flag.FlagSet) {
	f.StringVar(&c.CAFile, "nats.tls.ca-file", "", "PEM CA bundle the NATS server certificate is verified against (default: the system roots). Setting any -nats.tls.* option turns TLS on for -nats.url; the CA is re-read at every (re)connect.")
	f.StringVar(&c.CertFile, "nats.tls.cert-file", "", "PEM client certificate presented to NATS servers that verify clients (mTLS); re-read at every (re)connect.")
	f.StringVar(&c.KeyFile, "nats.tls.key-file", "", "PEM key of -nats.tls.cert-file.")
	f.StringVar(&c.ServerName, "nats.tls.server-name", "", "Name expected in the NATS server certificate (default: the host dialled).")
	f.BoolVar(&c.InsecureSkipVerify, "nats.tls.insecure-skip-verify", false, "Do not verify the NATS server certificate (tests only: anyone on the path can read and change the traffic).")
}

// RegisterFlags registers the client authentication options under -nats.
func (c *ClientAuthConfig) RegisterFlags(f *flag.FlagSet) {
	f.StringVar(&c.CredentialsFile, "nats.credentials-file", "", "NATS credentials file (user JWT + NKey seed, as issued by nsc) to authenticate to -nats.url.")
	f.StringVar(&c.NkeySeedFile, "nats.nkey-seed-file", "", "File holding the NKey user seed (SU...) to authenticate to -nats.url.")
	f.StringVar(&c.Username, "nats.username", "", "User to authenticate to -nats.url as (with -nats.password-file).")
	f.StringVar(&c.PasswordFile, "nats.password-file", "", "File holding the password of -nats.username; re-read at every (re)connect.")
	f.StringVar(&c.TokenFile, "nats.token-file", "", "File holding the token to authenticate to -nats.url; re-read at every (re)connect.")
}

// Validate reports every invalid client TLS option.
func (c ClientTLSConfig) Validate() error {
	var errs []error
	if c.CAFile != "" {
		if _, err := auth.LoadCAPool(c.CAFile); err != nil {
			errs = append(errs, fmt.Errorf("nats.tls.ca_file: %w", err))
		}
	}
	switch {
	case (c.CertFile == "") != (c.KeyFile == ""):
		errs = append(errs, errors.New("nats.tls.key_file: cert_file and key_file go together"))
	case c.CertFile != "":
		if _, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile); err != nil {
			errs = append(errs, fmt.Errorf("nats.tls.cert_file: %w", err))
		}
	}
	return errors.Join(errs...)
}

// Validate reports every invalid client authentication option: more than
// one method, a user without password, unreadable or malformed files.
// Messages name files, never their contents.
func (c ClientAuthConfig) Validate() error {
	var errs []error
	var set []string
	for _, m := range []struct{ name, value string }{
		{"credentials_file", c.CredentialsFile},
		{"nkey_seed_file", c.NkeySeedFile},
		{"username", c.Username},
		{"token_file", c.TokenFile},
	} {
		if m.value != "" {
			set = append(set, m.name)
		}
	}
	if len(set) > 1 {
		errs = append(errs, fmt.Errorf("nats.%s: set at most one of credentials_file, nkey_seed_file, username (with password_file) and token_file, got %s", set[1], strings.Join(set, " and ")))
	}
	if (c.Username == "") != (c.PasswordFile == "") {
		errs = append(errs, errors.New("nats.password_file: username and password_file go together"))
	}
	if c.PasswordFile != "" {
		if _, err := readSecret(c.PasswordFile); err != nil {
			errs = append(errs, fmt.Errorf("nats.password_file: %w", err))
		}
	}
	if c.TokenFile != "" {
		if _, err := readSecret(c.TokenFile); err != nil {
			errs = append(errs, fmt.Errorf("nats.token_file: %w", err))
		}
	}
	if c.CredentialsFile != "" {
		if err := checkCredentials(c.CredentialsFile); err != nil {
			errs = append(errs, fmt.Errorf("nats.credentials_file: %w", err))
		}
	}
	if c.NkeySeedFile != "" {
		if err := checkUserSeed(c.NkeySeedFile); err != nil {
			errs = append(errs, fmt.Errorf("nats.nkey_seed_file: %w", err))
		}
	}
	return errors.Join(errs...)
}

// readSecret reads a one-line secret (password, token), without the
// surrounding whitespace and newline editors leave.
func readSecret(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return s, nil
}

// checkCredentials checks that a .creds file holds a user JWT and a user
// seed, as nats.UserCredentials will read them.
func checkCredentials(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	defer wipe(b)
	if _, err := nkeys.ParseDecoratedJWT(b); err != nil {
		return fmt.Errorf("%s: no user JWT: %w", path, err)
	}
	kp, err := nkeys.ParseDecoratedUserNKey(b)
	if err != nil {
		return fmt.Errorf("%s: no user NKey seed: %w", path, err)
	}
	kp.Wipe()
	return nil
}

// checkUserSeed checks that a file holds an NKey user seed.
func checkUserSeed(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	defer wipe(b)
	kp, err := nkeys.ParseDecoratedNKey(b)
	if err != nil {
		return fmt.Errorf("%s: not an NKey seed: %w", path, err)
	}
	defer kp.Wipe()
	pub, err := kp.PublicKey()
	if err != nil || !nkeys.IsValidPublicUserKey(pub) {
		return fmt.Errorf("%s: not an NKey user seed (SU...)", path)
	}
	return nil
}

func wipe(b []byte) {
	for i := range b {
		b[i] = 'x'
	}
}

// secretFile is a secret read from its file at every use, so that it can
// be rotated without a restart; a read that fails keeps the last value
// (a file being replaced may be missing for a moment).
type secretFile struct {
	path string
	mu   sync.Mutex
	last string
}

func newSecretFile(path string) (*secretFile, error) {
	s := &secretFile{path: path}
	v, err := readSecret(path)
	if err != nil {
		return nil, err
	}
	s.last = v
	return s, nil
}

func (s *secretFile) get() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, err := readSecret(s.path); err == nil {
		s.last = v
	}
	return s.last
}

// clientSecurityOptions are the nats.go options for cfg's TLS and
// authentication to -nats.url.
func clientSecurityOptions(tc ClientTLSConfig, ac ClientAuthConfig) ([]nats.Option, error) {
	var opts []nats.Option
	if tc.enabled() {
		// Secure first: RootCAs and ClientCert add to this configuration.
		// nats.go re-reads both files at every (re)connect.
		opts = append(opts, nats.Secure(&tls.Config{
			MinVersion:         tls.VersionTLS12,
			ServerName:         tc.ServerName,
			InsecureSkipVerify: tc.InsecureSkipVerify, //nolint:gosec // opt-in, documented as tests only
		}))
		if tc.CAFile != "" {
			opts = append(opts, nats.RootCAs(tc.CAFile))
		}
		if tc.CertFile != "" {
			opts = append(opts, nats.ClientCert(tc.CertFile, tc.KeyFile))
		}
	}
	switch {
	case ac.CredentialsFile != "":
		opts = append(opts, nats.UserCredentials(ac.CredentialsFile))
	case ac.NkeySeedFile != "":
		o, err := nats.NkeyOptionFromSeed(ac.NkeySeedFile)
		if err != nil {
			return nil, fmt.Errorf("nats.nkey_seed_file: %w", err)
		}
		opts = append(opts, o)
	case ac.Username != "":
		pw, err := newSecretFile(ac.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("nats.password_file: %w", err)
		}
		user := ac.Username
		opts = append(opts, nats.UserInfoHandler(func() (string, string) { return user, pw.get() }))
	case ac.TokenFile != "":
		tok, err := newSecretFile(ac.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("nats.token_file: %w", err)
		}
		opts = append(opts, nats.TokenHandler(tok.get))
	}
	return opts, nil
}

// RouteTLSConfig is the TLS of the routes between the nodes of an
// embedded NATS cluster. A route carries everything, so both ends verify
// each other against CAFile: a node without a certificate from that CA
// cannot join.
type RouteTLSConfig struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	CAFile   string `yaml:"ca_file"`
	// ServerName is the name expected in the other nodes' certificates
	// when this node dials them; empty means the host of the route URL.
	ServerName string `yaml:"server_name"`
}

// RegisterFlags registers the route TLS options under
// -nats.embedded.cluster.tls.
func (c *RouteTLSConfig) RegisterFlags(f *flag.FlagSet) {
	f.StringVar(&c.CertFile, "nats.embedded.cluster.tls.cert-file", "", "PEM certificate of this NATS node for the routes to the other nodes (client and server use); route TLS is on when set. Re-read when it changes.")
	f.StringVar(&c.KeyFile, "nats.embedded.cluster.tls.key-file", "", "PEM key of -nats.embedded.cluster.tls.cert-file.")
	f.StringVar(&c.CAFile, "nats.embedded.cluster.tls.ca-file", "", "PEM CA bundle the other nodes' route certificates are verified against, both ways. Required with -nats.embedded.cluster.tls.cert-file.")
	f.StringVar(&c.ServerName, "nats.embedded.cluster.tls.server-name", "", "Name expected in the other nodes' route certificates when dialling them (default: the host of the route URL).")
}

// Enabled reports whether routes use TLS.
func (c RouteTLSConfig) Enabled() bool { return c.CertFile != "" }

// Validate reports every invalid route TLS option.
func (c RouteTLSConfig) Validate() error {
	if !c.Enabled() {
		if c.KeyFile != "" || c.CAFile != "" || c.ServerName != "" {
			return errors.New("nats.embedded.cluster_tls.cert_file: required when another nats.embedded.cluster_tls option is set")
		}
		return nil
	}
	var errs []error
	if c.CAFile == "" {
		errs = append(errs, errors.New("nats.embedded.cluster_tls.ca_file: required with cert_file (the nodes verify each other)"))
	}
	if err := c.serverTLS().Validate("nats.embedded.cluster_tls"); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// serverTLS is the accepting side of a route: mutual TLS against CAFile.
func (c RouteTLSConfig) serverTLS() auth.TLSConfig {
	ct := auth.TLSConfig{CertFile: c.CertFile, KeyFile: c.KeyFile, ClientCAFile: c.CAFile, MinVersion: "TLS12"}
	if c.CAFile != "" {
		ct.ClientAuth = auth.ClientAuthRequireAndVerify
	}
	return ct
}

// tlsConfig builds the one configuration nats-server uses for routes it
// accepts (server side) and dials (client side). The certificate and key
// are re-read when they change; the CA that dialled nodes are verified
// against is read once.
func (c RouteTLSConfig) tlsConfig() (*tls.Config, error) {
	cfg, err := auth.ServerTLS(c.serverTLS())
	if err != nil {
		return nil, err
	}
	if cfg.RootCAs, err = auth.LoadCAPool(c.CAFile); err != nil {
		return nil, err
	}
	cfg.ServerName = c.ServerName
	getCert := cfg.GetCertificate
	cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return getCert(nil) }
	return cfg, nil
}

// EmbeddedAuthConfig is the client authorization of the embedded server:
// a token, or users (passwords and NKeys) from a file. Empty means no
// authorization beyond what the client TLS (-nats.embedded.tls) verifies.
type EmbeddedAuthConfig struct {
	// TokenFile holds the token every client must present.
	TokenFile string `yaml:"token_file"`
	// UsersFile is a YAML file of users, see UsersFile.
	UsersFile string `yaml:"users_file"`
}

// RegisterFlags registers the options under -nats.embedded.auth.
func (c *EmbeddedAuthConfig) RegisterFlags(f *flag.FlagSet) {
	f.StringVar(&c.TokenFile, "nats.embedded.auth.token-file", "", "File holding the token clients of the embedded NATS server must present (agents and aggregators: -nats.token-file). Read at start.")
	f.StringVar(&c.UsersFile, "nats.embedded.auth.users-file", "", `YAML file of the users the embedded NATS server accepts: "users: [{username, password}]" (password preferably a bcrypt hash) and "nkeys: [U...]" (public NKeys of users with -nats.nkey-seed-file). Read at start.`)
}

// Enabled reports whether clients must authenticate.
func (c EmbeddedAuthConfig) Enabled() bool { return c.TokenFile != "" || c.UsersFile != "" }

// Validate reports every invalid option.
func (c EmbeddedAuthConfig) Validate() error {
	var errs []error
	if c.TokenFile != "" && c.UsersFile != "" {
		errs = append(errs, errors.New("nats.embedded.auth.users_file: set either token_file or users_file, not both"))
	}
	if c.TokenFile != "" {
		if _, err := readSecret(c.TokenFile); err != nil {
			errs = append(errs, fmt.Errorf("nats.embedded.auth.token_file: %w", err))
		}
	}
	if c.UsersFile != "" {
		if _, err := LoadUsersFile(c.UsersFile); err != nil {
			errs = append(errs, fmt.Errorf("nats.embedded.auth.users_file: %w", err))
		}
	}
	return errors.Join(errs...)
}

// UsersFile is the users file of the embedded server. Every user may
// publish and subscribe to everything: they are Pharos processes.
type UsersFile struct {
	Users []UserEntry `yaml:"users"`
	// NKeys are public user NKeys (U...); the clients hold the seeds.
	NKeys []string `yaml:"nkeys"`
}

// UserEntry is a user with a password; a password starting with "$2" is a
// bcrypt hash (recommended: the file then holds no usable secret).
type UserEntry struct {
	Username string `yaml:"username"`
	Password string `yaml:"password"`
}

// internalUserPrefix is reserved for the in-process client's own
// identity.
const internalUserPrefix = "pharos-internal"

// yamlQuoted matches the values yaml quotes in its errors: they may be
// passwords.
var yamlQuoted = regexp.MustCompile("`[^`]*`")

// LoadUsersFile reads and checks a users file. Errors name entries by
// index and never quote the file's values.
func LoadUsersFile(path string) (*UsersFile, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var f UsersFile
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: %s", path, yamlQuoted.ReplaceAllString(err.Error(), "(value hidden)"))
	}
	var errs []error
	seen := map[string]bool{}
	for i, u := range f.Users {
		switch {
		case u.Username == "":
			errs = append(errs, fmt.Errorf("users[%d].username: must not be empty", i))
		case strings.HasPrefix(u.Username, internalUserPrefix):
			errs = append(errs, fmt.Errorf("users[%d].username: names starting with %q are reserved", i, internalUserPrefix))
		case seen[u.Username]:
			errs = append(errs, fmt.Errorf("users[%d].username: %q is listed twice", i, u.Username))
		}
		seen[u.Username] = true
		if u.Password == "" {
			errs = append(errs, fmt.Errorf("users[%d].password: must not be empty", i))
		}
	}
	for i, k := range f.NKeys {
		if !nkeys.IsValidPublicUserKey(k) {
			errs = append(errs, fmt.Errorf("nkeys[%d]: not a public user NKey (U...)", i))
		}
	}
	if len(f.Users) == 0 && len(f.NKeys) == 0 {
		errs = append(errs, errors.New("no users and no nkeys: no client could connect"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &f, nil
}

// tlsTimeout is how long, in seconds, nats-server gives a TLS handshake
// (its default; options built in code must set it themselves).
const tlsTimeout = 2.0

// applySecurity adds cfg's TLS and authorization to the server options and
// returns the nats.go options of the process's own in-process client. That
// client never does TLS (in-process connections need none) but must
// authenticate like any other: with the token, or, with a users file, as
// an NKey user generated at start that exists only in this process's
// memory and that the server accepts only in process.
func applySecurity(cfg EmbeddedConfig, opts *server.Options) ([]nats.Option, error) {
	if cfg.TLS.Enabled() {
		tc, err := auth.ServerTLS(cfg.TLS)
		if err != nil {
			return nil, fmt.Errorf("nats.embedded.tls: %w", err)
		}
		opts.TLSConfig = tc
		// Only announced in INFO; the handshake enforces ClientAuth.
		opts.TLSVerify = tc.ClientAuth == tls.RequireAndVerifyClientCert
		opts.TLSTimeout = tlsTimeout
	}
	if cfg.ClusterTLS.Enabled() {
		tc, err := cfg.ClusterTLS.tlsConfig()
		if err != nil {
			return nil, fmt.Errorf("nats.embedded.cluster_tls: %w", err)
		}
		opts.Cluster.TLSConfig = tc
		opts.Cluster.TLSTimeout = tlsTimeout
	}
	switch {
	case cfg.Auth.TokenFile != "":
		tok, err := readSecret(cfg.Auth.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("nats.embedded.auth.token_file: %w", err)
		}
		opts.Authorization = tok
		return []nats.Option{nats.Token(tok)}, nil
	case cfg.Auth.UsersFile != "":
		uf, err := LoadUsersFile(cfg.Auth.UsersFile)
		if err != nil {
			return nil, fmt.Errorf("nats.embedded.auth.users_file: %w", err)
		}
		for _, u := range uf.Users {
			opts.Users = append(opts.Users, &server.User{Username: u.Username, Password: u.Password})
		}
		for _, k := range uf.NKeys {
			opts.Nkeys = append(opts.Nkeys, &server.NkeyUser{Nkey: k})
		}
		kp, err := nkeys.CreateUser()
		if err != nil {
			return nil, fmt.Errorf("in-process nkey: %w", err)
		}
		pub, err := kp.PublicKey()
		if err != nil {
			return nil, fmt.Errorf("in-process nkey: %w", err)
		}
		opts.Nkeys = append(opts.Nkeys, &server.NkeyUser{
			Nkey:                   pub,
			AllowedConnectionTypes: map[string]struct{}{jwt.ConnectionTypeInProcess: {}},
		})
		return []nats.Option{nats.Nkey(pub, kp.Sign)}, nil
	}
	return nil, nil
}
