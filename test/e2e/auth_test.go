package e2e

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"golang.org/x/crypto/bcrypt"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/pharos-obs/pharos/internal/testutil"
)

// authCA is a certificate authority made for one test.
type authCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newAuthCA(t *testing.T, name string) *authCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return &authCA{cert: cert, key: key}
}

func (ca *authCA) pem() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw})
}

func (ca *authCA) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// issue returns a certificate (server and client use) for 127.0.0.1.
func (ca *authCA) issue(t *testing.T, cn string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	require.NoError(t, err)
	kb, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
}

func (ca *authCA) pair(t *testing.T, cn string) tls.Certificate {
	t.Helper()
	c, k := ca.issue(t, cn)
	p, err := tls.X509KeyPair(c, k)
	require.NoError(t, err)
	return p
}

func writeAuthFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, data, 0o600))
	return p
}

// authClient is an HTTPS client trusting roots, presenting certs; it keeps
// no idle connections (goleak).
func authClient(roots *x509.CertPool, certs ...tls.Certificate) *http.Client {
	return &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		TLSClientConfig:   &tls.Config{RootCAs: roots, Certificates: certs},
	}}
}

type authReq struct {
	method, url, user, pass, bearer, contentType string
	body                                         []byte
}

func doAuth(t *testing.T, c *http.Client, r authReq) (int, string, error) {
	t.Helper()
	if r.method == "" {
		r.method = http.MethodGet
	}
	req, err := http.NewRequest(r.method, r.url, bytes.NewReader(r.body))
	require.NoError(t, err)
	if r.contentType != "" {
		req.Header.Set("Content-Type", r.contentType)
	}
	switch {
	case r.user != "":
		req.SetBasicAuth(r.user, r.pass)
	case r.bearer != "":
		req.Header.Set("Authorization", "Bearer "+r.bearer)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// TestAuthTLS runs the all-in-one with TLS on every listener (one server
// CA), client certificates verified when given (another CA), and the
// identities of an auth file: every listener refuses requests without an
// identity and serves them with one; the probes stay open; a client that
// trusts another CA fails the handshake; and the process's self-scrape,
// which goes through its own authenticated listener, still works.
func TestAuthTLS(t *testing.T) {
	dir := t.TempDir()
	serverCA, clientCA, otherCA := newAuthCA(t, "server-ca"), newAuthCA(t, "client-ca"), newAuthCA(t, "other-ca")
	crt, key := serverCA.issue(t, "pharos")
	const internalToken = "internal-token-0123456789"
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	require.NoError(t, err)
	sum := sha256.Sum256([]byte("ingest-token"))
	ids := fmt.Sprintf(`basic_users:
  - {username: alice, password_hash: %q, tenant: team-a}
bearer_tokens:
  - {name: ingest, token_sha256: %s}
  - {name: pharos-internal, token_file: %s}
client_certs:
  - {name: agent, common_name: agent-1}
`, hash, hex.EncodeToString(sum[:]), writeAuthFile(t, dir, "internal.token", []byte(internalToken+"\n")))
	args := []string{
		"-data.dir=" + filepath.Join(dir, "data"),
		"-http.tls.cert-file=" + writeAuthFile(t, dir, "server.crt", crt),
		"-http.tls.key-file=" + writeAuthFile(t, dir, "server.key", key),
		"-http.tls.client-ca-file=" + writeAuthFile(t, dir, "client-ca.crt", clientCA.pem()),
		"-http.tls.client-auth=verify-if-given",
		"-auth.config-file=" + writeAuthFile(t, dir, "identities.yaml", []byte(ids)),
		"-auth.client.bearer-token-file=" + filepath.Join(dir, "internal.token"),
		"-auth.client.tls.ca-file=" + writeAuthFile(t, dir, "server-ca.crt", serverCA.pem()),
		"-http.admin-listen-address=127.0.0.1:0",
	}
	p := launchPharos(t, "auth", withEphemeralPorts(args), nil)

	trusting := authClient(serverCA.pool())
	var httpAddr string
	testutil.Poll(t, startTimeout, 100*time.Millisecond, func() (bool, string) {
		p.requireRunning()
		ev, ok := p.findLog(func(ev logEvent) bool { return ev.Msg == "http server listening" && ev.Component == "http" })
		if !ok {
			return false, "no \"http server listening\" yet"
		}
		httpAddr = ev.Address
		// The readiness probe needs no credentials.
		code, body, err := doAuth(t, trusting, authReq{url: "https://" + httpAddr + "/ready"})
		if err != nil || code != http.StatusOK {
			return false, fmt.Sprintf("GET /ready: %d %s %v", code, body, err)
		}
		if _, ok := p.findLog(func(ev logEvent) bool { return ev.Msg == "pharos started" }); !ok {
			return false, "no \"pharos started\" yet"
		}
		return true, ""
	})
	adminEv, ok := p.findLog(func(ev logEvent) bool { return ev.Msg == "admin listening" })
	require.True(t, ok, "admin listener address")
	grpcAddr, otlpHTTPAddr := p.otlpAddrs()

	emptyExport, err := pmetricotlp.NewExportRequestFromMetrics(pmetric.NewMetrics()).MarshalProto()
	require.NoError(t, err)
	withCert := authClient(serverCA.pool(), clientCA.pair(t, "agent-1"))
	strangerCert := authClient(serverCA.pool(), clientCA.pair(t, "stranger"))
	for _, tc := range []struct {
		name   string
		client *http.Client
		req    authReq
		code   int
	}{
		{"HTTP without credentials", trusting, authReq{url: "https://" + httpAddr + "/api/v1/query?query=1"}, 401},
		{"HTTP /metrics without credentials", trusting, authReq{url: "https://" + httpAddr + "/metrics"}, 401},
		{"HTTP wrong password", trusting, authReq{url: "https://" + httpAddr + "/api/v1/query?query=1", user: "alice", pass: "nope"}, 401},
		{"HTTP basic auth", trusting, authReq{url: "https://" + httpAddr + "/api/v1/query?query=1", user: "alice", pass: "s3cret"}, 200},
		{"HTTP bearer token", trusting, authReq{url: "https://" + httpAddr + "/metrics", bearer: "ingest-token"}, 200},
		{"HTTP client certificate", withCert, authReq{url: "https://" + httpAddr + "/api/v1/query?query=1"}, 200},
		{"HTTP unlisted client certificate", strangerCert, authReq{url: "https://" + httpAddr + "/api/v1/query?query=1"}, 401},
		{"HTTP liveness probe", trusting, authReq{url: "https://" + httpAddr + "/-/healthy"}, 200},
		{"OTLP/HTTP without credentials", trusting, authReq{method: http.MethodPost, url: "https://" + otlpHTTPAddr + "/v1/metrics", contentType: "application/x-protobuf", body: emptyExport}, 401},
		{"OTLP/HTTP bearer token", trusting, authReq{method: http.MethodPost, url: "https://" + otlpHTTPAddr + "/v1/metrics", contentType: "application/x-protobuf", body: emptyExport, bearer: "ingest-token"}, 200},
		{"OTLP on the main port without credentials", trusting, authReq{method: http.MethodPost, url: "https://" + httpAddr + "/v1/metrics", contentType: "application/x-protobuf", body: emptyExport}, 401},
		{"pprof without credentials", trusting, authReq{url: "https://" + adminEv.Address + "/debug/pprof/"}, 401},
		{"pprof as the operator", trusting, authReq{url: "https://" + adminEv.Address + "/debug/pprof/", bearer: "ingest-token"}, 200},
		// alice is team-a's: what describes the whole process is not hers.
		{"pprof as a tenant", trusting, authReq{url: "https://" + adminEv.Address + "/debug/pprof/", user: "alice", pass: "s3cret"}, 403},
		{"reload without credentials", trusting, authReq{method: http.MethodPost, url: "https://" + adminEv.Address + "/-/reload"}, 401},
		{"reload as a tenant", trusting, authReq{method: http.MethodPost, url: "https://" + adminEv.Address + "/-/reload", user: "alice", pass: "s3cret"}, 403},
		{"reload as the operator", trusting, authReq{method: http.MethodPost, url: "https://" + adminEv.Address + "/-/reload", bearer: "ingest-token"}, 200},
		{"no reload on the public port", trusting, authReq{method: http.MethodPost, url: "https://" + httpAddr + "/-/reload", bearer: "ingest-token"}, 404},
		{"HTTP /metrics as a tenant", trusting, authReq{url: "https://" + httpAddr + "/metrics", user: "alice", pass: "s3cret"}, 403},
		{"HTTP /cluster/status as a tenant", trusting, authReq{url: "https://" + httpAddr + "/cluster/status", user: "alice", pass: "s3cret"}, 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body, err := doAuth(t, tc.client, tc.req)
			require.NoError(t, err)
			require.Equal(t, tc.code, code, "%s", body)
		})
	}

	t.Run("TLS client trusting another CA", func(t *testing.T) {
		for _, addr := range []string{httpAddr, otlpHTTPAddr, adminEv.Address} {
			_, _, err := doAuth(t, authClient(otherCA.pool()), authReq{url: "https://" + addr + "/ready"})
			var unknown x509.UnknownAuthorityError
			require.ErrorAs(t, err, &unknown, "listener %s", addr)
		}
		code, _, err := doAuth(t, httpClient, authReq{url: "http://" + httpAddr + "/ready"})
		require.NoError(t, err)
		require.Equal(t, http.StatusBadRequest, code, "plain HTTP on the TLS port")
	})

	t.Run("OTLP gRPC", func(t *testing.T) {
		export := func(tlsCfg *tls.Config, authz string) error {
			conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(credentials.NewTLS(tlsCfg)))
			require.NoError(t, err)
			defer conn.Close()
			ctx := t.Context()
			if authz != "" {
				ctx = metadata.AppendToOutgoingContext(ctx, "authorization", authz)
			}
			_, err = pmetricotlp.NewGRPCClient(conn).Export(ctx, pmetricotlp.NewExportRequestFromMetrics(pmetric.NewMetrics()))
			return err
		}
		require.Equal(t, codes.Unauthenticated, status.Code(export(&tls.Config{RootCAs: serverCA.pool()}, "")))
		require.Equal(t, codes.Unauthenticated, status.Code(export(&tls.Config{RootCAs: serverCA.pool()}, "Bearer wrong")))
		require.NoError(t, export(&tls.Config{RootCAs: serverCA.pool()}, "Bearer ingest-token"))
		require.NoError(t, export(&tls.Config{RootCAs: serverCA.pool(), Certificates: []tls.Certificate{clientCA.pair(t, "agent-1")}}, ""))
		err := export(&tls.Config{RootCAs: otherCA.pool()}, "Bearer ingest-token")
		require.Equal(t, codes.Unavailable, status.Code(err), "handshake fails: %v", err)
	})

	// The default self-scrape reaches the process's own listener with
	// -auth.client.*: its up series is 1. It is the default tenant's, so
	// the identity reading it carries no tenant (alice reads team-a's).
	testutil.Poll(t, dataTimeout, 500*time.Millisecond, func() (bool, string) {
		code, body, err := doAuth(t, trusting, authReq{url: "https://" + httpAddr + "/api/v1/query?" + url.Values{"query": {`up{job="pharos"}`}}.Encode(), bearer: "ingest-token"})
		if err != nil || code != http.StatusOK {
			return false, fmt.Sprintf("query up: %d %s %v", code, body, err)
		}
		var r struct {
			Data struct {
				Result []struct {
					Value [2]any `json:"value"`
				} `json:"result"`
			} `json:"data"`
		}
		if err := json.Unmarshal([]byte(body), &r); err != nil {
			return false, err.Error()
		}
		if len(r.Data.Result) != 1 || r.Data.Result[0].Value[1] != "1" {
			return false, "up{job=\"pharos\"} is not 1 yet: " + body
		}
		return true, ""
	})

	// Failures are counted per listener and reason.
	code, metrics, err := doAuth(t, trusting, authReq{url: "https://" + httpAddr + "/metrics", bearer: "ingest-token"})
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, code)
	for _, want := range []string{
		`pharos_http_auth_failures_total{listener="http",reason="missing_credentials"}`,
		`pharos_http_auth_failures_total{listener="otlp-grpc",reason="missing_credentials"}`,
		`pharos_http_auth_failures_total{listener="otlp-http",reason="missing_credentials"}`,
		`pharos_http_auth_failures_total{listener="admin",reason="missing_credentials"}`,
	} {
		require.Contains(t, metrics, want)
	}
	p.Stop()
}

// TestAuthExposedWithoutAuth: a listener on a non-loopback address with no
// authentication is a configuration error naming the field, unless
// consciously allowed.
func TestAuthExposedWithoutAuth(t *testing.T) {
	_, stderr, code := runPharos(t, []string{"-http.listen-address=0.0.0.0:0", "-data.dir=" + t.TempDir()})
	require.NotZero(t, code)
	require.Contains(t, stderr, "http.listen_address: 0.0.0.0:0 is reachable from the network but no authentication is configured")
}
