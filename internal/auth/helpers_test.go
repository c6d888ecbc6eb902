package auth

import (
	"crypto/sha256"
	"encoding/hex"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"

	"github.com/pharos-obs/pharos/internal/testcerts"
)

// newTestCA is a certificate authority made for one test.
func newTestCA(t *testing.T, name string) *testcerts.CA { return testcerts.NewCA(t, name) }

func writeFile(t *testing.T, dir, name string, data []byte) string {
	return testcerts.WriteFile(t, dir, name, data)
}

// serverFiles writes a server certificate from ca and the client CA
// clientCA, and returns the TLS configuration naming them.
func serverFiles(t *testing.T, dir string, ca, clientCA *testcerts.CA) TLSConfig {
	t.Helper()
	c, k := ca.Issue(t, "pharos-server")
	cfg := TLSConfig{
		CertFile:   writeFile(t, dir, "server.crt", c),
		KeyFile:    writeFile(t, dir, "server.key", k),
		MinVersion: "TLS12",
	}
	if clientCA != nil {
		cfg.ClientCAFile = writeFile(t, dir, "client-ca.crt", clientCA.PEM)
	}
	return cfg
}

func bcryptHash(t *testing.T, password string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	require.NoError(t, err)
	return string(h)
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}
