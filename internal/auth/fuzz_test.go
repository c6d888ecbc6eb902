package auth

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoadFile loads any identities file: it is accepted or refused with
// an error, never a panic, and what is accepted compiles.
func FuzzLoadFile(f *testing.F) {
	f.Add([]byte("basic_users:\n  - username: alice\n    password_hash: $2y$10$abcdefghijklmnopqrstuu5Gqf1j8lJXl7bYzyKzT8bq2G6fN2rBi\n    tenant: team-a\n"))
	f.Add([]byte("bearer_tokens:\n  - name: ci\n    token_sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\n"))
	f.Add([]byte("client_certs:\n  - name: agent\n    common_name: agent.example\n    san: spiffe://example/agent\n    tenant: t\n"))
	f.Add([]byte("unknown: 1\n"))
	f.Add([]byte("basic_users: [{username: 'a:b'}]\n"))
	f.Add([]byte(""))
	dir := f.TempDir()
	f.Add([]byte("bearer_tokens:\n  - {name: dev, token_file: /dev/zero}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		// A token_file may name any path: devices and FIFOs are refused
		// before they are opened, regular files read with a bound.
		path := filepath.Join(dir, "identities.yaml")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		file, err := LoadFile(path)
		if err != nil {
			return
		}
		if _, err := file.compile(); err != nil {
			t.Fatalf("LoadFile accepted a file that does not compile: %v", err)
		}
	})
}
