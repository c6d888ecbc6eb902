package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/grafana/dskit/services"
	"github.com/prometheus/alertmanager/template"
	"github.com/prometheus/alertmanager/types"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
)

// ErrNotConfigured is returned by New for a Config without receivers.
var ErrNotConfigured = errors.New("notify: no receivers configured")

// ingestBatch bounds the alerts grouped per wake-up of the service
// goroutine, so that group timers are not starved by a flood of alerts.
const ingestBatch = 512

// Notifier groups alerts and notifies webhook receivers. It is a dskit
// service: alerts are grouped and delivered while it runs. Send may be
// called from any goroutine, at any time.
type Notifier struct {
	services.Service

	cfg       Config
	in        chan *types.Alert
	disp      *dispatcher
	receivers map[string]*receiver
	client    *http.Client
	failures  *failureLog
	m         *metrics
	logger    *slog.Logger

	// stopMu guards closed: Send holds it shared, stopping exclusively, so
	// that no alert slips into the queue after it was drained uncounted.
	stopMu sync.RWMutex
	closed bool

	cancelDelivery context.CancelFunc
	workers        sync.WaitGroup
}

// New returns a Notifier for cfg, which it validates. Its metrics are
// registered on reg; its events are logged on logger.
func New(cfg Config, logger *slog.Logger, reg prometheus.Registerer) (*Notifier, error) {
	if !cfg.Enabled() {
		return nil, ErrNotConfigured
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	// Loaded again, and so validated again, because Validate keeps
	// nothing: the file may have changed in between.
	rt, err := cfg.load()
	if err != nil {
		return nil, err
	}
	root, err := compileRoute(rt.Route)
	if err != nil {
		return nil, err
	}
	tmpl, err := template.New()
	if err != nil {
		return nil, fmt.Errorf("notify: template: %w", err)
	}
	tmpl.ExternalURL = &url.URL{}
	if cfg.ExternalURL != "" {
		if tmpl.ExternalURL, err = url.Parse(cfg.ExternalURL); err != nil {
			return nil, fmt.Errorf("notify.external_url: %w", err)
		}
	}

	n := &Notifier{
		cfg:       cfg,
		in:        make(chan *types.Alert, cfg.QueueSize),
		receivers: make(map[string]*receiver, len(rt.Receivers)),
		client:    newHTTPClient(cfg.AllowPrivateAddresses),
		failures:  newFailureLog(cfg.FailureLogSize),
		m:         newMetrics(reg),
		logger:    logger,
	}
	opts := make(map[string]receiverOpts, len(rt.Receivers))
	for _, rc := range rt.Receivers {
		n.receivers[rc.Name] = newReceiver(rc, cfg, n.client, n.m, n.failures, logger)
		opts[rc.Name] = receiverOpts{
			sendResolved: rc.SendResolved == nil || *rc.SendResolved,
			maxAlerts:    rc.MaxAlerts,
		}
	}
	n.disp = newDispatcher(root, opts, cfg.MaxGroups, tmpl, n.enqueue, n.m)
	n.Service = services.NewBasicService(n.starting, n.running, n.stopping)
	return n, nil
}

func (n *Notifier) enqueue(nf *notification) bool {
	return n.receivers[nf.receiver].enqueue(nf)
}

// Send hands alerts to the notifier and returns without waiting. Each
// alert is copied, so the caller may reuse it and its label sets after
// Send returns. As Alertmanager's API does, Send sets UpdatedAt to now,
// a zero StartsAt to now, and a zero EndsAt to now plus the resolve
// timeout (-notify.resolve-timeout); an alert that is still invalid (no
// labels, EndsAt before StartsAt) is dropped. Alerts that find the queue
// full, or the notifier stopping, are dropped too. Every drop is counted
// in pharos_notify_alerts_dropped_total and logged, one line per call.
// Alerts sent before the service runs wait in the queue.
func (n *Notifier) Send(alerts ...*types.Alert) {
	if len(alerts) == 0 {
		return
	}
	n.m.received.Add(float64(len(alerts)))
	now := time.Now()

	n.stopMu.RLock()
	defer n.stopMu.RUnlock()
	if n.closed {
		n.m.dropped.WithLabelValues(reasonShutdown).Add(float64(len(alerts)))
		n.logger.Warn("alerts dropped: notifier stopped", "alerts", len(alerts))
		return
	}
	var (
		invalid, full int
		invalidErr    error
	)
	for _, a := range alerts {
		c, err := prepareAlert(a, now, n.cfg.ResolveTimeout)
		if err != nil {
			invalid++
			if invalidErr == nil {
				invalidErr = err
			}
			continue
		}
		select {
		case n.in <- c:
		default:
			full++
		}
	}
	if invalid > 0 {
		n.m.dropped.WithLabelValues(reasonInvalid).Add(float64(invalid))
		n.logger.Warn("invalid alerts dropped", "alerts", invalid, "first_err", invalidErr)
	}
	if full > 0 {
		n.m.dropped.WithLabelValues(reasonQueueFull).Add(float64(full))
		n.logger.Warn("alerts dropped: queue full", "alerts", full, "queue_size", n.cfg.QueueSize)
	}
}

// prepareAlert copies a, with the defaults Alertmanager's API applies.
func prepareAlert(a *types.Alert, now time.Time, resolveTimeout time.Duration) (*types.Alert, error) {
	if a == nil {
		return nil, errors.New("nil alert")
	}
	c := *a
	c.Labels = make(model.LabelSet, len(a.Labels))
	for k, v := range a.Labels {
		if v != "" { // an empty label is an absent label
			c.Labels[k] = v
		}
	}
	c.Annotations = maps.Clone(a.Annotations)
	// The time this notifier learnt of this version of the alert: it tells
	// a re-fired alert from the resolved one a flush is about to forget.
	c.UpdatedAt = now
	if c.StartsAt.IsZero() {
		if c.EndsAt.IsZero() {
			c.StartsAt = now
		} else {
			c.StartsAt = c.EndsAt
		}
	}
	if c.EndsAt.IsZero() {
		c.Timeout = true
		c.EndsAt = now.Add(resolveTimeout)
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("alert %s: %w", c.Labels, err)
	}
	return &c, nil
}

// Failures returns the latest notifications that were not delivered,
// newest first, at most -notify.failure-log-size of them.
func (n *Notifier) Failures() []Failure {
	return n.failures.list()
}

// Receivers reports every receiver, sorted by name. It may be called from
// any goroutine, at any time.
func (n *Notifier) Receivers() []ReceiverStatus {
	out := make([]ReceiverStatus, 0, len(n.receivers))
	for _, r := range n.receivers {
		out = append(out, r.status())
	}
	slices.SortFunc(out, func(a, b ReceiverStatus) int { return strings.Compare(a.Name, b.Name) })
	return out
}

func (n *Notifier) starting(context.Context) error {
	// Deliveries outlive the service context by a little: stopping cancels
	// them once grouping has stopped.
	ctx, cancel := context.WithCancel(context.Background())
	n.cancelDelivery = cancel
	for _, r := range n.receivers {
		n.workers.Add(1)
		go func() {
			defer n.workers.Done()
			r.run(ctx)
		}()
	}
	n.logger.Info("notifier started", "receivers", len(n.receivers))
	return nil
}

// running groups alerts and flushes groups when their timers are due.
func (n *Notifier) running(ctx context.Context) error {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		if next, ok := n.disp.nextFlush(); ok {
			timer.Reset(time.Until(next))
		} else {
			timer.Stop()
		}
		select {
		case <-ctx.Done():
			return nil
		case a := <-n.in:
			n.ingest(a)
		case <-timer.C:
			n.disp.flushDue(time.Now())
		}
	}
}

// ingest groups a and whatever else is queued, up to ingestBatch alerts.
func (n *Notifier) ingest(a *types.Alert) {
	now := time.Now()
	limited := n.disp.ingest(a, now)
more:
	for range ingestBatch - 1 {
		select {
		case a := <-n.in:
			limited += n.disp.ingest(a, now)
		default:
			break more
		}
	}
	if limited > 0 {
		n.logger.Warn("alerts not grouped: too many aggregation groups", "alerts", limited, "max_groups", n.cfg.MaxGroups)
	}
}

func (n *Notifier) stopping(_ error) error {
	n.stopMu.Lock()
	n.closed = true
	n.stopMu.Unlock()
	dropped := 0
drain:
	for {
		select {
		case <-n.in:
			dropped++
		default:
			break drain
		}
	}
	if dropped > 0 {
		n.m.dropped.WithLabelValues(reasonShutdown).Add(float64(dropped))
		n.logger.Warn("alerts dropped at shutdown", "alerts", dropped)
	}
	if n.cancelDelivery != nil {
		n.cancelDelivery()
	}
	n.workers.Wait()
	n.client.CloseIdleConnections()
	return nil
}
