package app

import (
	"context"
	"errors"
	"hash/fnv"

	"github.com/grafana/dskit/services"
	promrules "github.com/prometheus/prometheus/rules"

	"github.com/pharos-obs/pharos/alerting/notify"
	"github.com/pharos-obs/pharos/alerting/rules"
	"github.com/pharos-obs/pharos/internal/cluster"
	"github.com/pharos-obs/pharos/query"
	"github.com/pharos-obs/pharos/query/logql"
	"github.com/pharos-obs/pharos/storage/logs"
)

// Modules of alerting.
const (
	modNotifier = "notifier"
	modRules    = "rules"
)

// rulesEnabled: rule groups are evaluated by aggregators, when rule files
// (PromQL or LogQL) or a tenants directory are configured.
func (c *Config) rulesEnabled() bool {
	return c.has(TargetAggregator) && (len(c.Rules.Files) > 0 || len(c.Rules.LogFiles) > 0 || c.Rules.TenantsDir != "")
}

func (a *App) initNotifier() (services.Service, error) {
	n, err := notify.New(a.cfg.Notify, a.logger.With("component", "notify"), a.reg)
	if err != nil {
		return nil, err
	}
	a.notifier = n
	return n, nil
}

// initRules evaluates the rule groups this aggregator owns against the
// whole cluster's data, metrics for PromQL rules and logs for LogQL ones;
// recording-rule results and the ALERTS series go back through the
// pipeline (the agent's publisher), so that they are stored like any
// series and reach the group's next owner.
func (a *App) initRules() (services.Service, error) {
	var m *rules.Manager
	start := func(ctx context.Context) error {
		deps := rules.Deps{Appendable: a.batcher}
		if a.cfg.ringEnabled() {
			deps.Queryable = query.NewRemote(a.memberEndpoints, a.cfg.Query.ReadTimeout, true, a.remoteOption())
			deps.Owns = a.ownsGroup
		} else {
			deps.Queryable = a.store
		}
		// A tenant's log rules may appear on any reload of the tenants
		// directory.
		if len(a.cfg.Rules.LogFiles) > 0 || a.cfg.Rules.TenantsDir != "" {
			q, err := a.rulesLogs(ctx)
			if err != nil {
				return err
			}
			deps.Logs = q
			// The query API's LogQL limits, with the rules' timeout.
			opts := a.cfg.LogQL
			opts.Timeout = a.cfg.Rules.QueryTimeout
			deps.LogEngine = logql.NewEngine(opts)
		}
		if a.notifier != nil {
			deps.Send = a.notifier.Send
		}
		var err error
		m, err = rules.New(a.cfg.Rules, deps, a.logger.With("component", "rules"), a.reg)
		if err != nil {
			return err
		}
		a.rules.Store(m)
		return services.StartAndAwaitRunning(ctx, m)
	}
	run := func(ctx context.Context) error {
		<-ctx.Done()
		return nil
	}
	stop := func(error) error {
		if m == nil {
			return nil
		}
		return services.StopAndAwaitTerminated(context.Background(), m)
	}
	// Each tenant sees its own groups and alerts.
	a.server.mux.Handle("GET /api/v1/rules", query.WithTenant(rules.RulesHandler(rulesSource{a})))
	a.server.mux.Handle("GET /api/v1/alerts", query.WithTenant(rules.AlertsHandler(rulesSource{a})))
	return services.NewBasicService(start, run, stop), nil
}

// rulesLogs is what log rules read, chosen as the metrics they write are:
// in a cluster, every aggregator's logs (the same fan-out the query API
// uses, over the ring's members, partial like the rules' metrics reads);
// in the all-in-one, the local log store (a module the rules module
// depends on, so it is open by now).
func (a *App) rulesLogs(ctx context.Context) (logs.Querier, error) {
	if a.cfg.ringEnabled() {
		client := a.internalClient(a.cfg.Query.ReadTimeout)
		return query.NewRemoteLogs(a.memberEndpoints, client, true, a.logger.With("component", "rules-logs-fan-out")), nil
	}
	if a.logStore == nil {
		return nil, errors.New("rules: log rules need the log store, which this process does not open")
	}
	return a.localLogs(), nil
}

// ownsGroup: each rule group belongs to one healthy aggregator, the
// highest of rendezvous hashes of the group key with each member's ID, so
// that a member joining or leaving moves only its share of groups.
func (a *App) ownsGroup(key string) bool {
	m := a.member.Load()
	if m == nil {
		return false
	}
	best, bestHash := "", uint64(0)
	for _, id := range cluster.IDs(m.Healthy()) {
		h := fnv.New64a()
		_, _ = h.Write([]byte(key))
		_, _ = h.Write([]byte{0})
		_, _ = h.Write([]byte(id))
		if v := h.Sum64(); best == "" || v > bestHash {
			best, bestHash = id, v
		}
	}
	return best == m.ID()
}

// memberEndpoints are the aggregators a rule evaluation reads: every
// member of the ring as this aggregator sees it.
func (a *App) memberEndpoints() []query.Endpoint {
	m := a.member.Load()
	if m == nil {
		return nil
	}
	var eps []query.Endpoint
	for _, in := range m.Members() {
		if in.Addr != "" && in.State != cluster.StateLeft {
			eps = append(eps, query.Endpoint{Name: in.ID, Addr: in.Addr})
		}
	}
	return eps
}

// rulesSource serves the API from the rules manager once it runs.
type rulesSource struct{ a *App }

// TenantGroups implements rules.GroupSource.
func (s rulesSource) TenantGroups(id string) []*promrules.Group {
	if m := s.a.rules.Load(); m != nil {
		return m.TenantGroups(id)
	}
	return nil
}
