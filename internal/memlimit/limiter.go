// Package memlimit keeps the process clear of the OOM killer, as the
// OpenTelemetry Collector's memory_limiter processor does: one goroutine
// samples the Go heap against a soft limit (hard limit − spike headroom);
// above it the receivers refuse new data with a retryable answer (429,
// RESOURCE_EXHAUSTED with RetryInfo) and the aggregator's consumers stop
// fetching (JetStream keeps the data), until the heap is back under. The
// hard limit is also given to the Go runtime as its soft memory limit
// (debug.SetMemoryLimit, GOMEMLIMIT) so that the GC works harder before
// anything is refused.
//
// The Limiter is a dskit service; its state is read with one atomic load,
// so callers may ask on every request.
package memlimit

import (
	"context"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"time"

	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Signals, in the refused counter's labels.
const (
	SignalMetrics = "metrics"
	SignalLogs    = "logs"
	SignalTraces  = "traces"
)

// heapMetric is the Go heap's allocated objects, live and not yet swept
// (runtime.MemStats.HeapAlloc, what the Collector's limiter measures):
// reading it does not stop the world.
const heapMetric = "/memory/classes/heap/objects:bytes"

// Limiter samples the heap and says whether new data may come in. It is
// safe for concurrent use; a Limiter that is off (no limit configured or
// derived) never refuses.
type Limiter struct {
	services.Service

	cfg    Config
	hard   int64 // 0: off
	soft   int64
	source string // flag, cgroup or off
	logger *slog.Logger
	m      *limiterMetrics

	// Inputs, replaceable in tests.
	readHeap func() uint64
	gc       func()
	now      func() time.Time

	limited atomic.Bool

	mu     sync.Mutex
	under  chan struct{} // closed while not limited
	lastGC time.Time     // of the check goroutine only
	prevGo int64         // the runtime's memory limit before Start, restored at stop
}

// New returns a Limiter for cfg, deriving the limit from the cgroup when
// cfg.LimitBytes is 0. Its metrics are registered on reg.
func New(cfg Config, logger *slog.Logger, reg prometheus.Registerer) (*Limiter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return newLimiter(cfg, cgroupMemoryLimit, readHeapObjects, runtime.GC, time.Now, logger, reg), nil
}

func newLimiter(cfg Config, cgroup func() (int64, bool), readHeap func() uint64, gc func(), now func() time.Time, logger *slog.Logger, reg prometheus.Registerer) *Limiter {
	l := &Limiter{cfg: cfg, logger: logger, readHeap: readHeap, gc: gc, now: now, under: make(chan struct{})}
	close(l.under)
	l.hard, l.soft, l.source = cfg.limits(cgroup)
	l.m = newLimiterMetrics(reg, l)
	if l.hard == 0 {
		l.Service = services.NewIdleService(nil, nil)
	} else {
		l.Service = services.NewTimerService(cfg.CheckInterval, l.starting, l.iteration, l.stopping)
	}
	return l
}

// Enabled reports whether a limit is in force.
func (l *Limiter) Enabled() bool { return l.hard > 0 }

// Limits returns the hard and soft limits in bytes (0 when off).
func (l *Limiter) Limits() (hard, soft int64) { return l.hard, l.soft }

// Limited reports whether new data is being refused now.
func (l *Limiter) Limited() bool { return l.limited.Load() }

// Refuse reports whether new data of signal must be refused now, and
// counts the refusal. It is one atomic load when not limited.
func (l *Limiter) Refuse(signal string) bool {
	if !l.limited.Load() {
		return false
	}
	l.m.refused(signal)
	return true
}

// Wait returns at once when data may come in; otherwise it blocks until
// the heap is back under the soft limit (nil) or ctx is done (its error).
func (l *Limiter) Wait(ctx context.Context) error {
	if !l.limited.Load() {
		return nil
	}
	l.mu.Lock()
	under := l.under
	l.mu.Unlock()
	select {
	case <-under:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (l *Limiter) starting(context.Context) error {
	// GOMEMLIMIT set by the operator wins; otherwise the runtime collects
	// harder as the heap nears the hard limit, before anything is refused.
	if _, set := os.LookupEnv("GOMEMLIMIT"); !set {
		l.prevGo = debug.SetMemoryLimit(l.hard)
	} else {
		l.prevGo = -1
	}
	l.logger.Info("memory limiter on", "hard_limit_bytes", l.hard, "soft_limit_bytes", l.soft, "source", l.source,
		"go_memory_limit_bytes", debug.SetMemoryLimit(-1))
	l.check()
	return nil
}

func (l *Limiter) iteration(context.Context) error {
	l.check()
	return nil
}

func (l *Limiter) stopping(error) error {
	if l.prevGo >= 0 {
		debug.SetMemoryLimit(l.prevGo)
	}
	// Whoever still waits is stopping too; let it go.
	l.setLimited(false, 0)
	return nil
}

// check samples the heap and moves between the states. Over the soft
// limit it first forces a GC (at most every MinGCInterval), so that
// garbage not yet collected does not refuse data, and, while limited, so
// that memory freed since is seen.
func (l *Limiter) check() {
	heap := l.readHeap()
	if heap >= uint64(l.soft) {
		if now := l.now(); l.lastGC.IsZero() || now.Sub(l.lastGC) >= l.cfg.MinGCInterval {
			l.gc()
			l.lastGC = l.now()
			l.m.forcedGC.Inc()
			heap = l.readHeap()
		}
	}
	l.m.heap.Set(float64(heap))
	l.setLimited(heap >= uint64(l.soft), heap)
}

func (l *Limiter) setLimited(limited bool, heap uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.limited.Load() == limited {
		return
	}
	if limited {
		l.under = make(chan struct{})
		l.limited.Store(true)
		l.m.state.Set(1)
		l.logger.Warn("memory limiter engaged: refusing new data", "heap_bytes", heap, "soft_limit_bytes", l.soft, "hard_limit_bytes", l.hard)
		return
	}
	l.limited.Store(false)
	close(l.under)
	l.m.state.Set(0)
	l.logger.Info("memory limiter released: accepting data again", "heap_bytes", heap, "soft_limit_bytes", l.soft, "hard_limit_bytes", l.hard)
}

func readHeapObjects() uint64 {
	s := [1]metrics.Sample{{Name: heapMetric}}
	metrics.Read(s[:])
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

type limiterMetrics struct {
	refusedBy map[string]prometheus.Counter
	refusedV  *prometheus.CounterVec
	state     prometheus.Gauge
	heap      prometheus.Gauge
	forcedGC  prometheus.Counter
}

func newLimiterMetrics(reg prometheus.Registerer, l *Limiter) *limiterMetrics {
	f := promauto.With(reg)
	m := &limiterMetrics{
		refusedV: f.NewCounterVec(prometheus.CounterOpts{
			Name: "pharos_memory_limiter_refused_total",
			Help: "Pushed requests refused (agent) and fetched bus batches deferred (aggregator) because the heap was over the memory limiter's soft limit, by signal.",
		}, []string{"signal"}),
		state: f.NewGauge(prometheus.GaugeOpts{
			Name: "pharos_memory_limiter_state",
			Help: "1 while the memory limiter refuses new data (heap over memory.limit_bytes − memory.spike_limit_bytes), else 0.",
		}),
		heap: f.NewGauge(prometheus.GaugeOpts{
			Name: "pharos_memory_limiter_heap_bytes",
			Help: "Go heap (allocated objects) at the memory limiter's last check.",
		}),
		forcedGC: f.NewCounter(prometheus.CounterOpts{
			Name: "pharos_memory_limiter_forced_gc_total",
			Help: "Garbage collections the memory limiter forced over the soft limit.",
		}),
		refusedBy: map[string]prometheus.Counter{},
	}
	limits := f.NewGaugeVec(prometheus.GaugeOpts{
		Name: "pharos_memory_limiter_limit_bytes",
		Help: "The memory limiter's limits (limit=hard, soft); 0 when it is off.",
	}, []string{"limit"})
	limits.WithLabelValues("hard").Set(float64(l.hard))
	limits.WithLabelValues("soft").Set(float64(l.soft))
	for _, s := range []string{SignalMetrics, SignalLogs, SignalTraces} {
		m.refusedBy[s] = m.refusedV.WithLabelValues(s)
	}
	return m
}

func (m *limiterMetrics) refused(signal string) {
	if c, ok := m.refusedBy[signal]; ok {
		c.Inc()
		return
	}
	m.refusedV.WithLabelValues(signal).Inc()
}
