package e2e

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pharos-obs/pharos/internal/testutil"
)

func serve(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// rssBytes reads a process's resident set size from /proc.
func rssBytes(t *testing.T, pid int) int64 {
	t.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	require.NoError(t, err)
	for _, line := range strings.Split(string(raw), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			require.NoError(t, err)
			return kb << 10
		}
	}
	t.Fatal("no VmRSS in /proc status")
	return 0
}

type targetStatus struct {
	Labels    map[string]string `json:"labels"`
	Health    string            `json:"health"`
	LastError string            `json:"lastError"`
}

// TestHostileTargets scrapes a garbage body, a 50 MB body and a 100k-series
// explosion next to a healthy target: each hostile one is refused by its
// limit and reported down with the reason, memory stays bounded, and the
// healthy target's samples keep arriving.
func TestHostileTargets(t *testing.T) {
	t.Parallel()
	promtool(t)
	healthy := startTarget(t)
	garbage := serve(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		_, _ = w.Write([]byte("this is { not the exposition format\n\x00\x01\n"))
	})
	big := bytes.Repeat([]byte("# padding padding padding padding padding padding padding padding\n"), 50<<20/66)
	huge := serve(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		_, _ = w.Write(big)
	})
	var explosion strings.Builder
	for i := range 100_000 {
		fmt.Fprintf(&explosion, "explosion_series{id=\"%d\"} %d\n", i, i)
	}
	exploding := serve(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		_, _ = w.Write([]byte(explosion.String()))
	})
	cfg := writeFile(t, "prometheus.yml", fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 900ms
  body_size_limit: 10MB
  sample_limit: 50000
scrape_configs:
  - job_name: e2e
    static_configs: [{targets: [%q]}]
  - job_name: garbage
    static_configs: [{targets: [%q]}]
  - job_name: huge
    static_configs: [{targets: [%q]}]
  - job_name: explosion
    static_configs: [{targets: [%q]}]
`, healthy, garbage, huge, exploding))

	p := startPharos(t, "pharos", []string{"-data.dir", t.TempDir(), "-nats.partitions", "4", "-scrape.config-file", cfg})
	wantErr := map[string]string{
		"garbage":   "",
		"huge":      "body size limit",
		"explosion": "sample limit",
	}
	testutil.Poll(t, 60*time.Second, 200*time.Millisecond, func() (bool, string) {
		var data struct {
			ActiveTargets []targetStatus `json:"activeTargets"`
		}
		if err := getAPI(p.addr, "/api/v1/targets", nil, &data); err != nil {
			return false, err.Error()
		}
		down := 0
		for _, at := range data.ActiveTargets {
			job := at.Labels["job"]
			want, hostile := wantErr[job]
			switch {
			case !hostile && at.Health != "up":
				return false, fmt.Sprintf("healthy target %s is %s: %s", job, at.Health, at.LastError)
			case hostile && at.Health == "down" && strings.Contains(at.LastError, want) && at.LastError != "":
				down++
			}
		}
		return down == len(wantErr), fmt.Sprintf("%d of %d hostile targets reported down with their reason: %+v", down, len(wantErr), data.ActiveTargets)
	})
	for job := range wantErr {
		testutil.Poll(t, 30*time.Second, 200*time.Millisecond, func() (bool, string) {
			got, err := promtoolQuery(t, p.addr, fmt.Sprintf(`up{job=%q}`, job), time.Now())
			if err != nil || len(got) != 1 || got[0].Value != 0 {
				return false, fmt.Sprintf("up{job=%q}: %v %v", job, got, err)
			}
			return true, ""
		})
	}
	got, err := promtoolQuery(t, p.addr, "count(explosion_series)", time.Now())
	require.NoError(t, err)
	require.Empty(t, got, "a scrape over its sample_limit stores none of its samples")

	// Keep the hostile targets coming for a while: memory must stay
	// bounded and the healthy target unaffected.
	deadline := time.Now().Add(10 * time.Second)
	var peak int64
	testutil.Poll(t, 30*time.Second, 500*time.Millisecond, func() (bool, string) {
		peak = max(peak, rssBytes(t, p.cmd.Process.Pid))
		return time.Now().After(deadline), ""
	})
	require.Less(t, peak, int64(512<<20), "resident memory under hostile targets")
	requireE2EValues(t, p.addr, healthy)
	t.Logf("peak RSS under hostile targets: %d MiB", peak>>20)
	p.Stop()
}
