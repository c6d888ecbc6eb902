package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"

	"github.com/pharos-obs/pharos/internal/testutil"
)

// tenancyTraceID is the trace tenant team-a writes.
const tenancyTraceID = "7e7a7c70000000000000000000000a01"

// tenantReq is an HTTP request as a tenant: tenant is X-Scope-OrgID (none
// when empty), bearer the Authorization token (none when empty).
type tenantReq struct {
	method, path string
	params       url.Values
	tenant       string
	bearer       string
	contentType  string
	body         []byte
}

func doTenant(t *testing.T, addr string, r tenantReq) (int, []byte) {
	t.Helper()
	if r.method == "" {
		r.method = http.MethodGet
	}
	u := url.URL{Scheme: "http", Host: addr, Path: r.path, RawQuery: r.params.Encode()}
	req, err := http.NewRequest(r.method, u.String(), bytes.NewReader(r.body))
	require.NoError(t, err)
	if r.tenant != "" {
		req.Header.Set("X-Scope-OrgID", r.tenant)
	}
	if r.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+r.bearer)
	}
	if r.contentType != "" {
		req.Header.Set("Content-Type", r.contentType)
	}
	resp, err := httpClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, b
}

// getTenantData GETs a Prometheus- or Loki-style API as a tenant and
// decodes its data; a failure is returned, to be polled.
func getTenantData(t *testing.T, addr string, r tenantReq, data any) error {
	t.Helper()
	code, body := doTenant(t, addr, r)
	if code != http.StatusOK {
		return fmt.Errorf("GET %s as %q: %d %s", r.path, r.tenant, code, body)
	}
	var env apiResponse
	if err := json.Unmarshal(body, &env); err != nil {
		return fmt.Errorf("GET %s: %w: %s", r.path, err, body)
	}
	if env.Status != "success" {
		return fmt.Errorf("GET %s: %s: %s", r.path, env.ErrorType, env.Error)
	}
	return json.Unmarshal(env.Data, data)
}

// writeTenancyData writes, as r's tenant (and bearer), one gauge with an
// exemplar and metadata and a counter with an exemplar (OTLP metrics; the
// translator keeps exemplars of sums and histograms only), one log stream (Loki push) and one
// trace (OTLP traces).
func writeTenancyData(t *testing.T, addr string, r tenantReq, suffix string) {
	t.Helper()
	now := time.Now()
	ns := strconv.FormatInt(now.UnixNano(), 10)
	metrics := fmt.Sprintf(`{"resourceMetrics":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"tenancy-svc"}}]},
"scopeMetrics":[{"metrics":[{"name":"tenancy_probe%[1]s","description":"A probe of tenancy.","gauge":{"dataPoints":[{"asDouble":42,"timeUnixNano":"%[2]s",
"attributes":[{"key":"tenancy_label","value":{"stringValue":"x"}}],
"exemplars":[{"asDouble":42,"timeUnixNano":"%[2]s","traceId":"%[3]s"}]}]}},
{"name":"tenancy_hits%[1]s","sum":{"aggregationTemporality":2,"isMonotonic":true,"dataPoints":[{"asDouble":7,"timeUnixNano":"%[2]s",
"exemplars":[{"asDouble":1,"timeUnixNano":"%[2]s","traceId":"%[3]s"}]}]}}]}]}]}`, suffix, ns, tenancyTraceID)
	r.method, r.path, r.contentType, r.body = http.MethodPost, "/v1/metrics", "application/json", []byte(metrics)
	code, body := doTenant(t, addr, r)
	require.Equal(t, http.StatusOK, code, string(body))
	require.NotContains(t, string(body), "rejected", "OTLP partial success: %s", body)

	logs := fmt.Sprintf(`{"streams":[{"stream":{"tenancy_stream":"s%s"},"values":[["%s","tenancy line one"],["%s","tenancy line two"]]}]}`,
		suffix, strconv.FormatInt(now.Add(-time.Second).UnixNano(), 10), ns)
	r.path, r.body = "/loki/api/v1/push", []byte(logs)
	code, body = doTenant(t, addr, r)
	require.Equal(t, http.StatusNoContent, code, string(body))

	traces := fmt.Sprintf(`{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"tenancy-svc%[1]s"}}]},
"scopeSpans":[{"spans":[{"traceId":"%[2]s","spanId":"00000000000000a1","name":"tenancy-op","kind":2,
"startTimeUnixNano":"%[3]s","endTimeUnixNano":"%[4]s","attributes":[{"key":"tenancy.attr","value":{"stringValue":"v"}}]}]}]}]}`,
		suffix, tenancyTraceID, strconv.FormatInt(now.Add(-time.Second).UnixNano(), 10), ns)
	r.path, r.body = "/v1/traces", []byte(traces)
	code, body = doTenant(t, addr, r)
	require.Equal(t, http.StatusOK, code, string(body))
}

// tenancyView is what one tenant sees of the data writeTenancyData wrote.
type tenancyView struct {
	query, series, labelValues, exemplars, metadata int
	labelName                                       bool
	logLines, logSeries                             int
	logLabel                                        bool
	trace, searchHits                               int
	tag, service, jaegerService                     bool
}

func viewOf(t *testing.T, addr string, base tenantReq) (tenancyView, error) {
	t.Helper()
	var v tenancyView
	req := func(path string, params url.Values) tenantReq {
		r := base
		r.method, r.path, r.params, r.body, r.contentType = http.MethodGet, path, params, nil, ""
		return r
	}
	hour := url.Values{
		"start": {strconv.FormatInt(time.Now().Add(-time.Hour).Unix(), 10)},
		"end":   {strconv.FormatInt(time.Now().Add(time.Minute).Unix(), 10)},
	}
	with := func(kv ...string) url.Values {
		out := url.Values{}
		for k, vs := range hour {
			out[k] = vs
		}
		for i := 0; i+1 < len(kv); i += 2 {
			out.Add(kv[i], kv[i+1])
		}
		return out
	}

	// Prometheus API.
	var q struct {
		Result []json.RawMessage `json:"result"`
	}
	if err := getTenantData(t, addr, req("/api/v1/query", url.Values{"query": {"tenancy_probe"}}), &q); err != nil {
		return v, err
	}
	v.query = len(q.Result)
	var series []map[string]string
	if err := getTenantData(t, addr, req("/api/v1/series", with("match[]", "tenancy_probe")), &series); err != nil {
		return v, err
	}
	v.series = len(series)
	for _, s := range series {
		if _, ok := s["__pharos_tenant__"]; ok {
			return v, fmt.Errorf("series carries the tenant label: %v", s)
		}
	}
	var names []string
	if err := getTenantData(t, addr, req("/api/v1/labels", hour), &names); err != nil {
		return v, err
	}
	v.labelName = slices.Contains(names, "tenancy_label")
	if slices.Contains(names, "__pharos_tenant__") {
		return v, fmt.Errorf("label names show the tenant label: %v", names)
	}
	var values []string
	if err := getTenantData(t, addr, req("/api/v1/label/tenancy_label/values", hour), &values); err != nil {
		return v, err
	}
	v.labelValues = len(values)
	var ex []struct {
		SeriesLabels map[string]string `json:"seriesLabels"`
		Exemplars    []json.RawMessage `json:"exemplars"`
	}
	if err := getTenantData(t, addr, req("/api/v1/query_exemplars", with("query", `{__name__=~"tenancy_hits.*"}`)), &ex); err != nil {
		return v, err
	}
	for _, e := range ex {
		v.exemplars += len(e.Exemplars)
	}
	var md map[string][]metricMetadata
	if err := getTenantData(t, addr, req("/api/v1/metadata", url.Values{"metric": {"tenancy_probe"}}), &md); err != nil {
		return v, err
	}
	v.metadata = len(md)

	// Loki API.
	var lq lokiResult
	if err := getTenantData(t, addr, req("/loki/api/v1/query_range", with("query", `{tenancy_stream="s"}`, "limit", "100")), &lq); err != nil {
		return v, err
	}
	var streams []lokiStream
	if err := json.Unmarshal(lq.Result, &streams); err != nil {
		return v, err
	}
	v.logLines = len(streamLines(streams))
	var lnames []string
	if err := getTenantData(t, addr, req("/loki/api/v1/labels", with()), &lnames); err != nil {
		return v, err
	}
	v.logLabel = slices.Contains(lnames, "tenancy_stream")
	var lseries []map[string]string
	if err := getTenantData(t, addr, req("/loki/api/v1/series", with("match[]", `{tenancy_stream="s"}`)), &lseries); err != nil {
		return v, err
	}
	v.logSeries = len(lseries)

	// Tempo and Jaeger APIs.
	code, body := doTenant(t, addr, req("/api/traces/"+tenancyTraceID, nil))
	switch code {
	case http.StatusOK:
		v.trace = strings.Count(string(body), "tenancy-op")
	case http.StatusNotFound:
	default:
		return v, fmt.Errorf("trace by ID: %d %s", code, body)
	}
	var search tempoSearch
	code, body = doTenant(t, addr, req("/api/search", url.Values{"tags": {"service.name=tenancy-svc"},
		"start": hour["start"], "end": hour["end"]}))
	if code != http.StatusOK {
		return v, fmt.Errorf("search: %d %s", code, body)
	}
	if err := json.Unmarshal(body, &search); err != nil {
		return v, err
	}
	v.searchHits = len(search.Traces)
	code, body = doTenant(t, addr, req("/api/search/tags", nil))
	if code != http.StatusOK {
		return v, fmt.Errorf("search tags: %d %s", code, body)
	}
	v.tag = strings.Contains(string(body), `"tenancy.attr"`)
	code, body = doTenant(t, addr, req("/api/search/tag/service.name/values", nil))
	if code != http.StatusOK {
		return v, fmt.Errorf("tag values: %d %s", code, body)
	}
	v.service = strings.Contains(string(body), `"tenancy-svc"`)
	code, body = doTenant(t, addr, req("/jaeger/api/services", nil))
	if code != http.StatusOK {
		return v, fmt.Errorf("jaeger services: %d %s", code, body)
	}
	v.jaegerService = strings.Contains(string(body), `"tenancy-svc"`)
	return v, nil
}

// fullView is what the writing tenant sees: everything.
var fullView = tenancyView{query: 1, series: 1, labelValues: 1, exemplars: 1, metadata: 1, labelName: true,
	logLines: 2, logSeries: 1, logLabel: true, trace: 1, searchHits: 1, tag: true, service: true, jaegerService: true}

// requireViews polls until every tenant of want sees exactly its view.
func requireViews(t *testing.T, addr string, want map[string]tenancyView, base func(tenant string) tenantReq) {
	t.Helper()
	for tenant, w := range want {
		testutil.Poll(t, dataTimeout, 250*time.Millisecond, func() (bool, string) {
			got, err := viewOf(t, addr, base(tenant))
			if err != nil {
				return false, err.Error()
			}
			// Another tenant's view must be empty from the start: the
			// poll waits for the writer's data only.
			if w == (tenancyView{}) {
				require.Equal(t, w, got, "tenant %q sees another tenant's data", tenant)
			}
			return got == w, fmt.Sprintf("tenant %q sees %+v, want %+v", tenant, got, w)
		})
	}
}

// pushGaugeAs pushes one sample of the gauge name as tenant (the default
// tenant when empty), over OTLP.
func pushGaugeAs(t *testing.T, addr, tenant, name string, v float64) {
	t.Helper()
	body := fmt.Sprintf(`{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":%q,"gauge":{"dataPoints":[{"asDouble":%g,"timeUnixNano":"%d"}]}}]}]}]}`,
		name, v, time.Now().UnixNano())
	code, resp := doTenant(t, addr, tenantReq{method: http.MethodPost, path: "/v1/metrics", tenant: tenant, contentType: "application/json", body: []byte(body)})
	require.Equal(t, http.StatusOK, code, string(resp))
	require.NotContains(t, string(resp), "rejected", "OTLP partial success: %s", resp)
}

// queryAs runs an instant query as tenant and returns the result's values
// by metric name (alertname for ALERTS).
func queryAs(t *testing.T, addr, tenant, query string) (map[string]string, error) {
	t.Helper()
	var v vectorResult
	if err := getTenantData(t, addr, tenantReq{path: "/api/v1/query", tenant: tenant, params: url.Values{"query": {query}}}, &v); err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, r := range v.Result {
		name := r.Metric["__name__"]
		if name == "ALERTS" {
			name = r.Metric["alertname"]
		}
		out[name], _ = r.Value[1].(string)
	}
	return out, nil
}

// TestTenancy writes metrics, logs and traces as tenant team-a to the
// all-in-one and checks that team-b and the default tenant see none of it
// on any read API (Prometheus, Loki with its tail, Tempo, Jaeger, rules,
// alerts), that team-a sees all of it; that team-a's rules (from
// -rules.tenants-dir) read and write team-a's series and are listed to
// team-a only, as the default tenant's are to it; and that malformed
// tenant IDs are refused on writes and reads.
func TestTenancy(t *testing.T) {
	dir := t.TempDir()
	rules := writeFile(t, "tenancy-rules.yaml", `groups:
  - name: tenancy
    interval: 1s
    rules:
      - alert: TenancyAlwaysFiring
        expr: vector(1)
`)
	// team-a's group has the default tenant's group name: the two are
	// evaluated apart all the same.
	tenantsDir := filepath.Join(dir, "tenant-rules")
	require.NoError(t, os.MkdirAll(filepath.Join(tenantsDir, "team-a"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(tenantsDir, "team-a", "rules.yml"), []byte(`groups:
  - name: tenancy
    interval: 1s
    rules:
      - record: tenancy:rule_input:sum
        expr: sum(tenancy_rule_input)
      - alert: TenancyTeamAFiring
        expr: vector(1)
`), 0o644))
	p := startPharos(t, "tenancy", []string{"-data.dir=" + filepath.Join(dir, "data"), "-rules.files=" + rules, "-rules.tenants-dir=" + tenantsDir})
	// Every tenant writes the series team-a's rule reads: its result must
	// be team-a's alone.
	for tenant, v := range map[string]float64{"team-a": 1, "team-b": 100, "": 1000} {
		pushGaugeAs(t, p.addr, tenant, "tenancy_rule_input", v)
	}

	// The default tenant's view is checked first, so that team-a's data
	// is being written while nobody else may see it.
	byHeader := func(tenant string) tenantReq { return tenantReq{tenant: tenant} }
	writeTenancyData(t, p.addr, byHeader("team-a"), "")
	requireViews(t, p.addr, map[string]tenancyView{"": {}, "team-b": {}, "team-a": fullView}, byHeader)
	// Now that team-a's data is visible, the others are checked again.
	requireViews(t, p.addr, map[string]tenancyView{"": {}, "team-b": {}, "anonymous": {}}, byHeader)

	// A query may not select on the label that isolates tenants.
	for _, tenant := range []string{"", "team-b"} {
		code, body := doTenant(t, p.addr, tenantReq{path: "/api/v1/query", tenant: tenant,
			params: url.Values{"query": {`tenancy_probe{__pharos_tenant__="team-a"}`}}})
		require.NotEqual(t, http.StatusOK, code, string(body))
		require.Contains(t, string(body), "reserved for tenant isolation")
		code, body = doTenant(t, p.addr, tenantReq{path: "/api/v1/label/__pharos_tenant__/values", tenant: tenant})
		require.NotEqual(t, http.StatusOK, code, string(body))
	}

	t.Run("rules and alerts", func(t *testing.T) {
		type rulesData struct {
			Groups []struct {
				Name  string `json:"name"`
				File  string `json:"file"`
				Rules []struct {
					Name string `json:"name"`
				} `json:"rules"`
			} `json:"groups"`
		}
		type alertsData struct {
			Alerts []struct {
				Labels map[string]string `json:"labels"`
			} `json:"alerts"`
		}
		alertNames := func(tenant string) ([]string, error) {
			var a alertsData
			if err := getTenantData(t, p.addr, tenantReq{path: "/api/v1/alerts", tenant: tenant}, &a); err != nil {
				return nil, err
			}
			names := []string{}
			for _, al := range a.Alerts {
				names = append(names, al.Labels["alertname"])
			}
			return names, nil
		}
		// Each tenant with rules sees its own alert fire, and the ALERTS
		// series and recorded series its rules wrote.
		for tenant, want := range map[string]struct {
			alert    string
			recorded map[string]string
		}{
			"":       {alert: "TenancyAlwaysFiring", recorded: map[string]string{}},
			"team-a": {alert: "TenancyTeamAFiring", recorded: map[string]string{"tenancy:rule_input:sum": "1"}},
		} {
			testutil.Poll(t, dataTimeout, 250*time.Millisecond, func() (bool, string) {
				names, err := alertNames(tenant)
				if err != nil {
					return false, err.Error()
				}
				if len(names) > 0 {
					require.Equal(t, []string{want.alert}, names, "tenant %q's alerts", tenant)
				}
				alerts, err := queryAs(t, p.addr, tenant, "ALERTS")
				if err != nil {
					return false, err.Error()
				}
				if len(alerts) > 0 {
					require.Equal(t, map[string]string{want.alert: "1"}, alerts, "tenant %q's ALERTS", tenant)
				}
				recorded, err := queryAs(t, p.addr, tenant, "tenancy:rule_input:sum")
				if err != nil {
					return false, err.Error()
				}
				return len(names) == 1 && len(alerts) == 1 && fmt.Sprint(recorded) == fmt.Sprint(want.recorded),
					fmt.Sprintf("tenant %q: alerts %v, ALERTS %v, recorded %v", tenant, names, alerts, recorded)
			})
			var r rulesData
			require.NoError(t, getTenantData(t, p.addr, tenantReq{path: "/api/v1/rules", tenant: tenant}, &r))
			require.Len(t, r.Groups, 1, tenant)
			require.Equal(t, "tenancy", r.Groups[0].Name)
			if tenant == "team-a" {
				require.Equal(t, filepath.Join(tenantsDir, "team-a", "rules.yml"), r.Groups[0].File)
				require.Len(t, r.Groups[0].Rules, 2)
			} else {
				require.Equal(t, rules, r.Groups[0].File)
				require.Len(t, r.Groups[0].Rules, 1)
			}
		}
		// team-b has no rules: it sees no rules, alerts, ALERTS series or
		// recorded series, though it wrote the rule's input.
		var r rulesData
		require.NoError(t, getTenantData(t, p.addr, tenantReq{path: "/api/v1/rules", tenant: "team-b"}, &r))
		require.Empty(t, r.Groups)
		names, err := alertNames("team-b")
		require.NoError(t, err)
		require.Empty(t, names)
		for _, q := range []string{"ALERTS", "tenancy:rule_input:sum", "ALERTS_FOR_STATE"} {
			got, err := queryAs(t, p.addr, "team-b", q)
			require.NoError(t, err)
			require.Empty(t, got, "team-b's %s", q)
		}
		input, err := queryAs(t, p.addr, "team-b", "tenancy_rule_input")
		require.NoError(t, err)
		require.Equal(t, map[string]string{"tenancy_rule_input": "100"}, input, "team-b's own input")
	})

	t.Run("tail", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), dataTimeout)
		defer cancel()
		dial := func(tenant string) *websocket.Conn {
			u := "ws://" + p.addr + "/loki/api/v1/tail?" + url.Values{
				"query": {`{tenancy_stream="s"}`},
				"start": {strconv.FormatInt(time.Now().Add(-time.Hour).UnixNano(), 10)},
			}.Encode()
			hdr := http.Header{}
			if tenant != "" {
				hdr.Set("X-Scope-OrgID", tenant)
			}
			c, _, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPClient: httpClient, HTTPHeader: hdr})
			require.NoError(t, err)
			t.Cleanup(func() { _ = c.CloseNow() })
			return c
		}
		firstLines := func(c *websocket.Conn) []string {
			for {
				_, msg, err := c.Read(ctx)
				require.NoError(t, err)
				var frame struct {
					Streams []lokiStream `json:"streams"`
				}
				require.NoError(t, json.Unmarshal(msg, &frame))
				if lines := streamLines(frame.Streams); len(lines) > 0 {
					return lines
				}
			}
		}
		// A tail starts with the stream's recent lines: team-a's own.
		require.ElementsMatch(t, []string{"tenancy line one", "tenancy line two"}, firstLines(dial("team-a")))
		// team-b's tail of the same selector gets its own line first and
		// never team-a's, which its first poll would have found.
		b := dial("team-b")
		body := fmt.Sprintf(`{"streams":[{"stream":{"tenancy_stream":"s"},"values":[["%d","team-b line"]]}]}`, time.Now().UnixNano())
		code, resp := doTenant(t, p.addr, tenantReq{method: http.MethodPost, path: "/loki/api/v1/push", tenant: "team-b", contentType: "application/json", body: []byte(body)})
		require.Equal(t, http.StatusNoContent, code, string(resp))
		require.Equal(t, []string{"team-b line"}, firstLines(b))
	})

	t.Run("malformed tenants", func(t *testing.T) {
		for _, bad := range []string{"..", ".", "a|b", strings.Repeat("t", 200), "x/y"} {
			for _, r := range []tenantReq{
				{method: http.MethodPost, path: "/api/v1/write", contentType: "application/x-protobuf", body: []byte{}},
				{method: http.MethodPost, path: "/v1/metrics", contentType: "application/json", body: []byte(`{}`)},
				{method: http.MethodPost, path: "/v1/logs", contentType: "application/json", body: []byte(`{}`)},
				{method: http.MethodPost, path: "/v1/traces", contentType: "application/json", body: []byte(`{}`)},
				{method: http.MethodPost, path: "/loki/api/v1/push", contentType: "application/json", body: []byte(`{"streams":[]}`)},
				{path: "/api/v1/query", params: url.Values{"query": {"tenancy_probe"}}},
				{path: "/api/v1/series", params: url.Values{"match[]": {"tenancy_probe"}}},
				{path: "/api/v1/labels"},
				{path: "/api/v1/label/tenancy_label/values"},
				{path: "/api/v1/query_exemplars", params: url.Values{"query": {"tenancy_probe"}}},
				{path: "/api/v1/metadata"},
				{path: "/api/v1/rules"},
				{path: "/api/v1/alerts"},
				{path: "/loki/api/v1/query_range", params: url.Values{"query": {`{tenancy_stream="s"}`}}},
				{path: "/loki/api/v1/labels"},
				{path: "/loki/api/v1/series", params: url.Values{"match[]": {`{tenancy_stream="s"}`}}},
				{path: "/loki/api/v1/tail", params: url.Values{"query": {`{tenancy_stream="s"}`}}},
				{path: "/api/traces/" + tenancyTraceID},
				{path: "/api/search"},
				{path: "/api/search/tags"},
				{path: "/jaeger/api/services"},
				{path: "/api/traces/" + tenancyTraceID + "/logs"},
			} {
				r.tenant = bad
				code, body := doTenant(t, p.addr, r)
				require.Equal(t, http.StatusBadRequest, code, "%s %s as %q: %s", r.method, r.path, bad, body)
				require.Contains(t, strings.ToLower(string(body)), "tenant", "%s %s", r.method, r.path)
			}
		}
		code, body := doTenant(t, p.addr, tenantReq{path: "/api/v1/labels", tenant: "a|b"})
		require.Equal(t, http.StatusBadRequest, code)
		require.Contains(t, string(body), "multi-tenant queries are not supported")
	})
}

// TestTenancyAuthenticated maps a bearer token to team-a: requests with it
// read and write team-a's data whatever X-Scope-OrgID they send.
func TestTenancyAuthenticated(t *testing.T) {
	dir := t.TempDir()
	const internalToken = "internal-token-0123456789"
	sumA := sha256.Sum256([]byte("token-a"))
	sumAny := sha256.Sum256([]byte("token-any"))
	ids := fmt.Sprintf(`bearer_tokens:
  - {name: team-a-writer, token_sha256: %s, tenant: team-a}
  - {name: any-tenant, token_sha256: %s}
  - {name: pharos-internal, token_file: %s}
`, hex.EncodeToString(sumA[:]), hex.EncodeToString(sumAny[:]), writeAuthFile(t, dir, "internal.token", []byte(internalToken+"\n")))
	p := startPharos(t, "tenancy-auth", []string{
		"-data.dir=" + filepath.Join(dir, "data"),
		"-auth.config-file=" + writeAuthFile(t, dir, "identities.yaml", []byte(ids)),
		"-auth.client.bearer-token-file=" + filepath.Join(dir, "internal.token"),
	})

	// Written with team-a's token and a header naming team-b: team-a's.
	writeTenancyData(t, p.addr, tenantReq{bearer: "token-a", tenant: "team-b"}, "")
	asTokenA := func(header string) tenantReq { return tenantReq{bearer: "token-a", tenant: header} }
	// team-a's token reads team-a's data whichever tenant the header names,
	// even a malformed one (the header is not looked at).
	requireViews(t, p.addr, map[string]tenancyView{"team-b": fullView, "": fullView, "..": fullView}, asTokenA)
	// An identity without a tenant chooses one with the header: team-b
	// and the default tenant have nothing.
	asAny := func(header string) tenantReq { return tenantReq{bearer: "token-any", tenant: header} }
	requireViews(t, p.addr, map[string]tenancyView{"team-b": {}, "": {}, "team-a": fullView}, asAny)
	// Nor has anybody without credentials.
	code, _ := doTenant(t, p.addr, tenantReq{path: "/api/v1/labels", tenant: "team-a"})
	require.Equal(t, http.StatusUnauthorized, code)
}
