package memlimit

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"testing"
	"time"

	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// heapInput is the limiter's input in a test: the heap it reads, what a
// forced GC leaves of it, and a clock.
type heapInput struct {
	heap    uint64
	afterGC uint64 // the heap after a GC; 0 leaves it as it is
	gcs     int
	now     time.Time
}

func (h *heapInput) read() uint64 { return h.heap }
func (h *heapInput) gc() {
	h.gcs++
	if h.afterGC != 0 {
		h.heap = h.afterGC
	}
}

func newTestLimiter(t *testing.T, cfg Config, in *heapInput) (*Limiter, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	l := newLimiter(cfg, func() (int64, bool) { return 0, false }, in.read, in.gc, func() time.Time { return in.now }, slog.New(slog.DiscardHandler), reg)
	return l, reg
}

func TestLimits(t *testing.T) {
	for _, c := range []struct {
		name             string
		cfg              Config
		cgroup           int64
		hard, soft       int64
		source           string
		cgroupConsidered bool
	}{
		{name: "off", cfg: Config{LimitBytes: -1}, cgroup: 1 << 30, source: "off"},
		{name: "no cgroup", cfg: Config{}, source: "off"},
		{name: "from cgroup", cfg: Config{}, cgroup: 1000 << 20, hard: 800 << 20, soft: 640 << 20, source: "cgroup"},
		{name: "cgroup too small", cfg: Config{}, cgroup: 8 << 20, source: "off"},
		{name: "flag, default spike", cfg: Config{LimitBytes: 500 << 20}, cgroup: 1 << 30, hard: 500 << 20, soft: 400 << 20, source: "flag"},
		{name: "flag and spike", cfg: Config{LimitBytes: 500 << 20, SpikeLimitBytes: 50 << 20}, hard: 500 << 20, soft: 450 << 20, source: "flag"},
	} {
		t.Run(c.name, func(t *testing.T) {
			hard, soft, source := c.cfg.limits(func() (int64, bool) { return c.cgroup, c.cgroup > 0 })
			require.Equal(t, c.hard, hard)
			require.Equal(t, c.soft, soft)
			require.Equal(t, c.source, source)
		})
	}
}

func TestValidate(t *testing.T) {
	ok := Config{LimitBytes: 100 << 20, SpikeLimitBytes: 10 << 20, CheckInterval: time.Second}
	require.NoError(t, ok.Validate())
	bad := Config{LimitBytes: 100 << 20, SpikeLimitBytes: 100 << 20, CheckInterval: 0, MinGCInterval: -1}
	err := bad.Validate()
	require.ErrorContains(t, err, "memory.spike_limit_bytes")
	require.ErrorContains(t, err, "memory.check_interval")
	require.ErrorContains(t, err, "memory.min_gc_interval")
	require.ErrorContains(t, (&Config{LimitBytes: -2, CheckInterval: time.Second}).Validate(), "memory.limit_bytes")
	require.ErrorContains(t, (&Config{LimitBytes: 1 << 20, CheckInterval: time.Second}).Validate(), "at least")
}

// TestStates runs the check over sequences of heap readings: each step
// sets the heap (and what a GC would leave of it), advances the clock,
// runs one check and states the expected state and GC count.
func TestStates(t *testing.T) {
	const mib = 1 << 20
	cfg := Config{LimitBytes: 100 * mib, SpikeLimitBytes: 20 * mib, CheckInterval: time.Second, MinGCInterval: 10 * time.Second}
	type step struct {
		heap, afterGC uint64
		advance       time.Duration
		limited       bool
		gcs           int
	}
	for _, c := range []struct {
		name  string
		steps []step
	}{
		{"under the soft limit", []step{
			{heap: 10 * mib}, {heap: 79 * mib},
		}},
		{"garbage over the soft limit is collected, not refused", []step{
			{heap: 90 * mib, afterGC: 30 * mib, gcs: 1},
			{heap: 40 * mib, gcs: 1},
		}},
		{"live data over the soft limit is refused", []step{
			{heap: 90 * mib, afterGC: 85 * mib, limited: true, gcs: 1},
			// No GC before MinGCInterval: still limited.
			{heap: 85 * mib, afterGC: 10 * mib, advance: time.Second, limited: true, gcs: 1},
			// The next forced GC shows the memory freed.
			{heap: 85 * mib, afterGC: 10 * mib, advance: 10 * time.Second, gcs: 2},
		}},
		{"released once the heap drops on its own", []step{
			{heap: 81 * mib, limited: true, gcs: 1},
			{heap: 70 * mib, advance: time.Second, gcs: 1},
		}},
		{"exactly the soft limit refuses", []step{
			{heap: 80 * mib, limited: true, gcs: 1},
		}},
		{"over the hard limit", []step{
			{heap: 200 * mib, limited: true, gcs: 1},
			{heap: 200 * mib, advance: 10 * time.Second, limited: true, gcs: 2},
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := &heapInput{now: time.Unix(1000, 0)}
			l, reg := newTestLimiter(t, cfg, in)
			for i, s := range c.steps {
				in.heap, in.afterGC = s.heap, s.afterGC
				in.now = in.now.Add(s.advance)
				l.check()
				require.Equal(t, s.limited, l.Limited(), "step %d", i)
				require.Equal(t, s.gcs, in.gcs, "step %d: forced GCs", i)
				require.Equal(t, s.limited, l.Refuse(SignalMetrics), "step %d", i)
				state := 0.0
				if s.limited {
					state = 1
				}
				require.InDelta(t, state, testutil.ToFloat64(l.m.state), 0, "step %d", i)
			}
			_ = reg
		})
	}
}

func TestRefuseCounts(t *testing.T) {
	in := &heapInput{heap: 1 << 30, now: time.Unix(1000, 0)}
	l, _ := newTestLimiter(t, Config{LimitBytes: 100 << 20, CheckInterval: time.Second, MinGCInterval: time.Hour}, in)
	require.False(t, l.Refuse(SignalLogs), "not limited before the first check")
	l.check()
	require.True(t, l.Refuse(SignalLogs))
	require.True(t, l.Refuse(SignalLogs))
	require.True(t, l.Refuse(SignalTraces))
	require.InDelta(t, 2, testutil.ToFloat64(l.m.refusedV.WithLabelValues(SignalLogs)), 0)
	require.InDelta(t, 1, testutil.ToFloat64(l.m.refusedV.WithLabelValues(SignalTraces)), 0)
	require.InDelta(t, 0, testutil.ToFloat64(l.m.refusedV.WithLabelValues(SignalMetrics)), 0)
	require.InDelta(t, float64(1<<30), testutil.ToFloat64(l.m.heap), 0)
}

func TestWait(t *testing.T) {
	in := &heapInput{heap: 1 << 30, now: time.Unix(1000, 0)}
	l, _ := newTestLimiter(t, Config{LimitBytes: 100 << 20, CheckInterval: time.Second, MinGCInterval: time.Hour}, in)
	require.NoError(t, l.Wait(context.Background()), "not limited: no wait")
	l.check()
	require.True(t, l.Limited())

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.ErrorIs(t, l.Wait(ctx), context.Canceled)

	done := make(chan error, 1)
	go func() { done <- l.Wait(context.Background()) }()
	select {
	case err := <-done:
		t.Fatalf("Wait returned while limited: %v", err)
	default:
	}
	in.heap = 1 << 20
	l.check()
	require.NoError(t, <-done)
	require.False(t, l.Limited())
}

func TestOffNeverRefuses(t *testing.T) {
	in := &heapInput{heap: 1 << 40}
	l, _ := newTestLimiter(t, Config{LimitBytes: -1, CheckInterval: time.Second}, in)
	require.False(t, l.Enabled())
	require.NoError(t, services.StartAndAwaitRunning(context.Background(), l))
	require.False(t, l.Refuse(SignalMetrics))
	require.NoError(t, services.StopAndAwaitTerminated(context.Background(), l))
}

// TestServiceSetsGoMemoryLimit: a running limiter gives its hard limit to
// the runtime and restores the previous one when it stops.
// With GOMEMLIMIT in the environment, the operator's setting wins and the
// runtime's limit is left alone.
func TestServiceSetsGoMemoryLimit(t *testing.T) {
	for _, env := range []string{"", "1GiB"} {
		t.Run("GOMEMLIMIT="+env, func(t *testing.T) {
			t.Setenv("GOMEMLIMIT", env) // restored at cleanup
			if env == "" {
				require.NoError(t, os.Unsetenv("GOMEMLIMIT"))
			}
			before := debug.SetMemoryLimit(-1)
			in := &heapInput{heap: 1 << 20}
			l, _ := newTestLimiter(t, Config{LimitBytes: 300 << 20, CheckInterval: 10 * time.Millisecond}, in)
			require.NoError(t, services.StartAndAwaitRunning(context.Background(), l))
			want := int64(300 << 20)
			if env != "" {
				want = before
			}
			require.Equal(t, want, debug.SetMemoryLimit(-1))
			require.NoError(t, services.StopAndAwaitTerminated(context.Background(), l))
			require.Equal(t, before, debug.SetMemoryLimit(-1))
		})
	}
}

func TestReadCgroupLimit(t *testing.T) {
	write := func(t *testing.T, root, rel, content string) {
		t.Helper()
		p := filepath.Join(root, rel)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
	}
	t.Run("v2 own path", func(t *testing.T) {
		root := t.TempDir()
		write(t, root, "system.slice/pharos.service/memory.max", "1073741824\n")
		n, ok := readCgroupLimit(root, []byte("0::/system.slice/pharos.service\n"))
		require.True(t, ok)
		require.Equal(t, int64(1<<30), n)
	})
	t.Run("v2 namespaced root", func(t *testing.T) {
		root := t.TempDir()
		write(t, root, "memory.max", "536870912\n")
		n, ok := readCgroupLimit(root, []byte("0::/\n"))
		require.True(t, ok)
		require.Equal(t, int64(512<<20), n)
	})
	t.Run("v2 max", func(t *testing.T) {
		root := t.TempDir()
		write(t, root, "memory.max", "max\n")
		_, ok := readCgroupLimit(root, []byte("0::/\n"))
		require.False(t, ok)
	})
	t.Run("v1 unlimited", func(t *testing.T) {
		root := t.TempDir()
		write(t, root, "memory/memory.limit_in_bytes", "9223372036854771712\n")
		_, ok := readCgroupLimit(root, []byte("4:memory:/docker/abc\n0::/\n"))
		require.False(t, ok)
	})
	t.Run("v1 container root", func(t *testing.T) {
		root := t.TempDir()
		write(t, root, "memory/memory.limit_in_bytes", "268435456\n")
		n, ok := readCgroupLimit(root, []byte("4:cpu,memory:/docker/abc\n"))
		require.True(t, ok)
		require.Equal(t, int64(256<<20), n)
	})
	t.Run("none", func(t *testing.T) {
		_, ok := readCgroupLimit(t.TempDir(), nil)
		require.False(t, ok)
	})
}
