package rules

import (
	"context"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"

	"github.com/pharos-obs/pharos/internal/tenant"
)

// ownedLoader is the rules manager's GroupLoader: for a file, it hands out
// the groups of the last successful load that this node owns. So the
// rules manager only ever holds owned groups, and taking over a group is,
// to it, a new group, which it starts and restores (RestoreNewRuleGroups).
//
// Only rules.Manager.Update calls it, and the Manager calls Update with
// its mu held, which guards files.
type ownedLoader struct {
	parser parser.Parser
	owns   OwnsFunc
	tenant string // whose groups these are: part of their keys
	files  map[string]*rulefmt.RuleGroups
}

// Load implements rules.GroupLoader. The file was parsed and validated by
// the Manager's load; nothing is read here, so applying a change of
// ownership never picks up a file edited since the last reload.
func (l *ownedLoader) Load(file string, _ bool, _ model.ValidationScheme) (*rulefmt.RuleGroups, []error) {
	rgs, ok := l.files[file]
	if !ok || rgs == nil {
		return nil, []error{fmt.Errorf("%s: rule file not loaded", file)}
	}
	owned := &rulefmt.RuleGroups{Groups: make([]rulefmt.RuleGroup, 0, len(rgs.Groups))}
	for _, g := range rgs.Groups {
		if l.owns(TenantGroupKey(l.tenant, file, g.Name)) {
			owned.Groups = append(owned.Groups, g)
		}
	}
	return owned, nil
}

// Parse implements rules.GroupLoader.
func (l *ownedLoader) Parse(query string) (parser.Expr, error) { return l.parser.ParseExpr(query) }

// ownedAppendable passes appends on, except those made for a rule group
// this node does not own. The rules manager marks the series of a group it
// stops stale, two intervals later; when the group stopped because
// another node took it over, that node writes those series now, and the
// old owner's stale markers would cut them and make the new owner's
// `for`-state restore see its alerts as inactive. A group removed from
// the rule files is still owned by someone (ownership is a function of
// the key), and that node, which evaluated it, marks its series stale.
//
// The group comes from the origin the rules package attaches to the
// context of each group's evaluations and clean-up, its tenant from the
// rules manager's context, which that context is made from.
type ownedAppendable struct {
	next    storage.AppendableV2
	owns    OwnsFunc
	dropped prometheus.Counter
}

func (a *ownedAppendable) AppenderV2(ctx context.Context) storage.AppenderV2 {
	if key, ok := groupFromContext(ctx); ok && !a.owns(key) {
		return &discardAppender{dropped: a.dropped}
	}
	return a.next.AppenderV2(ctx)
}

// groupFromContext returns the key (TenantGroupKey) of the rule group
// whose goroutine made ctx, from the promql origin the rules package sets
// ({"ruleGroup": {"file": …, "name": …}}) and the tenant ctx carries.
func groupFromContext(ctx context.Context) (string, bool) {
	origin, ok := ctx.Value(promql.QueryOrigin{}).(map[string]any)
	if !ok {
		return "", false
	}
	g, ok := origin["ruleGroup"].(map[string]string)
	if !ok {
		return "", false
	}
	return TenantGroupKey(tenant.FromContext(ctx), g["file"], g["name"]), true
}

// discardAppender drops and counts what is appended.
type discardAppender struct {
	dropped prometheus.Counter
	n       int
}

func (d *discardAppender) Append(storage.SeriesRef, labels.Labels, int64, int64, float64, *histogram.Histogram, *histogram.FloatHistogram, storage.AOptions) (storage.SeriesRef, error) {
	d.n++
	return 0, nil
}

func (d *discardAppender) Commit() error {
	d.dropped.Add(float64(d.n))
	d.n = 0
	return nil
}

func (d *discardAppender) Rollback() error {
	d.n = 0
	return nil
}
