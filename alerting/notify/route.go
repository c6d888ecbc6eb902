package notify

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/alertmanager/pkg/labels"
	"github.com/prometheus/common/model"
)

// route is a compiled node of the routing tree: what Alertmanager's
// dispatch.Route is, with the options inherited from its parents resolved.
type route struct {
	parent *route
	idx    int // unique in the tree; aggregation groups are kept per route

	receiver       string
	matchers       labels.Matchers
	groupBy        map[model.LabelName]struct{}
	groupByAll     bool
	groupWait      time.Duration
	groupInterval  time.Duration
	repeatInterval time.Duration
	continues      bool
	routes         []*route

	key string // see routeKey
}

// compileRoute turns a validated RouteConfig into a tree, resolving
// inheritance the way Alertmanager's dispatch.NewRoute does.
func compileRoute(rc *RouteConfig) (*route, error) {
	root := &route{
		groupBy:        map[model.LabelName]struct{}{},
		groupWait:      DefaultGroupWait,
		groupInterval:  DefaultGroupInterval,
		repeatInterval: DefaultRepeatInterval,
	}
	n := 0
	if err := root.fill(rc, nil, &n, "notify.route"); err != nil {
		return nil, err
	}
	return root, nil
}

// fill sets r from rc on top of the options r already holds: the defaults
// for the root, a copy of the parent's options for the others.
func (r *route) fill(rc *RouteConfig, parent *route, n *int, path string) error {
	r.parent = parent
	r.idx = *n
	*n++
	if rc.Receiver != "" {
		r.receiver = rc.Receiver
	}
	if rc.GroupBy != nil {
		// An explicit list replaces the parent's, "..." included.
		r.groupBy = make(map[model.LabelName]struct{}, len(rc.GroupBy))
		r.groupByAll = false
		for _, l := range rc.GroupBy {
			if l == "..." {
				r.groupByAll = true
				continue
			}
			r.groupBy[model.LabelName(l)] = struct{}{}
		}
	}
	for _, d := range []struct {
		name      string
		v         string
		allowZero bool
		dst       *time.Duration
	}{
		{"group_wait", rc.GroupWait, true, &r.groupWait},
		{"group_interval", rc.GroupInterval, false, &r.groupInterval},
		{"repeat_interval", rc.RepeatInterval, false, &r.repeatInterval},
	} {
		if d.v == "" {
			continue // inherited
		}
		v, err := parseDuration(d.v, d.allowZero)
		if err != nil {
			return fmt.Errorf("%s.%s: %w", path, d.name, err)
		}
		*d.dst = v
	}
	r.matchers = labels.Matchers{}
	for i, s := range rc.Matchers {
		ms, err := parseMatchers(s)
		if err != nil {
			return fmt.Errorf("%s.matchers[%d]: %w", path, i, err)
		}
		r.matchers = append(r.matchers, ms...)
	}
	sort.Sort(r.matchers)
	r.continues = rc.Continue
	r.key = routeKey(r)

	r.routes = make([]*route, 0, len(rc.Routes))
	for i, crc := range rc.Routes {
		child := &route{
			receiver:       r.receiver,
			groupBy:        r.groupBy, // never written to: fill makes a new map
			groupByAll:     r.groupByAll,
			groupWait:      r.groupWait,
			groupInterval:  r.groupInterval,
			repeatInterval: r.repeatInterval,
		}
		if err := child.fill(crc, r, n, fmt.Sprintf("%s.routes[%d]", path, i)); err != nil {
			return err
		}
		r.routes = append(r.routes, child)
	}
	return nil
}

// routeKey is Alertmanager's Route.Key: the matchers of the route and of its
// parents, "/"-separated, e.g. `{}/{severity="page"}`. With the group labels
// it makes the groupKey receivers see, so it must match Alertmanager's byte
// for byte (receivers deduplicate and correlate on it).
func routeKey(r *route) string {
	var b strings.Builder
	if r.parent != nil {
		b.WriteString(r.parent.key)
		b.WriteByte('/')
	}
	b.WriteString(r.matchers.String())
	return b.String()
}

// match returns the routes an alert with labels ls goes to: a depth-first,
// left-to-right search that stops at the first matching child unless that
// child has continue set. A node none of whose children match is itself
// the match.
func (r *route) match(ls model.LabelSet) []*route {
	if !r.matchers.Matches(ls) {
		return nil
	}
	var all []*route
	for _, c := range r.routes {
		m := c.match(ls)
		all = append(all, m...)
		if m != nil && !c.continues {
			break
		}
	}
	if len(all) == 0 {
		all = append(all, r)
	}
	return all
}

// groupLabels returns the labels of ls the route groups by.
func (r *route) groupLabels(ls model.LabelSet) model.LabelSet {
	n := len(r.groupBy)
	if r.groupByAll {
		n = len(ls)
	}
	gl := make(model.LabelSet, n)
	for ln, lv := range ls {
		if _, ok := r.groupBy[ln]; ok || r.groupByAll {
			gl[ln] = lv
		}
	}
	return gl
}

// walk calls visit for r and every route below it, depth first.
func (r *route) walk(visit func(*route)) {
	visit(r)
	for _, c := range r.routes {
		c.walk(visit)
	}
}

// groupKey is Alertmanager's aggrGroup.GroupKey.
func groupKey(r *route, groupLabels model.LabelSet) string {
	return r.key + ":" + groupLabels.String()
}
