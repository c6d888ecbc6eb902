package scrape

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// The target discovery cancels its discoverers without
		// waiting for them; client-go's informers and Consul's retry sleep
		// wind down on their own afterwards. None of these are ours.
		goleak.IgnoreAnyFunction("k8s.io/klog/v2.(*flushDaemon).run.func1"),
		goleak.IgnoreAnyFunction("github.com/prometheus/prometheus/discovery/consul.(*Discovery).Run"),
		goleak.IgnoreAnyFunction("github.com/prometheus/prometheus/discovery/kubernetes.(*Discovery).Run"),
		goleak.IgnoreAnyFunction("k8s.io/client-go/tools/cache.(*sharedIndexInformer).Run"),
		goleak.IgnoreAnyFunction("k8s.io/client-go/tools/cache.(*Reflector).RunWithContext"),
		goleak.IgnoreAnyFunction("k8s.io/apimachinery/pkg/util/wait.(*Group).Start.func1"),
		goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop"),
	)
}

// recorder is a storage.AppendableV2 that keeps committed samples, keyed by
// their label set.
type recorder struct {
	mu   sync.Mutex
	last map[string]float64
}

func (r *recorder) AppenderV2(context.Context) storage.AppenderV2 { return &recApp{r: r} }

func (r *recorder) get(key string) (float64, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	v, ok := r.last[key]
	return v, ok
}

type recApp struct {
	r       *recorder
	pending map[string]float64
}

func (a *recApp) Append(_ storage.SeriesRef, ls labels.Labels, _, _ int64, v float64, _ *histogram.Histogram, _ *histogram.FloatHistogram, _ storage.AppendV2Options) (storage.SeriesRef, error) {
	if a.pending == nil {
		a.pending = map[string]float64{}
	}
	a.pending[ls.String()] = v
	return storage.SeriesRef(ls.Hash() | 1), nil
}

func (a *recApp) Commit() error {
	a.r.mu.Lock()
	defer a.r.mu.Unlock()
	for k, v := range a.pending {
		a.r.last[k] = v
	}
	return nil
}

func (a *recApp) Rollback() error { a.pending = nil; return nil }

func target(t *testing.T, body string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func host(srv *httptest.Server) string {
	u, _ := url.Parse(srv.URL)
	return u.Host
}

func run(t *testing.T, cfgFile string) (*Scraper, *recorder) {
	t.Helper()
	rec := &recorder{last: map[string]float64{}}
	s, err := New(Config{ConfigFile: cfgFile, DiscoveryReloadInterval: 50 * time.Millisecond}, rec, func() string { return "127.0.0.1:1" }, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	require.NoError(t, err)
	require.NoError(t, services.StartAndAwaitRunning(context.Background(), s))
	t.Cleanup(func() { require.NoError(t, services.StopAndAwaitTerminated(context.Background(), s)) })
	return s, rec
}

func waitFor(t *testing.T, rec *recorder, key string, want float64) {
	t.Helper()
	require.Eventually(t, func() bool {
		v, ok := rec.get(key)
		return ok && v == want
	}, 30*time.Second, 10*time.Millisecond, "waiting for %s = %g", key, want)
}

func TestDiscoveriesFeedTheScraper(t *testing.T) {
	static := target(t, "m{src=\"static\"} 1\n")
	fromFile := target(t, "m{src=\"file\"} 2\n")
	fromHTTP := target(t, "m{src=\"http\"} 3\n")
	dir := t.TempDir()

	sdFile := filepath.Join(dir, "targets.json")
	require.NoError(t, os.WriteFile(sdFile, fmt.Appendf(nil, `[{"targets":[%q],"labels":{"team":"a"}}]`, host(fromFile)), 0o600))
	sdHTTP := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode([]map[string]any{{"targets": []string{host(fromHTTP)}, "labels": map[string]string{"team": "b"}}})
	}))
	t.Cleanup(sdHTTP.Close)

	cfgFile := filepath.Join(dir, "prometheus.yml")
	require.NoError(t, os.WriteFile(cfgFile, fmt.Appendf(nil, `
global:
  scrape_interval: 100ms
  scrape_timeout: 90ms
scrape_configs:
  - job_name: static
    static_configs: [{targets: [%q]}]
    metric_relabel_configs:
      - {source_labels: [src], target_label: relabelled, replacement: "yes"}
  - job_name: file
    file_sd_configs: [{files: [%q], refresh_interval: 1s}]
  - job_name: http
    http_sd_configs: [{url: %q, refresh_interval: 1s}]
`, host(static), sdFile, sdHTTP.URL), 0o600))

	_, rec := run(t, cfgFile)
	key := func(kv ...string) string { return labels.FromStrings(kv...).String() }
	waitFor(t, rec, key("__name__", "m", "instance", host(static), "job", "static", "src", "static", "relabelled", "yes"), 1)
	waitFor(t, rec, key("__name__", "m", "instance", host(fromFile), "job", "file", "src", "file", "team", "a"), 2)
	waitFor(t, rec, key("__name__", "m", "instance", host(fromHTTP), "job", "http", "src", "http", "team", "b"), 3)
	waitFor(t, rec, key("__name__", "up", "instance", host(static), "job", "static"), 1)
}

func writeConfig(t *testing.T, path, body string) {
	t.Helper()
	require.NoError(t, os.WriteFile(path, []byte(body), 0o600))
}

func TestReload(t *testing.T) {
	a := target(t, "a_metric 1\n")
	b := target(t, "b_metric 2\n")
	cfgFile := filepath.Join(t.TempDir(), "prometheus.yml")
	job := func(name string, srv *httptest.Server) string {
		return fmt.Sprintf("global: {scrape_interval: 100ms, scrape_timeout: 90ms}\nscrape_configs:\n  - job_name: %s\n    static_configs: [{targets: [%q]}]\n", name, host(srv))
	}
	writeConfig(t, cfgFile, job("a", a))
	s, rec := run(t, cfgFile)
	waitFor(t, rec, labels.FromStrings("__name__", "a_metric", "instance", host(a), "job", "a").String(), 1)

	writeConfig(t, cfgFile, job("b", b))
	require.NoError(t, s.Reload())
	waitFor(t, rec, labels.FromStrings("__name__", "b_metric", "instance", host(b), "job", "b").String(), 2)

	// A broken file is refused and the running configuration stays.
	writeConfig(t, cfgFile, "scrape_configs: [{job_name: 5, static_configs: nope}]")
	require.Error(t, s.Reload())
	require.Contains(t, s.TargetsActive(), "b")
}

func TestSampleLimitFailsTheScrape(t *testing.T) {
	var body strings.Builder
	for i := range 10 {
		fmt.Fprintf(&body, "many{i=\"%d\"} %d\n", i, i)
	}
	srv := target(t, body.String())
	cfgFile := filepath.Join(t.TempDir(), "prometheus.yml")
	writeConfig(t, cfgFile, fmt.Sprintf("global: {scrape_interval: 100ms, scrape_timeout: 90ms}\nscrape_configs:\n  - job_name: limited\n    sample_limit: 5\n    static_configs: [{targets: [%q]}]\n", host(srv)))
	_, rec := run(t, cfgFile)
	waitFor(t, rec, labels.FromStrings("__name__", "up", "instance", host(srv), "job", "limited").String(), 0)
	_, ok := rec.get(labels.FromStrings("__name__", "many", "i", "0", "instance", host(srv), "job", "limited").String())
	require.False(t, ok, "a scrape over its sample_limit is rolled back whole")
}

// Kubernetes and Consul discovery are compiled in: their configurations load,
// and the discoverers start and stop cleanly even with nothing to talk to.
func TestKubernetesAndConsulConfigs(t *testing.T) {
	cfgFile := filepath.Join(t.TempDir(), "prometheus.yml")
	writeConfig(t, cfgFile, `
global: {scrape_interval: 15s}
scrape_configs:
  - job_name: kubernetes-pods
    kubernetes_sd_configs:
      - role: pod
        api_server: http://127.0.0.1:1
        namespaces: {names: [default, monitoring]}
        selectors: [{role: pod, field: "spec.nodeName=node-1"}]
    relabel_configs:
      - {source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_scrape], action: keep, regex: "true"}
      - {source_labels: [__meta_kubernetes_namespace], target_label: namespace}
  - job_name: kubernetes-nodes
    kubernetes_sd_configs: [{role: node, api_server: http://127.0.0.1:1}]
  - job_name: consul
    consul_sd_configs: [{server: 127.0.0.1:1, services: [api]}]
`)
	require.NoError(t, Config{ConfigFile: cfgFile, DiscoveryReloadInterval: time.Second}.Validate())
	cfg, err := config.LoadFile(cfgFile, false, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	require.Len(t, cfg.ScrapeConfigs, 3)
	require.Equal(t, "kubernetes", cfg.ScrapeConfigs[0].ServiceDiscoveryConfigs[0].Name())
	require.Equal(t, "consul", cfg.ScrapeConfigs[2].ServiceDiscoveryConfigs[0].Name())
	run(t, cfgFile)

	writeConfig(t, cfgFile, "scrape_configs: [{job_name: k, kubernetes_sd_configs: [{role: bogus}]}]")
	require.ErrorContains(t, Config{ConfigFile: cfgFile, DiscoveryReloadInterval: time.Second}.Validate(), "scrape.config_file")
}

func TestTargetsAPI(t *testing.T) {
	up := target(t, "ok 1\n")
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("this is { not prometheus\n"))
	}))
	t.Cleanup(bad.Close)
	cfgFile := filepath.Join(t.TempDir(), "prometheus.yml")
	writeConfig(t, cfgFile, fmt.Sprintf(`global: {scrape_interval: 100ms, scrape_timeout: 90ms}
scrape_configs:
  - job_name: good
    static_configs: [{targets: [%q]}]
  - job_name: garbage
    static_configs: [{targets: [%q]}]
    relabel_configs:
      - {source_labels: [__address__], regex: "nothing-matches", action: keep}
  - job_name: garbage2
    static_configs: [{targets: [%q]}]
`, host(up), host(bad), host(bad)))
	s, rec := run(t, cfgFile)
	waitFor(t, rec, labels.FromStrings("__name__", "up", "instance", host(bad), "job", "garbage2").String(), 0)
	waitFor(t, rec, labels.FromStrings("__name__", "up", "instance", host(up), "job", "good").String(), 1)

	srv := httptest.NewServer(s.TargetsHandler())
	t.Cleanup(srv.Close)
	get := func(query string) (int, targetsData) {
		resp, err := http.Get(srv.URL + TargetsPath + query)
		require.NoError(t, err)
		defer resp.Body.Close()
		var body struct {
			Status string      `json:"status"`
			Data   targetsData `json:"data"`
		}
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
		return resp.StatusCode, body.Data
	}
	code, data := get("")
	require.Equal(t, http.StatusOK, code)
	require.Len(t, data.ActiveTargets, 2)
	byPool := map[string]activeTarget{}
	for _, at := range data.ActiveTargets {
		byPool[at.ScrapePool] = at
	}
	require.Equal(t, "up", byPool["good"].Health)
	require.Empty(t, byPool["good"].LastError)
	require.Equal(t, "down", byPool["garbage2"].Health)
	require.NotEmpty(t, byPool["garbage2"].LastError, "the reason a target is down is shown")
	require.Equal(t, "100ms", byPool["good"].ScrapeInterval)
	require.Len(t, data.DroppedTargets, 1)
	require.Equal(t, 1, data.DroppedTargetCounts["garbage"])

	_, data = get("?state=active&scrapePool=good")
	require.Len(t, data.ActiveTargets, 1)
	require.Empty(t, data.DroppedTargets)
	code, _ = get("?state=bogus")
	require.Equal(t, http.StatusBadRequest, code)
}
