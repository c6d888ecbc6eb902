package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/grafana/dskit/services"

	"github.com/pharos-obs/pharos/aggregator"
	"github.com/pharos-obs/pharos/internal/cluster"
	"github.com/pharos-obs/pharos/query"
)

// Modules of the ring.
const (
	modClusterKV   = "cluster-kv"
	modRingMember  = "ring-member"
	modRingWatcher = "ring-watcher"
)

func (a *App) initClusterKV() (services.Service, error) {
	kv, err := cluster.NewKV(a.cfg.Cluster, a.logger.With("component", "cluster"), a.reg)
	if err != nil {
		return nil, err
	}
	a.kv = kv
	a.server.mux.Handle("/memberlist", kv.MemberlistHandler())
	a.server.mux.HandleFunc("GET /cluster/status", a.handleClusterStatus)
	if a.cfg.Cluster.Ring.Store == cluster.StoreMemberlist {
		kv.AddListener(services.NewListener(nil, func() {
			a.logger.Info("gossip listening", "component", "cluster", "address", kv.GossipAddress())
		}, nil, nil, nil))
	}
	return kv, nil
}

// initRingMember joins the ring as an aggregator. The member is created
// when the module starts, after the HTTP server: with
// -http.listen-address on port 0 only then is the address known that
// queriers must be told (-ring.instance-addr defaults to it).
func (a *App) initRingMember() (services.Service, error) {
	var member *cluster.Member
	start := func(ctx context.Context) error {
		cfg := a.cfg.Cluster
		if cfg.Ring.InstanceAddr == "" {
			addr, err := advertisedHTTPAddr(a.server.Addr())
			if err != nil {
				return fmt.Errorf("ring.instance_addr: not set, and %w", err)
			}
			cfg.Ring.InstanceAddr = addr
		}
		m, err := cluster.NewMember(cfg, a.cfg.NATS.Partitions, a.kv, a.ownershipChanged, a.logger.With("component", "ring"), a.reg)
		if err != nil {
			return err
		}
		member = m
		a.member.Store(m)
		return services.StartAndAwaitRunning(ctx, m)
	}
	run := func(ctx context.Context) error {
		_ = member.AwaitTerminated(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err := member.FailureCase(); err != nil {
			return fmt.Errorf("ring member: %w", err)
		}
		return errors.New("ring member stopped")
	}
	stop := func(error) error {
		if member == nil {
			return nil
		}
		return services.StopAndAwaitTerminated(context.Background(), member)
	}
	a.server.addReadyCheck("ring", func() error {
		if m := a.member.Load(); m == nil || m.State() != services.Running {
			return errors.New("not in the ring yet")
		}
		return nil
	})
	return services.NewBasicService(start, run, stop), nil
}

// ownershipChanged hands the partition-replicas the ring gives this
// aggregator to its consumers.
func (a *App) ownershipChanged(c cluster.OwnershipChange) {
	owned := make([]aggregator.PartitionReplica, len(c.Owned))
	for i, pr := range c.Owned {
		owned[i] = aggregator.PartitionReplica{Partition: pr.Partition, Replica: pr.Replica}
	}
	a.logger.Info("ownership changed", "owned", len(owned), "added", len(c.Added), "removed", len(c.Removed), "members", strings.Join(c.Members, ","))
	a.ownMu.Lock()
	a.owned = owned
	if a.agg != nil {
		a.agg.SetOwned(owned)
	}
	a.ownMu.Unlock()
	if m := a.rules.Load(); m != nil {
		m.OwnershipChanged()
	}
}

func (a *App) initRingWatcher() (services.Service, error) {
	w, err := cluster.NewWatcher(a.cfg.Cluster, a.kv, a.logger.With("component", "ring-watcher"), a.reg)
	if err != nil {
		return nil, err
	}
	a.watcher = w
	return w, nil
}

// ringEndpoints lists the aggregators a query reads from: every member of
// the ring, healthy or not, and those that left recently (they still hold
// what they consumed before). An aggregator is redundant when every
// partition-replica it owns — computed as if every member were up, which
// is what it consumed until it failed — has another replica whose owner is
// healthy: its failure then loses nothing.
func (a *App) ringEndpoints() []query.Endpoint {
	all := a.watcher.All()
	var present []string
	healthy := map[string]bool{}
	for _, in := range all {
		if in.State != cluster.StateLeft {
			present = append(present, in.ID)
		}
		healthy[in.ID] = in.Healthy
	}
	rf := max(a.cfg.Cluster.Ring.ReplicationFactor, 1)
	full := cluster.Assign(a.cfg.NATS.Partitions, rf, present)
	eps := make([]query.Endpoint, 0, len(all))
	for _, in := range all {
		if in.Addr == "" {
			continue
		}
		ep := query.Endpoint{Name: in.ID, Addr: in.Addr}
		if in.State == cluster.StateLeft {
			// Its partitions moved on; what it consumed before is on
			// another replica only with RF ≥ 2.
			ep.Holds = "data it consumed before leaving the ring"
			ep.Redundant = rf > 1
			eps = append(eps, ep)
			continue
		}
		owned := cluster.Owned(in.ID, full)
		redundant := len(owned) > 0
		var parts []int
		for _, pr := range owned {
			if !slices.Contains(parts, pr.Partition) {
				parts = append(parts, pr.Partition)
			}
			covered := false
			for _, o := range cluster.Owners(pr.Partition, full) {
				if o != in.ID && healthy[o] {
					covered = true
				}
			}
			redundant = redundant && covered
		}
		ep.Redundant = redundant
		ep.Holds = "partitions " + joinInts(parts)
		eps = append(eps, ep)
	}
	return eps
}

func joinInts(xs []int) string {
	slices.Sort(xs)
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, ", ")
}

// advertisedHTTPAddr is the address queriers can reach this process's HTTP
// listener at, when it is bound to a specific host.
func advertisedHTTPAddr(listen string) (string, error) {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return "", fmt.Errorf("http listen address %q: %w", listen, err)
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		return "", fmt.Errorf("the HTTP listener %s is bound to every interface: set the address queriers reach this aggregator at", listen)
	}
	return listen, nil
}

// ownState is the ownership the ring gave before the aggregator existed.
type ownState struct {
	ownMu sync.Mutex
	owned []aggregator.PartitionReplica
}

// clusterStatus is the JSON of GET /cluster/status: the ring as this
// process sees it and, on an aggregator, what it consumes and how far
// behind each of its consumers is; the JetStream streams and the local
// spools. deploy/local/cluster.sh status and the dashboard read it.
type clusterStatus struct {
	Instance   string              `json:"instance,omitempty"`
	Members    []memberStatus      `json:"members"`
	Owners     map[string][]string `json:"owners"` // partition → owners of its replicas, in replica order
	Consumers  []consumerStatus    `json:"consumers"`
	Streams    []streamStatus      `json:"streams"`
	Spools     []spoolStatus       `json:"spools"`
	Partitions int                 `json:"partitions"`
	Replicas   int                 `json:"replication_factor"`
}

type memberStatus struct {
	ID            string `json:"id"`
	Addr          string `json:"addr"`
	State         string `json:"state"`
	Healthy       bool   `json:"healthy"`
	LastHeartbeat string `json:"last_heartbeat"`
	// Error is why a querier could not read the member's own status.
	Error string `json:"error,omitempty"`
}

type consumerStatus struct {
	Signal     string `json:"signal"`
	Partition  int    `json:"partition"`
	Replica    int    `json:"replica"`
	Instance   string `json:"instance"`
	Lag        uint64 `json:"lag"`
	AckPending int    `json:"ackPending"`
	Error      string `json:"error,omitempty"`
}

// handleClusterStatus serves GET /cluster/status. A querier without an
// aggregator of its own asks each healthy member for its local view
// (?scope=local, which never fans out again) and merges their consumers
// and streams.
func (a *App) handleClusterStatus(w http.ResponseWriter, r *http.Request) {
	// One bound for all look-ups: while NATS is failing over each would
	// otherwise wait for the reconnect, and status is for people in a
	// hurry.
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	var instances []cluster.Instance
	st := clusterStatus{
		Partitions: a.cfg.NATS.Partitions, Replicas: max(a.cfg.Cluster.Ring.ReplicationFactor, 1), Owners: map[string][]string{},
		Members: []memberStatus{}, Consumers: []consumerStatus{}, Streams: []streamStatus{}, Spools: []spoolStatus{},
	}
	ring := true
	switch m := a.member.Load(); {
	case m != nil:
		st.Instance = m.ID()
		instances = m.Members()
	case a.watcher != nil:
		instances = a.watcher.All()
	case !a.cfg.ringEnabled() && (a.cfg.has(TargetAgent) || a.cfg.has(TargetAggregator)):
		// A single node, or an agent: its own bus, consumers and spool.
		ring = false
		st.Instance = a.cfg.Agent.ID
	default:
		http.Error(w, "this process is not in a ring", http.StatusNotFound)
		return
	}
	var healthy []string
	for _, in := range instances {
		st.Members = append(st.Members, memberStatus{ID: in.ID, Addr: in.Addr, State: in.State, Healthy: in.Healthy,
			LastHeartbeat: in.LastHeartbeat.UTC().Format(time.RFC3339)})
		if in.Healthy {
			healthy = append(healthy, in.ID)
		}
	}
	if !ring && a.cfg.has(TargetAggregator) {
		// The aggregator consumes replica 0 of every partition.
		healthy = []string{st.Instance}
	}
	if ring || len(healthy) > 0 {
		assignment := cluster.Assign(st.Partitions, st.Replicas, healthy)
		for p := range st.Partitions {
			owners := make([]string, st.Replicas)
			for pr, id := range assignment {
				if pr.Partition == p && pr.Replica < len(owners) {
					owners[pr.Replica] = id
				}
			}
			st.Owners[strconv.Itoa(p)] = owners
		}
	}
	a.localStatus(ctx, &st, ring)
	if r.URL.Query().Get("scope") != "local" && a.watcher != nil && a.agg == nil {
		a.fanOutStatus(ctx, &st, instances)
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(st)
}
