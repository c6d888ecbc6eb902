package cluster

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/pharos-obs/pharos/internal/testutil"
)

const (
	testPartitions = 16
	testRF         = 2
	// Heartbeats are stored in whole seconds and memberlist's CAS waits for
	// the next second when nothing else changed, so a heartbeat lands about
	// once a second whatever the period; the timeout leaves room for that
	// plus gossip (Validate asks for period + 2s at least).
	testHeartbeatPeriod  = 200 * time.Millisecond
	testHeartbeatTimeout = 3 * time.Second
	testForgetPeriods    = 2
	pollTimeout          = 20 * time.Second
	pollInterval         = 20 * time.Millisecond
)

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// testLogger shows warnings on stderr: go test prints it for failing or
// verbose runs. Not t.Log: memberlist may log from its goroutines while a
// test winds down.
func testLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: testLogLevel()}))
}

// gossipConfig is a configuration for a loopback gossip node with short
// periods, joining the given gossip addresses.
func gossipConfig(t *testing.T, id string, join ...string) Config {
	cfg := defaultConfig(t)
	cfg.Memberlist.BindAddress = "127.0.0.1:0"
	cfg.Memberlist.Join = join
	cfg.Memberlist.GossipInterval = 50 * time.Millisecond
	cfg.Memberlist.PushPullInterval = time.Second
	cfg.Memberlist.LeaveTimeout = 2 * time.Second
	cfg.Ring.Prefix = "test/"
	cfg.Ring.InstanceID = id
	cfg.Ring.InstanceAddr = "127.0.0.1:9400"
	cfg.Ring.HeartbeatPeriod = testHeartbeatPeriod
	cfg.Ring.HeartbeatTimeout = testHeartbeatTimeout
	cfg.Ring.AutoForgetUnhealthyPeriods = testForgetPeriods
	cfg.Ring.ReplicationFactor = testRF
	return cfg
}

// node is one aggregator process of a test: its KV (gossip node) and its
// ring Member, with the ownership changes the Member reported.
type node struct {
	id     string
	kv     *KV
	member *Member
	reg    *prometheus.Registry

	mu      sync.Mutex
	changes []OwnershipChange
}

func (n *node) lastChange() (OwnershipChange, int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.changes) == 0 {
		return OwnershipChange{}, 0
	}
	return n.changes[len(n.changes)-1], len(n.changes)
}

// stop stops the Member, then the KV, as the app's module order does.
func (n *node) stop(t *testing.T) {
	t.Helper()
	require.NoError(t, services.StopAndAwaitTerminated(context.Background(), n.member))
	require.NoError(t, services.StopAndAwaitTerminated(context.Background(), n.kv))
}

func startKV(t *testing.T, cfg Config, reg prometheus.Registerer) *KV {
	t.Helper()
	kv, err := NewKV(cfg, testLogger(), reg)
	require.NoError(t, err)
	require.NoError(t, services.StartAndAwaitRunning(context.Background(), kv))
	t.Cleanup(func() { _ = services.StopAndAwaitTerminated(context.Background(), kv) })
	require.NotEmpty(t, kv.GossipAddress())
	return kv
}

func startNode(t *testing.T, cfg Config) *node {
	t.Helper()
	n := &node{id: cfg.Ring.InstanceID, reg: prometheus.NewRegistry()}
	n.kv = startKV(t, cfg, n.reg)
	m, err := NewMember(cfg, testPartitions, n.kv, func(c OwnershipChange) {
		n.mu.Lock()
		n.changes = append(n.changes, c)
		n.mu.Unlock()
	}, testLogger(), n.reg)
	require.NoError(t, err)
	n.member = m
	require.NoError(t, services.StartAndAwaitRunning(context.Background(), m))
	// Registered before the KV's cleanup runs, so runs first: members leave
	// before their gossip stops.
	t.Cleanup(func() { _ = services.StopAndAwaitTerminated(context.Background(), m) })
	return n
}

func healthyIDs(instances []Instance) []string { return IDs(healthyOnly(instances)) }

// seesHealthy reports whether every node sees exactly want as healthy.
func seesHealthy(nodes []*node, want []string) (bool, string) {
	for _, n := range nodes {
		if got := healthyIDs(n.member.Healthy()); !slices.Equal(got, want) {
			return false, fmt.Sprintf("%s sees %v, want %v", n.id, got, want)
		}
	}
	return true, ""
}

// agreeOn reports whether every node computed Assign over want.
func agreeOn(nodes []*node, want []string) (bool, string) {
	expected := Assign(testPartitions, testRF, want)
	for _, n := range nodes {
		if !mapsEqual(n.member.Assignment(), expected) {
			return false, fmt.Sprintf("%s has not computed the assignment over %v yet", n.id, want)
		}
	}
	return true, ""
}

func mapsEqual(a, b map[PartitionReplica]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestMembership runs three aggregators and a querier on real memberlist
// gossip over loopback: they find each other, agree on ownership, see a
// clean leave at once, and see a killed member turn unhealthy after the
// heartbeat timeout and then forgotten.
func TestMembership(t *testing.T) {
	a := startNode(t, gossipConfig(t, "agg-a"))
	seed := a.kv.GossipAddress()

	// Convergence: from a Member starting to every other member counting it
	// healthy.
	join := func(id string, cfg Config, others []*node) *node {
		start := time.Now()
		n := startNode(t, cfg)
		testutil.Poll(t, pollTimeout, pollInterval, func() (bool, string) {
			for _, o := range others {
				if !slices.Contains(healthyIDs(o.member.Healthy()), id) {
					return false, fmt.Sprintf("%s does not see %s yet", o.id, id)
				}
			}
			return true, ""
		})
		t.Logf("gossip convergence: %s seen healthy by %d other member(s) %s after it started", id, len(others), time.Since(start).Round(time.Millisecond))
		return n
	}
	b := join("agg-b", gossipConfig(t, "agg-b", seed), []*node{a})
	// agg-c never leaves the ring: stopping it looks like a kill.
	cCfg := gossipConfig(t, "agg-c", seed)
	cCfg.Ring.LeaveOnShutdown = false
	c := join("agg-c", cCfg, []*node{a, b})
	all := []*node{a, b, c}

	three := []string{"agg-a", "agg-b", "agg-c"}
	testutil.Poll(t, pollTimeout, pollInterval, func() (bool, string) { return seesHealthy(all, three) })
	testutil.Poll(t, pollTimeout, pollInterval, func() (bool, string) { return agreeOn(all, three) })

	// The owned sets split every partition-replica between the three, and
	// what each was told matches what it reports.
	var union []PartitionReplica
	for _, n := range all {
		owned := n.member.Owned()
		require.NotEmpty(t, owned, n.id)
		union = append(union, owned...)
		last, _ := n.lastChange()
		require.Equal(t, owned, last.Owned, n.id)
		require.Equal(t, float64(len(owned)), promtest.ToFloat64(n.member.metrics.owned), n.id)
		require.Equal(t, 3.0, promtest.ToFloat64(n.member.metrics.members.WithLabelValues("healthy")), n.id)
	}
	require.Len(t, union, testPartitions*testRF)
	sortPartitionReplicas(union)
	require.Len(t, slices.Compact(union), testPartitions*testRF, "no partition-replica is owned twice")

	// A querier: its own gossip node, not in the ring.
	wReg := prometheus.NewRegistry()
	wKV := startKV(t, gossipConfig(t, "querier", seed), wReg)
	w, err := NewWatcher(gossipConfig(t, "querier", seed), wKV, testLogger(), wReg)
	require.NoError(t, err)
	require.NoError(t, services.StartAndAwaitRunning(context.Background(), w))
	t.Cleanup(func() { _ = services.StopAndAwaitTerminated(context.Background(), w) })
	testutil.Poll(t, pollTimeout, pollInterval, func() (bool, string) {
		got := w.Healthy()
		return slices.Equal(healthyIDs(got), three), fmt.Sprintf("watcher sees %v", healthyIDs(got))
	})
	for _, in := range w.Healthy() {
		require.Equal(t, "127.0.0.1:9400", in.Addr)
		require.Equal(t, StateActive, in.State)
	}

	// A clean stop: the others reassign at once, without waiting for the
	// heartbeat timeout.
	_, bChanges := b.lastChange()
	start := time.Now()
	a.stop(t)
	two := []string{"agg-b", "agg-c"}
	testutil.Poll(t, pollTimeout, pollInterval, func() (bool, string) { return seesHealthy([]*node{b, c}, two) })
	testutil.Poll(t, pollTimeout, pollInterval, func() (bool, string) { return agreeOn([]*node{b, c}, two) })
	leaveTook := time.Since(start)
	t.Logf("clean leave: the other members reassigned %s after agg-a began to stop", leaveTook.Round(time.Millisecond))
	require.Less(t, leaveTook, testHeartbeatTimeout, "a clean leave must not wait for the heartbeat timeout")
	last, n := b.lastChange()
	require.Greater(t, n, bChanges, "agg-b was told about its new partitions")
	require.NotEmpty(t, last.Added)
	require.Equal(t, two, last.Members)
	testutil.Poll(t, pollTimeout, pollInterval, func() (bool, string) {
		for _, in := range w.All() {
			if in.ID == "agg-a" {
				return in.State == StateLeft && !in.Healthy, fmt.Sprintf("watcher sees agg-a as %s", in.State)
			}
		}
		return false, "watcher forgot agg-a, want it listed as recently left"
	})

	// A kill: agg-c stops heartbeating without leaving.
	start = time.Now()
	c.stop(t)
	testutil.Poll(t, pollTimeout, pollInterval, func() (bool, string) {
		for _, in := range b.member.Members() {
			if in.ID == "agg-c" {
				return !in.Healthy && in.State == StateActive, fmt.Sprintf("agg-b sees agg-c healthy=%v state=%s", in.Healthy, in.State)
			}
		}
		return false, "agg-b lost agg-c entirely before seeing it unhealthy"
	})
	t.Logf("kill: agg-b saw agg-c unhealthy %s after it stopped heartbeating (timeout %s)", time.Since(start).Round(time.Millisecond), testHeartbeatTimeout)
	testutil.Poll(t, pollTimeout, pollInterval, func() (bool, string) { return agreeOn([]*node{b}, []string{"agg-b"}) })
	require.Len(t, b.member.Owned(), testPartitions*testRF, "the last member owns every replica")
	require.Equal(t, 1.0, promtest.ToFloat64(b.member.metrics.members.WithLabelValues("unhealthy")))

	testutil.Poll(t, pollTimeout, pollInterval, func() (bool, string) {
		for _, in := range w.All() {
			if in.ID == "agg-c" {
				return in.State == StateLeft, fmt.Sprintf("watcher sees agg-c as %s", in.State)
			}
		}
		return false, "watcher lost agg-c"
	})
	t.Logf("kill: agg-c auto-forgotten %s after it stopped (forget after %d×%s)", time.Since(start).Round(time.Millisecond), testForgetPeriods, testHeartbeatTimeout)
	require.Equal(t, []string{"agg-b"}, healthyIDs(w.Healthy()))
	require.Equal(t, 1.0, promtest.ToFloat64(w.metrics.members.WithLabelValues("healthy")))
}

func testLogLevel() slog.Level {
	if os.Getenv("CLUSTER_TEST_DEBUG") != "" {
		return slog.LevelDebug
	}
	return slog.LevelWarn
}

// TestMemberAndWatcherShareKV is the single-process set-up (-target=all):
// one gossip node, one registry, a Member and a Watcher on it.
func TestMemberAndWatcherShareKV(t *testing.T) {
	reg := prometheus.NewRegistry()
	cfg := gossipConfig(t, "solo")
	kv, err := NewKV(cfg, testLogger(), reg)
	require.NoError(t, err)
	m, err := NewMember(cfg, testPartitions, kv, nil, testLogger(), reg)
	require.NoError(t, err)
	w, err := NewWatcher(cfg, kv, testLogger(), reg)
	require.NoError(t, err)

	// Started together, as a service manager does: the Member and Watcher
	// wait for the KV to run.
	sm, err := services.NewManager(kv, m, w)
	require.NoError(t, err)
	require.NoError(t, services.StartManagerAndAwaitHealthy(context.Background(), sm))
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			sm.StopAsync()
			_ = sm.AwaitStopped(context.Background())
		}
	})

	require.Equal(t, []string{"solo"}, healthyIDs(m.Healthy()), "a member sees itself once started")
	require.Len(t, m.Owned(), testPartitions*testRF, "alone, it owns every replica (rf > members)")
	testutil.Poll(t, pollTimeout, pollInterval, func() (bool, string) {
		got := healthyIDs(w.Healthy())
		return slices.Equal(got, []string{"solo"}), fmt.Sprintf("watcher sees %v", got)
	})
	require.NotNil(t, kv.MemberlistHandler())

	families, err := reg.Gather()
	require.NoError(t, err)
	var names []string
	for _, f := range families {
		names = append(names, f.GetName())
		require.True(t, strings.HasPrefix(f.GetName(), "pharos_"), "metric %s lacks the pharos_ prefix", f.GetName())
	}
	require.Contains(t, names, "pharos_cluster_members")
	require.Contains(t, names, "pharos_cluster_owned_partitions")
	require.Contains(t, names, "pharos_cluster_ownership_changes_total")

	// Stop the Member first, as the module order does, then the rest.
	require.NoError(t, services.StopAndAwaitTerminated(context.Background(), m))
	testutil.Poll(t, pollTimeout, pollInterval, func() (bool, string) {
		got := healthyIDs(w.Healthy())
		return len(got) == 0, fmt.Sprintf("watcher still sees %v", got)
	})
	sm.StopAsync()
	require.NoError(t, sm.AwaitStopped(context.Background()))
	stopped = true
}

func TestKVBindError(t *testing.T) {
	first := startKV(t, gossipConfig(t, "first"), prometheus.NewRegistry())
	cfg := gossipConfig(t, "second")
	cfg.Memberlist.BindAddress = first.GossipAddress() // taken
	kv, err := NewKV(cfg, testLogger(), prometheus.NewRegistry())
	require.NoError(t, err)
	err = services.StartAndAwaitRunning(context.Background(), kv)
	require.ErrorContains(t, err, "memberlist")
	require.Empty(t, kv.GossipAddress())

	// A Member on a KV that failed fails to start instead of hanging.
	cfg.Ring.InstanceAddr = "127.0.0.1:9400"
	m, err := NewMember(cfg, testPartitions, kv, nil, testLogger(), prometheus.NewRegistry())
	require.NoError(t, err)
	require.Error(t, services.StartAndAwaitRunning(context.Background(), m))
}
