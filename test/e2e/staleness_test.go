package e2e

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pharos-obs/pharos/internal/testutil"
)

// TestStalenessMarkers: a series that leaves its target's exposition, and a
// target that leaves service discovery, disappear from instant queries at
// once (staleness markers), not after the 5-minute lookback. (As in
// Prometheus, a whole job removed by a reload is not marked stale: its scrape
// pool is shut down like at exit.)
func TestStalenessMarkers(t *testing.T) {
	t.Parallel()
	var dropped atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		_, _ = io.WriteString(w, "stay 1\n")
		if !dropped.Load() {
			_, _ = io.WriteString(w, "leave 1\n")
		}
	}))
	t.Cleanup(srv.Close)
	other := startTarget(t)
	cfgPath := writeFile(t, "prometheus.yml", fmt.Sprintf(`global: {scrape_interval: 1s, scrape_timeout: 900ms}
scrape_configs:
  - job_name: stale
    static_configs: [{targets: [%q]}]
  - job_name: moving
    static_configs: [{targets: [%q]}]
`, srv.Listener.Addr().String(), other))
	p := startPharos(t, "pharos", append([]string{"-data.dir", t.TempDir(), "-nats.partitions", "4", "-scrape.config-file", cfgPath}, adminArgs...))
	present := func(q string) func() (bool, string) {
		return func() (bool, string) {
			got := instant(t, p.addr, q, time.Now())
			return len(got) == 1, fmt.Sprintf("%s: %v", q, got)
		}
	}
	absent := func(q string) func() (bool, string) {
		return func() (bool, string) {
			got := instant(t, p.addr, q, time.Now())
			return len(got) == 0, fmt.Sprintf("%s still returns %v", q, got)
		}
	}
	testutil.Poll(t, 60*time.Second, 200*time.Millisecond, present("leave"))
	gone := fmt.Sprintf(`up{job="moving",instance=%q}`, other)
	testutil.Poll(t, 60*time.Second, 200*time.Millisecond, present(gone))

	dropped.Store(true)
	testutil.Poll(t, 30*time.Second, 200*time.Millisecond, absent("leave"))
	testutil.Poll(t, 30*time.Second, 200*time.Millisecond, present("stay"))

	require.NoError(t, os.WriteFile(cfgPath, fmt.Appendf(nil, `global: {scrape_interval: 1s, scrape_timeout: 900ms}
scrape_configs:
  - job_name: stale
    static_configs: [{targets: [%q]}]
  - job_name: moving
    static_configs: [{targets: [%q]}]
`, srv.Listener.Addr().String(), srv.Listener.Addr().String()), 0o600))
	code, body := p.reload()
	require.Equal(t, http.StatusOK, code, body)
	testutil.Poll(t, 30*time.Second, 200*time.Millisecond, absent(gone))
	p.Stop()
}
