package cluster

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/grafana/dskit/kv"
	"github.com/grafana/dskit/ring"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Ring states of an Instance, as dskit names them. Pharos aggregators
// register ACTIVE and remove their entry when they stop (others, such as
// dskit tooling, may set LEAVING);
// StateLeft marks an instance that has left (or was forgotten) recently.
const (
	StateActive  = "ACTIVE"
	StateLeaving = "LEAVING"
	StateLeft    = "LEFT"
)

// Instance is one aggregator as this process last saw it in the ring.
type Instance struct {
	// ID is the aggregator's -ring.instance-id.
	ID string
	// Addr is where queriers reach its internal read API (-ring.instance-addr).
	Addr string
	// State is the ring state: StateActive, StateLeaving or StateLeft (other
	// dskit states are passed through but Pharos does not use them).
	State string
	// Healthy is true when the instance is ACTIVE and its last heartbeat is
	// within -ring.heartbeat-timeout: only healthy instances own partitions.
	Healthy bool
	// LastHeartbeat has one-second resolution.
	LastHeartbeat time.Time
	// RegisteredAt is when the instance joined the ring.
	RegisteredAt time.Time
}

// IDs returns the IDs of instances, in their order.
func IDs(instances []Instance) []string {
	ids := make([]string, len(instances))
	for i, in := range instances {
		ids[i] = in.ID
	}
	return ids
}

// healthyOnly returns the healthy instances, in their order.
func healthyOnly(instances []Instance) []Instance {
	var out []Instance
	for _, in := range instances {
		if in.Healthy {
			out = append(out, in)
		}
	}
	return out
}

// view is the latest ring as a KV watch delivered it, plus the instances
// that have since vanished from it: stores drop an instance once it leaves
// (memberlist hides its tombstone from readers), but queriers still want to
// know who held data recently.
type view struct {
	timeout   time.Duration // heartbeat timeout: older heartbeats are unhealthy
	retention time.Duration // how long vanished instances are remembered

	mu      sync.Mutex
	current map[string]ring.InstanceDesc
	gone    map[string]goneInstance

	// changed holds one pending "the ring changed" signal; sets coalesce.
	changed chan struct{}
}

type goneInstance struct {
	Instance
	at time.Time
}

func newView(timeout, retention time.Duration) *view {
	return &view{
		timeout:   timeout,
		retention: retention,
		current:   map[string]ring.InstanceDesc{},
		gone:      map[string]goneInstance{},
		changed:   make(chan struct{}, 1),
	}
}

// set replaces the ring with val, a *ring.Desc from the store (nil when
// the key does not exist yet). The instance descriptions are copied: the
// store may reuse the value.
func (v *view) set(val any, now time.Time) {
	desc, _ := val.(*ring.Desc)
	next := make(map[string]ring.InstanceDesc, len(v.current))
	if desc != nil {
		for id, in := range desc.Ingesters {
			in.Tokens = nil // not used here; don't keep the store's slice
			next[id] = in
		}
	}
	v.mu.Lock()
	for id, in := range v.current {
		if _, ok := next[id]; !ok {
			gone := v.instance(id, in, now)
			gone.State, gone.Healthy = StateLeft, false
			v.gone[id] = goneInstance{Instance: gone, at: now}
		}
	}
	for id := range next {
		delete(v.gone, id)
	}
	v.current = next
	v.mu.Unlock()
	select {
	case v.changed <- struct{}{}:
	default:
	}
}

func (v *view) instance(id string, in ring.InstanceDesc, now time.Time) Instance {
	return Instance{
		ID:            id,
		Addr:          in.Addr,
		State:         in.State.String(),
		Healthy:       in.State == ring.ACTIVE && in.IsHeartbeatHealthy(v.timeout, now),
		LastHeartbeat: in.GetLastHeartbeatAt(),
		RegisteredAt:  in.GetRegisteredAt(),
	}
}

// snapshot returns every instance in the ring and every one that left it
// within the retention, sorted by ID, with health as of now.
func (v *view) snapshot(now time.Time) []Instance {
	v.mu.Lock()
	defer v.mu.Unlock()
	out := make([]Instance, 0, len(v.current)+len(v.gone))
	for id, in := range v.current {
		out = append(out, v.instance(id, in, now))
	}
	for id, g := range v.gone {
		if now.Sub(g.at) > v.retention {
			delete(v.gone, id)
			continue
		}
		out = append(out, g.Instance)
	}
	slices.SortFunc(out, func(a, b Instance) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// follow keeps v up to date with the ring in client until ctx ends, and
// calls update after every change and every interval (health changes with
// time alone: a heartbeat that does not come is no event). It returns an
// error if the watch ends before ctx (the KV stopped under it) or failed
// delivers one.
func follow(ctx context.Context, client kv.Client, v *view, interval time.Duration, update func(now time.Time), failed <-chan error) error {
	watchCtx, cancel := context.WithCancel(ctx)
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		client.WatchKey(watchCtx, ringKey, func(val any) bool {
			v.set(val, time.Now())
			return true
		})
	}()
	defer func() {
		cancel()
		<-watchDone
	}()
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-failed:
			return err
		case <-watchDone:
			if ctx.Err() != nil {
				return nil
			}
			return errors.New("ring watch ended: the cluster KV stopped")
		case <-v.changed:
		case <-ticker.C:
		}
		update(time.Now())
	}
}

// load reads the ring once, so a service is current as soon as it runs;
// watches only report later changes.
func load(ctx context.Context, client kv.Client, v *view) error {
	val, err := client.Get(ctx, ringKey)
	if err != nil {
		return fmt.Errorf("read ring: %w", err)
	}
	v.set(val, time.Now())
	return nil
}

// updateInterval is how often health is re-evaluated between ring changes:
// often enough that a missed heartbeat is noticed about a second after the
// timeout, never slower than heartbeats come.
func updateInterval(cfg RingConfig) time.Duration {
	return min(cfg.HeartbeatPeriod, time.Second)
}

// Member-state label values of pharos_cluster_members.
var memberStates = []string{"healthy", "unhealthy", "leaving", "left", "other"}

// viewMetrics are the metrics a Member and a Watcher share; component tells
// them apart when one process runs both.
type viewMetrics struct {
	members *prometheus.GaugeVec
}

func newViewMetrics(component string, reg prometheus.Registerer) viewMetrics {
	return viewMetrics{
		members: promauto.With(reg).NewGaugeVec(prometheus.GaugeOpts{
			Name:        "pharos_cluster_members",
			Help:        "Aggregators in the ring as this process sees them, by state (healthy, unhealthy: missed heartbeats, leaving, left: recently gone, other).",
			ConstLabels: prometheus.Labels{"component": component},
		}, []string{"state"}),
	}
}

func (m viewMetrics) observe(instances []Instance) {
	counts := make(map[string]int, len(memberStates))
	for _, in := range instances {
		switch {
		case in.State == StateLeft:
			counts["left"]++
		case in.Healthy:
			counts["healthy"]++
		case in.State == StateLeaving:
			counts["leaving"]++
		case in.State == StateActive:
			counts["unhealthy"]++
		default:
			counts["other"]++
		}
	}
	for _, s := range memberStates {
		m.members.WithLabelValues(s).Set(float64(counts[s]))
	}
}
