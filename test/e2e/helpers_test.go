package e2e

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pharos-obs/pharos/internal/testutil"
)

// The scrape target's exposition: values chosen to catch sign, precision
// and exponent mistakes anywhere between scrape and query.
const (
	targetExposition = `# HELP e2e_value A value the e2e tests know.
# TYPE e2e_value gauge
e2e_value{case="a"} 42
e2e_value{case="b"} -1.5
e2e_value{case="c"} 1e+300
# HELP e2e_counter_total A counter the e2e tests know.
# TYPE e2e_counter_total counter
e2e_counter_total 12345
`
	valueHelp   = "A value the e2e tests know."
	counterHelp = "A counter the e2e tests know."
	e2eJob      = "e2e"
)

// wantValues maps the case label of each e2e_value series to its value.
var wantValues = map[string]float64{"a": 42, "b": -1.5, "c": 1e300}

// startTarget serves targetExposition on loopback and returns its host:port.
func startTarget(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		_, _ = io.WriteString(w, targetExposition)
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// writeScrapeConfig writes a Prometheus configuration scraping target every
// second as job e2e, and returns its path.
func writeScrapeConfig(t *testing.T, target string) string {
	t.Helper()
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: %s
    static_configs:
      - targets: [%q]
`, e2eJob, target)
	return writeFile(t, "prometheus.yml", cfg)
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
	return path
}

// promtool returns the path of Debian's promtool. The test command installs
// it; a missing promtool is a broken test setup, so the test fails.
func promtool(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool is required but not on PATH (install Debian's prometheus package, which ships /usr/bin/promtool): %v", err)
	}
	return path
}

// promSample is one line of promtool's output for an instant vector:
// `name{k="v", …} => value @[unix seconds]`.
type promSample struct {
	Labels map[string]string
	Value  float64
	Time   time.Time
}

// promtoolQuery runs `promtool query instant` against the Prometheus API at
// addr, evaluated at at (now if zero), and parses its output.
func promtoolQuery(t *testing.T, addr, expr string, at time.Time) ([]promSample, error) {
	t.Helper()
	args := []string{"query", "instant"}
	if !at.IsZero() {
		args = append(args, "--time="+at.UTC().Format(time.RFC3339Nano))
	}
	args = append(args, "http://"+addr, expr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, promtool(t), args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("promtool %s: %w: %s%s", strings.Join(args, " "), err, stdout.Bytes(), stderr.Bytes())
	}
	return parsePromtoolVector(stdout.String())
}

func parsePromtoolVector(out string) ([]promSample, error) {
	var samples []promSample
	for line := range strings.SplitSeq(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		i := strings.LastIndex(line, " => ")
		if i < 0 {
			return nil, fmt.Errorf("promtool output line %q: no \" => \"", line)
		}
		ls, err := parseMetric(line[:i])
		if err != nil {
			return nil, fmt.Errorf("promtool output line %q: %w", line, err)
		}
		valStr, tsStr, ok := strings.Cut(line[i+len(" => "):], " @[")
		if !ok || !strings.HasSuffix(tsStr, "]") {
			return nil, fmt.Errorf("promtool output line %q: want `value @[timestamp]`", line)
		}
		v, err := strconv.ParseFloat(valStr, 64)
		if err != nil {
			return nil, fmt.Errorf("promtool output line %q: value: %w", line, err)
		}
		ts, err := strconv.ParseFloat(strings.TrimSuffix(tsStr, "]"), 64)
		if err != nil {
			return nil, fmt.Errorf("promtool output line %q: timestamp: %w", line, err)
		}
		samples = append(samples, promSample{Labels: ls, Value: v, Time: time.UnixMilli(int64(math.Round(ts * 1000)))})
	}
	return samples, nil
}

// parseMetric parses `name{k="v", …}` as printed by Prometheus' model
// package (label values Go-quoted); the name and the braces are optional.
func parseMetric(s string) (map[string]string, error) {
	ls := map[string]string{}
	name, rest, hasLabels := strings.Cut(s, "{")
	if name != "" {
		ls["__name__"] = name
	}
	if !hasLabels {
		return ls, nil
	}
	rest, ok := strings.CutSuffix(rest, "}")
	if !ok {
		return nil, errors.New("no closing brace")
	}
	for rest != "" {
		k, after, ok := strings.Cut(rest, "=")
		if !ok {
			return nil, fmt.Errorf("label %q without value", rest)
		}
		q, err := strconv.QuotedPrefix(after)
		if err != nil {
			return nil, fmt.Errorf("label %s: %w", k, err)
		}
		v, _ := strconv.Unquote(q)
		ls[strings.TrimSpace(k)] = v
		rest = strings.TrimPrefix(after[len(q):], ", ")
	}
	return ls, nil
}

// requireE2EValues requires that exactly the target's three e2e_value
// series, with exactly its values, become queryable through promtool at
// addr, and that up{job="e2e"} is 1.
func requireE2EValues(t *testing.T, addr, target string) {
	t.Helper()
	var got []promSample
	testutil.Poll(t, dataTimeout, 500*time.Millisecond, func() (bool, string) {
		s, err := promtoolQuery(t, addr, "e2e_value", time.Time{})
		if err != nil {
			return false, err.Error()
		}
		got = s
		return len(got) >= len(wantValues), fmt.Sprintf("e2e_value: want %d series, got %d: %+v", len(wantValues), len(got), got)
	})
	require.Len(t, got, len(wantValues), "e2e_value series: %+v", got)
	seen := map[string]float64{}
	for _, s := range got {
		require.Equal(t, map[string]string{
			"__name__": "e2e_value", "case": s.Labels["case"], "instance": target, "job": e2eJob,
		}, s.Labels)
		seen[s.Labels["case"]] = s.Value
	}
	require.Equal(t, wantValues, seen, "e2e_value by case")

	requireSingle := func(expr string, want float64, labels map[string]string) {
		t.Helper()
		testutil.Poll(t, dataTimeout, 500*time.Millisecond, func() (bool, string) {
			s, err := promtoolQuery(t, addr, expr, time.Time{})
			if err != nil {
				return false, err.Error()
			}
			if len(s) != 1 || s[0].Value != want {
				return false, fmt.Sprintf("%s: want one sample %g, got %+v", expr, want, s)
			}
			require.Equal(t, labels, s[0].Labels, expr)
			return true, ""
		})
	}
	requireSingle(`up{job="e2e"}`, 1, map[string]string{"__name__": "up", "instance": target, "job": e2eJob})
	requireSingle(`e2e_counter_total`, 12345, map[string]string{"__name__": "e2e_counter_total", "instance": target, "job": e2eJob})
}

// apiResponse is the envelope of every Prometheus API response.
type apiResponse struct {
	Status    string          `json:"status"`
	Data      json.RawMessage `json:"data"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
	Warnings  []string        `json:"warnings"`
}

// getAPI GETs path with params from the HTTP API at addr and decodes the
// response's data into data; any failure (transport, status, envelope,
// JSON) is returned, so it can be polled.
func getAPI(addr, path string, params url.Values, data any) error {
	_, err := getAPIWarnings(addr, path, params, data)
	return err
}

// getAPIWarnings is getAPI that also returns the response's warnings.
func getAPIWarnings(addr, path string, params url.Values, data any) ([]string, error) {
	u := url.URL{Scheme: "http", Host: addr, Path: path, RawQuery: params.Encode()}
	resp, err := httpClient.Get(u.String())
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("GET %s: read body: %w", u.String(), err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", u.String(), resp.Status, bytes.TrimSpace(body))
	}
	var env apiResponse
	if err := json.Unmarshal(body, &env); err != nil {
		return nil, fmt.Errorf("GET %s: %w: %s", u.String(), err, body)
	}
	if env.Status != "success" {
		return nil, fmt.Errorf("GET %s: status %q, %s: %s", u.String(), env.Status, env.ErrorType, env.Error)
	}
	if err := json.Unmarshal(env.Data, data); err != nil {
		return nil, fmt.Errorf("GET %s: data: %w: %s", u.String(), err, env.Data)
	}
	return env.Warnings, nil
}

// metricMetadata is one entry of /api/v1/metadata.
type metricMetadata struct {
	Type string `json:"type"`
	Help string `json:"help"`
	Unit string `json:"unit"`
}

// requireE2EAPI checks the metadata APIs over plain HTTP at addr, once the
// e2e job's data has arrived (requireE2EValues). Only job e2e is scraped.
func requireE2EAPI(t *testing.T, addr, target string) {
	t.Helper()
	t.Run("series", func(t *testing.T) {
		var series []map[string]string
		require.NoError(t, getAPI(addr, "/api/v1/series", url.Values{"match[]": {"e2e_value"}}, &series))
		var want []map[string]string
		for c := range wantValues {
			want = append(want, map[string]string{"__name__": "e2e_value", "case": c, "instance": target, "job": e2eJob})
		}
		require.ElementsMatch(t, want, series)
	})
	t.Run("labels", func(t *testing.T) {
		var names []string
		require.NoError(t, getAPI(addr, "/api/v1/labels", nil, &names))
		require.Equal(t, []string{"__name__", "case", "instance", "job"}, names)
	})
	t.Run("label values", func(t *testing.T) {
		var jobs []string
		require.NoError(t, getAPI(addr, "/api/v1/label/job/values", nil, &jobs))
		require.Equal(t, []string{e2eJob}, jobs)

		var names []string
		require.NoError(t, getAPI(addr, "/api/v1/label/__name__/values", nil, &names))
		require.Subset(t, names, []string{"e2e_value", "e2e_counter_total", "up", "scrape_duration_seconds"})
	})
	t.Run("metadata", func(t *testing.T) {
		// Metadata travels with the samples, which have arrived; the poll
		// only absorbs a batch still being written.
		testutil.Poll(t, dataTimeout, 500*time.Millisecond, func() (bool, string) {
			var md map[string][]metricMetadata
			if err := getAPI(addr, "/api/v1/metadata", url.Values{"metric": {"e2e_counter_total"}}, &md); err != nil {
				return false, err.Error()
			}
			if len(md["e2e_counter_total"]) == 0 {
				var all map[string][]metricMetadata
				err := getAPI(addr, "/api/v1/metadata", nil, &all)
				return false, fmt.Sprintf("/api/v1/metadata?metric=e2e_counter_total: no entry for e2e_counter_total: %+v; all metadata: %+v (%v)", md, all, err)
			}
			require.Equal(t, []metricMetadata{{Type: "counter", Help: counterHelp}}, md["e2e_counter_total"])
			return true, ""
		})
		var all map[string][]metricMetadata
		require.NoError(t, getAPI(addr, "/api/v1/metadata", nil, &all))
		require.Equal(t, []metricMetadata{{Type: "gauge", Help: valueHelp}}, all["e2e_value"], "metadata of e2e_value in %+v", all)
		require.Equal(t, "gauge", firstType(all["up"]), "metadata of up in %+v", all)
	})
}

func firstType(md []metricMetadata) string {
	if len(md) == 0 {
		return ""
	}
	return md[0].Type
}

// requireBuildInfo checks /api/v1/status/buildinfo at addr.
func requireBuildInfo(t *testing.T, addr string) {
	t.Helper()
	var bi map[string]string
	require.NoError(t, getAPI(addr, "/api/v1/status/buildinfo", nil, &bi))
	require.NotEmpty(t, bi["version"], "buildinfo: %v", bi)
	require.True(t, strings.HasPrefix(bi["goVersion"], "go"), "buildinfo goVersion: %v", bi)
	for _, k := range []string{"revision", "branch", "buildUser", "buildDate"} {
		require.Contains(t, bi, k, "buildinfo: %v", bi)
	}
}

// rawSample is one stored sample, as returned in a matrix.
type rawSample struct {
	T int64 // milliseconds
	V float64
}

// querySamples evaluates a range-vector selector at at through
// /api/v1/query and returns the samples of its only series (none if the
// result is empty).
func querySamples(addr, selector string, at time.Time) ([]rawSample, error) {
	var data struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Metric map[string]string `json:"metric"`
			Values [][2]any          `json:"values"`
		} `json:"result"`
	}
	params := url.Values{"query": {selector}, "time": {strconv.FormatFloat(float64(at.UnixMilli())/1000, 'f', 3, 64)}}
	if err := getAPI(addr, "/api/v1/query", params, &data); err != nil {
		return nil, err
	}
	if data.ResultType != "matrix" {
		return nil, fmt.Errorf("%s: result type %q, want matrix", selector, data.ResultType)
	}
	switch len(data.Result) {
	case 0:
		return nil, nil
	case 1:
	default:
		return nil, fmt.Errorf("%s: %d series, want 1", selector, len(data.Result))
	}
	out := make([]rawSample, 0, len(data.Result[0].Values))
	for _, pair := range data.Result[0].Values {
		ts, ok1 := pair[0].(float64)
		vs, ok2 := pair[1].(string)
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("%s: bad sample %v", selector, pair)
		}
		v, err := strconv.ParseFloat(vs, 64)
		if err != nil {
			return nil, fmt.Errorf("%s: sample value: %w", selector, err)
		}
		out = append(out, rawSample{T: int64(math.Round(ts * 1000)), V: v})
	}
	if !slices.IsSortedFunc(out, func(a, b rawSample) int { return cmp.Compare(a.T, b.T) }) {
		return nil, fmt.Errorf("%s: samples out of time order: %v", selector, out)
	}
	return out, nil
}
