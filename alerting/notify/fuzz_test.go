package notify

import (
	"testing"

	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
)

// FuzzParseRouting feeds arbitrary routing files through parsing,
// validation and compilation: nothing may panic, and whatever validates
// must compile and route every alert somewhere.
func FuzzParseRouting(f *testing.F) {
	f.Add([]byte(testTree))
	f.Add([]byte(`
receivers: [{name: a, url: "https://x.example.com/", send_resolved: false, max_alerts: 3, timeout: 1m}]
route:
  receiver: a
  group_by: ["..."]
  group_wait: 0s
  routes: [{matchers: ['{foo="bar", baz!~"q.*"}'], continue: true, routes: [{matchers: [x!=y]}]}]
`))
	f.Add([]byte("route: {receiver: a}"))
	f.Add([]byte("receivers: [{name: a, url: '%zz'}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseRouting(data)
		if err != nil {
			return
		}
		if r.Route == nil {
			require.Empty(t, r.Receivers)
			return
		}
		root, err := compileRoute(r.Route)
		require.NoError(t, err, "validated routing must compile")
		for _, ls := range []model.LabelSet{
			{},
			{"alertname": "A", "severity": "page", "foo": "bar"},
		} {
			routes := root.match(ls)
			require.NotEmpty(t, routes, "the root matches every alert")
			for _, rt := range routes {
				require.NotEmpty(t, rt.receiver)
				_ = groupKey(rt, rt.groupLabels(ls))
			}
		}
	})
}

// FuzzParseMatchers checks that matcher parsing never panics, and that
// what parses keeps its meaning when printed (as it is in a route key)
// and parsed again.
func FuzzParseMatchers(f *testing.F) {
	for _, s := range []string{
		`severity="page"`,
		`{foo = "bar", dings != "bums", }`,
		`statuscode=~"5.."`,
		`quote="She said: \"Hi, ladies! That's gender-neutral…\""`,
		`a!~b,c=d`,
		`{}`,
		`"utf8 name"="x"`,
		`foo=`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ms, err := parseMatchers(s)
		if err != nil {
			return
		}
		again, err := parseMatchers(ms.String())
		require.NoError(t, err, "printed %q from %q", ms.String(), s)
		require.Equal(t, ms.String(), again.String())
		ls := model.LabelSet{}
		for _, m := range ms {
			ls[model.LabelName(m.Name)] = model.LabelValue(m.Value)
		}
		require.Equal(t, ms.Matches(ls), again.Matches(ls))
	})
}
