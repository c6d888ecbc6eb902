package tail

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestPositionsRoundTrip(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "positions.json")
	es, exists, err := loadPositions(path)
	require.NoError(t, err)
	require.False(t, exists)
	require.Empty(t, es)

	want := []posEntry{
		{Path: "/var/log/a.log", Dev: 2049, Ino: 12, FP: fpString(42), FPLen: 1024, Offset: 4096, Size: 5000},
		{Path: "/var/log/b.log", Dev: 2049, Ino: 13, FP: fpString(fnvOffset), FPLen: 0, Offset: 0, Size: 0},
	}
	var buf bytes.Buffer
	require.NoError(t, savePositions(path, want, &buf))
	got, exists, err := loadPositions(path)
	require.NoError(t, err)
	require.True(t, exists)
	require.Equal(t, want, got)
	require.Equal(t, uint64(42), got[0].fingerprint())

	// Replaced whole: the temporary file does not stay behind.
	require.NoError(t, savePositions(path, want[:1], &buf))
	got, _, err = loadPositions(path)
	require.NoError(t, err)
	require.Equal(t, want[:1], got)
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, ents, 1)
}

func TestPositionsCorrupt(t *testing.T) {
	for _, tc := range []struct {
		name, content string
	}{
		{name: "not json", content: "{"},
		{name: "other version", content: `{"version":9,"files":[]}`},
		{name: "bad fingerprint", content: `{"version":1,"files":[{"path":"/a","fingerprint":"zz","offset":0}]}`},
		{name: "negative offset", content: `{"version":1,"files":[{"path":"/a","fingerprint":"0000000000000000","offset":-1}]}`},
		{name: "no path", content: `{"version":1,"files":[{"fingerprint":"0000000000000000"}]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "positions.json")
			require.NoError(t, os.WriteFile(path, []byte(tc.content), 0o600))
			_, _, err := loadPositions(path)
			require.ErrorIs(t, err, ErrCorruptPositions)
		})
	}
}

func TestHashPrefix(t *testing.T) {
	r := bytes.NewReader([]byte("hello world"))
	buf := make([]byte, 4) // smaller than the prefix: read in pieces
	h, ok, err := hashPrefix(r, 11, buf)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, fnvAdd(fnvOffset, []byte("hello world")), h)
	require.Equal(t, fnvAdd(fnvAdd(fnvOffset, []byte("hello")), []byte(" world")), h, "the hash extends")
	_, ok, err = hashPrefix(r, 12, buf)
	require.NoError(t, err)
	require.False(t, ok, "the file is shorter than the prefix")
}
