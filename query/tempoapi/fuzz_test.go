package tempoapi

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// FuzzLegacyTags checks that no tags parameter panics its parser, that
// failures are 400s, and that bare pairs read back as written. The seed
// corpus is in testdata/fuzz/FuzzLegacyTags.
func FuzzLegacyTags(f *testing.F) {
	for _, s := range []string{
		`service.name=frontend http.status_code=500`,
		`name="GET /a b" error=true status.code=error`,
		`root.service.name=a root.name="x\"y" flag`,
		`a="unterminated`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		groups, err := legacyTags(s)
		if err != nil {
			var pe *paramError
			require.True(t, errors.As(err, &pe), "%T: %v", err, err)
			return
		}
		require.LessOrEqual(t, len(groups), 1)
		pairs, err := parseLogfmt(s)
		require.NoError(t, err)
		// Written back with every value quoted, the pairs parse the same.
		var b strings.Builder
		for _, p := range pairs {
			b.WriteString(p[0] + "=" + strconv.Quote(p[1]) + " ")
		}
		again, err := parseLogfmt(b.String())
		require.NoError(t, err, b.String())
		require.Equal(t, pairs, again)
	})
}
