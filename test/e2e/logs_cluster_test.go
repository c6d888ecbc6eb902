package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pharos-obs/pharos/internal/testutil"
)

// TestLogsClusterFanOut pushes log streams to an agent in a cluster of two
// aggregators with replication factor 2 and reads them through a query
// process that fans out over the ring: every line once (the replicas'
// copies merged), label look-ups and metric queries over both. Then one
// aggregator is killed and the other still answers for everything.
func TestLogsClusterFanOut(t *testing.T) {
	t.Parallel()
	f := newClusterFixture(t, 8, 2, 10)
	f.startAggregator("agg-1")
	agg2 := f.startAggregator("agg-2")
	f.requireBalanced("agg-1", "agg-2")
	agent := f.startAgent()
	query := f.startQuery()

	const streams, perStream = 24, 25
	now := time.Now()
	var b strings.Builder
	b.WriteString(`{"streams":[`)
	for s := range streams {
		if s > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"stream":{"app":"app-%02d","env":"cluster"},"values":[`, s)
		for i := range perStream {
			if i > 0 {
				b.WriteByte(',')
			}
			level := "info"
			if i%5 == 0 {
				level = "error"
			}
			fmt.Fprintf(&b, `["%d","level=%s stream=%d seq=%d"]`, now.Add(time.Duration(i-perStream)*time.Second).UnixNano(), level, s, i)
		}
		b.WriteString(`]}`)
	}
	b.WriteString(`]}`)
	code, body := post(t, "http://"+agent.addr+"/loki/api/v1/push", "application/json", []byte(b.String()))
	require.Equal(t, http.StatusNoContent, code, body)

	// Both aggregators hold streams: the fan-out must merge them.
	testutil.Poll(t, dataTimeout, 250*time.Millisecond, func() (bool, string) {
		var got []string
		for _, name := range []string{"agg-1", "agg-2"} {
			v, err := metricValue(t, f.aggs[name].addr, "pharos_aggregator_log_entries_appended_total")
			if err != nil {
				return false, err.Error()
			}
			if v == 0 {
				return false, name + " stored no log entries"
			}
			got = append(got, fmt.Sprintf("%s=%v", name, v))
		}
		return true, strings.Join(got, " ")
	})
	requireAll := func(addr string) {
		t.Helper()
		lines := waitLines(t, addr, `{env="cluster"}`, streams*perStream)
		seen := map[string]bool{}
		for _, l := range streamLines(lines) {
			require.False(t, seen[l], "line %q returned twice", l)
			seen[l] = true
		}
	}
	requireAll(query.addr)

	res, err := lokiQuery(query.addr, "/loki/api/v1/query", url.Values{
		"query": {`sum(count_over_time({env="cluster"} | logfmt | level="error" [10m]))`},
		"time":  {strconv.FormatInt(time.Now().UnixNano(), 10)},
	})
	require.NoError(t, err)
	var vec []struct {
		Value [2]any `json:"value"`
	}
	require.NoError(t, json.Unmarshal(res.Result, &vec))
	require.Len(t, vec, 1)
	require.Equal(t, strconv.Itoa(streams*perStream/5), vec[0].Value[1])

	var values []string
	require.NoError(t, getAPI(query.addr, "/loki/api/v1/label/app/values", url.Values{
		"start": {strconv.FormatInt(now.Add(-time.Hour).UnixNano(), 10)},
	}, &values))
	require.Len(t, values, streams)

	// With replication factor 2 on two aggregators, each holds a replica of
	// every partition: once each has stored every line, the survivor of a
	// kill answers for all.
	testutil.Poll(t, dataTimeout, 250*time.Millisecond, func() (bool, string) {
		for _, name := range []string{"agg-1", "agg-2"} {
			v, err := metricValue(t, f.aggs[name].addr, "pharos_aggregator_log_entries_appended_total")
			if err != nil {
				return false, err.Error()
			}
			if v < streams*perStream {
				return false, fmt.Sprintf("%s stored %v of %d entries", name, v, streams*perStream)
			}
		}
		return true, ""
	})
	agg2.Kill()
	requireAll(query.addr)
}
