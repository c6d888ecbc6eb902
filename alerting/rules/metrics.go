package rules

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// metrics are Pharos's own; the rules package adds prometheus_rule_* (per
// group: evaluations, failures, durations, last evaluation) and the
// notifier prometheus_notifications_* (per Alertmanager: sent, errors,
// dropped, queue length).
type metrics struct {
	reloads        *prometheus.CounterVec
	reloadOK       prometheus.Gauge
	reloadOKTime   prometheus.Gauge
	files          *prometheus.GaugeVec // by tenant
	groups         *prometheus.GaugeVec // by tenant
	owned          *prometheus.GaugeVec // by tenant
	skipped        prometheus.Counter
	unownedDropped prometheus.Counter
	sent           *prometheus.CounterVec
	logSamples     *prometheus.CounterVec

	// The tenants of the gauges' series, to delete those of tenants gone;
	// the Manager's mu guards them.
	loadedTenants, ownedTenants []string
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	m := &metrics{
		reloads: f.NewCounterVec(prometheus.CounterOpts{
			Name: "pharos_rules_reloads_total", Help: "Loads of the rule files, by result (success, failure)."}, []string{"result"}),
		reloadOK: f.NewGauge(prometheus.GaugeOpts{
			Name: "pharos_rules_last_reload_successful", Help: "Whether the last load of the rule files succeeded (1) or left the previous rules in use (0)."}),
		reloadOKTime: f.NewGauge(prometheus.GaugeOpts{
			Name: "pharos_rules_last_reload_success_timestamp_seconds", Help: "When the rule files last loaded successfully."}),
		files: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pharos_rules_files", Help: "Rule files of each tenant at the last successful load (the default tenant's: -rules.files and -rules.log-files; every tenant's: its directory in -rules.tenants-dir)."}, []string{"tenant"}),
		groups: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pharos_rules_groups", Help: "Rule groups in each tenant's rule files, owned by this node or not."}, []string{"tenant"}),
		owned: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pharos_rules_owned_groups", Help: "Rule groups of each tenant that this node evaluates."}, []string{"tenant"}),
		skipped: f.NewCounter(prometheus.CounterOpts{
			Name: "pharos_rules_evaluations_skipped_total", Help: "Group evaluations skipped because the group had moved to another node and was not stopped yet."}),
		unownedDropped: f.NewCounter(prometheus.CounterOpts{
			Name: "pharos_rules_unowned_samples_dropped_total", Help: "Samples (mostly staleness markers) not written because their rule group had moved to another node, which writes those series."}),
		sent: f.NewCounterVec(prometheus.CounterOpts{
			Name: "pharos_rules_alerts_sent_total", Help: "Alert notifications handed on, by destination (alertmanager, hook)."}, []string{"destination"}),
		logSamples: f.NewCounterVec(prometheus.CounterOpts{
			Name: "pharos_rules_log_samples_total", Help: "Look-ups of the sample lines of firing log alerts' notifications, by result (added; empty: no line matched; failed; timeout: sent without)."}, []string{"result"}),
	}
	for _, r := range []string{sampleAdded, sampleEmpty, sampleFailed, sampleTimeout} {
		m.logSamples.WithLabelValues(r)
	}
	for _, r := range []string{"success", "failure"} {
		m.reloads.WithLabelValues(r)
	}
	for _, d := range []string{destAlertmanager, destHook} {
		m.sent.WithLabelValues(d)
	}
	return m
}

// reloadFailed records a load of the rule files that left the previous
// rules in use.
func (m *metrics) reloadFailed() {
	m.reloads.WithLabelValues("failure").Inc()
	m.reloadOK.Set(0)
}

// reloaded records a successful load: the files and groups of each of its
// tenants. A tenant gone since the last load loses its series, so the
// gauges hold one series per tenant directory (and the default tenant).
// It is called with the Manager's mu held, or before it is shared.
func (m *metrics) reloaded(l loadResult) {
	m.reloads.WithLabelValues("success").Inc()
	m.reloadOK.Set(1)
	m.reloadOKTime.Set(float64(time.Now().UnixNano()) / 1e9)
	files := make(map[string]int, len(l.tenants))
	groups := make(map[string]int, len(l.tenants))
	for key, ls := range l.sets {
		f, g := ls.count()
		files[key.tenant] += f
		groups[key.tenant] += g
	}
	for _, id := range l.tenants {
		m.files.WithLabelValues(id).Set(float64(files[id]))
		m.groups.WithLabelValues(id).Set(float64(groups[id]))
	}
	deleteGone(m.files, m.loadedTenants, l.tenants)
	deleteGone(m.groups, m.loadedTenants, l.tenants)
	m.loadedTenants = l.tenants
}

// setOwned records the groups of each tenant this node evaluates. It is
// called with the Manager's mu held.
func (m *metrics) setOwned(tenants []string, owned map[string]int) {
	for _, id := range tenants {
		m.owned.WithLabelValues(id).Set(float64(owned[id]))
	}
	deleteGone(m.owned, m.ownedTenants, tenants)
	m.ownedTenants = tenants
}

// deleteGone deletes the series of v for the tenants of before that are
// not in now.
func deleteGone(v *prometheus.GaugeVec, before, now []string) {
	keep := make(map[string]struct{}, len(now))
	for _, id := range now {
		keep[id] = struct{}{}
	}
	for _, id := range before {
		if _, ok := keep[id]; !ok {
			v.DeleteLabelValues(id)
		}
	}
}
