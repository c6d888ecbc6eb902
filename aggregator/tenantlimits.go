package aggregator

import (
	"errors"
	"math"
	"sync/atomic"

	"github.com/pharos-obs/pharos/internal/bus"
	"github.com/pharos-obs/pharos/internal/overrides"
	"github.com/pharos-obs/pharos/internal/tenant"
	"github.com/pharos-obs/pharos/storage/logs"
)

// tenantLimits enforces the per-tenant limits an aggregator can see
// whole: active series (through the metrics store, see SeriesLimit) and
// active log streams, over this aggregator's share of the partitions.
// What they refuse was acknowledged to the sender long ago: it is
// dropped, counted in pharos_aggregator_tenant_limited_total, and the
// message is acked (a redelivery would be refused the same way).
type tenantLimits struct {
	o        *overrides.Overrides
	streams  *overrides.ActiveSet
	discards *overrides.Discards
	share    atomic.Uint64 // float64 bits: owned partitions / all
}

// WithTenantLimits makes the aggregator enforce o's series and stream
// limits, counting what they refuse in d. Call it before the service
// starts.
func (a *Aggregator) WithTenantLimits(o *overrides.Overrides, d *overrides.Discards) {
	tl := &tenantLimits{
		o:        o,
		streams:  overrides.NewActiveSet(o.Config().ActiveWindow),
		discards: d,
	}
	a.mu.Lock()
	a.tl = tl
	a.updateShareLocked()
	a.mu.Unlock()
}

// updateShareLocked records the share of the partitions this aggregator
// owns (any replica of them), which scales the tenants' limits here.
func (a *Aggregator) updateShareLocked() {
	if a.tl == nil || a.partitions == 0 {
		return
	}
	seen := make(map[int]bool, len(a.owned))
	for _, pr := range a.owned {
		seen[pr.Partition] = true
	}
	share := float64(len(seen)) / float64(a.partitions)
	a.tl.share.Store(math.Float64bits(share))
}

// SeriesLimit is the number of series tenant id may hold in this
// aggregator's metrics store (metrics.Store.SetSeriesLimit takes it): its
// share of the tenant's max_series. 0 is no limit.
func (a *Aggregator) SeriesLimit(id string) int {
	tl := a.tl
	if tl == nil {
		return 0
	}
	return tl.local(tl.o.For(id).MaxSeries)
}

// SpanMetricsSeriesLimit is the number of span-metric combinations
// tenant id may have in this aggregator's generator
// (spanmetrics.Generator.SetTenantLimit takes it): its share of the
// tenant's max_span_metrics_series. 0 is no limit.
func (a *Aggregator) SpanMetricsSeriesLimit(id string) int {
	tl := a.tl
	if tl == nil {
		return 0
	}
	return tl.local(tl.o.For(id).MaxSpanMetricsSeries)
}

// local is this aggregator's share of a tenant's limit (see
// overrides.LocalLimit).
func (tl *tenantLimits) local(limit int) int {
	return overrides.LocalLimit(limit, math.Float64frombits(tl.share.Load()))
}

// limitStreams drops the streams of a message over its tenant's share of
// max_streams, counting their entries.
func (tl *tenantLimits) limitStreams(busTenant string, streams []logs.Stream) []logs.Stream {
	id := busTenant
	if id == "" || id == bus.DefaultTenant {
		id = tenant.Default
	}
	limit := tl.local(tl.o.For(id).MaxStreams)
	if limit <= 0 {
		return streams
	}
	k := 0
	for i := range streams {
		if tl.streams.Admit(id, streams[i].Labels.Hash(), limit) {
			streams[k] = streams[i]
			k++
			continue
		}
		tl.discards.Add(id, overrides.SignalLogs, overrides.LimitMaxStreams, len(streams[i].Entries))
	}
	clear(streams[k:])
	return streams[:k]
}

// countSeriesLimited counts a sample the metrics store refused for its
// tenant's series limit; it reports false for other errors.
func (a *Aggregator) countSeriesLimited(err error) bool {
	var le *overrides.LimitError
	if !errors.As(err, &le) {
		return false
	}
	if a.tl != nil {
		a.tl.discards.Add(le.Tenant, overrides.SignalMetrics, le.Limit, 1)
	}
	return true
}
