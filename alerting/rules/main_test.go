package rules

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/grafana/dskit/services"
	"github.com/prometheus/alertmanager/types"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	promrules "github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/pharos-obs/pharos/internal/testutil"
	metricstore "github.com/pharos-obs/pharos/storage/metrics"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testInterval is the evaluation interval of the tests' groups: short, so
// that states move quickly, long enough for a loaded machine.
const testInterval = 250 * time.Millisecond

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// testConfig returns the flag defaults with the given rule globs, a short
// evaluation interval and no resend delay (every evaluation notifies).
func testConfig(files ...string) Config {
	var cfg Config
	cfg.RegisterFlags(flag.NewFlagSet("test", flag.PanicOnError))
	cfg.Files = files
	cfg.EvaluationInterval = testInterval
	cfg.ResendDelay = 0
	cfg.ExternalURL = "http://pharos.example.com:8080"
	return cfg
}

// openStore opens a TSDB through storage/metrics, closed at cleanup.
func openStore(t *testing.T) *metricstore.Store {
	t.Helper()
	var cfg metricstore.Config
	cfg.RegisterFlags(flag.NewFlagSet("test", flag.PanicOnError))
	s, err := metricstore.Open(cfg, t.TempDir(), slog.New(slog.DiscardHandler), nil)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	return s
}

// writeFile writes content to dir/name and returns the path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
	return p
}

// appendSample appends one sample to the store.
func appendSample(t *testing.T, s storage.AppendableV2, ls labels.Labels, ts time.Time, v float64) {
	t.Helper()
	app := s.AppenderV2(context.Background())
	_, err := app.Append(0, ls, 0, ts.UnixMilli(), v, nil, nil, storage.AOptions{})
	require.NoError(t, err)
	require.NoError(t, app.Commit())
}

// staleNaN is the marker that ends a series.
var staleNaN = math.Float64frombits(value.StaleNaN)

// series returns the samples of every series named name, by series.
func series(t *testing.T, s storage.Queryable, name string) map[string][]float64 {
	t.Helper()
	q, err := s.Querier(0, math.MaxInt64)
	require.NoError(t, err)
	defer q.Close()
	ss := q.Select(context.Background(), false, nil, labels.MustNewMatcher(labels.MatchEqual, labels.MetricName, name))
	out := map[string][]float64{}
	for ss.Next() {
		it := ss.At().Iterator(nil)
		var vs []float64
		for it.Next() != 0 { // chunkenc.ValNone; tsdb packages stay under storage/
			_, v := it.At()
			vs = append(vs, v)
		}
		require.NoError(t, it.Err())
		out[ss.At().Labels().String()] = vs
	}
	require.NoError(t, ss.Err())
	return out
}

// startManager builds and starts a Manager, stopped at cleanup.
func startManager(t *testing.T, cfg Config, deps Deps) (*Manager, *prometheus.Registry) {
	t.Helper()
	m, reg := newManager(t, cfg, deps)
	require.NoError(t, services.StartAndAwaitRunning(context.Background(), m))
	t.Cleanup(func() { stopManager(t, m) })
	return m, reg
}

func newManager(t *testing.T, cfg Config, deps Deps) (*Manager, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	m, err := New(cfg, deps, testLogger(t), reg)
	require.NoError(t, err)
	return m, reg
}

// stopManager stops m; stopping twice is harmless.
func stopManager(t *testing.T, m *Manager) {
	t.Helper()
	if m.State() == services.Terminated {
		return
	}
	require.NoError(t, services.StopAndAwaitTerminated(context.Background(), m))
}

// poll checks cond until it holds or timeout passes.
func poll(t *testing.T, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	testutil.Poll(t, timeout, 10*time.Millisecond, cond)
}

// hook records what the Manager hands to Deps.Send.
type hook struct {
	mu     sync.Mutex
	alerts []*types.Alert
}

func (h *hook) send(as ...*types.Alert) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.alerts = append(h.alerts, as...)
}

func (h *hook) all() []*types.Alert {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]*types.Alert(nil), h.alerts...)
}

// owner is a switchable OwnsFunc.
type owner struct {
	mu    sync.Mutex
	owned map[string]bool
}

func newOwner(keys ...string) *owner {
	o := &owner{owned: map[string]bool{}}
	for _, k := range keys {
		o.owned[k] = true
	}
	return o
}

func (o *owner) owns(key string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.owned[key]
}

func (o *owner) set(key string, owned bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.owned[key] = owned
}

// groupNames returns the names of the groups m evaluates.
func groupNames(m *Manager) []string {
	var names []string
	for _, g := range m.Groups() {
		names = append(names, g.Name())
	}
	return names
}

// activeAlert returns the one active alert of m, or nil.
func activeAlert(t *testing.T, m *Manager) *promrules.Alert {
	t.Helper()
	as := m.Alerts()
	require.LessOrEqual(t, len(as), 1, "alerts: %v", as)
	if len(as) == 0 {
		return nil
	}
	return as[0]
}

func describe(a *promrules.Alert) string {
	if a == nil {
		return "no alert"
	}
	return fmt.Sprintf("%s %s active at %s", a.Labels, a.State, a.ActiveAt)
}

// requireMetric checks the value of an unlabelled gauge or counter.
func requireMetric(t *testing.T, reg *prometheus.Registry, name string, want float64) {
	t.Helper()
	require.Equal(t, want, metricValue(t, reg, name), name)
}

func metricValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		require.Len(t, mf.GetMetric(), 1, name)
		m := mf.GetMetric()[0]
		if g := m.GetGauge(); g != nil {
			return g.GetValue()
		}
		return m.GetCounter().GetValue()
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}

// metricSum sums the values of every series of a gauge or counter.
func metricSum(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			sum += m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
		return sum
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}
