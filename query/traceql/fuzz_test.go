package traceql

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
)

// FuzzParse checks that no query panics the parser, that errors are the
// documented types with positions inside the query, and that a parsed
// normal form is bounded and formats back to itself. The seed corpus is
// in testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	for _, q := range []string{
		`{}`,
		`{ resource.service.name = "x" && duration > 100ms && status = error }`,
		`{ (.a = 1 || .b = 2) && span."c d" =~ "e.*" } || { kind = server } | { .x != -1.5 }`,
		`{ } | count() > 2`,
		`{ .a = 1 } >> { .b = 2 }`,
		"{ .s = `raw` && name = \"\\u00e9\" && duration <= 1h30m }",
		`{ trace:rootService = "a" && span:duration > 5µs }`,
	} {
		f.Add(q)
	}
	ops := map[string]bool{"=": true, "!=": true, "=~": true, "!~": true, ">": true, ">=": true, "<": true, "<=": true}
	scopes := map[string]bool{ScopeIntrinsic: true, "resource": true, "span": true, "": true}
	f.Fuzz(func(t *testing.T, q string) {
		d, err := Parse(q)
		if err != nil {
			var (
				pe *ParseError
				ue *UnsupportedError
			)
			switch {
			case errors.As(err, &pe):
				require.True(t, pe.Pos >= 0 && pe.Pos <= len(q), "position %d outside %q", pe.Pos, q)
			case errors.As(err, &ue):
				require.True(t, ue.Pos >= 0 && ue.Pos <= len(q), "position %d outside %q", ue.Pos, q)
			default:
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		require.LessOrEqual(t, len(d), MaxGroups)
		for _, g := range d {
			require.NotEmpty(t, g)
			for _, c := range g {
				require.True(t, ops[c.Op], "op %q", c.Op)
				require.True(t, scopes[c.Scope], "scope %q", c.Scope)
				require.NotEmpty(t, c.Name)
			}
		}
		again, err := Parse(Format(d))
		require.NoError(t, err, "format of %q: %s", q, Format(d))
		require.Equal(t, d, again, "format of %q: %s", q, Format(d))
	})
}
