package notify

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Reasons an alert is dropped before it reaches an aggregation group
// (pharos_notify_alerts_dropped_total).
const (
	reasonQueueFull  = "queue_full"  // Send's queue was full
	reasonInvalid    = "invalid"     // failed alert validation (no labels, bad times)
	reasonGroupLimit = "group_limit" // would have opened a group beyond -notify.max-groups
	reasonShutdown   = "shutdown"    // sent to, or queued in, a stopping notifier
)

// Results of a notification (pharos_notify_notifications_total).
const (
	resultSuccess     = "success"
	resultFailed      = "failed"       // retries exhausted or a permanent error
	resultCircuitOpen = "circuit_open" // refused by the receiver's open breaker
	resultQueueFull   = "queue_full"   // the receiver's queue was full
	resultShutdown    = "shutdown"     // still queued or in flight at shutdown
)

type metrics struct {
	received      prometheus.Counter
	dropped       *prometheus.CounterVec
	groups        prometheus.Gauge
	notifications *prometheus.CounterVec
	requests      *prometheus.CounterVec
	duration      *prometheus.HistogramVec
	queued        *prometheus.GaugeVec
	breakerState  *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	m := &metrics{
		received: f.NewCounter(prometheus.CounterOpts{
			Name: "pharos_notify_alerts_received_total", Help: "Alerts handed to the notifier."}),
		dropped: f.NewCounterVec(prometheus.CounterOpts{
			Name: "pharos_notify_alerts_dropped_total", Help: "Alerts the notifier dropped before grouping them, by reason."}, []string{"reason"}),
		groups: f.NewGauge(prometheus.GaugeOpts{
			Name: "pharos_notify_aggregation_groups", Help: "Aggregation groups held in memory."}),
		notifications: f.NewCounterVec(prometheus.CounterOpts{
			Name: "pharos_notify_notifications_total", Help: "Notifications by receiver and result (success, failed, circuit_open, queue_full, shutdown)."}, []string{"receiver", "result"}),
		requests: f.NewCounterVec(prometheus.CounterOpts{
			Name: "pharos_notify_requests_total", Help: "Webhook requests by receiver and status code (\"error\" when no response came)."}, []string{"receiver", "code"}),
		duration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name: "pharos_notify_notification_duration_seconds", Help: "Time to deliver a notification, retries included, or to give up on it.",
			Buckets: prometheus.ExponentialBuckets(0.005, 4, 9)}, []string{"receiver"}),
		queued: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pharos_notify_receiver_queue_length", Help: "Notifications waiting for a receiver."}, []string{"receiver"}),
		breakerState: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pharos_notify_circuit_breaker_state", Help: "Circuit breaker state per receiver: 0 closed, 1 half-open, 2 open. An open breaker shows as open until the next notification probes the receiver."}, []string{"receiver"}),
	}
	// The reasons an operator should see at zero rather than missing.
	for _, r := range []string{reasonQueueFull, reasonInvalid, reasonGroupLimit, reasonShutdown} {
		m.dropped.WithLabelValues(r)
	}
	return m
}

// initReceiver makes a receiver's series exist from the start, so that
// rate() and alerts on them work before the first failure.
func (m *metrics) initReceiver(name string) {
	for _, r := range []string{resultSuccess, resultFailed, resultCircuitOpen, resultQueueFull, resultShutdown} {
		m.notifications.WithLabelValues(name, r)
	}
	m.queued.WithLabelValues(name)
	m.breakerState.WithLabelValues(name).Set(0)
}
