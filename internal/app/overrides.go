package app

import (
	"sync"

	"github.com/pharos-obs/pharos/aggregator"
	"github.com/pharos-obs/pharos/internal/overrides"
	"github.com/pharos-obs/pharos/storage/metrics"
)

// limitsState holds the per-tenant limits, built once for every module
// that enforces them (the receivers, the aggregator, the span-metrics
// generator) and reloaded with the rest of the configuration.
type limitsState struct {
	limitsOnce sync.Once
	limits     *overrides.Overrides
	limitsErr  error
	// seriesLimit is the aggregator's share of each tenant's series
	// limit, set on the metrics store when it opens.
	seriesLimit metrics.SeriesLimit
}

// tenantLimits returns the process's per-tenant limits; the label
// limits default to the agent's (agent.limits, agent.receive.logs).
func (a *App) tenantLimits() (*overrides.Overrides, error) {
	a.limitsOnce.Do(func() {
		al, ll := a.cfg.Agent.Limits, a.cfg.Agent.Receive.Logs
		a.limits, a.limitsErr = overrides.New(a.cfg.Limits, overrides.Limits{
			MaxLabelNamesPerSeries: al.MaxLabelNamesPerSeries,
			MaxLabelNameLength:     al.MaxLabelNameLength,
			MaxLabelValueLength:    al.MaxLabelValueLength,
			MaxLabelNamesPerStream: ll.MaxLabelNamesPerStream,
		})
	})
	return a.limits, a.limitsErr
}

// aggregatorLimits makes agg, its metrics store and the span-metrics
// generator enforce the per-tenant limits, each over this aggregator's
// share of the partitions.
func (a *App) aggregatorLimits(agg *aggregator.Aggregator) error {
	lim, err := a.tenantLimits()
	if err != nil {
		return err
	}
	d := overrides.NewDiscards(a.reg, "aggregator")
	agg.WithTenantLimits(lim, d)
	a.seriesLimit = agg.SeriesLimit
	if a.spanGen != nil {
		a.spanGen.SetTenantLimit(agg.SpanMetricsSeriesLimit, d)
	}
	return nil
}

// reloadLimits re-reads the overrides file, when a module has loaded it.
func (a *App) reloadLimits() error {
	if a.limits == nil {
		return nil
	}
	return a.limits.Reload()
}
