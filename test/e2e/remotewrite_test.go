package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pharos-obs/pharos/internal/testutil"
)

// freeAddr finds a free loopback port for a program (Prometheus) that
// cannot report the port it bound.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// startPrometheus runs Debian's Prometheus with cfg and stops it (SIGTERM,
// by PID) at cleanup.
func startPrometheus(t *testing.T, cfg string) string {
	t.Helper()
	addr := freeAddr(t)
	startPeer(t, "prometheus", addr, "--config.file="+cfg, "--storage.tsdb.path="+t.TempDir(),
		"--web.listen-address="+addr, "--log.level=warn")
	return addr
}

// startPeer runs one of Debian's Prometheus-project daemons (bin, on PATH)
// with args until its /-/ready at addr answers 200, and stops it (SIGTERM,
// by PID, SIGKILL after 10 s) at cleanup, showing its log if the test failed.
func startPeer(t *testing.T, bin, addr string, args ...string) {
	t.Helper()
	path, err := exec.LookPath(bin)
	require.NoError(t, err, "Debian's %s is required (make test installs it)", bin)
	logPath := filepath.Join(t.TempDir(), bin+".log")
	logf, err := os.Create(logPath)
	require.NoError(t, err)
	defer logf.Close()
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	require.NoError(t, cmd.Start())
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			raw, _ := os.ReadFile(logPath)
			t.Logf("%s log:\n%s", bin, raw)
		}
	})
	testutil.Poll(t, 60*time.Second, 100*time.Millisecond, func() (bool, string) {
		select {
		case <-exited:
			raw, _ := os.ReadFile(logPath)
			t.Fatalf("%s exited: %s", bin, raw)
		default:
		}
		resp, err := httpClient.Get("http://" + addr + "/-/ready")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, bin + " not ready: " + resp.Status
	})
}

type vectorResult struct {
	ResultType string `json:"resultType"`
	Result     []struct {
		Metric map[string]string `json:"metric"`
		Value  [2]any            `json:"value"`
	} `json:"result"`
}

// instant runs an instant query at t and returns "labels => value" lines,
// sorted, so two systems' answers compare as text.
func instant(t *testing.T, addr, q string, at time.Time) []string {
	t.Helper()
	var data vectorResult
	params := url.Values{"query": {q}, "time": {strconv.FormatFloat(float64(at.UnixMilli())/1000, 'f', 3, 64)}}
	require.NoError(t, getAPI(addr, "/api/v1/query", params, &data), "%s at %s", addr, q)
	out := make([]string, 0, len(data.Result))
	for _, r := range data.Result {
		keys := make([]string, 0, len(r.Metric))
		for k := range r.Metric {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		line := ""
		for _, k := range keys {
			line += k + "=" + r.Metric[k] + ","
		}
		out = append(out, fmt.Sprintf("%s => %v", line, r.Value[1]))
	}
	sort.Strings(out)
	return out
}

// TestPrometheusRemoteWrite has Debian's Prometheus scrape a target and
// remote-write everything to the Pharos agent while storing it locally: the
// same PromQL queries give the same answers from both.
func TestPrometheusRemoteWrite(t *testing.T) {
	t.Parallel()
	var scrapes atomic.Int64
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		n := scrapes.Add(1)
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		_, _ = io.WriteString(w, fmt.Sprintf(`# TYPE rw_requests_total counter
rw_requests_total{code="200"} %d
rw_requests_total{code="500"} %d
# TYPE rw_temperature gauge
rw_temperature{room="a"} %g
rw_temperature{room="b"} -%g
# TYPE rw_latency_seconds histogram
rw_latency_seconds_bucket{le="0.1"} %d
rw_latency_seconds_bucket{le="1"} %d
rw_latency_seconds_bucket{le="+Inf"} %d
rw_latency_seconds_sum %g
rw_latency_seconds_count %d
`, n*7, n, float64(n)/3, float64(n)*1.5, n, 2*n, 3*n, float64(n)*0.7, 3*n))
	}))
	t.Cleanup(target.Close)

	p := startPharos(t, "pharos", []string{"-data.dir", t.TempDir(), "-nats.partitions", "4"})
	cfg := writeFile(t, "prometheus.yml", fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 900ms
scrape_configs:
  - job_name: rw
    static_configs: [{targets: [%q]}]
remote_write:
  - url: http://%s/api/v1/write
    queue_config: {batch_send_deadline: 1s, max_shards: 2}
    metadata_config: {send_interval: 1s}
`, target.Listener.Addr().String(), p.addr))
	prom := startPrometheus(t, cfg)

	testutil.Poll(t, 60*time.Second, 200*time.Millisecond, func() (bool, string) {
		return scrapes.Load() >= 15, fmt.Sprintf("%d scrapes so far", scrapes.Load())
	})
	// Compare at a moment a few seconds back, which both have complete.
	at := time.Now().Add(-5 * time.Second)
	queries := []string{
		`rw_requests_total`,
		`rate(rw_requests_total[5s])`,
		`sum by (room) (rw_temperature)`,
		`count_over_time(rw_temperature[8s])`,
		`histogram_quantile(0.9, rate(rw_latency_seconds_bucket[5s]))`,
		`up{job="rw"}`,
	}
	testutil.Poll(t, 30*time.Second, 500*time.Millisecond, func() (bool, string) {
		for _, q := range queries {
			want, got := instant(t, prom, q, at), instant(t, p.addr, q, at)
			if len(want) == 0 {
				return false, q + ": Prometheus has no data yet"
			}
			if fmt.Sprint(want) != fmt.Sprint(got) {
				return false, fmt.Sprintf("%s:\n  prometheus: %v\n  pharos:     %v", q, want, got)
			}
		}
		return true, ""
	})
	var md map[string][]metricMetadata
	require.NoError(t, getAPI(p.addr, "/api/v1/metadata", url.Values{"metric": {"rw_requests_total"}}, &md))
	require.Equal(t, "counter", firstType(md["rw_requests_total"]), "metadata sent by remote write: %v", md)
	p.Stop()
}
