package bus_test

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"

	"github.com/pharos-obs/pharos/internal/auth"
	"github.com/pharos-obs/pharos/internal/bus"
	"github.com/pharos-obs/pharos/internal/testcerts"
	"github.com/pharos-obs/pharos/internal/testutil"
)

const (
	secPollTimeout  = 15 * time.Second
	secPollInterval = 20 * time.Millisecond
)

// startSecured starts a single embedded node with cfg's security options
// on a random loopback port.
func startSecured(t *testing.T, cfg bus.EmbeddedConfig) *bus.EmbeddedServer {
	t.Helper()
	cfg.ListenAddress = "127.0.0.1:0"
	srv, err := bus.StartEmbedded(cfg, t.TempDir(), testLogger())
	require.NoError(t, err)
	t.Cleanup(srv.Shutdown)
	return srv
}

func clientConfig(url string) bus.Config {
	cfg := bus.DefaultConfig()
	cfg.URL = url
	cfg.Partitions = 1
	cfg.Stream.MaxBytes = 16 << 20
	return cfg
}

// dial connects with cfg (in process when cfg.URL is empty) and closes the
// connection at cleanup.
func dial(t *testing.T, cfg bus.Config, srv *bus.EmbeddedServer) *bus.Conn {
	t.Helper()
	c, err := bus.Connect(cfg, srv, "security-test", testLogger(), nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// requireConnects waits until c is connected and proves the connection
// works end to end with a JetStream request.
func requireConnects(t *testing.T, c *bus.Conn) {
	t.Helper()
	testutil.Poll(t, secPollTimeout, secPollInterval, func() (bool, string) {
		return c.Connected(), fmt.Sprintf("not connected, last error: %v", bus.LastError(c))
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, c.EnsureStreams(ctx, bus.SignalMetrics))
}

// requireRefused waits until a connection attempt of c has failed with an
// error containing want, and checks that c is not connected.
func requireRefused(t *testing.T, c *bus.Conn, want string) {
	t.Helper()
	testutil.Poll(t, secPollTimeout, secPollInterval, func() (bool, string) {
		err := bus.LastError(c)
		return err != nil && strings.Contains(strings.ToLower(err.Error()), want), fmt.Sprintf("last error %v, want one containing %q", err, want)
	})
	require.False(t, c.Connected())
}

// A client verifies the server certificate against -nats.tls.ca-file: the
// handshake succeeds with the CA that issued it and fails with another,
// with the system roots, or when the expected server name differs.
func TestClientTLSVerifiesServer(t *testing.T) {
	dir := t.TempDir()
	ca, other := testcerts.NewCA(t, "nats-ca"), testcerts.NewCA(t, "other-ca")
	cert, key := ca.CertFiles(t, dir, "nats-server")
	srv := startSecured(t, bus.EmbeddedConfig{TLS: auth.TLSConfig{CertFile: cert, KeyFile: key, MinVersion: "TLS12"}})
	caFile, otherFile := ca.CAFile(t, dir), other.CAFile(t, dir)

	t.Run("right CA", func(t *testing.T) {
		cfg := clientConfig(srv.ClientURL())
		cfg.TLS.CAFile = caFile
		c := dial(t, cfg, nil)
		requireConnects(t, c)
		require.True(t, bus.UsesTLS(c))
	})
	t.Run("tls scheme, server name", func(t *testing.T) {
		cfg := clientConfig(strings.Replace(srv.ClientURL(), "nats://127.0.0.1", "tls://localhost", 1))
		cfg.TLS.CAFile = caFile
		cfg.TLS.ServerName = "localhost"
		requireConnects(t, dial(t, cfg, nil))
	})
	t.Run("other CA", func(t *testing.T) {
		cfg := clientConfig(srv.ClientURL())
		cfg.TLS.CAFile = otherFile
		requireRefused(t, dial(t, cfg, nil), "certificate signed by unknown authority")
	})
	t.Run("system roots", func(t *testing.T) {
		// No TLS option: the client follows the server's tls_required and
		// verifies against the system roots, which do not hold the test CA.
		requireRefused(t, dial(t, clientConfig(srv.ClientURL()), nil), "certificate signed by unknown authority")
	})
	t.Run("wrong server name", func(t *testing.T) {
		cfg := clientConfig(srv.ClientURL())
		cfg.TLS.CAFile = caFile
		cfg.TLS.ServerName = "nats.example.org"
		requireRefused(t, dial(t, cfg, nil), "not nats.example.org")
	})
	t.Run("insecure skip verify", func(t *testing.T) {
		cfg := clientConfig(srv.ClientURL())
		cfg.TLS.InsecureSkipVerify = true
		requireConnects(t, dial(t, cfg, nil))
	})
	t.Run("in process", func(t *testing.T) {
		// The all-in-one's own client needs no TLS to its own server.
		requireConnects(t, dial(t, clientConfig(""), srv))
	})
}

// With a client CA, the embedded server requires a client certificate
// issued by it (mTLS).
func TestEmbeddedTLSRequiresClientCert(t *testing.T) {
	dir := t.TempDir()
	ca, other := testcerts.NewCA(t, "nats-ca"), testcerts.NewCA(t, "other-ca")
	cert, key := ca.CertFiles(t, dir, "nats-server")
	caFile := ca.CAFile(t, dir)
	srv := startSecured(t, bus.EmbeddedConfig{TLS: auth.TLSConfig{CertFile: cert, KeyFile: key, ClientCAFile: caFile, MinVersion: "TLS12"}})

	for _, tc := range []struct {
		name       string
		certFrom   *testcerts.CA // nil: no client certificate
		wantRefuse string
	}{
		// How the refusal reads depends on when the client notices it
		// (TLS 1.3 ends the handshake before the server checks the
		// certificate): "certificate required", "bad certificate", a
		// connection closed after the handshake.
		{"no client certificate", nil, "tls"},
		{"certificate from another CA", other, "tls"},
		{"certificate from the client CA", ca, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := clientConfig(srv.ClientURL())
			cfg.TLS.CAFile = caFile
			if tc.certFrom != nil {
				cfg.TLS.CertFile, cfg.TLS.KeyFile = tc.certFrom.CertFiles(t, t.TempDir(), "agent")
			}
			c := dial(t, cfg, nil)
			if tc.wantRefuse == "" {
				requireConnects(t, c)
				return
			}
			requireRefused(t, c, tc.wantRefuse)
		})
	}
	t.Run("in process", func(t *testing.T) {
		requireConnects(t, dial(t, clientConfig(""), srv))
	})
}

func writeSecret(t *testing.T, name, value string) string {
	t.Helper()
	return testcerts.WriteFile(t, t.TempDir(), name, []byte(value+"\n"))
}

// userSeedFile creates an NKey user and returns its public key and a
// file holding its seed.
func userSeedFile(t *testing.T) (string, string) {
	t.Helper()
	kp, err := nkeys.CreateUser()
	require.NoError(t, err)
	pub, err := kp.PublicKey()
	require.NoError(t, err)
	seed, err := kp.Seed()
	require.NoError(t, err)
	return pub, testcerts.WriteFile(t, t.TempDir(), "user.nk", seed)
}

// The embedded server's authorization: a token, or users with passwords
// (bcrypt or plain) and NKeys. Right credentials connect, wrong or missing
// ones are refused; the in-process client always gets in with its own
// credential, which is useless over TCP.
func TestEmbeddedAuth(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("agent-secret"), bcrypt.MinCost)
	require.NoError(t, err)
	nkeyPub, nkeySeed := userSeedFile(t)
	_, strangerSeed := userSeedFile(t)
	usersFile := testcerts.WriteFile(t, t.TempDir(), "users.yaml", []byte(fmt.Sprintf(`users:
  - username: agent
    password: %q
  - username: aggregator
    password: plain-secret
nkeys:
  - %s
`, hash, nkeyPub)))

	servers := map[string]*bus.EmbeddedServer{
		"token": startSecured(t, bus.EmbeddedConfig{Auth: bus.EmbeddedAuthConfig{TokenFile: writeSecret(t, "token", "s3cr3t-token")}}),
		"users": startSecured(t, bus.EmbeddedConfig{Auth: bus.EmbeddedAuthConfig{UsersFile: usersFile}}),
	}
	for _, tc := range []struct {
		name   string
		server string
		auth   bus.ClientAuthConfig
		ok     bool
	}{
		{"token", "token", bus.ClientAuthConfig{TokenFile: writeSecret(t, "token", "s3cr3t-token")}, true},
		{"wrong token", "token", bus.ClientAuthConfig{TokenFile: writeSecret(t, "token", "guess")}, false},
		{"no token", "token", bus.ClientAuthConfig{}, false},
		{"bcrypt password", "users", bus.ClientAuthConfig{Username: "agent", PasswordFile: writeSecret(t, "pw", "agent-secret")}, true},
		{"plain password", "users", bus.ClientAuthConfig{Username: "aggregator", PasswordFile: writeSecret(t, "pw", "plain-secret")}, true},
		{"wrong password", "users", bus.ClientAuthConfig{Username: "agent", PasswordFile: writeSecret(t, "pw", "plain-secret")}, false},
		{"unknown user", "users", bus.ClientAuthConfig{Username: "mallory", PasswordFile: writeSecret(t, "pw", "agent-secret")}, false},
		{"nkey", "users", bus.ClientAuthConfig{NkeySeedFile: nkeySeed}, true},
		{"unknown nkey", "users", bus.ClientAuthConfig{NkeySeedFile: strangerSeed}, false},
		{"nothing", "users", bus.ClientAuthConfig{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := clientConfig(servers[tc.server].ClientURL())
			cfg.ClientAuthConfig = tc.auth
			c := dial(t, cfg, nil)
			if tc.ok {
				requireConnects(t, c)
				return
			}
			requireRefused(t, c, "authorization violation")
		})
	}
	for name, srv := range servers {
		t.Run("in process with "+name, func(t *testing.T) {
			requireConnects(t, dial(t, clientConfig(""), srv))
		})
	}
	t.Run("in-process credential over TCP", func(t *testing.T) {
		nc, err := nats.Connect(servers["users"].ClientURL(), bus.InProcessOptions(servers["users"])...)
		if err == nil {
			nc.Close()
		}
		require.ErrorIs(t, err, nats.ErrAuthorization)
	})
}

// A rotated password file is read at the next connect: an agent follows a
// credential change without a restart.
func TestClientPasswordFileRotation(t *testing.T) {
	usersFile := testcerts.WriteFile(t, t.TempDir(), "users.yaml", []byte("users:\n  - username: agent\n    password: new-secret\n"))
	srv := startSecured(t, bus.EmbeddedConfig{Auth: bus.EmbeddedAuthConfig{UsersFile: usersFile}})
	pwFile := writeSecret(t, "pw", "old-secret")
	cfg := clientConfig(srv.ClientURL())
	cfg.Username, cfg.PasswordFile = "agent", pwFile
	c := dial(t, cfg, nil)
	requireRefused(t, c, "authorization violation")
	testcerts.WriteFile(t, filepath.Dir(pwFile), "pw", []byte("new-secret\n"))
	requireConnects(t, c)
}

// operatorServer runs a nats-server in operator (decentralised JWT) mode
// trusting a fresh operator with one account, and returns its URL and the
// account's signing key pair.
func operatorServer(t *testing.T) (string, nkeys.KeyPair) {
	t.Helper()
	okp, err := nkeys.CreateOperator()
	require.NoError(t, err)
	opub, err := okp.PublicKey()
	require.NoError(t, err)
	ojwt, err := jwt.NewOperatorClaims(opub).Encode(okp)
	require.NoError(t, err)
	oc, err := jwt.DecodeOperatorClaims(ojwt)
	require.NoError(t, err)

	akp, err := nkeys.CreateAccount()
	require.NoError(t, err)
	apub, err := akp.PublicKey()
	require.NoError(t, err)
	ajwt, err := jwt.NewAccountClaims(apub).Encode(okp)
	require.NoError(t, err)

	resolver := &server.MemAccResolver{}
	require.NoError(t, resolver.Store(apub, ajwt))
	srv, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true,
		TrustedOperators: []*jwt.OperatorClaims{oc},
		AccountResolver:  resolver,
	})
	require.NoError(t, err)
	srv.Start()
	t.Cleanup(func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	})
	require.True(t, srv.ReadyForConnections(10*time.Second))
	return srv.ClientURL(), akp
}

// credsFile issues a user signed by account and writes its .creds file.
func credsFile(t *testing.T, account nkeys.KeyPair) string {
	t.Helper()
	ukp, err := nkeys.CreateUser()
	require.NoError(t, err)
	upub, err := ukp.PublicKey()
	require.NoError(t, err)
	ujwt, err := jwt.NewUserClaims(upub).Encode(account)
	require.NoError(t, err)
	seed, err := ukp.Seed()
	require.NoError(t, err)
	creds, err := jwt.FormatUserConfig(ujwt, seed)
	require.NoError(t, err)
	return testcerts.WriteFile(t, t.TempDir(), "user.creds", creds)
}

// A .creds file (user JWT + NKey seed) authenticates to a NATS in
// operator mode; a user of an account the server does not know is
// refused.
func TestClientCredentialsFile(t *testing.T) {
	url, account := operatorServer(t)
	stranger, err := nkeys.CreateAccount()
	require.NoError(t, err)

	cfg := clientConfig(url)
	cfg.CredentialsFile = credsFile(t, account)
	c := dial(t, cfg, nil)
	testutil.Poll(t, secPollTimeout, secPollInterval, func() (bool, string) {
		return c.Connected(), fmt.Sprintf("not connected, last error: %v", bus.LastError(c))
	})

	cfg.CredentialsFile = credsFile(t, stranger)
	requireRefused(t, dial(t, cfg, nil), "authorization violation")
}

// logRecorder is a slog handler that keeps messages, so a test can wait
// for an event that only the server's log reports.
type logRecorder struct {
	mu   sync.Mutex
	msgs []string
}

func (r *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *logRecorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	r.msgs = append(r.msgs, rec.Message)
	r.mu.Unlock()
	return nil
}
func (r *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *logRecorder) WithGroup(string) slog.Handler      { return r }

func (r *logRecorder) find(substr string) (bool, string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range r.msgs {
		if strings.Contains(m, substr) {
			return true, ""
		}
	}
	return false, fmt.Sprintf("no log message contains %q (%d messages)", substr, len(r.msgs))
}

// Routes between embedded cluster nodes use mutual TLS: two nodes with
// certificates from the cluster CA form a cluster (and JetStream over it);
// a node whose certificate comes from another CA is never routed to.
func TestEmbeddedClusterRouteTLS(t *testing.T) {
	dir := t.TempDir()
	ca, other := testcerts.NewCA(t, "route-ca"), testcerts.NewCA(t, "other-ca")
	caFile := ca.CAFile(t, dir)
	routeTLS := func(from *testcerts.CA, name string) bus.RouteTLSConfig {
		cert, key := from.CertFiles(t, dir, name)
		return bus.RouteTLSConfig{CertFile: cert, KeyFile: key, CAFile: caFile}
	}
	node := func(name string, port int, routes []string, tlsCfg bus.RouteTLSConfig) *clusterNode {
		return &clusterNode{dir: t.TempDir(), cfg: bus.EmbeddedConfig{
			ListenAddress:        "127.0.0.1:0",
			ServerName:           name,
			ClusterName:          "pharos-tls",
			ClusterListenAddress: "127.0.0.1:" + strconv.Itoa(port),
			Routes:               routes,
			ClusterTLS:           tlsCfg,
		}}
	}
	p1, p2, p3 := freeTCPPort(t), freeTCPPort(t), freeTCPPort(t)
	all := []string{"127.0.0.1:" + strconv.Itoa(p1), "127.0.0.1:" + strconv.Itoa(p2), "127.0.0.1:" + strconv.Itoa(p3)}
	n1 := node("n1", p1, all, routeTLS(ca, "n1"))
	n2 := node("n2", p2, all, routeTLS(ca, "n2"))
	// The intruder trusts the cluster CA but holds a certificate from
	// another one.
	n3 := node("n3", p3, all, routeTLS(other, "n3"))
	intruderLog := &logRecorder{}
	t.Cleanup(func() {
		for _, n := range []*clusterNode{n1, n2, n3} {
			n.stop()
		}
	})
	n1.start(t)
	n2.start(t)
	testutil.Poll(t, 30*time.Second, 50*time.Millisecond, func() (bool, string) {
		p1, p2 := n1.routePeers(), n2.routePeers()
		return len(p1) == 1 && len(p2) == 1, fmt.Sprintf("n1 routes to %v, n2 to %v", p1, p2)
	})
	for _, n := range []*clusterNode{n1, n2} {
		vz, err := n.nats().Varz(nil)
		require.NoError(t, err)
		require.True(t, vz.Cluster.TLSRequired, "%s: routes without TLS", n.name())
		require.True(t, vz.Cluster.TLSVerify, "%s: route peers not verified", n.name())
	}

	srv, err := bus.StartEmbedded(n3.cfg, n3.dir, slog.New(intruderLog))
	require.NoError(t, err)
	n3.srv = srv
	// n3 dials n1 and n2 (which reject its certificate) and they dial n3
	// (whose certificate they do not trust): it must log a failed
	// handshake, and never hold a route.
	testutil.Poll(t, 30*time.Second, 50*time.Millisecond, func() (bool, string) { return intruderLog.find("TLS route handshake error") })
	require.Zero(t, n3.nats().NumRoutes())
	require.Equal(t, []string{"n2"}, n1.routePeers())
	require.Equal(t, []string{"n1"}, n2.routePeers())
}
