package auth

import (
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

// identitiesFile writes an identities file: user alice (password
// "secret", tenant team-a), tokens "t0ken" (by hash) and "file-token" (by
// file), and the client certificate with CN "agent-1".
func identitiesFile(t *testing.T, dir string) string {
	t.Helper()
	tokFile := writeFile(t, dir, "token", []byte("file-token\n"))
	return writeFile(t, dir, "identities.yaml", fmt.Appendf(nil, `
basic_users:
  - username: alice
    password_hash: %q
    tenant: team-a
bearer_tokens:
  - name: ci
    token_sha256: %s
    tenant: team-b
  - name: from-file
    token_file: %s
client_certs:
  - name: agent
    common_name: agent-1
    tenant: team-c
  - san: spiffe-less.example
`, bcryptHash(t, "secret"), sha256Hex("t0ken"), tokFile))
}

// echo answers with the request's identity.
var echo = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	id, ok := IdentityFrom(r.Context())
	fmt.Fprintf(w, "%v %s %s %s", ok, id.Method, id.Name, id.Tenant)
})

func TestMiddleware(t *testing.T) {
	dir := t.TempDir()
	ca, clientCA := newTestCA(t, "server-ca"), newTestCA(t, "client-ca")
	tlsCfg := serverFiles(t, dir, ca, clientCA)
	tlsCfg.ClientAuth = ClientAuthVerifyIfGiven // so that the other methods can be tried too
	reg := prometheus.NewRegistry()
	authn, err := New(Config{ConfigFile: identitiesFile(t, dir)}, slog.New(slog.DiscardHandler), reg)
	require.NoError(t, err)
	l := authn.Listener("http", tlsCfg)
	require.True(t, l.Enabled())

	srvTLS, err := ServerTLS(tlsCfg, "http/1.1")
	require.NoError(t, err)
	srv := httptest.NewUnstartedServer(l.Wrap(echo))
	srv.TLS = srvTLS
	srv.StartTLS()
	t.Cleanup(srv.Close)

	type req struct {
		path       string
		user, pass string
		bearer     string
		authz      string
		cert       string // CN of a client certificate from clientCA
	}
	for _, tc := range []struct {
		name   string
		req    req
		code   int
		body   string
		reason string
	}{
		{"no credentials", req{path: "/api/v1/query"}, 401, "", ReasonMissing},
		{"metrics protected", req{path: "/metrics"}, 401, "", ReasonMissing},
		{"wrong password", req{path: "/x", user: "alice", pass: "nope"}, 401, "", ReasonInvalid},
		{"unknown user", req{path: "/x", user: "bob", pass: "secret"}, 401, "", ReasonInvalid},
		{"right basic", req{path: "/x", user: "alice", pass: "secret"}, 200, "true basic alice team-a", ""},
		{"right basic again (cached)", req{path: "/x", user: "alice", pass: "secret"}, 200, "true basic alice team-a", ""},
		{"right bearer", req{path: "/x", bearer: "t0ken"}, 200, "true bearer ci team-b", ""},
		{"bearer from a token file", req{path: "/x", bearer: "file-token"}, 200, "true bearer from-file ", ""},
		{"wrong bearer", req{path: "/x", bearer: "t0ken2"}, 401, "", ReasonInvalid},
		{"malformed basic", req{path: "/x", authz: "Basic !!!"}, 401, "", ReasonMalformed},
		{"unknown scheme", req{path: "/x", authz: "Digest x"}, 401, "", ReasonBadScheme},
		{"mTLS identity", req{path: "/x", cert: "agent-1"}, 200, "true mtls agent team-c", ""},
		{"unlisted certificate", req{path: "/x", cert: "stranger"}, 401, "", ReasonUnknownCert},
		{"a wrong header is not passed over for a good certificate", req{path: "/x", cert: "agent-1", bearer: "bad"}, 401, "", ReasonInvalid},
		{"readiness probe exempt", req{path: "/ready"}, 200, "false   ", ""},
		{"old readiness path exempt", req{path: "/-/ready"}, 200, "false   ", ""},
		{"liveness probe exempt", req{path: "/-/healthy"}, 200, "false   ", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cc := &tls.Config{RootCAs: ca.Pool()}
			if tc.req.cert != "" {
				cc.Certificates = []tls.Certificate{clientCA.Pair(t, tc.req.cert)}
			}
			client := &http.Client{Transport: &http.Transport{TLSClientConfig: cc, DisableKeepAlives: true}}
			r, err := http.NewRequest(http.MethodGet, srv.URL+tc.req.path, nil)
			require.NoError(t, err)
			switch {
			case tc.req.user != "":
				r.SetBasicAuth(tc.req.user, tc.req.pass)
			case tc.req.bearer != "":
				r.Header.Set("Authorization", "Bearer "+tc.req.bearer)
			case tc.req.authz != "":
				r.Header.Set("Authorization", tc.req.authz)
			}
			before := testutil.ToFloat64(authn.failures.WithLabelValues("http", tc.reason))
			resp, err := client.Do(r)
			require.NoError(t, err)
			body, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			require.Equal(t, tc.code, resp.StatusCode, "%s", body)
			if tc.code == 200 {
				require.Equal(t, tc.body, string(body))
				return
			}
			require.Equal(t, []string{`Basic realm="pharos", charset="UTF-8"`, `Bearer realm="pharos"`}, resp.Header.Values("WWW-Authenticate"))
			require.Equal(t, before+1, testutil.ToFloat64(authn.failures.WithLabelValues("http", tc.reason)))
		})
	}
}

// A listener whose TLS verifies client certificates needs no identities
// file: the client CA decides, and the certificate names the identity.
func TestMiddlewareCertificatesOnly(t *testing.T) {
	dir := t.TempDir()
	ca, clientCA := newTestCA(t, "server-ca"), newTestCA(t, "client-ca")
	tlsCfg := serverFiles(t, dir, ca, clientCA)
	tlsCfg.ClientAuth = ClientAuthVerifyIfGiven
	authn, err := New(Config{}, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	require.NoError(t, err)
	l := authn.Listener("http", tlsCfg)
	require.True(t, l.Enabled())
	require.False(t, authn.Listener("http", TLSConfig{}).Enabled(), "no identities, no client CA: open")

	srvTLS, err := ServerTLS(tlsCfg, "http/1.1")
	require.NoError(t, err)
	srv := httptest.NewUnstartedServer(l.Wrap(echo))
	srv.TLS = srvTLS
	srv.StartTLS()
	t.Cleanup(srv.Close)
	get := func(cert bool) (int, string) {
		t.Helper()
		cc := &tls.Config{RootCAs: ca.Pool()}
		if cert {
			cc.Certificates = []tls.Certificate{clientCA.Pair(t, "anyone")}
		}
		client := &http.Client{Transport: &http.Transport{TLSClientConfig: cc, DisableKeepAlives: true}}
		resp, err := client.Get(srv.URL + "/x")
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, _ := get(false)
	require.Equal(t, http.StatusUnauthorized, code)
	code, body := get(true)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "true mtls anyone ", body)
}

// A nil authenticator or a listener without authentication passes
// requests through untouched.
func TestMiddlewareDisabled(t *testing.T) {
	var authn *Authenticator
	h := authn.Listener("http", TLSConfig{}).Wrap(echo)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/x", nil))
	require.Equal(t, http.StatusOK, rec.Code)
	require.Equal(t, "false   ", rec.Body.String())
}

// The identities file is re-read when it changes.
func TestIdentitiesReload(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "identities.yaml", fmt.Appendf(nil, "bearer_tokens:\n  - {name: old, token_sha256: %s}\n", sha256Hex("old")))
	authn, err := New(Config{ConfigFile: path}, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	require.NoError(t, err)
	now := authn.ids.now()
	authn.ids.now = func() time.Time { return now }
	l := authn.Listener("http", TLSConfig{})
	_, reason := l.authenticate("Bearer old", nil)
	require.Empty(t, reason)

	require.NoError(t, os.WriteFile(path, fmt.Appendf(nil, "bearer_tokens:\n  - {name: new, token_sha256: %s}\n# longer\n", sha256Hex("new")), 0o600))
	_, reason = l.authenticate("Bearer new", nil)
	require.Equal(t, ReasonInvalid, reason, "not checked again within a second")
	now = now.Add(checkInterval)
	id, reason := l.authenticate("Bearer new", nil)
	require.Empty(t, reason)
	require.Equal(t, "new", id.Name)
	_, reason = l.authenticate("Bearer old", nil)
	require.Equal(t, ReasonInvalid, reason)

	// A broken file keeps the last good identities.
	require.NoError(t, os.WriteFile(path, []byte("bearer_tokens: [{name: x}]\n# broken, and of another size\n"), 0o600))
	now = now.Add(checkInterval)
	_, reason = l.authenticate("Bearer new", nil)
	require.Empty(t, reason)
}

func TestLoadFileErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"not bcrypt", "basic_users: [{username: a, password_hash: plain}]", "basic_users[0].password_hash: not a bcrypt hash"},
		{"empty user", "basic_users: [{username: '', password_hash: x}]", "basic_users[0].username: must not be empty"},
		{"bad sha", "bearer_tokens: [{token_sha256: abc}]", "bearer_tokens[0].token_sha256: want 64 hex digits"},
		{"both token forms", "bearer_tokens: [{token_sha256: abc, token_file: /x}]", "bearer_tokens[0]: set exactly one of token_sha256 and token_file"},
		{"missing token file", "bearer_tokens: [{token_file: " + filepath.Join(dir, "none") + "}]", "bearer_tokens[0].token_file:"},
		{"cert without name", "client_certs: [{tenant: x}]", "client_certs[0]: set exactly one of common_name and san"},
		{"unknown field", "users: []", "field users not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadFile(writeFile(t, dir, "f.yaml", []byte(tc.yaml)))
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestCheckExposure(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, "ca")
	mtls := serverFiles(t, dir, ca, ca)
	for _, tc := range []struct {
		name string
		cfg  Config
		addr string
		tls  TLSConfig
		ok   bool
	}{
		{"loopback v4", Config{}, "127.0.0.1:9400", TLSConfig{}, true},
		{"loopback v6", Config{}, "[::1]:9400", TLSConfig{}, true},
		{"localhost", Config{}, "localhost:9400", TLSConfig{}, true},
		{"off", Config{}, "", TLSConfig{}, true},
		{"all interfaces", Config{}, "0.0.0.0:9400", TLSConfig{}, false},
		{"empty host", Config{}, ":9400", TLSConfig{}, false},
		{"host name", Config{}, "pharos.example:9400", TLSConfig{}, false},
		{"opt-out", Config{AllowUnauthenticated: true}, "0.0.0.0:9400", TLSConfig{}, true},
		{"identities", Config{ConfigFile: "ids.yaml"}, "0.0.0.0:9400", TLSConfig{}, true},
		{"mTLS", Config{}, "0.0.0.0:9400", mtls, true},
		{"TLS without client certificates", Config{}, "0.0.0.0:9400", TLSConfig{CertFile: mtls.CertFile, KeyFile: mtls.KeyFile}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.CheckExposure("http.listen_address", tc.addr, tc.tls)
			if tc.ok {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, "http.listen_address: "+tc.addr+" is reachable from the network")
			require.True(t, strings.Contains(err.Error(), "auth.allow_unauthenticated"))
		})
	}
}

func TestTLSConfigValidate(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, "ca")
	good := serverFiles(t, dir, ca, ca)
	for _, tc := range []struct {
		name string
		cfg  TLSConfig
		want string
	}{
		{"good", good, ""},
		{"off", TLSConfig{MinVersion: "TLS12"}, ""},
		{"bad version", TLSConfig{MinVersion: "SSL3"}, "http.tls.min_version: unknown version"},
		{"bad client auth", TLSConfig{ClientAuth: "maybe"}, "http.tls.client_auth: unknown mode"},
		{"key without cert", TLSConfig{KeyFile: good.KeyFile}, "http.tls.cert_file: required"},
		{"cert without key", TLSConfig{CertFile: good.CertFile}, "http.tls.key_file: required"},
		{"verify without CA", TLSConfig{CertFile: good.CertFile, KeyFile: good.KeyFile, ClientAuth: ClientAuthRequireAndVerify}, "http.tls.client_ca_file: required"},
		{"CA not PEM", TLSConfig{CertFile: good.CertFile, KeyFile: good.KeyFile, ClientCAFile: good.KeyFile}, "http.tls.client_ca_file:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate("http.tls")
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.want)
		})
	}
}
