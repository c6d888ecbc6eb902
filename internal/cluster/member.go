package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/pharos-obs/pharos/internal/kitlog"
)

// OwnershipChange tells a Member's owner what it owns after the healthy
// member set changed. Its slices belong to the receiver.
type OwnershipChange struct {
	// Owned is every partition-replica this member owns now, sorted.
	Owned []PartitionReplica
	// Added are newly owned: start consuming them.
	Added []PartitionReplica
	// Removed are no longer owned: stop consuming them.
	Removed []PartitionReplica
	// Members are the healthy members the assignment was computed from,
	// sorted.
	Members []string
}

// OwnershipFunc receives a Member's view after every change of the
// healthy member set (Added and Removed may be empty). A Member calls it
// from its own goroutine, one call at a time and in order, first when it
// starts owning anything; a slow call delays the next update but never
// loses one (each carries the full owned set). It must not call the
// Member's Stop and wait for it.
type OwnershipFunc func(OwnershipChange)

// Member is an aggregator's place in the ring, a dskit service. Starting it
// registers the instance ACTIVE; running, it heartbeats, forgets members
// that died long ago, and recomputes which partition-replicas this member
// owns from the healthy members (Assign) whenever they change; stopping,
// it removes its entry from the ring (unless -ring.leave-on-shutdown is
// false), so the others take its partitions at once.
//
// Ownership is eventually consistent (membership is AP): for about one
// gossip round after a change two members may both consume a
// partition-replica, or neither. That is harmless: they share its durable
// consumer, so each message still goes to one of them, and un-acked
// messages wait in the stream.
type Member struct {
	services.Service

	cfg        Config
	partitions int
	client     lazyClient
	lifecycler *ring.BasicLifecycler
	onChange   OwnershipFunc
	logger     *slog.Logger
	view       *view
	metrics    memberMetrics

	mu         sync.RWMutex
	instances  []Instance
	healthy    []string
	assignment map[PartitionReplica]string
	owned      []PartitionReplica
}

type memberMetrics struct {
	viewMetrics
	owned   prometheus.Gauge
	changes prometheus.Counter
}

// numTokens is how many ring tokens a Member registers. Ownership does not
// use tokens (Assign does), but dskit's ring tooling expects an instance to
// have some.
const numTokens = 1

// NewMember prepares membership in the ring of kv for the aggregator
// described by cfg.Ring, owning shares of partitions partitions with
// cfg.Ring.ReplicationFactor replicas each. onChange, which may be nil,
// receives ownership changes. Nothing happens until the service starts;
// kv must be started too (before or with it) and stopped after it.
func NewMember(cfg Config, partitions int, kv *KV, onChange OwnershipFunc, logger *slog.Logger, reg prometheus.Registerer) (*Member, error) {
	var errs []error
	if err := cfg.Validate(); err != nil {
		errs = append(errs, err)
	}
	if cfg.Ring.InstanceAddr == "" {
		errs = append(errs, errors.New("ring.instance_addr: required for an aggregator (queriers read from it)"))
	}
	if partitions < 1 {
		errs = append(errs, fmt.Errorf("partitions: must be at least 1, got %d", partitions))
	}
	if kv == nil {
		errs = append(errs, errors.New("cluster: NewMember needs a KV"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if onChange == nil {
		onChange = func(OwnershipChange) {}
	}
	m := &Member{
		cfg:        cfg,
		partitions: partitions,
		client:     lazyClient{kv},
		onChange:   onChange,
		logger:     logger,
		view:       newView(cfg.Ring.HeartbeatTimeout, cfg.Memberlist.LeftMembersTimeout),
		metrics: memberMetrics{
			viewMetrics: newViewMetrics("member", reg),
			owned: promauto.With(reg).NewGauge(prometheus.GaugeOpts{
				Name: "pharos_cluster_owned_partitions",
				Help: "Partition-replicas this aggregator owns and should consume.",
			}),
			changes: promauto.With(reg).NewCounter(prometheus.CounterOpts{
				Name: "pharos_cluster_ownership_changes_total",
				Help: "Times the set of partition-replicas this aggregator owns changed.",
			}),
		},
	}

	gk := kitlog.New(logger)
	var delegate ring.BasicLifecyclerDelegate = ring.NewInstanceRegisterDelegate(ring.ACTIVE, numTokens)
	if n := cfg.Ring.AutoForgetUnhealthyPeriods; n > 0 {
		delegate = ring.NewAutoForgetDelegate(time.Duration(n)*cfg.Ring.HeartbeatTimeout, delegate, gk)
	}
	// No LEAVING step before leaving: dskit's LeaveOnStoppingDelegate
	// exists for ingesters that flush while LEAVING, and Pharos has nothing
	// to do there. The ring stores timestamps in whole seconds and merges
	// by them, so a state change in the same second as the last heartbeat
	// (every one, at sub-second periods) is merged away as "no change" and
	// retried a second later, up to ten times: it delayed leaving by 1 to
	// 13 s. Removing the entry needs no newer timestamp (a removal wins a
	// tie), so others see this member gone at once.
	lc, err := ring.NewBasicLifecycler(ring.BasicLifecyclerConfig{
		ID:                              cfg.Ring.InstanceID,
		Addr:                            cfg.Ring.InstanceAddr,
		HeartbeatPeriod:                 cfg.Ring.HeartbeatPeriod,
		HeartbeatTimeout:                cfg.Ring.HeartbeatTimeout,
		NumTokens:                       numTokens,
		KeepInstanceInTheRingOnShutdown: !cfg.Ring.LeaveOnShutdown,
	}, ringName, ringKey, m.client, delegate, gk, prometheus.WrapRegistererWithPrefix("pharos_", reg))
	if err != nil {
		return nil, fmt.Errorf("ring lifecycler: %w", err)
	}
	m.lifecycler = lc
	m.Service = services.NewBasicService(m.starting, m.running, m.stopping).WithName("cluster-member")
	return m, nil
}

func (m *Member) starting(ctx context.Context) error {
	// The lifecycler gets its own context: the Member stops it explicitly,
	// after its own loop, so leaving the ring is not raced by cancellation.
	if err := m.lifecycler.StartAsync(context.Background()); err != nil {
		return fmt.Errorf("join ring: %w", err)
	}
	err := m.lifecycler.AwaitRunning(ctx)
	if err == nil {
		err = load(ctx, m.client, m.view)
	}
	if err != nil {
		_ = services.StopAndAwaitTerminated(context.Background(), m.lifecycler)
		return fmt.Errorf("join ring as %s: %w", m.cfg.Ring.InstanceID, err)
	}
	m.logger.Info("joined the ring", "instance", m.cfg.Ring.InstanceID, "addr", m.cfg.Ring.InstanceAddr, "store", m.cfg.Ring.Store)
	m.update(time.Now())
	return nil
}

func (m *Member) running(ctx context.Context) error {
	failed := make(chan error, 1)
	unregister := m.lifecycler.AddListener(services.NewListener(nil, nil, nil, nil, func(_ services.State, err error) {
		failed <- fmt.Errorf("ring lifecycler: %w", err)
	}))
	defer unregister()
	return follow(ctx, m.client, m.view, updateInterval(m.cfg.Ring), m.update, failed)
}

func (m *Member) stopping(error) error {
	err := services.StopAndAwaitTerminated(context.Background(), m.lifecycler)
	m.metrics.owned.Set(0)
	if err != nil {
		return fmt.Errorf("leave ring: %w", err)
	}
	if m.cfg.Ring.LeaveOnShutdown {
		m.logger.Info("left the ring", "instance", m.cfg.Ring.InstanceID)
	} else {
		m.logger.Info("stopped heartbeating; the ring entry stays until it expires", "instance", m.cfg.Ring.InstanceID)
	}
	return nil
}

// update recomputes health, and ownership if the healthy set changed, and
// tells onChange when what this member owns changed.
func (m *Member) update(now time.Time) {
	instances := m.view.snapshot(now)
	m.metrics.observe(instances)
	healthy := IDs(healthyOnly(instances))

	m.mu.Lock()
	m.instances = instances
	if m.assignment != nil && slices.Equal(healthy, m.healthy) {
		m.mu.Unlock()
		return
	}
	assignment := Assign(m.partitions, m.cfg.Ring.ReplicationFactor, healthy)
	owned := Owned(m.cfg.Ring.InstanceID, assignment)
	added, removed := diffOwned(m.owned, owned)
	m.healthy, m.assignment, m.owned = healthy, assignment, owned
	m.mu.Unlock()

	m.logger.Info("healthy ring members changed", "members", healthy)
	m.metrics.owned.Set(float64(len(owned)))
	if len(added) > 0 || len(removed) > 0 {
		m.metrics.changes.Inc()
		m.logger.Info("partition ownership changed", "owned", len(owned), "added", fmtOwned(added), "removed", fmtOwned(removed))
	}
	// Called on every change of the healthy set, even when this member's
	// partitions stay: other things owned through the ring (rule groups)
	// may move.
	m.onChange(OwnershipChange{
		Owned:   slices.Clone(owned),
		Added:   added,
		Removed: removed,
		Members: slices.Clone(healthy),
	})
}

// ID returns this member's instance ID.
func (m *Member) ID() string { return m.cfg.Ring.InstanceID }

// Healthy returns the healthy members (this one included once its own
// heartbeat is in the ring), sorted by ID, as of the last update.
func (m *Member) Healthy() []Instance {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return healthyOnly(m.instances)
}

// Members returns every member in the ring, healthy or not, plus those that
// left within -memberlist.left-members-timeout, sorted by ID.
func (m *Member) Members() []Instance {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return slices.Clone(m.instances)
}

// Owned returns the partition-replicas this member owns, sorted.
func (m *Member) Owned() []PartitionReplica {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return slices.Clone(m.owned)
}

// Assignment returns the owner of every partition-replica as this member
// computed it; members that see the same healthy set compute the same.
func (m *Member) Assignment() map[PartitionReplica]string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return maps.Clone(m.assignment)
}

// diffOwned returns what is in next but not prev, and what is in prev but
// not next; both inputs are sorted.
func diffOwned(prev, next []PartitionReplica) (added, removed []PartitionReplica) {
	for _, pr := range next {
		if !slices.Contains(prev, pr) {
			added = append(added, pr)
		}
	}
	for _, pr := range prev {
		if !slices.Contains(next, pr) {
			removed = append(removed, pr)
		}
	}
	return added, removed
}

// fmtOwned renders partition-replicas compactly for one log line.
func fmtOwned(prs []PartitionReplica) []string {
	out := make([]string, len(prs))
	for i, pr := range prs {
		out[i] = pr.String()
	}
	return out
}
