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
	files          prometheus.Gauge
	groups         prometheus.Gauge
	owned          prometheus.Gauge
	skipped        prometheus.Counter
	unownedDropped prometheus.Counter
	sent           *prometheus.CounterVec
	logSamples     *prometheus.CounterVec
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
		files: f.NewGauge(prometheus.GaugeOpts{
			Name: "pharos_rules_files", Help: "Rule files matched by -rules.files and -rules.log-files at the last successful load."}),
		groups: f.NewGauge(prometheus.GaugeOpts{
			Name: "pharos_rules_groups", Help: "Rule groups in the rule files, owned by this node or not."}),
		owned: f.NewGauge(prometheus.GaugeOpts{
			Name: "pharos_rules_owned_groups", Help: "Rule groups this node evaluates."}),
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

// reloaded records a load of the rule files; on success, files and groups
// count what it loaded.
func (m *metrics) reloaded(ok bool, files, groups int) {
	if !ok {
		m.reloads.WithLabelValues("failure").Inc()
		m.reloadOK.Set(0)
		return
	}
	m.reloads.WithLabelValues("success").Inc()
	m.reloadOK.Set(1)
	m.reloadOKTime.Set(float64(time.Now().UnixNano()) / 1e9)
	m.files.Set(float64(files))
	m.groups.Set(float64(groups))
}
