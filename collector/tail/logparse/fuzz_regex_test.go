package logparse

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
)

// FuzzRegex parses any line with any expression (the expression comes from
// the agent's configuration, the line from a log file): fields are
// sub-slices of the line, and parsing again gives the same fields.
func FuzzRegex(f *testing.F) {
	f.Add(`^(?P<level>\w+) (?P<msg>.*)$`, []byte("INFO hello world"))
	f.Add(`(?P<ip>\d+\.\d+\.\d+\.\d+) - (?P<user>\S+)`, []byte("10.0.0.1 - bob [01/May/2024]"))
	f.Add(`(?P<a>x)?(?P<b>y)`, []byte("y"))
	f.Add(`(?P<empty>)`, []byte(""))
	f.Add(`(`, []byte("x"))
	f.Fuzz(func(t *testing.T, expr string, line []byte) {
		p, err := NewRegex(expr)
		if err != nil {
			return
		}
		fields, err := p.Parse(line)
		if err != nil {
			require.ErrorIs(t, err, ErrNoMatch)
			return
		}
		var got [][2]string
		for _, fl := range fields {
			require.True(t, bytes.Contains(line, fl.Value), "field %q not from the line", fl.Value)
			got = append(got, [2]string{string(fl.Name), string(fl.Value)})
		}
		again, err := p.Parse(line)
		require.NoError(t, err)
		require.Len(t, again, len(got))
		for i, fl := range again {
			require.Equal(t, got[i], [2]string{string(fl.Name), string(fl.Value)})
		}
	})
}
