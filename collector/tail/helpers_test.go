package tail

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"

	"github.com/pharos-obs/pharos/internal/testutil"
)

const (
	waitFor   = 10 * time.Second
	pollEvery = 5 * time.Millisecond
)

// testConfig tails dir/*.log as raw lines, with short timings.
func testConfig(dir string) Config {
	cfg := DefaultConfig()
	cfg.Include = StringList{filepath.Join(dir, "*.log")}
	cfg.Format = FormatRaw
	cfg.KubernetesLabels = false
	cfg.PollInterval = 20 * time.Millisecond
	cfg.RotateWait = 50 * time.Millisecond
	cfg.BatchWait = 0
	cfg.PositionsSyncPeriod = 20 * time.Millisecond
	cfg.DrainTimeout = 2 * time.Second
	cfg.Multiline.FlushTimeout = 100 * time.Millisecond
	return cfg
}

// record is an entry as the fake sink kept it.
type record struct {
	labels labels.Labels
	ts     time.Time
	line   string
	meta   map[string]string
}

// fakeSink records what it takes. It can fail a number of pushes, or all
// of them, and hold pushes until its gate opens.
type fakeSink struct {
	mu        sync.Mutex
	recs      []record
	calls     int
	failNext  int
	failAll   bool
	permanent bool
	gate      chan struct{}
	// streams holds, for each batch taken, how many streams it held.
	streams []int
}

func (s *fakeSink) PushLogs(ctx context.Context, b *Batch) error {
	s.mu.Lock()
	gate := s.gate
	s.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.failAll || s.failNext > 0 {
		if s.failNext > 0 {
			s.failNext--
		}
		if s.permanent {
			return fmt.Errorf("%w: too large", ErrPermanent)
		}
		return errors.New("bus unavailable")
	}
	seen := map[string]bool{}
	for _, e := range b.Entries {
		seen[e.Labels.String()] = true
	}
	s.streams = append(s.streams, len(seen))
	for _, e := range b.Entries {
		r := record{labels: e.Labels, ts: e.Timestamp, line: string(e.Line)}
		if len(e.Metadata) > 0 {
			r.meta = map[string]string{}
			for _, f := range e.Metadata {
				r.meta[string(f.Name)] = string(f.Value)
			}
		}
		s.recs = append(s.recs, r)
	}
	return nil
}

func (s *fakeSink) setGate(g chan struct{}) {
	s.mu.Lock()
	s.gate = g
	s.mu.Unlock()
}

func (s *fakeSink) setFailAll(v bool) {
	s.mu.Lock()
	s.failAll = v
	s.mu.Unlock()
}

func (s *fakeSink) records() []record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]record(nil), s.recs...)
}

func (s *fakeSink) lines() []string {
	var out []string
	for _, r := range s.records() {
		out = append(out, r.line)
	}
	return out
}

func (s *fakeSink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.recs)
}

// syncBuffer collects log output from the tailer's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// harness is a running tailer with what a test looks at.
type harness struct {
	t    *Tailer
	reg  *prometheus.Registry
	logs *syncBuffer
}

func startTailer(t *testing.T, cfg Config, sink Sink, posFile string) *harness {
	t.Helper()
	h := &harness{reg: prometheus.NewRegistry(), logs: &syncBuffer{}}
	logger := slog.New(slog.NewJSONHandler(io.MultiWriter(h.logs), &slog.HandlerOptions{Level: slog.LevelDebug}))
	tl, err := New(cfg, sink, posFile, logger, h.reg)
	require.NoError(t, err)
	h.t = tl
	require.NoError(t, services.StartAndAwaitRunning(context.Background(), tl))
	t.Cleanup(func() { _ = services.StopAndAwaitTerminated(context.Background(), tl) })
	return h
}

func (h *harness) stop(t *testing.T) {
	t.Helper()
	require.NoError(t, services.StopAndAwaitTerminated(context.Background(), h.t))
}

func (h *harness) lost(reason string) float64 {
	return promtest.ToFloat64(h.t.m.lostBytes.WithLabelValues(reason))
}

func (h *harness) counter(c prometheus.Collector) float64 { return promtest.ToFloat64(c) }

// numbered returns lines "line 000001\n" (12 bytes each) from first to last.
func numbered(first, last int) string {
	var b strings.Builder
	for i := first; i <= last; i++ {
		fmt.Fprintf(&b, "line %06d\n", i)
	}
	return b.String()
}

const lineLen = 12

func appendFile(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	require.NoError(t, err)
	_, err = f.WriteString(s)
	require.NoError(t, err)
	require.NoError(t, f.Close())
}

// waitLines polls until the sink holds n entries.
func waitLines(t *testing.T, s *fakeSink, n int) {
	t.Helper()
	testutil.Poll(t, waitFor, pollEvery, func() (bool, string) {
		c := s.count()
		return c >= n, fmt.Sprintf("sink has %d entries, want %d", c, n)
	})
}

// requireLines checks that the sink holds exactly want, in order.
func requireLines(t *testing.T, s *fakeSink, want string) {
	t.Helper()
	exp := strings.Split(strings.TrimSuffix(want, "\n"), "\n")
	if want == "" {
		exp = nil
	}
	require.Equal(t, exp, s.lines())
}

func readPositions(t *testing.T, path string) []posEntry {
	t.Helper()
	es, _, err := loadPositions(path)
	require.NoError(t, err)
	return es
}
