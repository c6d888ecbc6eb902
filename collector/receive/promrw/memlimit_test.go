package promrw

import (
	"context"
	"log/slog"
	"net/http"
	"runtime"
	"runtime/metrics"
	"testing"
	"time"

	"github.com/grafana/dskit/services"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/pharos-obs/pharos/internal/memlimit"
	"github.com/pharos-obs/pharos/internal/testutil"
)

// TestMemoryLimiterRefuses holds real memory past a small limit: the
// limiter engages, a push gets 429 with Retry-After naming the memory
// limit and is counted; once the memory is let go it is accepted again.
// Not parallel: it measures the test process's own heap.
func TestMemoryLimiterRefuses(t *testing.T) {
	e := newEnv(t, nil)
	heap := func() int64 {
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		// Twice: the first collection moves pooled objects to the pools'
		// victim caches, the second frees them.
		runtime.GC()
		runtime.GC()
		metrics.Read(s)
		return int64(s[0].Value.Uint64())
	}
	// Soft limit 32 MiB above today's heap, hard limit 16 MiB above that;
	// the ballast is three times the margin.
	base := heap()
	cfg := memlimit.Config{LimitBytes: base + 48<<20, SpikeLimitBytes: 16 << 20, CheckInterval: 10 * time.Millisecond}
	lim, err := memlimit.New(cfg, slog.New(slog.DiscardHandler), e.reg)
	require.NoError(t, err)
	require.True(t, lim.Enabled())
	require.NoError(t, services.StartAndAwaitRunning(context.Background(), lim))
	t.Cleanup(func() { require.NoError(t, services.StopAndAwaitTerminated(context.Background(), lim)) })
	e.in.SetMemoryGate(lim)

	req := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
		Labels:  v1Labels("__name__", "up", "job", "a"),
		Samples: []prompb.Sample{{Value: 1, Timestamp: nowMs()}},
	}}}
	require.Equal(t, http.StatusNoContent, e.sendV1(t, req).code, "under the limit")

	ballast := make([][]byte, 0, 96)
	for range cap(ballast) {
		b := make([]byte, 1<<20)
		b[0] = 1 // touched, so it is resident
		ballast = append(ballast, b)
	}
	testutil.Poll(t, 10*time.Second, 10*time.Millisecond, func() (bool, string) {
		return lim.Limited(), "the limiter has not engaged"
	})
	r := e.sendV1(t, req)
	require.Equal(t, http.StatusTooManyRequests, r.code, r.body)
	require.Contains(t, r.body, "memory limit (memory.limit_bytes)")
	require.NotEmpty(t, r.header.Get("Retry-After"))
	require.InDelta(t, 1, e.metric(t, "pharos_memory_limiter_refused_total", "signal", "metrics"), 0)
	require.InDelta(t, 1, e.metric(t, "pharos_memory_limiter_state"), 0)
	require.InDelta(t, 1, e.metric(t, "pharos_agent_receive_requests_total", "protocol", "prw1", "status", "429"), 0)
	require.Len(t, e.rec.Samples(), 1, "the refused push stored nothing")

	runtime.KeepAlive(ballast)
	ballast = nil
	testutil.Poll(t, 10*time.Second, 10*time.Millisecond, func() (bool, string) {
		return !lim.Limited(), "the limiter has not let go"
	})
	require.Equal(t, http.StatusNoContent, e.sendV1(t, req).code, "back under the limit")
	require.InDelta(t, 0, e.metric(t, "pharos_memory_limiter_state"), 0)
	require.InDelta(t, 1, e.metric(t, "pharos_memory_limiter_refused_total", "signal", "metrics"), 0)
}
