package notify

import (
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
)

// A tree in the shape of Alertmanager's own routing tests.
const testTree = `
receivers:
  - {name: default, url: "https://x.example.com/default"}
  - {name: ops, url: "https://x.example.com/ops"}
  - {name: db, url: "https://x.example.com/db"}
  - {name: pager, url: "https://x.example.com/pager"}
  - {name: audit, url: "https://x.example.com/audit"}
route:
  receiver: default
  group_by: [alertname]
  group_wait: 10s
  routes:
    - matchers: ['owner="team-A"']
      receiver: ops
      group_interval: 1m
      routes:
        - matchers: ['env="prod", severity=~"page|critical"']
          receiver: pager
          group_by: ["..."]
    - matchers: ['owner="team-B"']
      receiver: db
      group_by: []
      continue: true
    - matchers: ['owner=~"team-.*"']
      receiver: audit
      group_by: [owner, alertname]
      repeat_interval: 1h
`

func compileTest(t *testing.T, y string) *route {
	t.Helper()
	r, err := ParseRouting([]byte(y))
	require.NoError(t, err)
	root, err := compileRoute(r.Route)
	require.NoError(t, err)
	return root
}

func TestRouteMatch(t *testing.T) {
	root := compileTest(t, testTree)
	for _, tc := range []struct {
		name      string
		labels    model.LabelSet
		receivers []string
		keys      []string
	}{
		{
			name:      "no child matches: the root",
			labels:    model.LabelSet{"alertname": "X", "owner": "nobody"},
			receivers: []string{"default"},
			keys:      []string{"{}"},
		},
		{
			name:      "first match stops the search",
			labels:    model.LabelSet{"owner": "team-A"},
			receivers: []string{"ops"},
			keys:      []string{`{}/{owner="team-A"}`},
		},
		{
			name:      "deepest match",
			labels:    model.LabelSet{"owner": "team-A", "env": "prod", "severity": "critical"},
			receivers: []string{"pager"},
			// Matchers are sorted by name inside a route's key.
			keys: []string{`{}/{owner="team-A"}/{env="prod",severity=~"page|critical"}`},
		},
		{
			name:      "regexp is anchored",
			labels:    model.LabelSet{"owner": "team-A", "env": "prod", "severity": "paged"},
			receivers: []string{"ops"},
			keys:      []string{`{}/{owner="team-A"}`},
		},
		{
			name:      "continue goes on to later siblings",
			labels:    model.LabelSet{"owner": "team-B"},
			receivers: []string{"db", "audit"},
			keys:      []string{`{}/{owner="team-B"}`, `{}/{owner=~"team-.*"}`},
		},
		{
			name:      "regexp sibling",
			labels:    model.LabelSet{"owner": "team-C"},
			receivers: []string{"audit"},
			keys:      []string{`{}/{owner=~"team-.*"}`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var receivers, keys []string
			for _, r := range root.match(tc.labels) {
				receivers = append(receivers, r.receiver)
				keys = append(keys, r.key)
			}
			require.Equal(t, tc.receivers, receivers)
			require.Equal(t, tc.keys, keys)
		})
	}
}

func TestRouteInheritance(t *testing.T) {
	root := compileTest(t, testTree)
	teamA := root.routes[0]
	pager := teamA.routes[0]
	teamB := root.routes[1]
	audit := root.routes[2]

	for _, tc := range []struct {
		name           string
		r              *route
		receiver       string
		groupBy        []model.LabelName
		groupByAll     bool
		wait, interval time.Duration
		repeat         time.Duration
	}{
		{"root takes Alertmanager's defaults", root, "default", []model.LabelName{"alertname"}, false, 10 * time.Second, DefaultGroupInterval, DefaultRepeatInterval},
		{"child inherits and overrides", teamA, "ops", []model.LabelName{"alertname"}, false, 10 * time.Second, time.Minute, DefaultRepeatInterval},
		{"grandchild inherits from its parent", pager, "pager", nil, true, 10 * time.Second, time.Minute, DefaultRepeatInterval},
		{"empty group_by: one group", teamB, "db", nil, false, 10 * time.Second, DefaultGroupInterval, DefaultRepeatInterval},
		{"explicit group_by", audit, "audit", []model.LabelName{"alertname", "owner"}, false, 10 * time.Second, DefaultGroupInterval, time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.receiver, tc.r.receiver)
			var gb []model.LabelName
			for l := range tc.r.groupBy {
				gb = append(gb, l)
			}
			require.ElementsMatch(t, tc.groupBy, gb)
			require.Equal(t, tc.groupByAll, tc.r.groupByAll)
			require.Equal(t, tc.wait, tc.r.groupWait)
			require.Equal(t, tc.interval, tc.r.groupInterval)
			require.Equal(t, tc.repeat, tc.r.repeatInterval)
		})
	}

	// A receiver left out is inherited.
	inherit := compileTest(t, `
receivers: [{name: a, url: "https://x.example.com/"}]
route:
  receiver: a
  routes: [{matchers: [x=y], routes: [{matchers: [z=w]}]}]
`)
	require.Equal(t, "a", inherit.routes[0].routes[0].receiver)
	require.Equal(t, `{}/{x="y"}/{z="w"}`, inherit.routes[0].routes[0].key)
}

func TestGroupLabelsAndKey(t *testing.T) {
	root := compileTest(t, testTree)
	ls := model.LabelSet{"alertname": "DiskFull", "owner": "team-A", "env": "prod", "severity": "page", "instance": "db1"}
	for _, tc := range []struct {
		name string
		r    *route
		want model.LabelSet
		key  string
	}{
		{"by alertname", root, model.LabelSet{"alertname": "DiskFull"}, `{}:{alertname="DiskFull"}`},
		{"by all labels", root.routes[0].routes[0], ls,
			`{}/{owner="team-A"}/{env="prod",severity=~"page|critical"}:{alertname="DiskFull", env="prod", instance="db1", owner="team-A", severity="page"}`},
		{"by nothing", root.routes[1], model.LabelSet{}, `{}/{owner="team-B"}:{}`},
		{"label absent from the alert", root.routes[2], model.LabelSet{"alertname": "DiskFull", "owner": "team-A"}, `{}/{owner=~"team-.*"}:{alertname="DiskFull", owner="team-A"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gl := tc.r.groupLabels(ls)
			require.Equal(t, tc.want, gl)
			require.Equal(t, tc.key, groupKey(tc.r, gl))
		})
	}
}

func TestRouteMatchersCombineAndSort(t *testing.T) {
	// Matcher order in the file does not change the key; entries combine.
	a := compileTest(t, `
receivers: [{name: a, url: "https://x.example.com/"}]
route: {receiver: a, routes: [{matchers: ['b="2"', 'a="1"']}]}
`)
	b := compileTest(t, `
receivers: [{name: a, url: "https://x.example.com/"}]
route: {receiver: a, routes: [{matchers: ['{a="1", b="2"}']}]}
`)
	require.Equal(t, `{}/{a="1",b="2"}`, a.routes[0].key)
	require.Equal(t, a.routes[0].key, b.routes[0].key)
	require.Len(t, a.routes[0].match(model.LabelSet{"a": "1", "b": "2"}), 1)
	require.Equal(t, []*route{a}, a.match(model.LabelSet{"a": "1"}), "one matcher short: the root")

	// Every route has its own index, so groups of routes with equal keys
	// stay apart, as in Alertmanager.
	seen := map[int]bool{}
	compileTest(t, testTree).walk(func(r *route) {
		require.False(t, seen[r.idx])
		seen[r.idx] = true
	})
	require.Len(t, seen, 5)
}
