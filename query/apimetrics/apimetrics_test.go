package apimetrics

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

// TestRequests pins the names, help texts and buckets the query APIs have always exported.
func TestRequests(t *testing.T) {
	reg := prometheus.NewRegistry()
	r, err := NewRequests("pharos_query", "Prometheus", reg)
	require.NoError(t, err)
	r.Observe("/query", 200, 250*time.Millisecond)
	r.Observe("/query", 200, 2*time.Second)
	r.Observe("/query", 400, 500*time.Millisecond)

	const want = `
# HELP pharos_query_request_duration_seconds Time to answer a request to the Prometheus HTTP API, including writing the response.
# TYPE pharos_query_request_duration_seconds histogram
pharos_query_request_duration_seconds_bucket{endpoint="/query",le="0.001"} 0
pharos_query_request_duration_seconds_bucket{endpoint="/query",le="0.005"} 0
pharos_query_request_duration_seconds_bucket{endpoint="/query",le="0.01"} 0
pharos_query_request_duration_seconds_bucket{endpoint="/query",le="0.025"} 0
pharos_query_request_duration_seconds_bucket{endpoint="/query",le="0.05"} 0
pharos_query_request_duration_seconds_bucket{endpoint="/query",le="0.1"} 0
pharos_query_request_duration_seconds_bucket{endpoint="/query",le="0.25"} 1
pharos_query_request_duration_seconds_bucket{endpoint="/query",le="0.5"} 2
pharos_query_request_duration_seconds_bucket{endpoint="/query",le="1"} 2
pharos_query_request_duration_seconds_bucket{endpoint="/query",le="2.5"} 3
pharos_query_request_duration_seconds_bucket{endpoint="/query",le="5"} 3
pharos_query_request_duration_seconds_bucket{endpoint="/query",le="10"} 3
pharos_query_request_duration_seconds_bucket{endpoint="/query",le="30"} 3
pharos_query_request_duration_seconds_bucket{endpoint="/query",le="60"} 3
pharos_query_request_duration_seconds_bucket{endpoint="/query",le="120"} 3
pharos_query_request_duration_seconds_bucket{endpoint="/query",le="+Inf"} 3
pharos_query_request_duration_seconds_sum{endpoint="/query"} 2.75
pharos_query_request_duration_seconds_count{endpoint="/query"} 3
# HELP pharos_query_requests_total Requests to the Prometheus HTTP API by endpoint and HTTP status code.
# TYPE pharos_query_requests_total counter
pharos_query_requests_total{code="200",endpoint="/query"} 2
pharos_query_requests_total{code="400",endpoint="/query"} 1
`
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(want)))

	_, err = NewRequests("pharos_query", "Prometheus", reg)
	require.Error(t, err, "registering twice is reported")
	r, err = NewRequests("pharos_lokiapi", "Loki", nil)
	require.NoError(t, err)
	require.Contains(t, r.Total.WithLabelValues("/x", "200").Desc().String(), `help: "Requests to the Loki HTTP API by endpoint and HTTP status code."`)
}
