package e2e

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pharos-obs/pharos/internal/testutil"
)

// TestQueryLimits runs the all-in-one with small query limits, keeps
// pushing log lines while twenty expensive queries across the Prometheus,
// Loki and Tempo APIs run at once, and checks that every query was stopped
// by a limit with the API's error, and that ingestion went on: every line
// pushed during the storm is queryable afterwards and the agent kept
// publishing its self-scrape.
func TestQueryLimits(t *testing.T) {
	t.Parallel()
	p := startPharos(t, "all", []string{
		"-data.dir", t.TempDir(),
		"-nats.partitions", "2",
		"-query.max-fetched-series-per-query", "5",
		"-query.logql.max-entries-limit-per-query", "100",
		"-query.logql.max-fetched-bytes-per-query", "50000",
		"-query.tempo.max-result-limit", "50",
	})
	base := "http://" + p.addr

	// Wait for the self-scrape: the PromQL queries must have series to exceed.
	testutil.Poll(t, dataTimeout, 250*time.Millisecond, func() (bool, string) {
		code, body := getBody(base + "/api/v1/query?query=up")
		return code == http.StatusOK && strings.Contains(body, `"job"`), fmt.Sprintf("up: %d %s", code, body)
	})

	// 200 lines of 1 KB: far over the bytes limit for a query reading them all.
	bulk := strings.Repeat("x", 1000)
	now := time.Now()
	var values []string
	for i := range 200 {
		values = append(values, fmt.Sprintf(`["%d","%s %d"]`, now.Add(time.Duration(i-300)*time.Millisecond).UnixNano(), bulk, i))
	}
	code, body := post(t, base+"/loki/api/v1/push", "application/json",
		[]byte(`{"streams":[{"stream":{"app":"bulk"},"values":[`+strings.Join(values, ",")+`]}]}`))
	require.Equal(t, http.StatusNoContent, code, body)
	testutil.Poll(t, dataTimeout, 250*time.Millisecond, func() (bool, string) {
		code, body := getBody(base + "/loki/api/v1/query?query=" + url.QueryEscape(`count_over_time({app="bulk"} |= "x 199" [1h])`))
		return code == http.StatusOK && strings.Contains(body, `"app":"bulk"`), fmt.Sprintf("bulk: %d %s", code, body)
	})
	publishedBefore, err := metricValue(t, p.addr, "pharos_agent_samples_published_total")
	require.NoError(t, err)

	// Ingestion during the storm: one small line per push, until the storm
	// is over (at most maxPushes, to keep the verifying query under the
	// bytes limit).
	const maxPushes = 2000
	var (
		stop     = make(chan struct{})
		started  = make(chan struct{})
		pushed   int
		pushErrs []string
		pushDone = make(chan struct{})
	)
	go func() {
		defer close(pushDone)
		for pushed < maxPushes {
			ts := strconv.FormatInt(time.Now().UnixNano(), 10)
			b := `{"streams":[{"stream":{"app":"ingest"},"values":[["` + ts + `","n=` + strconv.Itoa(pushed) + `"]]}]}`
			code, body, err := postBody(base+"/loki/api/v1/push", "application/json", b)
			if err != nil || code != http.StatusNoContent {
				pushErrs = append(pushErrs, fmt.Sprintf("push %d: %d %s %v", pushed, code, body, err))
				return
			}
			pushed++
			if pushed == 1 {
				close(started)
			}
			select {
			case <-stop:
				return
			default:
			}
		}
	}()
	select {
	case <-started:
	case <-pushDone:
		require.Empty(t, pushErrs)
	}

	hour := strconv.FormatInt(now.Add(-time.Hour).Unix(), 10)
	end := strconv.FormatInt(now.Add(time.Minute).Unix(), 10)
	promSeries := "-query.max-fetched-series-per-query=5"
	type storm struct {
		name, path string
		params     url.Values
		code       int
		want       string // in the body: the limit's flag
		json       bool   // Prometheus's JSON error
	}
	var queries []storm
	for i, q := range []string{`{__name__=~".+"}`, `count({__name__=~".+"})`, `sum by (job) (rate({__name__=~".+"}[5m]))`, `{__name__=~"go_.+"}`, `topk(3, {__name__=~"pharos_.+"})`} {
		queries = append(queries, storm{
			name: fmt.Sprintf("promql range %d", i), path: "/api/v1/query_range",
			params: url.Values{"query": {q}, "start": {hour}, "end": {end}, "step": {"1s"}},
			code:   http.StatusUnprocessableEntity, want: promSeries, json: true,
		})
	}
	queries = append(queries,
		storm{name: "series", path: "/api/v1/series", params: url.Values{"match[]": {`{__name__=~".+"}`}}, code: http.StatusUnprocessableEntity, want: promSeries, json: true},
		storm{name: "label values", path: "/api/v1/label/__name__/values", code: http.StatusUnprocessableEntity, want: promSeries, json: true},
	)
	for i, q := range []string{`{app="bulk"}`, `{app=~".+"}`, `{app="bulk"} |= "x"`} {
		queries = append(queries, storm{
			name: fmt.Sprintf("logql lines %d", i), path: "/loki/api/v1/query_range",
			params: url.Values{"query": {q}, "start": {hour}, "end": {end}, "limit": {"5000"}},
			code:   http.StatusBadRequest, want: "-query.logql.max-entries-limit-per-query=100",
		})
	}
	for i, q := range []string{`sum(count_over_time({app="bulk"}[1h]))`, `sum by (app) (bytes_over_time({app="bulk"}[1h]))`, `rate({app="bulk"} |= "x" [5m])`, `count_over_time({app="bulk"}[10m])`} {
		queries = append(queries, storm{
			name: fmt.Sprintf("logql bytes %d", i), path: "/loki/api/v1/query_range",
			params: url.Values{"query": {q}, "start": {hour}, "end": {end}, "step": {"1s"}},
			code:   http.StatusBadRequest, want: "-query.logql.max-fetched-bytes-per-query=50000",
		})
	}
	for i, q := range []string{"", "{}", `{ .service.name != "" }`, "{ duration > 0s }", "", "{}"} {
		v := url.Values{"limit": {"1000"}, "start": {hour}, "end": {end}}
		if q != "" {
			v.Set("q", q)
		}
		queries = append(queries, storm{
			name: fmt.Sprintf("tempo search %d", i), path: "/api/search", params: v,
			code: http.StatusBadRequest, want: "-query.tempo.max-result-limit=50",
		})
	}
	require.Len(t, queries, 20)

	type answer struct {
		code int
		body string
		err  error
	}
	answers := make([]answer, len(queries))
	var wg sync.WaitGroup
	for i, q := range queries {
		wg.Go(func() {
			code, body := 0, ""
			u := base + q.path + "?" + q.params.Encode()
			resp, err := httpClient.Get(u)
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				code, body = resp.StatusCode, string(b)
			}
			answers[i] = answer{code, body, err}
		})
	}
	wg.Wait()
	close(stop)
	<-pushDone
	require.Empty(t, pushErrs, "ingestion failed during the storm")

	for i, q := range queries {
		a := answers[i]
		require.NoError(t, a.err, q.name)
		require.Equal(t, q.code, a.code, "%s: %s", q.name, a.body)
		require.Contains(t, a.body, q.want, q.name)
		if q.json {
			require.Contains(t, a.body, `"errorType":"execution"`, q.name)
		}
	}
	limited, err := metricValue(t, p.addr, "pharos_query_limited_total")
	require.NoError(t, err)
	require.GreaterOrEqual(t, limited, float64(len(queries)))

	// Everything pushed during the storm is queryable, and the agent kept
	// publishing its self-scrape.
	want := strconv.Itoa(pushed)
	testutil.Poll(t, dataTimeout, 250*time.Millisecond, func() (bool, string) {
		code, body := getBody(base + "/loki/api/v1/query?query=" + url.QueryEscape(`sum(count_over_time({app="ingest"}[1h]))`))
		return code == http.StatusOK && strings.Contains(body, `"`+want+`"]`), fmt.Sprintf("want %s lines: %d %s", want, code, body)
	})
	testutil.Poll(t, dataTimeout, 250*time.Millisecond, func() (bool, string) {
		after, err := metricValue(t, p.addr, "pharos_agent_samples_published_total")
		if err != nil {
			return false, err.Error()
		}
		return after > publishedBefore, fmt.Sprintf("samples published: %v, before the storm %v", after, publishedBefore)
	})
}

// getBody GETs u and returns the status and body (0 and the error on a
// transport failure).
func getBody(u string) (int, string) {
	resp, err := httpClient.Get(u)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// postBody POSTs body without failing the test, for other goroutines.
func postBody(u, contentType, body string) (int, string, error) {
	resp, err := httpClient.Post(u, contentType, strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}
