package lokiapi

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pharos-obs/pharos/query/apimetrics"
)

// metrics are the API's own metrics.
type metrics struct {
	requests *apimetrics.Requests
	tails    prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	requests, err := apimetrics.NewRequests("pharos_lokiapi", "Loki", reg)
	if err != nil {
		return nil, err
	}
	m := &metrics{
		requests: requests,
		tails: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pharos_lokiapi_tails",
			Help: "Open Loki tail websockets.",
		}),
	}
	if reg != nil {
		if err := reg.Register(m.tails); err != nil {
			return nil, err
		}
	}
	return m, nil
}
