package bus

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Label values of pharos_bus_publish_errors_total{reason}.
const (
	reasonStreamFull = "stream_full"
	reasonTimeout    = "timeout"
	reasonOther      = "other"
)

// metrics are the bus's own series. Every Conn of a process shares one set:
// the all-in-one target connects once for the agent and once for the
// aggregator, and the second registration reuses the first's collectors
// instead of failing.
type metrics struct {
	connected         *prometheus.GaugeVec
	reconnects        prometheus.Counter
	publishedMessages *prometheus.CounterVec
	publishedBytes    *prometheus.CounterVec
	publishErrors     *prometheus.CounterVec
	publishDuplicates *prometheus.CounterVec
	publishDuration   *prometheus.HistogramVec
	consumedMessages  *prometheus.CounterVec
	consumedBytes     *prometheus.CounterVec
	deadLetters       *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		connected: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pharos_bus_connected",
			Help: "1 while the named NATS client connection is up, 0 while it is reconnecting.",
		}, []string{"client"}),
		reconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pharos_bus_reconnects_total",
			Help: "NATS client reconnections.",
		}),
		publishedMessages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pharos_bus_published_messages_total",
			Help: "Messages stored by JetStream (PubAck received, duplicates excluded).",
		}, []string{"signal"}),
		publishedBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pharos_bus_published_bytes_total",
			Help: "Payload bytes of the messages counted in pharos_bus_published_messages_total.",
		}, []string{"signal"}),
		publishErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pharos_bus_publish_errors_total",
			Help: "Failed publishes by reason: stream_full (stream or storage at its limits), timeout, other.",
		}, []string{"signal", "reason"}),
		publishDuplicates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pharos_bus_publish_duplicates_total",
			Help: "Publishes JetStream acknowledged as duplicates of an already stored message ID.",
		}, []string{"signal"}),
		publishDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "pharos_bus_publish_duration_seconds",
			Help: "Time from publish to JetStream PubAck, for successful publishes.",
			// 0.5 ms (in-process) to 16 s (beyond any sane publish timeout).
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"signal"}),
		consumedMessages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pharos_bus_consumed_messages_total",
			Help: "Messages delivered to consumers, redeliveries included.",
		}, []string{"signal"}),
		consumedBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pharos_bus_consumed_bytes_total",
			Help: "Payload bytes of the messages counted in pharos_bus_consumed_messages_total.",
		}, []string{"signal"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pharos_bus_dead_letters_total",
			Help: "Messages moved to the dead-letter stream because they could not be processed.",
		}, []string{"signal"}),
	}
	if reg == nil {
		return m, nil
	}
	var err error
	if m.connected, err = registerOrReuse(reg, m.connected); err != nil {
		return nil, err
	}
	if m.reconnects, err = registerOrReuse(reg, m.reconnects); err != nil {
		return nil, err
	}
	for _, v := range []**prometheus.CounterVec{
		&m.publishedMessages, &m.publishedBytes, &m.publishErrors, &m.publishDuplicates,
		&m.consumedMessages, &m.consumedBytes, &m.deadLetters,
	} {
		if *v, err = registerOrReuse(reg, *v); err != nil {
			return nil, err
		}
	}
	if m.publishDuration, err = registerOrReuse(reg, m.publishDuration); err != nil {
		return nil, err
	}
	return m, nil
}

// registerOrReuse registers c, or returns the identical collector another
// Conn of this process registered first.
func registerOrReuse[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	if are, ok := errors.AsType[prometheus.AlreadyRegisteredError](err); ok {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	var zero C
	return zero, fmt.Errorf("register bus metrics: %w", err)
}

// signalMetrics holds one signal's series, resolved once so the publish
// and consume paths skip the label lookups.
type signalMetrics struct {
	publishedMessages prometheus.Counter
	publishedBytes    prometheus.Counter
	publishDuplicates prometheus.Counter
	publishDuration   prometheus.Observer
	errStreamFull     prometheus.Counter
	errTimeout        prometheus.Counter
	errOther          prometheus.Counter
	consumedMessages  prometheus.Counter
	consumedBytes     prometheus.Counter
}

func (m *metrics) forSignal(s Signal) signalMetrics {
	l := string(s)
	return signalMetrics{
		publishedMessages: m.publishedMessages.WithLabelValues(l),
		publishedBytes:    m.publishedBytes.WithLabelValues(l),
		publishDuplicates: m.publishDuplicates.WithLabelValues(l),
		publishDuration:   m.publishDuration.WithLabelValues(l),
		errStreamFull:     m.publishErrors.WithLabelValues(l, reasonStreamFull),
		errTimeout:        m.publishErrors.WithLabelValues(l, reasonTimeout),
		errOther:          m.publishErrors.WithLabelValues(l, reasonOther),
		consumedMessages:  m.consumedMessages.WithLabelValues(l),
		consumedBytes:     m.consumedBytes.WithLabelValues(l),
	}
}

func (sm *signalMetrics) publishError(reason string) {
	switch reason {
	case reasonStreamFull:
		sm.errStreamFull.Inc()
	case reasonTimeout:
		sm.errTimeout.Inc()
	default:
		sm.errOther.Inc()
	}
}
