package aggregator_test

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/tsdbutil"
	"github.com/stretchr/testify/require"

	"github.com/pharos-obs/pharos/aggregator"
	"github.com/pharos-obs/pharos/internal/bus"
	"github.com/pharos-obs/pharos/internal/bus/codec"
	"github.com/pharos-obs/pharos/internal/tenant"
)

// handoffBatches returns fresh samples of every kind a batch carries:
// floats (a stale marker and a negative zero among them), integer and
// float histograms, exemplars and metadata, for three scrapes of the same
// series (the same label sets, as a scrape cache passes them).
func handoffBatches() [][]codec.Sample {
	series := []labels.Labels{
		labels.FromStrings("__name__", "req_total", "code", "200"),
		labels.FromStrings("__name__", "req_total", "code", "500"),
		labels.FromStrings("__name__", "lat", "le", "+Inf"),
		labels.FromStrings("__name__", "hist"),
		labels.FromStrings("__name__", "fhist"),
		// A label the agent must not set; the aggregator replaces it.
		labels.FromStrings("__name__", "spoofed", tenant.Label, "someone-else"),
	}
	meta := metadata.Metadata{Type: model.MetricTypeCounter, Help: "Requests.", Unit: ""}
	var out [][]codec.Sample
	for scrape := range 3 {
		t := int64(10_000 + 1000*scrape)
		var b []codec.Sample
		for i, ls := range series {
			s := codec.Sample{Labels: ls, Ref: ls.Hash() | 1, T: t, V: float64(scrape*10 + i)}
			switch i {
			case 0:
				s.Meta = meta // sent the first time only: the encoder suppresses repeats
				s.ST = 5000
			case 1:
				if scrape == 2 {
					s.V = math.Float64frombits(0x7ff0000000000002) // a stale marker
				}
				if scrape == 1 {
					s.V = math.Copysign(0, -1)
				}
				s.Exemplars = []exemplar.Exemplar{{Labels: labels.FromStrings("trace_id", fmt.Sprintf("t%d", scrape)), Value: 0.5, Ts: t - 1, HasTs: true}}
			case 3:
				s.H = tsdbutil.GenerateTestHistogram(int64(scrape))
			case 4:
				s.FH = tsdbutil.GenerateTestFloatHistogram(int64(scrape))
			}
			b = append(b, s)
		}
		out = append(out, b)
	}
	return out
}

// publishBatches publishes the batches under tenant, putting each one's
// samples into h first when h is not nil, as the agent's publisher does.
func publishBatches(t *testing.T, f *fixture, h *bus.Handoff, tenant string, batches [][]codec.Sample) {
	t.Helper()
	enc := codec.NewMetricsEncoder(codec.CompressionSnappy)
	enc.KeepLocal()
	for i, b := range batches {
		entries := len(b)
		if i == 0 {
			// A family's metadata without a sample, as scrapers send it.
			enc.AppendFamilyMetadata("lat", metadata.Metadata{Type: model.MetricTypeHistogram, Help: "Latency."})
			entries++
		}
		for j := range b {
			enc.Append(&b[j])
		}
		data, err := enc.Encode(nil)
		require.NoError(t, err)
		id := fmt.Sprintf("%s-%d", tenant, i)
		local := enc.TakeLocal()
		require.Len(t, local, entries)
		if h != nil {
			h.Put(id, local)
		}
		enc.Reset()
		require.NoError(t, f.conn.Publish(context.Background(), &bus.OutMsg{
			Signal: bus.SignalMetrics, Partition: 0, Tenant: tenant, Encoding: enc.Encoding(), ID: id, Data: data,
		}))
	}
}

// dump lists every stored sample, histogram and exemplar and the metadata
// of the default tenant and team-a.
func dump(t *testing.T, f *fixture) []string {
	t.Helper()
	var out []string
	for _, id := range []string{bus.DefaultTenant, "team-a"} {
		for _, line := range dumpTenant(t, f, tenant.WithContext(context.Background(), id)) {
			out = append(out, id+" "+line)
		}
	}
	return out
}

func dumpTenant(t *testing.T, f *fixture, ctx context.Context) []string {
	t.Helper()
	q, err := f.store.Querier(0, math.MaxInt64)
	require.NoError(t, err)
	defer q.Close()
	var out []string
	ss := q.Select(ctx, true, nil, labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+"))
	for ss.Next() {
		ls := ss.At().Labels()
		it := ss.At().Iterator(nil)
		for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
			switch vt {
			case chunkenc.ValFloat:
				ts, v := it.At()
				out = append(out, fmt.Sprintf("%s %d %x", ls, ts, math.Float64bits(v)))
			case chunkenc.ValHistogram:
				ts, h := it.AtHistogram(nil)
				out = append(out, fmt.Sprintf("%s %d %s", ls, ts, h))
			case chunkenc.ValFloatHistogram:
				ts, fh := it.AtFloatHistogram(nil)
				out = append(out, fmt.Sprintf("%s %d %s", ls, ts, fh))
			}
		}
	}
	require.NoError(t, ss.Err())
	eq, err := f.store.ExemplarQuerier(ctx)
	require.NoError(t, err)
	ex, err := eq.Select(0, math.MaxInt64, []*labels.Matcher{labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+")})
	require.NoError(t, err)
	for _, e := range ex {
		for _, x := range e.Exemplars {
			out = append(out, fmt.Sprintf("exemplar %s %s %g %d", e.SeriesLabels, x.Labels, x.Value, x.Ts))
		}
	}
	md, err := f.store.Metadata(ctx, "", -1, -1)
	require.NoError(t, err)
	for name, ms := range md {
		out = append(out, fmt.Sprintf("metadata %s %v", name, ms))
	}
	slices.Sort(out)
	return out
}

// The hand-off must store exactly what decoding the same messages stores,
// for the default tenant and another one.
func TestHandoffStoresWhatDecodingStores(t *testing.T) {
	stored := map[bool][]string{}
	for _, handoff := range []bool{false, true} {
		f := newFixture(t, 1)
		agg, err := aggregator.New(aggregator.Config{MaxDecodedBytes: 1 << 20, SeriesCacheSize: 1000}, 1, f.conn.ConsumePartition, f.conn.DeadLetter, f.store, slog.New(slog.DiscardHandler), f.reg)
		require.NoError(t, err)
		var h *bus.Handoff
		hreg := prometheus.NewRegistry()
		if handoff {
			h = bus.NewHandoff(1<<20, hreg)
			agg.WithHandoff(h)
			require.True(t, h.Wants(0))
		}
		require.NoError(t, services.StartAndAwaitRunning(context.Background(), agg))
		t.Cleanup(func() { _ = services.StopAndAwaitTerminated(context.Background(), agg) })
		publishBatches(t, f, h, bus.DefaultTenant, handoffBatches())
		publishBatches(t, f, h, "team-a", handoffBatches())
		// 6 series × 3 scrapes × 2 tenants, each stored.
		require.Eventually(t, func() bool {
			return value(t, f.reg, "pharos_aggregator_samples_appended_total") == 36
		}, 30*time.Second, 20*time.Millisecond)
		if handoff {
			// Every batch was taken from the hand-off, none decoded.
			require.Equal(t, 6.0, value(t, hreg, "pharos_handoff_batches_taken_total"))
		}
		stored[handoff] = dump(t, f)
	}
	// Each tenant got all its samples, and the label an agent must not
	// set was dropped (default tenant) or replaced (team-a).
	require.Len(t, stored[false], 2*(18+2+2))
	require.Contains(t, stored[false], "team-a metadata lat [{histogram  Latency.}]")
	require.NotContains(t, fmt.Sprint(stored[false]), "someone-else")
	require.Equal(t, stored[false], stored[true])
}
