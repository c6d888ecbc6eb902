package auth

import (
	"crypto/tls"
	"net"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// handshake dials a TLS server on ln with cc and completes the handshake.
func handshake(t *testing.T, addr string, cc *tls.Config) (*tls.ConnectionState, error) {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cc)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	// TLS 1.3 servers report a rejected client certificate after the
	// client's handshake is done: read to see it.
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Read(make([]byte, 1)); err != nil {
		return nil, err
	}
	cs := conn.ConnectionState()
	return &cs, nil
}

// serveTLS accepts connections on a TLS listener made with cfg and
// answers one byte after each handshake.
func serveTLS(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	require.NoError(t, err)
	done := make(chan struct{})
	t.Cleanup(func() {
		_ = ln.Close()
		<-done
	})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if err := c.(*tls.Conn).Handshake(); err == nil {
				_, _ = c.Write([]byte{1})
			}
			_ = c.Close()
		}
	}()
	return ln.Addr().String()
}

func TestServerTLSClientCA(t *testing.T) {
	dir := t.TempDir()
	ca, clientCA, otherCA := newTestCA(t, "server-ca"), newTestCA(t, "client-ca"), newTestCA(t, "other-ca")
	cfg, err := ServerTLS(serverFiles(t, dir, ca, clientCA), "http/1.1")
	require.NoError(t, err)
	addr := serveTLS(t, cfg)

	for _, tc := range []struct {
		name   string
		client *tls.Config
		ok     bool
	}{
		{"client certificate from the configured CA", &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{clientCA.Pair(t, "agent-1")}}, true},
		{"client certificate from another CA", &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{otherCA.Pair(t, "agent-1")}}, false},
		{"no client certificate", &tls.Config{RootCAs: ca.Pool()}, false},
		{"client trusting another CA", &tls.Config{RootCAs: otherCA.Pool(), Certificates: []tls.Certificate{clientCA.Pair(t, "agent-1")}}, false},
		{"TLS 1.1 refused", &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{clientCA.Pair(t, "agent-1")}, MaxVersion: tls.VersionTLS11}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.client.NextProtos = []string{"http/1.1"}
			cs, err := handshake(t, addr, tc.client)
			if !tc.ok {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, "http/1.1", cs.NegotiatedProtocol)
		})
	}
}

// Certificates rotate without a restart: a handshake after the files
// change gets the new certificate.
func TestServerTLSReload(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, "ca")
	files := serverFiles(t, dir, ca, nil)
	cfg, err := ServerTLS(files)
	require.NoError(t, err)
	addr := serveTLS(t, cfg)
	serverCN := func() string {
		t.Helper()
		cs, err := handshake(t, addr, &tls.Config{RootCAs: ca.Pool()})
		require.NoError(t, err)
		return cs.PeerCertificates[0].Subject.CommonName
	}
	require.Equal(t, "pharos-server", serverCN())

	c, k := ca.Issue(t, "rotated-server", "a-longer-name.example")
	require.NoError(t, os.WriteFile(files.CertFile, c, 0o600))
	require.NoError(t, os.WriteFile(files.KeyFile, k, 0o600))
	// Files are looked at once a second at most; make this check due.
	past := time.Now().Add(-2 * checkInterval)
	require.NoError(t, os.Chtimes(files.CertFile, past, past))
	require.Eventually(t, func() bool { return serverCN() == "rotated-server" }, 10*time.Second, 100*time.Millisecond)

	// A half-written pair keeps the last good one.
	require.NoError(t, os.WriteFile(files.KeyFile, []byte("garbage"), 0o600))
	require.NoError(t, os.Chtimes(files.KeyFile, past, past))
	for range 3 {
		require.Equal(t, "rotated-server", serverCN())
	}
}

func TestReloadingChecksOncePerInterval(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "v", []byte("1"))
	var now time.Time
	builds := 0
	r, err := newReloading(func() (string, error) {
		builds++
		b, err := os.ReadFile(path)
		return string(b), err
	}, path)
	require.NoError(t, err)
	now = time.Now()
	r.now = func() time.Time { return now }
	require.NoError(t, os.WriteFile(path, []byte("22"), 0o600))
	v, _ := r.get()
	require.Equal(t, "1", v)
	now = now.Add(checkInterval)
	v, _ = r.get()
	require.Equal(t, "22", v)
	now = now.Add(checkInterval)
	v, _ = r.get()
	require.Equal(t, "22", v)
	require.Equal(t, 2, builds, "unchanged files are not re-read")
}
