package app

import (
	"github.com/pharos-obs/pharos/internal/cluster"
	"github.com/pharos-obs/pharos/query"
)

// registerRulesFanOut serves the rules API (/api/v1/rules, /api/v1/alerts
// and, through handleNotificationsStatus, /api/v1/status/notifications)
// on a query process that evaluates no rules but has aggregators to ask:
// those of -query.aggregator.addresses, or the healthy members of the
// ring. Without it the dashboard's Alerts page of a cluster's querier is
// empty, since rules run on the aggregators only.
func (a *App) registerRulesFanOut() {
	if a.cfg.rulesEnabled() {
		return
	}
	var eps query.EndpointsFunc
	switch {
	case len(a.cfg.Query.Aggregators) > 0:
		eps = query.StaticEndpoints(a.cfg.Query.Aggregators)
	case a.watcher != nil:
		eps = a.healthyAggregators
	default:
		return
	}
	// Each request is bounded by the read timeout through its context.
	rr := query.NewRemoteRules(eps, a.internalClient(0), a.cfg.Query.ReadTimeout)
	a.rulesFanOut = rr
	// The tenant resolved here is forwarded to the aggregators, which
	// answer with its groups and alerts.
	a.server.mux.Handle("GET "+query.RulesPath, query.WithTenant(rr.RulesHandler()))
	a.server.mux.Handle("GET "+query.AlertsPath, query.WithTenant(rr.AlertsHandler()))
}

// healthyAggregators are the aggregators whose rules a querier shows: the
// healthy members of the ring, among which every group has its one owner.
func (a *App) healthyAggregators() []query.Endpoint {
	var eps []query.Endpoint
	for _, in := range a.watcher.Healthy() {
		if in.Addr != "" && in.State != cluster.StateLeft {
			eps = append(eps, query.Endpoint{Name: in.ID, Addr: in.Addr})
		}
	}
	return eps
}
