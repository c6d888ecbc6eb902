package promapi

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
)

// These tests drive the API with client_golang's v1 client, which is what promtool uses
// (POST with a GET fallback for queries, GET for label values): if it parses our answers,
// promtool does too.

func newClient(t *testing.T, f *fixture) v1.API {
	t.Helper()
	transport := &http.Transport{}
	t.Cleanup(transport.CloseIdleConnections)
	c, err := api.NewClient(api.Config{Address: f.srv.URL, RoundTripper: transport})
	require.NoError(t, err)
	return v1.NewAPI(c)
}

var tNow = time.UnixMilli(t0)

func TestClientQuery(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	c := newClient(t, f)
	ctx := context.Background()

	t.Run("vector", func(t *testing.T) {
		v, warns, err := queryNoInfos(c.Query(ctx, "up", tNow, v1.WithTimeout(10*time.Second), v1.WithLookbackDelta(time.Minute), v1.WithStats(v1.AllStatsValue)))
		require.NoError(t, err)
		require.Empty(t, warns)
		require.Equal(t, model.Vector{
			{Metric: model.Metric{"__name__": "up", "instance": "a", "job": "api"}, Value: 1, Timestamp: model.Time(t0)},
			{Metric: model.Metric{"__name__": "up", "instance": "b", "job": "api"}, Value: 0, Timestamp: model.Time(t0)},
			{Metric: model.Metric{"__name__": "up", "instance": "c", "job": "db"}, Value: 1, Timestamp: model.Time(t0)},
		}, v)
	})
	t.Run("scalar", func(t *testing.T) {
		v, _, err := queryNoInfos(c.Query(ctx, "2^0.5", tNow.Add(781*time.Millisecond)))
		require.NoError(t, err)
		require.Equal(t, &model.Scalar{Value: 1.4142135623730951, Timestamp: model.Time(t0 + 781)}, v)
	})
	// client_golang cannot parse "string" results (against Prometheus either); the raw HTTP
	// tests cover them.
	t.Run("native histogram", func(t *testing.T) {
		v, _, err := queryNoInfos(c.Query(ctx, "rpc_latency_seconds", tNow))
		require.NoError(t, err)
		vec := v.(model.Vector)
		require.Len(t, vec, 1)
		require.Equal(t, &model.SampleHistogram{
			Count: 13,
			Sum:   13.5,
			Buckets: model.HistogramBuckets{
				{Boundaries: 3, Lower: -0.001, Upper: 0.001, Count: 1},
				{Boundaries: 0, Lower: 0.5, Upper: 1, Count: 6},
				{Boundaries: 0, Lower: 1, Upper: 2, Count: 6},
			},
		}, vec[0].Histogram)
	})
	t.Run("warnings and infos", func(t *testing.T) {
		v, warns, infos, err := c.Query(ctx, `rate(up[1m]) * on() group_left quantile(2, up)`, tNow, v1.WithLimit(1))
		require.NoError(t, err)
		require.Len(t, v, 1)
		require.Contains(t, warns, "results truncated due to limit")
		require.Contains(t, warns, "PromQL warning: quantile value should be between 0 and 1, got 2 (1:41)")
		require.Len(t, infos, 1)
	})
	t.Run("error", func(t *testing.T) {
		_, _, err := queryNoInfos(c.Query(ctx, "up{", tNow))
		var apiErr *v1.Error
		require.True(t, errors.As(err, &apiErr), "%v", err)
		require.Equal(t, v1.ErrBadData, apiErr.Type)
		require.Contains(t, apiErr.Msg, "parse error")

		_, _, err = queryNoInfos(c.Query(ctx, `label_replace(up, "instance", "x", "", "")`, tNow))
		require.True(t, errors.As(err, &apiErr), "%v", err)
		require.Equal(t, v1.ErrExec, apiErr.Type)
	})
}

func TestClientQueryRange(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	c := newClient(t, f)
	ctx := context.Background()

	v, warns, err := queryNoInfos(c.QueryRange(ctx, `http_requests_total{code="500"}`, v1.Range{
		Start: tNow.Add(-time.Minute),
		End:   tNow,
		Step:  15 * time.Second,
	}))
	require.NoError(t, err)
	require.Empty(t, warns)
	require.Equal(t, model.Matrix{{
		Metric: model.Metric{"__name__": "http_requests_total", "code": "500", "job": "api"},
		Values: []model.SamplePair{
			{Timestamp: model.Time(t0 - 60_000), Value: 0},
			{Timestamp: model.Time(t0 - 45_000), Value: 0.5},
			{Timestamp: model.Time(t0 - 30_000), Value: 1},
			{Timestamp: model.Time(t0 - 15_000), Value: 1.5},
			{Timestamp: model.Time(t0), Value: 2},
		},
	}}, v)

	v, _, err = queryNoInfos(c.QueryRange(ctx, "rpc_latency_seconds", v1.Range{Start: tNow.Add(-15 * time.Second), End: tNow, Step: 15 * time.Second}))
	require.NoError(t, err)
	m := v.(model.Matrix)
	require.Len(t, m, 1)
	require.Empty(t, m[0].Values)
	require.Len(t, m[0].Histograms, 2)
	require.Equal(t, model.FloatString(11), m[0].Histograms[0].Histogram.Count)
	require.Equal(t, model.Time(t0), m[0].Histograms[1].Timestamp)

	_, _, err = queryNoInfos(c.QueryRange(ctx, "up", v1.Range{Start: tNow.Add(-24 * time.Hour), End: tNow, Step: time.Second}))
	var apiErr *v1.Error
	require.True(t, errors.As(err, &apiErr), "%v", err)
	require.Equal(t, v1.ErrBadData, apiErr.Type)
	require.Contains(t, apiErr.Msg, "exceeded maximum resolution of 11,000 points")
}

func TestClientSeriesAndLabels(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	c := newClient(t, f)
	ctx := context.Background()

	series, warns, infos, err := c.Series(ctx, []string{`up{job="api"}`, `rpc_latency_seconds`}, tNow.Add(-time.Hour), tNow)
	require.NoError(t, err)
	require.Empty(t, warns)
	require.Empty(t, infos)
	require.Equal(t, []model.LabelSet{
		{"__name__": "rpc_latency_seconds", "job": "api"},
		{"__name__": "up", "instance": "a", "job": "api"},
		{"__name__": "up", "instance": "b", "job": "api"},
	}, series)

	// promtool passes zero times when --start/--end are not given: open range.
	names, warns, _, err := c.LabelNames(ctx, nil, time.Time{}, time.Time{})
	require.NoError(t, err)
	require.Empty(t, warns)
	require.Equal(t, model.LabelNames{"__name__", "code", "instance", "job", "k8s.io/app", "path"}, names)

	values, _, _, err := c.LabelValues(ctx, "job", []string{"up"}, time.Time{}, time.Time{})
	require.NoError(t, err)
	require.Equal(t, model.LabelValues{"api", "db"}, values)

	// As in Prometheus, the storage may stop at any limit+1 values, so which two come back
	// is not fixed; they are sorted and the truncation is reported.
	values, warns, _, err = c.LabelValues(ctx, "__name__", nil, tNow.Add(-time.Hour), tNow, v1.WithLimit(2))
	require.NoError(t, err)
	require.Len(t, values, 2)
	require.Less(t, values[0], values[1])
	require.Subset(t, model.LabelValues{"http_requests_total", "rpc_latency_seconds", "up", "weird"}, values)
	require.Equal(t, v1.Warnings{"results truncated due to limit"}, warns)

	// Outside the data's time range there is nothing, and nothing is an empty list.
	values, _, _, err = c.LabelValues(ctx, "job", nil, tNow.Add(time.Hour), tNow.Add(2*time.Hour))
	require.NoError(t, err)
	require.Empty(t, values)

	_, _, _, err = c.Series(ctx, nil, time.Time{}, time.Time{})
	var apiErr *v1.Error
	require.True(t, errors.As(err, &apiErr), "%v", err)
	require.Equal(t, v1.ErrBadData, apiErr.Type)
}

func TestClientMetadataBuildinfoExemplars(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	c := newClient(t, f)
	ctx := context.Background()

	md, err := c.Metadata(ctx, "", "")
	require.NoError(t, err)
	require.Len(t, md, 3)
	require.Equal(t, []v1.Metadata{{Type: v1.MetricTypeHistogram, Help: "RPC latency.", Unit: "seconds"}}, md["rpc_latency_seconds"])

	md, err = c.Metadata(ctx, "up", "5")
	require.NoError(t, err)
	require.Equal(t, map[string][]v1.Metadata{"up": {{Type: v1.MetricTypeGauge, Help: "Whether the target is up."}}}, md)

	bi, err := c.Buildinfo(ctx)
	require.NoError(t, err)
	require.Equal(t, v1.BuildinfoResult{
		Version: "1.2.3", Revision: "abc123", Branch: "main",
		BuildUser: "ci@pharos", BuildDate: "20260101-00:00:00", GoVersion: "go1.26.8",
	}, bi)

	ex, err := c.QueryExemplars(ctx, `rate(http_requests_total{job="api"}[5m])`, tNow.Add(-time.Hour), tNow)
	require.NoError(t, err)
	require.Equal(t, []v1.ExemplarQueryResult{{
		SeriesLabels: model.LabelSet{"__name__": "http_requests_total", "code": "200", "job": "api"},
		Exemplars: []v1.Exemplar{{
			Labels:    model.LabelSet{"trace_id": "4bf92f3577b34da6"},
			Value:     42,
			Timestamp: model.Time(t0 - 500),
		}},
	}}, ex)

	formatted, err := c.FormatQuery(ctx, "sum(up)by(job)")
	require.NoError(t, err)
	require.Equal(t, `"sum by (job) (up)"`, formatted)
}

// queryNoInfos drops the infos of a client call for tests that do not look at them.
func queryNoInfos(v model.Value, w v1.Warnings, _ v1.Infos, err error) (model.Value, v1.Warnings, error) {
	return v, w, err
}
