package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
)

// Watcher follows the aggregator ring without joining it, for queriers: it
// tells which aggregators are healthy and where to reach them, and which
// ones were seen recently but are unhealthy or gone, whose data a query may
// be missing. It is a dskit service on a KV that must be started too
// (before or with it) and stopped after it.
//
// It reads the ring straight from the store rather than through dskit's
// ring client, which hides unhealthy and departed instances and works in
// tokens, while Pharos owns partitions through Assign.
type Watcher struct {
	services.Service

	cfg     Config
	client  lazyClient
	logger  *slog.Logger
	view    *view
	metrics viewMetrics

	mu        sync.RWMutex
	instances []Instance
	healthy   []string
}

// NewWatcher prepares a watch of the ring in kv. Nothing happens until the
// service starts.
func NewWatcher(cfg Config, kv *KV, logger *slog.Logger, reg prometheus.Registerer) (*Watcher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if kv == nil {
		return nil, errors.New("cluster: NewWatcher needs a KV")
	}
	w := &Watcher{
		cfg:     cfg,
		client:  lazyClient{kv},
		logger:  logger,
		view:    newView(cfg.Ring.HeartbeatTimeout, cfg.Memberlist.LeftMembersTimeout),
		metrics: newViewMetrics("watcher", reg),
	}
	w.Service = services.NewBasicService(w.starting, w.running, nil).WithName("cluster-watcher")
	return w, nil
}

func (w *Watcher) starting(ctx context.Context) error {
	if err := load(ctx, w.client, w.view); err != nil {
		return fmt.Errorf("watch ring: %w", err)
	}
	w.update(time.Now())
	return nil
}

func (w *Watcher) running(ctx context.Context) error {
	return follow(ctx, w.client, w.view, updateInterval(w.cfg.Ring), w.update, nil)
}

func (w *Watcher) update(now time.Time) {
	instances := w.view.snapshot(now)
	w.metrics.observe(instances)
	healthy := IDs(healthyOnly(instances))
	w.mu.Lock()
	changed := !slices.Equal(healthy, w.healthy)
	w.instances, w.healthy = instances, healthy
	w.mu.Unlock()
	if changed {
		w.logger.Info("healthy ring members changed", "members", healthy)
	}
}

// Healthy returns the healthy aggregators, sorted by ID, as of the last
// update (at most a second or one heartbeat period old).
func (w *Watcher) Healthy() []Instance {
	w.mu.RLock()
	defer w.mu.RUnlock()
	return healthyOnly(w.instances)
}

// All returns every aggregator in the ring, healthy or not (missed
// heartbeats, leaving), plus those that left or were forgotten within
// -memberlist.left-members-timeout (State StateLeft), sorted by ID.
func (w *Watcher) All() []Instance {
	w.mu.RLock()
	defer w.mu.RUnlock()
	return slices.Clone(w.instances)
}
