package vtraces

import (
	"strconv"
	"testing"

	"github.com/VictoriaMetrics/VictoriaLogs/lib/logstorage"
	"github.com/stretchr/testify/require"

	"github.com/pharos-obs/pharos/storage/traces"
)

func TestPushdown(t *testing.T) {
	for name, tc := range map[string]struct {
		any  [][]traces.Condition
		want string
	}{
		"nothing":         {nil, "*"},
		"exact":           {all(in("name", "=", `GET "/"`)), `("name":="GET \"/\"")`},
		"numeric":         {all(span("code", "=", "200")), `(("span.code":="200" or "span.code":range[199.9999998, 200.0000002]))`},
		"not equal":       {all(span("m", "!=", "GET")), `(("span.m":* !"span.m":="GET"))`},
		"intrinsic !=":    {all(in("name", "!=", "x")), `(!"name":="x")`},
		"regexp":          {all(in("name", "=~", "GET.*")), `("name":~"^(?:GET.*)$")`},
		"empty regexp":    {all(in("name", "=~", ".*")), `(*)`},
		"not regexp":      {all(res("r", "!~", "e.*")), `("resource.r":*)`},
		"greater":         {all(in("duration", ">", "100ms")), `("duration":>=9.99999999e+07)`},
		"less":            {all(span("n", "<=", "-2.5")), `("span.n":<=-2.4999999975)`},
		"string order":    {all(span("n", ">", "abc")), `("span.n":*)`},
		"unscoped":        {all(attr("k", "=", "v")), `(("span.k":="v" or "resource.k":="v"))`},
		"and":             {all(in("status", "=", "error"), in("kind", "=", "server")), `("status_code":="error" "kind":="server")`},
		"or":              {anyOf(all(in("name", "=", "a"))[0], all(in("name", "=", "b"))[0]), `("name":="a") or ("name":="b")`},
		"or with all":     {anyOf(all(in("name", "=", "a"))[0], nil), `*`},
		"root only":       {all(in("rootServiceName", "=", "fe"), in("rootName", "=~", "GET.*")), `(is_root:="true" "resource.service.name":="fe" "name":~"^(?:GET.*)$")`},
		"trace only":      {all(in("traceDuration", ">", "1s")), `*`},
		"root any name":   {all(in("rootName", "=~", ".*")), `(is_root:="true" *)`},
		"span over trace": {all(in("rootName", "=", "r"), in("kind", "=", "client")), `("kind":="client")`},
	} {
		t.Run(name, func(t *testing.T) {
			s := &Store{}
			sr, err := s.newSearchForTest(traces.SearchParams{Any: tc.any})
			require.NoError(t, err)
			require.Equal(t, tc.want, sr.pushdown)
			_, err = logstorage.ParseQuery(sr.pushdown)
			require.NoError(t, err)
		})
	}
}

// newSearchForTest compiles p without a storage.
func (s *Store) newSearchForTest(p traces.SearchParams) (*search, error) {
	sr := &search{s: s}
	return sr, sr.compile(p)
}

// FuzzPushdown checks that no condition can break out of its literal in
// the LogsQL query: whatever the names and values, the query parses, and
// with a pipe after it, the pipe is still the query's only one.
func FuzzPushdown(f *testing.F) {
	for _, seed := range []struct {
		scope, name, op, value string
	}{
		{"span", "http.method", "=", "GET"},
		{"", "x", "!=", `a" | delete`},
		{"resource", `a"b`, "=~", `.*"} or *`},
		{"intrinsic", "duration", ">", "1.5s"},
		{"span", "n", "<=", "1e300"},
		{"intrinsic", "name", "!~", "\x00\n\\"},
	} {
		f.Add(seed.scope, seed.name, seed.op, seed.value)
	}
	f.Fuzz(func(t *testing.T, scope, name, op, value string) {
		s := &Store{}
		sr, err := s.newSearchForTest(traces.SearchParams{Any: all(traces.Condition{Scope: scope, Name: name, Op: op, Value: value})})
		if err != nil {
			require.ErrorIs(t, err, ErrBadCondition)
			return
		}
		q, err := logstorage.ParseQuery(sr.pushdown + " | fields trace_id, start")
		require.NoError(t, err, sr.pushdown)
		require.Equal(t, 1, pipesOutsideQuotes(t, q.String()), "a value added a pipe: %s", q)
	})
}

// pipesOutsideQuotes counts the '|' of a LogsQL query outside its quoted
// strings.
func pipesOutsideQuotes(t *testing.T, qs string) int {
	n := 0
	for i := 0; i < len(qs); i++ {
		switch qs[i] {
		case '"', '`', '\'':
			lit, err := strconv.QuotedPrefix(qs[i:])
			require.NoError(t, err, qs)
			i += len(lit) - 1
		case '|':
			n++
		}
	}
	return n
}
