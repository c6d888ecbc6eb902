package aggregator_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	config_util "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage/remote"
	"github.com/stretchr/testify/require"

	"github.com/pharos-obs/pharos/aggregator"
	"github.com/pharos-obs/pharos/internal/bus"
	"github.com/pharos-obs/pharos/internal/bus/codec"
	"github.com/pharos-obs/pharos/internal/testutil"
	"github.com/pharos-obs/pharos/storage/metrics"
)

// TestReadAPITenancy publishes series as three tenants through the bus and
// the aggregator, then reads them back through the internal read API as
// each tenant (X-Scope-OrgID, as the query role sends it).
func TestReadAPITenancy(t *testing.T) {
	f := newFixture(t, 1)
	f.start(t, 1)
	now := time.Now().UnixMilli()
	md := metadata.Metadata{Type: model.MetricTypeGauge, Help: "Probe."}
	publish := func(tenant, id string, ls labels.Labels) {
		enc := codec.NewMetricsEncoder(codec.CompressionZstd)
		enc.Append(&codec.Sample{Labels: ls, Ref: ls.Hash(), T: now, V: 1, Meta: md})
		data, err := enc.Encode(nil)
		require.NoError(t, err)
		require.NoError(t, f.conn.Publish(context.Background(), &bus.OutMsg{
			Signal: bus.SignalMetrics, Tenant: tenant, Encoding: enc.Encoding(), ID: id, Data: data,
		}))
	}
	publish(bus.DefaultTenant, "d", labels.FromStrings("__name__", "probe", "job", "default"))
	// A default-tenant series that names a tenant itself stays the
	// default tenant's, and a tenant's cannot claim another tenant.
	publish(bus.DefaultTenant, "spoof", labels.FromStrings("__name__", "probe", "job", "spoof", metrics.TenantLabel, "team-a"))
	publish("team-a", "a", labels.FromStrings("__name__", "probe", "job", "a"))
	publish("team-a", "a-spoof", labels.FromStrings("__name__", "probe", "job", "a-spoof", metrics.TenantLabel, "team-b"))
	publish("team-b", "b", labels.FromStrings("__name__", "probe", "job", "b"))

	mux := http.NewServeMux()
	aggregator.RegisterReadAPI(mux, aggregator.ReadAPIConfig{SampleLimit: 1000, ConcurrencyLimit: 2, MaxBytesInFrame: 1 << 20}, f.store, slog.New(slog.DiscardHandler), nil)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	get := func(path, tenant string, v url.Values) (int, []byte) {
		req, err := http.NewRequest(http.MethodGet, srv.URL+path+"?"+v.Encode(), nil)
		require.NoError(t, err)
		if tenant != "" {
			req.Header.Set("X-Scope-OrgID", tenant)
		}
		resp, err := srv.Client().Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var body json.RawMessage
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body
	}
	values := func(tenant string) []string {
		code, body := get(aggregator.LabelValuesPath, tenant, url.Values{"name": {"job"}})
		require.Equal(t, http.StatusOK, code, string(body))
		var r aggregator.LabelsResponse
		require.NoError(t, json.Unmarshal(body, &r))
		return r.Values
	}
	testutil.Poll(t, 10*time.Second, 20*time.Millisecond, func() (bool, string) {
		n := len(values("")) + len(values("team-a")) + len(values("team-b"))
		return n == 5, "not every series stored yet"
	})
	for tenant, want := range map[string][]string{
		"":          {"default", "spoof"},
		"anonymous": {"default", "spoof"},
		"team-a":    {"a", "a-spoof"},
		"team-b":    {"b"},
		"team-c":    {},
	} {
		require.Equal(t, want, values(tenant), tenant)

		code, body := get(aggregator.LabelNamesPath, tenant, nil)
		require.Equal(t, http.StatusOK, code)
		require.NotContains(t, string(body), metrics.TenantLabel)

		code, body = get(aggregator.MetadataPath, tenant, nil)
		require.Equal(t, http.StatusOK, code)
		var got map[string][]metadata.Metadata
		require.NoError(t, json.Unmarshal(body, &got))
		if len(want) == 0 {
			require.Empty(t, got, tenant)
		} else {
			require.Equal(t, map[string][]metadata.Metadata{"probe": {md}}, got, tenant)
		}

		// Remote read, as the query role's fan-out reads.
		u, err := url.Parse(srv.URL + aggregator.ReadPath)
		require.NoError(t, err)
		cfg := &remote.ClientConfig{URL: &config_util.URL{URL: u}, Timeout: model.Duration(10 * time.Second),
			HTTPClientConfig: config_util.DefaultHTTPClientConfig, ChunkedReadLimit: 1 << 20,
			AcceptedResponseTypes: []prompb.ReadRequest_ResponseType{prompb.ReadRequest_STREAMED_XOR_CHUNKS}}
		if tenant != "" {
			cfg.Headers = map[string]string{"X-Scope-OrgID": tenant}
		}
		rc, err := remote.NewReadClient("test-"+tenant, cfg)
		require.NoError(t, err)
		q, err := remote.NewSampleAndChunkQueryableClient(rc, labels.EmptyLabels(), nil, true, nil).Querier(math.MinInt64/2, math.MaxInt64/2)
		require.NoError(t, err)
		set := q.Select(context.Background(), true, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "probe"))
		var jobs []string
		for set.Next() {
			require.False(t, set.At().Labels().Has(metrics.TenantLabel))
			jobs = append(jobs, set.At().Labels().Get("job"))
		}
		require.NoError(t, set.Err())
		if len(want) == 0 {
			require.Empty(t, jobs)
		} else {
			require.Equal(t, want, jobs, tenant)
		}
		require.NoError(t, q.Close())
	}

	// Malformed tenants and queries on the reserved label are refused.
	for _, bad := range []string{"..", ".", "a|b", "x/y"} {
		code, _ := get(aggregator.LabelNamesPath, bad, nil)
		require.Equal(t, http.StatusBadRequest, code, bad)
	}
	code, _ := get(aggregator.LabelNamesPath, "team-b", url.Values{"match[]": {`{__pharos_tenant__="team-a"}`}})
	require.Equal(t, http.StatusBadRequest, code)
}
