package scrape

import (
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/discovery"
	"github.com/prometheus/prometheus/discovery/file"
	"github.com/prometheus/prometheus/discovery/targetgroup"
	"github.com/stretchr/testify/require"
)

// discoveryUnderTest runs a targetDiscovery and keeps the last set it sent.
type discoveryUnderTest struct {
	*targetDiscovery
	seenMu sync.Mutex
	last   map[string][]*targetgroup.Group
	sent   int
}

func startDiscovery(t *testing.T, interval time.Duration) *discoveryUnderTest {
	t.Helper()
	reg := prometheus.NewRegistry()
	sdMetrics, err := discovery.CreateAndRegisterSDMetrics(reg)
	require.NoError(t, err)
	d, err := newTargetDiscovery(slog.New(slog.DiscardHandler), reg, sdMetrics, interval)
	require.NoError(t, err)
	u := &discoveryUnderTest{targetDiscovery: d}
	var wg sync.WaitGroup
	wg.Go(d.Run)
	wg.Go(func() {
		for {
			select {
			case sets := <-d.SyncCh():
				u.seenMu.Lock()
				u.last, u.sent = sets, u.sent+1
				u.seenMu.Unlock()
			case <-d.ctx.Done():
				return
			}
		}
	})
	t.Cleanup(func() { d.Stop(); wg.Wait() })
	return u
}

// addresses is the sorted target addresses last sent for job, and whether
// the job was in it at all.
func (u *discoveryUnderTest) addresses(job string) ([]string, bool) {
	u.seenMu.Lock()
	defer u.seenMu.Unlock()
	groups, ok := u.last[job]
	var out []string
	for _, g := range groups {
		for _, tg := range g.Targets {
			out = append(out, string(tg[model.AddressLabel]))
		}
	}
	slices.Sort(out)
	return out, ok
}

func (u *discoveryUnderTest) waitFor(t *testing.T, job string, want ...string) {
	t.Helper()
	require.Eventually(t, func() bool {
		got, ok := u.addresses(job)
		return ok && slices.Equal(got, want)
	}, 20*time.Second, 5*time.Millisecond, "job %s never got targets %v", job, want)
}

func staticSD(addrs ...string) discovery.Configs {
	g := &targetgroup.Group{Source: "0"}
	for _, a := range addrs {
		g.Targets = append(g.Targets, model.LabelSet{model.AddressLabel: model.LabelValue(a)})
	}
	return discovery.Configs{discovery.StaticConfig{g}}
}

func fileSD(t *testing.T, path string, addrs ...string) discovery.Configs {
	t.Helper()
	body, err := json.Marshal([]map[string][]string{{"targets": addrs}})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, body, 0o600))
	return discovery.Configs{&file.SDConfig{Files: []string{path}, RefreshInterval: model.Duration(50 * time.Millisecond)}}
}

func TestDiscoverySendsEachJobsTargets(t *testing.T) {
	d := startDiscovery(t, 10*time.Millisecond)
	sdFile := filepath.Join(t.TempDir(), "targets.json")
	d.ApplyConfig(map[string]discovery.Configs{
		"static": staticSD("a:1", "b:1"),
		"file":   fileSD(t, sdFile, "f:1"),
		"none":   {},
	})
	d.waitFor(t, "static", "a:1", "b:1")
	d.waitFor(t, "file", "f:1")
	d.waitFor(t, "none") // sent, with no targets

	// A discoverer's change goes out without a reload.
	fileSD(t, sdFile, "f:2", "f:3")
	d.waitFor(t, "file", "f:2", "f:3")

	// A reload that changes one job's targets and drops another.
	d.ApplyConfig(map[string]discovery.Configs{"static": staticSD("c:1")})
	d.waitFor(t, "static", "c:1")
	_, ok := d.addresses("file")
	require.False(t, ok, "a job no longer configured is not sent")
	require.Equal(t, 1, testutil.CollectAndCount(d.metrics.DiscoveredTargets), "only the remaining job's target count is exported")
}

func TestDiscoveryKeepsUnchangedProvidersAcrossReloads(t *testing.T) {
	d := startDiscovery(t, 10*time.Millisecond)
	sdFile := filepath.Join(t.TempDir(), "targets.json")
	shared := fileSD(t, sdFile, "s:1")
	d.ApplyConfig(map[string]discovery.Configs{"one": shared, "two": shared})
	d.waitFor(t, "one", "s:1")
	d.waitFor(t, "two", "s:1")

	d.mu.Lock()
	require.Len(t, d.providers, 1, "identical configurations share one discoverer")
	running := d.providers[0]
	d.mu.Unlock()

	// A third job with the same configuration joins the running discoverer
	// and starts with what it already found.
	d.ApplyConfig(map[string]discovery.Configs{"two": shared, "three": shared})
	d.waitFor(t, "three", "s:1")
	d.mu.Lock()
	require.Equal(t, []*sdProvider{running}, d.providers)
	require.NoError(t, running.ctx.Err(), "the discoverer kept running")
	d.mu.Unlock()
	_, ok := d.addresses("one")
	require.False(t, ok)

	// A changed configuration replaces it.
	d.ApplyConfig(map[string]discovery.Configs{"two": staticSD("x:1")})
	d.waitFor(t, "two", "x:1")
	require.Error(t, running.ctx.Err(), "the old discoverer was stopped")
}

func TestDiscoveryIsQuietWithoutChanges(t *testing.T) {
	d := startDiscovery(t, 10*time.Millisecond)
	d.ApplyConfig(map[string]discovery.Configs{"static": staticSD("a:1")})
	d.waitFor(t, "static", "a:1")
	require.Never(t, func() bool {
		d.seenMu.Lock()
		defer d.seenMu.Unlock()
		return d.sent > 1
	}, 300*time.Millisecond, 10*time.Millisecond, "static targets are sent once, not on every tick")
	require.Equal(t, 1.0, testutil.ToFloat64(d.metrics.SentUpdates))
}

func TestDiscoveryThrottlesSends(t *testing.T) {
	d := startDiscovery(t, time.Hour)
	d.ApplyConfig(map[string]discovery.Configs{"static": staticSD("a:1")})
	d.waitFor(t, "static", "a:1")
	// The next change waits out the interval.
	d.ApplyConfig(map[string]discovery.Configs{"static": staticSD("b:1")})
	require.Never(t, func() bool {
		got, _ := d.addresses("static")
		return slices.Equal(got, []string{"b:1"})
	}, 300*time.Millisecond, 10*time.Millisecond)
}
