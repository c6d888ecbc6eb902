package receive

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pharos-obs/pharos/internal/overrides"
	"github.com/pharos-obs/pharos/internal/tenant"
	"github.com/pharos-obs/pharos/storage/logs"
)

// Reasons of pharos_agent_rejected_samples_total and
// pharos_agent_rejected_log_entries_total for per-tenant limits (the
// tenant and limit are in pharos_agent_tenant_limited_total).
const (
	ReasonTenantMaxSeries = "per_tenant_max_series"
)

// tenantLimits enforces the per-tenant limits on pushed data; nil when
// the agent has none configured (SetOverrides not called).
type tenantLimits struct {
	o        *overrides.Overrides
	rates    *overrides.Rates
	series   *overrides.ActiveSet
	streams  *overrides.ActiveSet
	discards *overrides.Discards
}

// SetOverrides makes the Intake (and the log and trace intakes built on
// it) enforce o's per-tenant limits: label limits, active series and
// streams (over what this agent sees within o's active window) and
// ingestion rates. Call it before the receivers serve.
func (in *Intake) SetOverrides(o *overrides.Overrides, reg prometheus.Registerer) {
	w := o.Config().ActiveWindow
	in.tl = &tenantLimits{
		o:        o,
		rates:    overrides.NewRates(o),
		series:   overrides.NewActiveSet(w),
		streams:  overrides.NewActiveSet(w),
		discards: overrides.NewDiscards(reg, "agent"),
	}
}

// labelLimits are the label rules and the series limit of one request's
// tenant.
type labelLimits struct {
	names, nameLen, valueLen, maxSeries int
	streamNames                         int // -1: the logs configuration's
	tenant                              string
	overridden                          bool // the tenant has an entry in the overrides file
}

// rule names where limit is set, for error messages: the tenant's entry
// in the overrides file when it has one, else def (the default's option).
// Built only for a refusal, not for every request.
func (l *labelLimits) rule(limit, def string) string {
	if l.overridden {
		return "overrides." + l.tenant + "." + limit
	}
	return def
}

// limitsFor returns the label limits and the series limit of tenant id.
func (in *Intake) limitsFor(id string) labelLimits {
	if in.tl == nil {
		return labelLimits{
			names: in.limits.MaxLabelNamesPerSeries, nameLen: in.limits.MaxLabelNameLength,
			valueLen: in.limits.MaxLabelValueLength, streamNames: -1, tenant: id,
		}
	}
	l, overridden := in.tl.o.Lookup(id)
	return labelLimits{
		names: l.MaxLabelNamesPerSeries, nameLen: l.MaxLabelNameLength, valueLen: l.MaxLabelValueLength,
		streamNames: l.MaxLabelNamesPerStream, maxSeries: l.MaxSeries, tenant: id, overridden: overridden,
	}
}

// limitOfReason names the per-tenant limit behind a sample rejection
// reason, "" when the reason is not one.
func limitOfReason(reason string) string {
	switch reason {
	case ReasonMaxLabelNames:
		return overrides.LimitMaxLabelNamesPerSeries
	case ReasonLabelNameTooLong:
		return overrides.LimitMaxLabelNameLength
	case ReasonLabelValueTooLong:
		return overrides.LimitMaxLabelValueLength
	case ReasonTenantMaxSeries:
		return overrides.LimitMaxSeries
	case ReasonLogsMaxLabelNames:
		return overrides.LimitMaxLabelNamesPerStream
	}
	return ""
}

// countLimited counts n items of signal that tenant's limits refused for
// reason, when reason is a per-tenant limit.
func (in *Intake) countLimited(id, signal, reason string, n int) {
	if in.tl == nil {
		return
	}
	if l := limitOfReason(reason); l != "" {
		in.tl.discards.Add(id, signal, l, n)
	}
}

// allowRate takes n units of signal from tenant id's ingestion rate.
func (in *Intake) allowRate(id, signal string, n int) error {
	if in.tl == nil {
		return nil
	}
	return in.tl.rates.Allow(id, signal, n)
}

// admitStreams checks the pushed streams against tenant id's active
// stream limit, all or nothing: a push with one stream too many is
// refused whole (429, as Loki), so a retry stores no entry twice.
func (in *Intake) admitStreams(id string, streams []logs.Stream) error {
	if in.tl == nil {
		return nil
	}
	limit := in.tl.o.For(id).MaxStreams
	if limit <= 0 {
		return nil
	}
	keys := make([]uint64, len(streams))
	for i := range streams {
		keys[i] = streams[i].Labels.Hash()
	}
	fresh, ok := in.tl.streams.AdmitAll(id, keys, limit)
	if ok {
		return nil
	}
	return &overrides.LimitError{Tenant: id, Limit: overrides.LimitMaxStreams, RetryAfter: in.cfg.RetryAfter,
		Detail: fmt.Sprintf("%d new log streams would take the tenant over its limit of %d active streams (%d active)",
			fresh, limit, in.tl.streams.Len(id))}
}

// limitLogs applies tenant id's log rate and stream limits to a checked
// push of entries entries and size bytes; the refused entries are counted.
func (li *LogsIntake) limitLogs(id string, streams []logs.Stream, entries, size int) error {
	in := li.in
	if in.tl == nil {
		return nil
	}
	err := in.allowRate(id, overrides.SignalLogs, size)
	if err == nil {
		err = in.admitStreams(id, streams)
	}
	var le *overrides.LimitError
	if errors.As(err, &le) {
		in.tl.discards.Add(id, overrides.SignalLogs, le.Limit, entries)
	}
	return err
}

// limitTraces applies tenant id's span byte rate to a checked push of
// spans spans, whose encoded size is size() (only asked when the tenant
// has a rate); the refused spans are counted.
func (ti *TracesIntake) limitTraces(id string, spans int, size func() int) error {
	in := ti.in
	if in.tl == nil || in.tl.o.For(id).TracesIngestionRateBytes <= 0 {
		return nil
	}
	err := in.allowRate(id, overrides.SignalTraces, size())
	var le *overrides.LimitError
	if errors.As(err, &le) {
		in.tl.discards.Add(id, overrides.SignalTraces, le.Limit, spans)
	}
	return err
}

// tenantID maps a store key ("" for the default tenant, see tenant.Key)
// back to the tenant's ID, under which its limits are kept.
func tenantID(key string) string {
	if key == "" {
		return tenant.Default
	}
	return key
}

// LimitResponse tells how to answer err when it is a per-tenant limit's
// refusal: 429 with a Retry-After value (whole seconds) when a retry may
// pass, 400 and "" when it cannot. ok is false for other errors.
func LimitResponse(err error) (code int, retryAfter string, ok bool) {
	var le *overrides.LimitError
	if !errors.As(err, &le) {
		return 0, "", false
	}
	if !le.Retryable() {
		return http.StatusBadRequest, "", true
	}
	return http.StatusTooManyRequests, strconv.Itoa(overrides.RetryAfterSeconds(le.RetryAfter)), true
}
