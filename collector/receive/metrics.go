package receive

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Protocol names a push protocol in metric labels.
type Protocol string

// The protocols the agent receives.
const (
	// ProtocolRemoteWrite is a remote write request whose version is not
	// known yet (refused before its content type was understood).
	ProtocolRemoteWrite Protocol = "prw"
	// ProtocolRemoteWriteV1 is Prometheus remote write 1.0.
	ProtocolRemoteWriteV1 Protocol = "prw1"
	// ProtocolRemoteWriteV2 is Prometheus remote write 2.0.
	ProtocolRemoteWriteV2 Protocol = "prw2"
	// ProtocolOTLPHTTP is OTLP over HTTP (protobuf or JSON).
	ProtocolOTLPHTTP Protocol = "otlp_http"
	// ProtocolOTLPGRPC is OTLP over gRPC.
	ProtocolOTLPGRPC Protocol = "otlp_grpc"
)

type metrics struct {
	rejectedSamples   *prometheus.CounterVec
	rejectedExemplars *prometheus.CounterVec
	requests          *prometheus.CounterVec
	samples           *prometheus.CounterVec
	exemplars         *prometheus.CounterVec
	inflight          prometheus.Gauge
	duration          *prometheus.HistogramVec
	bodyBytes         *prometheus.HistogramVec

	// Resolved once: the validator counts on every rejected sample.
	byReason   map[string]prometheus.Counter
	exByReason map[string]prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	m := &metrics{
		rejectedSamples: f.NewCounterVec(prometheus.CounterOpts{
			Name: "pharos_agent_rejected_samples_total",
			Help: "Pushed samples (float and histogram) refused at ingestion, by reason.",
		}, []string{"reason"}),
		rejectedExemplars: f.NewCounterVec(prometheus.CounterOpts{
			Name: "pharos_agent_rejected_exemplars_total",
			Help: "Pushed exemplars dropped at ingestion (their samples were kept), by reason.",
		}, []string{"reason"}),
		requests: f.NewCounterVec(prometheus.CounterOpts{
			Name: "pharos_agent_receive_requests_total",
			Help: "Push requests answered, by protocol and status (HTTP code or gRPC code).",
		}, []string{"protocol", "status"}),
		samples: f.NewCounterVec(prometheus.CounterOpts{
			Name: "pharos_agent_received_samples_total",
			Help: "Pushed samples accepted and committed to the agent's batches, by protocol and type (float, histogram).",
		}, []string{"protocol", "type"}),
		exemplars: f.NewCounterVec(prometheus.CounterOpts{
			Name: "pharos_agent_received_exemplars_total",
			Help: "Pushed exemplars accepted and committed to the agent's batches, by protocol.",
		}, []string{"protocol"}),
		inflight: f.NewGauge(prometheus.GaugeOpts{
			Name: "pharos_agent_receive_inflight_requests",
			Help: "Push requests being handled now (bounded by agent.receive.max_inflight_requests).",
		}),
		duration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "pharos_agent_receive_request_duration_seconds",
			Help:    "Time to handle an admitted push request, from admission to response.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 9),
		}, []string{"protocol"}),
		bodyBytes: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "pharos_agent_receive_request_bytes",
			Help:    "Push request body sizes, as sent (stage=wire) and decompressed (stage=decoded).",
			Buckets: prometheus.ExponentialBuckets(256, 4, 10),
		}, []string{"protocol", "stage"}),
		byReason:   map[string]prometheus.Counter{},
		exByReason: map[string]prometheus.Counter{},
	}
	for _, r := range SampleReasons {
		m.byReason[r] = m.rejectedSamples.WithLabelValues(r)
	}
	for _, r := range ExemplarReasons {
		m.exByReason[r] = m.rejectedExemplars.WithLabelValues(r)
	}
	return m
}

func (m *metrics) rejectSamples(reason string, n int) {
	if n <= 0 {
		return
	}
	c, ok := m.byReason[reason]
	if !ok {
		c = m.rejectedSamples.WithLabelValues(reason)
	}
	c.Add(float64(n))
}

func (m *metrics) rejectExemplars(reason string, n int) {
	if n <= 0 {
		return
	}
	c, ok := m.exByReason[reason]
	if !ok {
		c = m.rejectedExemplars.WithLabelValues(reason)
	}
	c.Add(float64(n))
}
