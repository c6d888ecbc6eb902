package spool

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	bytes    prometheus.Gauge
	records  prometheus.Gauge
	appended prometheus.Counter
	replayed prometheus.Counter
	corrupt  prometheus.Counter
}

// newMetrics returns the spool's metrics, not registered yet: Open
// registers them once the spool has opened, so that a failed Open leaves
// nothing behind in the registry.
func newMetrics() *metrics {
	return &metrics{
		bytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pharos_agent_spool_bytes", Help: "Bytes of the spool's segment files on disk (what agent.spool.max_bytes bounds)."}),
		records: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pharos_agent_spool_records", Help: "Records in the spool not yet confirmed as replayed."}),
		appended: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pharos_agent_spool_appended_records_total", Help: "Records written to the spool and synced to disk."}),
		replayed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pharos_agent_spool_replayed_records_total", Help: "Records read from the spool and confirmed as delivered."}),
		corrupt: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pharos_agent_spool_corrupt_bytes_total", Help: "Bytes of damaged or torn spool data skipped or truncated."}),
	}
}

// register registers the metrics on reg (nil: nowhere). A process with
// several spools wraps reg with a label that tells them apart.
func (m *metrics) register(reg prometheus.Registerer) error {
	if reg == nil {
		return nil
	}
	var errs []error
	for _, c := range []prometheus.Collector{m.bytes, m.records, m.appended, m.replayed, m.corrupt} {
		errs = append(errs, reg.Register(c))
	}
	return errors.Join(errs...)
}
