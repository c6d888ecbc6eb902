package e2e

import (
	"fmt"
	"net/http/httptest"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/stretchr/testify/require"

	"github.com/pharos-obs/pharos/internal/testutil"
)

// TestNativeHistogramsAndExemplars scrapes a client_golang target over the
// protobuf format: its native histogram and its exemplars must be stored and
// queryable through Pharos as Prometheus would show them.
func TestNativeHistogramsAndExemplars(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	h := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "nh_request_seconds", Help: "A native histogram.",
		NativeHistogramBucketFactor: 1.1, NativeHistogramMaxBucketNumber: 100,
	})
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "nh_requests_total", Help: "A counter with exemplars."})
	reg.MustRegister(h, c)
	for i := 1; i <= 100; i++ {
		h.Observe(float64(i) / 100)
	}
	c.(prometheus.ExemplarAdder).AddWithExemplar(3, prometheus.Labels{"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"})
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{EnableOpenMetrics: true}))
	t.Cleanup(srv.Close)

	cfg := writeFile(t, "prometheus.yml", fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 900ms
scrape_configs:
  - job_name: nh
    scrape_protocols: [PrometheusProto, OpenMetricsText1.0.0]
    scrape_native_histograms: true
    static_configs: [{targets: [%q]}]
`, srv.Listener.Addr().String()))
	p := startPharos(t, "pharos", []string{"-data.dir", t.TempDir(), "-nats.partitions", "4", "-scrape.config-file", cfg})

	testutil.Poll(t, 60*time.Second, 200*time.Millisecond, func() (bool, string) {
		got := instant(t, p.addr, `histogram_count(nh_request_seconds)`, time.Now())
		return len(got) == 1 && got[0] == "instance="+srv.Listener.Addr().String()+",job=nh, => 100",
			fmt.Sprintf("histogram_count: %v", got)
	})
	got := instant(t, p.addr, `histogram_sum(nh_request_seconds)`, time.Now())
	require.Len(t, got, 1)
	require.Contains(t, got[0], "=> 50.5")

	var exemplars []struct {
		SeriesLabels map[string]string `json:"seriesLabels"`
		Exemplars    []struct {
			Labels map[string]string `json:"labels"`
			Value  string            `json:"value"`
		} `json:"exemplars"`
	}
	testutil.Poll(t, 30*time.Second, 200*time.Millisecond, func() (bool, string) {
		now := time.Now()
		params := url.Values{
			"query": {"nh_requests_total"},
			"start": {strconv.FormatInt(now.Add(-time.Minute).Unix(), 10)},
			"end":   {strconv.FormatInt(now.Unix(), 10)},
		}
		if err := getAPI(p.addr, "/api/v1/query_exemplars", params, &exemplars); err != nil {
			return false, err.Error()
		}
		for _, e := range exemplars {
			for _, ex := range e.Exemplars {
				if ex.Labels["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736" && ex.Value == "3" {
					return true, ""
				}
			}
		}
		return false, fmt.Sprintf("exemplars: %+v", exemplars)
	})
	p.Stop()
}
