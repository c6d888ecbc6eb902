package receivetest

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// SeedCorpus keeps the seed corpus of a fuzz target, testdata/fuzz/<target>,
// in step with the seeds a test builds, so that plain `go test` runs them.
// With PHAROS_WRITE_FUZZ_SEEDS=1 it rewrites the files instead of checking
// them.
type SeedCorpus struct {
	t     testing.TB
	dir   string
	write bool
	n     int
}

// NewSeedCorpus returns the seed corpus of target in the package's testdata.
func NewSeedCorpus(t testing.TB, target string) *SeedCorpus {
	return &SeedCorpus{t: t, dir: filepath.Join("testdata", "fuzz", target), write: os.Getenv("PHAROS_WRITE_FUZZ_SEEDS") == "1"}
}

// Add checks that the next file (seed-00, seed-01, …) holds args, the fuzz
// target's arguments ([]byte, string or bool), as go test writes them.
func (c *SeedCorpus) Add(args ...any) {
	c.t.Helper()
	var b strings.Builder
	b.WriteString("go test fuzz v1\n")
	for _, a := range args {
		switch a := a.(type) {
		case []byte:
			fmt.Fprintf(&b, "[]byte(%s)\n", strconv.Quote(string(a)))
		case string:
			fmt.Fprintf(&b, "string(%s)\n", strconv.Quote(a))
		case bool:
			fmt.Fprintf(&b, "bool(%t)\n", a)
		default:
			c.t.Fatalf("seed argument of type %T", a)
		}
	}
	path := filepath.Join(c.dir, fmt.Sprintf("seed-%02d", c.n))
	c.n++
	if c.write {
		require.NoError(c.t, os.MkdirAll(c.dir, 0o755))
		require.NoError(c.t, os.WriteFile(path, []byte(b.String()), 0o644))
		return
	}
	got, err := os.ReadFile(path)
	require.NoError(c.t, err, "run with PHAROS_WRITE_FUZZ_SEEDS=1 to write the seed corpus")
	// Seeds built from pdata may list map entries in another order from
	// run to run: the same bytes in another order are the same seed.
	if b.String() != string(got) {
		want, have := []byte(b.String()), got
		slices.Sort(want)
		slices.Sort(have)
		require.Equal(c.t, string(want), string(have), "%s is stale: run with PHAROS_WRITE_FUZZ_SEEDS=1", path)
	}
}
