package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/pharos-obs/pharos/internal/testutil"
)

// seriesWrite is a snappy remote write 1.0 request of one sample for each
// of n series of metric name, ids from first on.
func seriesWrite(t *testing.T, name string, first, n int, ts time.Time) []byte {
	t.Helper()
	req := &prompb.WriteRequest{}
	for i := first; i < first+n; i++ {
		req.Timeseries = append(req.Timeseries, prompb.TimeSeries{
			Labels:  []prompb.Label{{Name: "__name__", Value: name}, {Name: "id", Value: strconv.Itoa(i)}},
			Samples: []prompb.Sample{{Value: float64(i), Timestamp: ts.UnixMilli()}},
		})
	}
	b, err := req.Marshal()
	require.NoError(t, err)
	return snappy.Encode(nil, b)
}

// oneSeriesWrite is a snappy remote write 1.0 request of n samples of
// series {__name__=name, id="0"}, a millisecond apart.
func oneSeriesWrite(t *testing.T, name string, n int) []byte {
	t.Helper()
	ts := prompb.TimeSeries{Labels: []prompb.Label{{Name: "__name__", Value: name}, {Name: "id", Value: "0"}}}
	now := time.Now().UnixMilli()
	for i := range n {
		ts.Samples = append(ts.Samples, prompb.Sample{Value: 1, Timestamp: now - int64(n-i)})
	}
	b, err := (&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{ts}}).Marshal()
	require.NoError(t, err)
	return snappy.Encode(nil, b)
}

// pushAs POSTs body to path as tenant and returns the status, the
// Retry-After header and the body.
func pushAs(t *testing.T, addr, path, tenant, contentType string, body []byte) (int, string, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+addr+path, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("X-Scope-OrgID", tenant)
	if path == "/api/v1/write" {
		req.Header.Set("Content-Encoding", "snappy")
		req.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	}
	resp, err := httpClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Retry-After"), string(b)
}

// tenantCount is count(name) as tenant, or an error to poll on.
func tenantCount(t *testing.T, addr, tenant, name string) (int, error) {
	t.Helper()
	var v struct {
		Result []struct {
			Value [2]any `json:"value"`
		} `json:"result"`
	}
	if err := getTenantData(t, addr, tenantReq{path: "/api/v1/query", tenant: tenant,
		params: map[string][]string{"query": {"count(" + name + ")"}}}, &v); err != nil {
		return 0, err
	}
	if len(v.Result) == 0 {
		return 0, nil
	}
	s, _ := v.Result[0].Value[1].(string)
	return strconv.Atoi(s)
}

// limitedCount reads pharos_agent_tenant_limited_total for tenant and
// limit.
func limitedCount(t *testing.T, addr, tenant, limit string) float64 {
	t.Helper()
	resp, err := httpClient.Get("http://" + addr + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	sum := 0.0
	for _, m := range mfs["pharos_agent_tenant_limited_total"].GetMetric() {
		lv := map[string]string{}
		for _, l := range m.GetLabel() {
			lv[l.GetName()] = l.GetValue()
		}
		if lv["tenant"] == tenant && lv["limit"] == limit {
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

// TestTenantLimits: one tenant's cardinality bomb, log-stream bomb and
// burst are refused with the limit named (400 or 429 with Retry-After)
// while another tenant's ingest, pushed at the same time, is all stored;
// raising the limit in the overrides file and reloading lets the first
// tenant grow.
func TestTenantLimits(t *testing.T) {
	dir := t.TempDir()
	overridesFile := writeFile(t, "overrides.yaml", `overrides:
  bomber:
    max_series: 50
    max_streams: 3
    ingestion_rate: 10
    ingestion_burst_size: 400
`)
	p := startPharos(t, "tenant-limits", []string{
		"-data.dir=" + filepath.Join(dir, "data"),
		"-limits.overrides-file=" + overridesFile,
		adminArgs[0],
	})
	const pbType = "application/x-protobuf"

	// The good tenant writes 40 requests of 10 new series while the
	// bomber bombs.
	bodies := make([][]byte, 40)
	for i := range bodies {
		bodies[i] = seriesWrite(t, "good_metric", i*10, 10, time.Now())
	}
	var wg sync.WaitGroup
	goodErrs := make(chan string, len(bodies))
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i, b := range bodies {
			req, err := http.NewRequest(http.MethodPost, "http://"+p.addr+"/api/v1/write", bytes.NewReader(b))
			if err != nil {
				goodErrs <- err.Error()
				return
			}
			req.Header.Set("Content-Type", "application/x-protobuf")
			req.Header.Set("Content-Encoding", "snappy")
			req.Header.Set("X-Scope-OrgID", "good")
			resp, err := httpClient.Do(req)
			if err != nil {
				goodErrs <- err.Error()
				return
			}
			rb, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusNoContent {
				goodErrs <- fmt.Sprintf("good write %d: %d %s", i, resp.StatusCode, rb)
			}
		}
	}()

	// Cardinality bomb: 10 requests of 100 new series each; the first 50
	// series pass, every request after is refused in part or whole (400:
	// resending cannot help) and names the limit.
	refused := 0
	for i := range 10 {
		code, _, body := pushAs(t, p.addr, "/api/v1/write", "bomber", pbType, seriesWrite(t, "bomb", i*100, 100, time.Now()))
		if i == 0 {
			require.Equal(t, http.StatusBadRequest, code, body)
			require.Contains(t, body, "max_series", "the error names the limit")
			require.Contains(t, body, "overrides.bomber.max_series")
		}
		if code == http.StatusBadRequest {
			refused++
		}
	}
	require.Equal(t, 10, refused)
	require.Equal(t, float64(950), limitedCount(t, p.addr, "bomber", "max_series"))

	// Log streams: three pass, a fourth is refused whole and retryable.
	for i := range 3 {
		code, body := post(t, "http://"+p.addr+"/loki/api/v1/push", pbType,
			lokiProtoPush(fmt.Sprintf(`{app="s%d"}`, i), time.Now(), "line"), "X-Scope-OrgID", "bomber")
		require.Equal(t, http.StatusNoContent, code, body)
	}
	code, retryAfter, body := pushAs(t, p.addr, "/loki/api/v1/push", "bomber", pbType, lokiProtoPush(`{app="s9"}`, time.Now(), "line"))
	require.Equal(t, http.StatusTooManyRequests, code, body)
	require.NotEmpty(t, retryAfter)
	require.Contains(t, body, "max_streams")
	code, _, body = pushAs(t, p.addr, "/loki/api/v1/push", "good", pbType, lokiProtoPush(`{app="s9"}`, time.Now(), "good line"))
	require.Equal(t, http.StatusNoContent, code, "the other tenant has no stream limit: %s", body)

	// The rate (10 samples/s, burst 400; the 50 series stored so far took
	// 50): a request larger than the burst can never pass (400); then
	// eight requests of 50 samples of known series drain the bucket, and
	// the next is refused with Retry-After.
	code, _, body = pushAs(t, p.addr, "/api/v1/write", "bomber", pbType, oneSeriesWrite(t, "bomb", 401))
	require.Equal(t, http.StatusBadRequest, code, body)
	require.Contains(t, body, "more than the burst")
	limited := 0
	for range 9 {
		code, retryAfter, body = pushAs(t, p.addr, "/api/v1/write", "bomber", pbType, oneSeriesWrite(t, "bomb", 50))
		if code == http.StatusTooManyRequests {
			limited++
			require.NotEmpty(t, retryAfter)
			require.Contains(t, body, "ingestion_rate")
		} else {
			require.Equal(t, http.StatusNoContent, code, body)
		}
	}
	require.Positive(t, limited, "nine requests of 50 samples exceed a burst of 400 refilled at 10/s")

	wg.Wait()
	close(goodErrs)
	for e := range goodErrs {
		t.Error(e)
	}

	// Everything the good tenant sent is stored; the bomber has its 50.
	testutil.Poll(t, dataTimeout, 250*time.Millisecond, func() (bool, string) {
		n, err := tenantCount(t, p.addr, "good", "good_metric")
		if err != nil {
			return false, err.Error()
		}
		return n == 400, fmt.Sprintf("good tenant: %d series of 400", n)
	})
	testutil.Poll(t, dataTimeout, 250*time.Millisecond, func() (bool, string) {
		n, err := tenantCount(t, p.addr, "bomber", "bomb")
		if err != nil {
			return false, err.Error()
		}
		return n == 50, fmt.Sprintf("bomber: %d series, want its limit of 50", n)
	})
	n, err := tenantCount(t, p.addr, "good", "bomb")
	require.NoError(t, err)
	require.Zero(t, n)

	// Raising the limit takes effect on reload.
	require.NoError(t, os.WriteFile(overridesFile, []byte("overrides:\n  bomber:\n    max_series: 100\n"), 0o600))
	code, rb := p.reload()
	require.Equal(t, http.StatusOK, code, rb)
	code, _, body = pushAs(t, p.addr, "/api/v1/write", "bomber", pbType, seriesWrite(t, "bomb", 1000, 50, time.Now()))
	require.Equal(t, http.StatusNoContent, code, body)
	testutil.Poll(t, dataTimeout, 250*time.Millisecond, func() (bool, string) {
		n, err := tenantCount(t, p.addr, "bomber", "bomb")
		if err != nil {
			return false, err.Error()
		}
		return n == 100, fmt.Sprintf("bomber: %d series, want 100", n)
	})

	// A broken overrides file is refused and the limits stay.
	require.NoError(t, os.WriteFile(overridesFile, []byte("overrides:\n  bomber:\n    max_series: -1\n"), 0o600))
	code, rb = p.reload()
	require.NotEqual(t, http.StatusOK, code)
	require.Contains(t, rb, "overrides.bomber.max_series")
}
