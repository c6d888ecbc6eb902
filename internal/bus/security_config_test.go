package bus_test

import (
	"path/filepath"
	"testing"

	"github.com/nats-io/nkeys"
	"github.com/stretchr/testify/require"

	"github.com/pharos-obs/pharos/internal/auth"
	"github.com/pharos-obs/pharos/internal/bus"
	"github.com/pharos-obs/pharos/internal/testcerts"
)

// Invalid security options fail validation with the field's path; no
// message quotes a secret.
func TestSecurityConfigValidate(t *testing.T) {
	dir := t.TempDir()
	ca := testcerts.NewCA(t, "ca")
	caFile := ca.CAFile(t, dir)
	cert, key := ca.CertFiles(t, dir, "node")
	secret := testcerts.WriteFile(t, dir, "secret", []byte("hunter2\n"))
	empty := testcerts.WriteFile(t, dir, "empty", []byte("\n"))
	missing := filepath.Join(dir, "missing")
	kp, err := nkeys.CreateUser()
	require.NoError(t, err)
	seed, err := kp.Seed()
	require.NoError(t, err)
	seedFile := testcerts.WriteFile(t, dir, "user.nk", seed)
	accountKP, err := nkeys.CreateAccount()
	require.NoError(t, err)
	accountSeed, err := accountKP.Seed()
	require.NoError(t, err)
	accountSeedFile := testcerts.WriteFile(t, dir, "account.nk", accountSeed)
	users := func(body string) string { return testcerts.WriteFile(t, t.TempDir(), "users.yaml", []byte(body)) }

	for _, tc := range []struct {
		name   string
		modify func(*bus.Config)
		want   []string // substrings; none means valid
	}{
		{"defaults", func(*bus.Config) {}, nil},
		{"client tls", func(c *bus.Config) {
			c.TLS = bus.ClientTLSConfig{CAFile: caFile, CertFile: cert, KeyFile: key, ServerName: "nats"}
		}, nil},
		{"client auth methods", func(c *bus.Config) {
			c.TokenFile, c.CredentialsFile = secret, secret
		}, []string{"nats.token_file: set at most one of", "credentials_file and token_file", "nats.credentials_file:"}},
		{"username without password", func(c *bus.Config) { c.Username = "agent" }, []string{"nats.password_file: username and password_file go together"}},
		{"missing files", func(c *bus.Config) {
			c.TLS.CAFile, c.TokenFile = missing, missing
		}, []string{"nats.tls.ca_file:", "nats.token_file:"}},
		{"empty token", func(c *bus.Config) { c.TokenFile = empty }, []string{"nats.token_file:", "is empty"}},
		{"key without cert", func(c *bus.Config) { c.TLS.KeyFile = key }, []string{"nats.tls.key_file: cert_file and key_file go together"}},
		{"ca not pem", func(c *bus.Config) { c.TLS.CAFile = secret }, []string{"nats.tls.ca_file:", "no PEM certificate"}},
		{"nkey seed", func(c *bus.Config) { c.NkeySeedFile = seedFile }, nil},
		{"account seed is no user seed", func(c *bus.Config) { c.NkeySeedFile = accountSeedFile }, []string{"nats.nkey_seed_file:", "not an NKey user seed"}},
		{"embedded tls", func(c *bus.Config) {
			c.Embedded.TLS = auth.TLSConfig{CertFile: cert, KeyFile: key, ClientCAFile: caFile}
		}, nil},
		{"embedded tls without key", func(c *bus.Config) { c.Embedded.TLS.CertFile = cert }, []string{"nats.embedded.tls.key_file"}},
		{"route tls without ca", func(c *bus.Config) {
			c.Embedded.ServerName, c.Embedded.ClusterListenAddress, c.Embedded.Routes = "n1", "127.0.0.1:0", []string{"127.0.0.1:6222"}
			c.Embedded.ClusterTLS = bus.RouteTLSConfig{CertFile: cert, KeyFile: key}
		}, []string{"nats.embedded.cluster_tls.ca_file: required"}},
		{"route tls without cluster", func(c *bus.Config) {
			c.Embedded.ClusterTLS = bus.RouteTLSConfig{CertFile: cert, KeyFile: key, CAFile: caFile}
		}, []string{"nats.embedded.cluster_tls.cert_file: set without nats.embedded.cluster_listen_address"}},
		{"route ca without cert", func(c *bus.Config) { c.Embedded.ClusterTLS.CAFile = caFile }, []string{"nats.embedded.cluster_tls.cert_file: required"}},
		{"token and users", func(c *bus.Config) {
			c.Embedded.Auth = bus.EmbeddedAuthConfig{TokenFile: secret, UsersFile: users("users: [{username: a, password: b}]")}
		}, []string{"nats.embedded.auth.users_file: set either token_file or users_file"}},
		{"users file", func(c *bus.Config) {
			pub, _ := kp.PublicKey()
			c.Embedded.Auth.UsersFile = users("users:\n  - {username: agent, password: x}\nnkeys: [" + pub + "]\n")
		}, nil},
		{"bad users file", func(c *bus.Config) {
			c.Embedded.Auth.UsersFile = users("users:\n  - {username: '', password: hunter2}\n  - {username: pharos-internal-x, password: ''}\nnkeys: [SUAAA]\n")
		}, []string{"users[0].username: must not be empty", "users[1].username: names starting with", "users[1].password: must not be empty", "nkeys[0]: not a public user NKey"}},
		{"users file type error", func(c *bus.Config) {
			c.Embedded.Auth.UsersFile = users("users: hunter2\n")
		}, []string{"nats.embedded.auth.users_file:", "(value hidden)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := bus.DefaultConfig()
			tc.modify(&cfg)
			err := cfg.Validate()
			if len(tc.want) == 0 {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			for _, w := range tc.want {
				require.ErrorContains(t, err, w)
			}
			require.NotContains(t, err.Error(), "hunter2")
			require.NotContains(t, err.Error(), string(seed))
		})
	}
}
