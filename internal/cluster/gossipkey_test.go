package cluster

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/pharos-obs/pharos/internal/testcerts"
	"github.com/pharos-obs/pharos/internal/testutil"
)

const handshakeFailures = "pharos_memberlist_handshake_failures_total"

// writeGossipKey writes a fresh random key of n bytes, base64 as keygen
// tools print it (with a trailing newline), and returns its path.
func writeGossipKey(t *testing.T, dir, name string, n int) string {
	t.Helper()
	key := make([]byte, n)
	_, err := rand.Read(key)
	require.NoError(t, err)
	path := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(path, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600))
	return path
}

func withKey(t *testing.T, cfg Config, keyFile string) Config {
	t.Helper()
	cfg.Memberlist.EncryptionKeyFile = keyFile
	require.NoError(t, cfg.Validate())
	return cfg
}

// waitRefused polls until node n has refused more handshakes than before,
// and returns the new count.
func waitRefused(t *testing.T, n *node, before float64) float64 {
	t.Helper()
	var v float64
	testutil.Poll(t, pollTimeout, pollInterval, func() (bool, string) {
		v = counterValue(t, n.reg, handshakeFailures)
		return v > before, fmt.Sprintf("%s of %s = %v, want > %v", handshakeFailures, n.id, v, before)
	})
	return v
}

// Gossip with a shared key: members holding it form the ring over the
// guard's mutual TLS; a member with another key, a member without one, a
// TLS client without the derived certificate and a forged plain-TCP packet
// are all refused at the gossip port, counted, and change nothing.
func TestGossipKey(t *testing.T) {
	dir := t.TempDir()
	key := writeGossipKey(t, dir, "gossip.key", 32)

	a := startNode(t, withKey(t, gossipConfig(t, "agg-a"), key))
	seed := a.kv.GossipAddress()
	require.Equal(t, a.kv.guard.addr, seed, "members join the guard, not dskit's loopback listener")
	require.NotEqual(t, a.kv.guard.target, seed)
	b := startNode(t, withKey(t, gossipConfig(t, "agg-b", seed), key))
	c := startNode(t, withKey(t, gossipConfig(t, "agg-c", b.kv.GossipAddress()), key))
	members := []*node{a, b, c}
	three := []string{"agg-a", "agg-b", "agg-c"}
	testutil.Poll(t, pollTimeout, pollInterval, func() (bool, string) { return seesHealthy(members, three) })
	for _, n := range members {
		require.Zero(t, counterValue(t, n.reg, handshakeFailures), "%s refused a member holding the key", n.id)
	}

	ringUnchanged := func(t *testing.T) {
		t.Helper()
		ok, msg := seesHealthy(members, three)
		require.True(t, ok, msg)
	}
	refused := counterValue(t, a.reg, handshakeFailures)

	t.Run("another key", func(t *testing.T) {
		other := writeGossipKey(t, dir, "other.key", 32)
		d := startNode(t, withKey(t, gossipConfig(t, "agg-d", seed), other))
		refused = waitRefused(t, a, refused)
		ringUnchanged(t)
		require.Equal(t, []string{"agg-d"}, healthyIDs(d.member.Healthy()))
		require.Positive(t, counterValue(t, d.reg, "pharos_memberlist_tcp_transport_outgoing_stream_errors_total"),
			"agg-d's dial fails: agg-a's certificate is not the one its key derives")
	})

	t.Run("no key", func(t *testing.T) {
		e := startNode(t, gossipConfig(t, "agg-e", seed))
		refused = waitRefused(t, a, refused)
		ringUnchanged(t)
		require.Equal(t, []string{"agg-e"}, healthyIDs(e.member.Healthy()))
	})

	t.Run("TLS without the derived certificate", func(t *testing.T) {
		conn, err := tls.Dial("tcp", seed, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13})
		if err == nil {
			// TLS 1.3: the client finishes before the server has checked its
			// (missing) certificate; the refusal arrives as an alert.
			require.NoError(t, conn.SetDeadline(time.Now().Add(pollTimeout)))
			_, _ = conn.Write([]byte("forged"))
			_, err = io.ReadAll(conn)
			_ = conn.Close()
		}
		require.ErrorContains(t, err, "certificate required")
		refused = waitRefused(t, a, refused)
		ringUnchanged(t)
	})

	t.Run("forged packet over plain TCP", func(t *testing.T) {
		// dskit's packet framing: type, sender address, payload, MD5.
		from, payload := "127.0.0.1:1", []byte("forged gossip")
		pkt := append([]byte{1, byte(len(from))}, from...)
		pkt = append(pkt, payload...)
		sum := md5.Sum(payload)
		pkt = append(pkt, sum[:]...)
		conn, err := net.Dial("tcp", seed)
		require.NoError(t, err)
		require.NoError(t, conn.SetDeadline(time.Now().Add(pollTimeout)))
		_, err = conn.Write(pkt)
		require.NoError(t, err)
		require.NoError(t, conn.(*net.TCPConn).CloseWrite())
		_, _ = io.ReadAll(conn) // until the guard hangs up
		require.NoError(t, conn.Close())
		refused = waitRefused(t, a, refused)
		ringUnchanged(t)
	})
}

// A key file and a cluster label make one identity, the same every time.
func TestDeriveGossipIdentity(t *testing.T) {
	secret := bytes.Repeat([]byte{7}, 32)
	id, err := deriveGossipIdentity(secret, "")
	require.NoError(t, err)
	again, err := deriveGossipIdentity(secret, "")
	require.NoError(t, err)
	require.Equal(t, id.certPEM, again.certPEM, "members derive the same certificate")
	require.Equal(t, id.keyPEM, again.keyPEM)

	for name, other := range map[string][]byte{"another secret": bytes.Repeat([]byte{8}, 32), "a 16-byte secret": secret[:16]} {
		o, err := deriveGossipIdentity(other, "")
		require.NoError(t, err)
		require.NotEqual(t, id.certPEM, o.certPEM, name)
	}
	labelled, err := deriveGossipIdentity(secret, "prod")
	require.NoError(t, err)
	require.NotEqual(t, id.certPEM, labelled.certPEM, "the cluster label is part of the identity")

	// The certificate is its own CA, for servers and clients alike.
	leaf, err := x509.ParseCertificate(id.cert.Certificate[0])
	require.NoError(t, err)
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		_, err = leaf.Verify(x509.VerifyOptions{Roots: id.pool, DNSName: gossipServerName, KeyUsages: []x509.ExtKeyUsage{usage}})
		require.NoError(t, err)
	}
	_, err = leaf.Verify(x509.VerifyOptions{Roots: labelled.pool, DNSName: gossipServerName})
	require.Error(t, err, "another identity does not trust it")

	// dskit loads it through the pseudo paths.
	tc := id.dskitTLS()
	cfg, err := tc.GetTLSConfig()
	require.NoError(t, err)
	require.Len(t, cfg.Certificates, 1)
	require.Equal(t, id.cert.Certificate, cfg.Certificates[0].Certificate)
	require.Equal(t, gossipServerName, cfg.ServerName)
	_, err = id.ReadSecret("/etc/passwd")
	require.Error(t, err)
}

func TestGossipKeyConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
		return path
	}
	b64 := func(n int) string { return base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, n)) }
	ca := testcerts.NewCA(t, "ca")
	cert, certKey := ca.CertFiles(t, dir, "node")
	for _, tc := range []struct {
		name string
		key  string
		tls  MemberlistTLSConfig
		want []string
	}{
		{"16 bytes", write("k16", b64(16)), MemberlistTLSConfig{}, nil},
		{"24 bytes, newline", write("k24", b64(24)+"\n"), MemberlistTLSConfig{}, nil},
		{"32 bytes", writeGossipKey(t, dir, "k32", 32), MemberlistTLSConfig{}, nil},
		{"bad base64", write("bad", "not!base64"), MemberlistTLSConfig{}, []string{"memberlist.encryption_key_file:", "is not base64"}},
		{"unpadded", write("raw", strings.TrimRight(b64(16), "=")), MemberlistTLSConfig{}, []string{"memberlist.encryption_key_file:", "is not base64"}},
		{"wrong length", write("k20", b64(20)), MemberlistTLSConfig{}, []string{"memberlist.encryption_key_file:", "decodes to 20 bytes, want 16, 24 or 32"}},
		{"empty", write("empty", " \n"), MemberlistTLSConfig{}, []string{"memberlist.encryption_key_file:", "is empty"}},
		{"too large", write("large", strings.Repeat("A", maxGossipKeyFileSize+4)), MemberlistTLSConfig{}, []string{"memberlist.encryption_key_file:", "larger than 4096 bytes"}},
		{"missing", filepath.Join(dir, "nope"), MemberlistTLSConfig{}, []string{"memberlist.encryption_key_file:", "no such file"}},
		{"directory", dir, MemberlistTLSConfig{}, []string{"memberlist.encryption_key_file:", "not a regular file"}},
		{"with tls certificates", writeGossipKey(t, dir, "kt", 32), MemberlistTLSConfig{CertFile: cert, KeyFile: certKey}, []string{"memberlist.encryption_key_file: cannot be combined with memberlist.tls"}},
		{"with tls server name", writeGossipKey(t, dir, "ks", 32), MemberlistTLSConfig{ServerName: "x"}, []string{"memberlist.encryption_key_file: cannot be combined with memberlist.tls"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := defaultConfig(t)
			cfg.Memberlist.EncryptionKeyFile = tc.key
			cfg.Memberlist.TLS = tc.tls
			err := cfg.Validate()
			if len(tc.want) == 0 {
				require.NoError(t, err)
				return
			}
			for _, w := range tc.want {
				require.ErrorContains(t, err, w)
			}
			require.NotContains(t, err.Error(), "not!base64", "errors never quote the file")
			_, err = NewKV(cfg, discardLogger(), prometheus.NewRegistry())
			require.ErrorContains(t, err, "memberlist.encryption_key_file:")
		})
	}

	// The flag and the YAML key.
	var cfg Config
	f := flag.NewFlagSet("test", flag.ContinueOnError)
	cfg.RegisterFlags(f)
	key := writeGossipKey(t, dir, "flag.key", 32)
	require.NoError(t, f.Parse([]string{"-memberlist.encryption-key-file=" + key}))
	require.Equal(t, key, cfg.Memberlist.EncryptionKeyFile)
	require.NoError(t, cfg.Validate())
}

// listen puts dskit on loopback and advertises the guard's port instead.
func TestGossipGuardListen(t *testing.T) {
	key := writeGossipKey(t, t.TempDir(), "gossip.key", 32)
	for _, tc := range []struct {
		name, advertise string
		wantHost        string
		wantPort        int // 0: the port bound
	}{
		{"bind address", "", "127.0.0.1", 0},
		{"advertise IP", "10.1.2.3", "10.1.2.3", 0},
		{"advertise IP and port", "10.1.2.3:7000", "10.1.2.3", 7000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := gossipConfig(t, "x")
			cfg.Memberlist.EncryptionKeyFile = key
			cfg.Memberlist.AdvertiseAddress = tc.advertise
			if tc.advertise != "" && !strings.Contains(tc.advertise, ":") {
				cfg.Memberlist.BindAddress = "127.0.0.1:" + freePort(t)
			}
			require.NoError(t, cfg.Validate())
			g, err := newGossipGuard(cfg.Memberlist, discardLogger(), prometheus.NewRegistry())
			require.NoError(t, err)
			kc := cfg.memberlistKVConfig()
			require.NoError(t, g.listen(cfg.Memberlist, &kc, log.NewNopLogger()))
			t.Cleanup(g.close)

			bound := g.ln.Addr().(*net.TCPAddr).Port
			want := tc.wantPort
			if want == 0 {
				want = bound
			}
			require.Equal(t, tc.wantHost, kc.AdvertiseAddr)
			require.Equal(t, want, kc.AdvertisePort)
			require.Equal(t, []string{"127.0.0.1"}, []string(kc.TCPTransport.BindAddrs))
			require.NotEqual(t, bound, kc.TCPTransport.BindPort)
			require.True(t, kc.TCPTransport.TLSEnabled)
			require.Equal(t, gossipServerName, kc.TCPTransport.TLS.ServerName)
			require.Equal(t, fmt.Sprintf("127.0.0.1:%d", bound), g.addr)
			require.Equal(t, fmt.Sprintf("127.0.0.1:%d", kc.TCPTransport.BindPort), g.target)
		})
	}
}

// freePort returns a free loopback port, for configurations that must
// name one.
func freePort(t *testing.T) string {
	t.Helper()
	port, err := freeLoopbackPort()
	require.NoError(t, err)
	return fmt.Sprint(port)
}

// Stopping the KV cuts connections still handshaking and ends the guard's
// goroutines (goleak checks them after the package's tests).
func TestGossipGuardClose(t *testing.T) {
	key := writeGossipKey(t, t.TempDir(), "gossip.key", 16)
	kv := startKV(t, withKey(t, gossipConfig(t, "solo"), key), prometheus.NewRegistry())
	conn, err := net.Dial("tcp", kv.GossipAddress())
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	require.NoError(t, services.StopAndAwaitTerminated(context.Background(), kv))
	require.NoError(t, conn.SetDeadline(time.Now().Add(pollTimeout)))
	_, err = conn.Read(make([]byte, 1))
	require.ErrorIs(t, err, io.EOF, "the guard hung up")
	_, err = net.Dial("tcp", kv.gossipAddr)
	require.Error(t, err, "nothing listens on the gossip port any more")
}
