package scrape

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	promscrape "github.com/prometheus/prometheus/scrape"
	"github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"
)

// metaRecorder records, per committed transaction, the family metadata
// appended with it, and the metadata that samples carried.
type metaRecorder struct {
	mu         sync.Mutex
	commits    int
	families   map[string][]metadata.Metadata // every AppendFamilyMetadata, in order
	sampleMeta map[string]metadata.Metadata   // series name → metadata passed with its samples
}

func (r *metaRecorder) AppenderV2(context.Context) storage.AppenderV2 { return &metaApp{r: r} }

type metaApp struct {
	r        *metaRecorder
	families []familyEntry
	samples  map[string]metadata.Metadata
}

type familyEntry struct {
	name string
	m    metadata.Metadata
}

func (a *metaApp) Append(_ storage.SeriesRef, ls labels.Labels, _, _ int64, _ float64, _ *histogram.Histogram, _ *histogram.FloatHistogram, opts storage.AppendV2Options) (storage.SeriesRef, error) {
	if a.samples == nil {
		a.samples = map[string]metadata.Metadata{}
	}
	a.samples[ls.Get(labels.MetricName)] = opts.Metadata
	return storage.SeriesRef(ls.Hash() | 1), nil
}

func (a *metaApp) AppendFamilyMetadata(family string, m metadata.Metadata) {
	a.families = append(a.families, familyEntry{family, m})
}

func (a *metaApp) Commit() error {
	a.r.mu.Lock()
	defer a.r.mu.Unlock()
	a.r.commits++
	for _, f := range a.families {
		a.r.families[f.name] = append(a.r.families[f.name], f.m)
	}
	for name, m := range a.samples {
		a.r.sampleMeta[name] = m
	}
	return nil
}

func (a *metaApp) Rollback() error { return nil }

// A target's metadata goes out per family with its first scrape, then not
// again within metadataInterval, and samples carry none (except the
// scraper's own report series, which the scrape manager always describes).
func TestTargetMetadataSentPerFamily(t *testing.T) {
	srv := target(t, "# HELP req_total Requests served.\n# TYPE req_total counter\nreq_total 1\n# HELP temp Temperature.\n# TYPE temp gauge\ntemp 20\n")
	cfgFile := filepath.Join(t.TempDir(), "prometheus.yml")
	writeConfig(t, cfgFile, fmt.Sprintf(`
global:
  scrape_interval: 50ms
  scrape_timeout: 40ms
scrape_configs:
  - job_name: meta
    static_configs: [{targets: [%q]}]
`, host(srv)))
	rec := &metaRecorder{families: map[string][]metadata.Metadata{}, sampleMeta: map[string]metadata.Metadata{}}
	s, err := New(Config{ConfigFile: cfgFile, DiscoveryReloadInterval: 50 * time.Millisecond}, rec, func() string { return "127.0.0.1:1" }, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	require.NoError(t, err)
	require.NoError(t, services.StartAndAwaitRunning(context.Background(), s))
	t.Cleanup(func() { require.NoError(t, services.StopAndAwaitTerminated(context.Background(), s)) })

	// Several scrapes, each committed.
	require.Eventually(t, func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		return rec.commits >= 6 && len(rec.sampleMeta) > 0
	}, 30*time.Second, 10*time.Millisecond)

	rec.mu.Lock()
	defer rec.mu.Unlock()
	require.Equal(t, []metadata.Metadata{{Type: model.MetricTypeCounter, Help: "Requests served."}}, rec.families["req_total"])
	require.Equal(t, []metadata.Metadata{{Type: model.MetricTypeGauge, Help: "Temperature."}}, rec.families["temp"])
	require.Empty(t, rec.sampleMeta["req_total"], "samples carry no metadata")
	require.Empty(t, rec.sampleMeta["temp"], "samples carry no metadata")
	require.Equal(t, model.MetricTypeGauge, rec.sampleMeta["up"].Type, "report series keep theirs")
}

func TestTargetMetadataDue(t *testing.T) {
	m := newTargetMetadata()
	m.sweepAt = 4
	now := time.Unix(1000, 0)
	newTarget := func() *promscrape.Target { return promscrape.NewTarget(labels.EmptyLabels(), nil, nil, nil) }
	a, b := newTarget(), newTarget()
	require.True(t, m.due(a, now))
	require.False(t, m.due(a, now.Add(metadataInterval-time.Second)))
	require.True(t, m.due(a, now.Add(metadataInterval)))
	require.True(t, m.due(b, now))

	// Targets not seen for long are forgotten once the record grows.
	later := now.Add(20 * metadataInterval)
	for range 4 {
		require.True(t, m.due(newTarget(), later))
	}
	require.Len(t, m.sent, 4, "a and b swept, the four recent ones kept")
}
