package rules

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const apiRules = `groups:
  - name: a
    rules:
      - alert: Up
        expr: vector(3)
        keep_firing_for: 1m
        labels:
          severity: page
        annotations:
          summary: "value {{ $value }}"
      - record: a:rec
        expr: vector(1)
  - name: b
    interval: 1s
    rules:
      - record: b:rec
        expr: vector(2)
`

// get serves one request and decodes its JSON.
func get(t *testing.T, h http.Handler, query string) (int, map[string]any) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/v1/x?"+query, nil))
	require.Equal(t, "application/json", rec.Header().Get("Content-Type"))
	var body map[string]any
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body), rec.Body.String())
	return rec.Code, body
}

func keys(v any) []string {
	return slices.Sorted(maps.Keys(v.(map[string]any)))
}

func startAPIManager(t *testing.T) (*Manager, string) {
	t.Helper()
	store := openStore(t)
	f := writeFile(t, t.TempDir(), "api.yml", apiRules)
	m, _ := startManager(t, testConfig(f), Deps{Queryable: store, Appendable: store})
	poll(t, 10*time.Second, func() (bool, string) {
		as := m.Alerts()
		evaluated := 0
		for _, g := range m.Groups() {
			if !g.GetLastEvaluation().IsZero() {
				evaluated++
			}
		}
		return len(as) == 1 && as[0].State.String() == "firing" && evaluated == 2,
			fmt.Sprintf("%d alerts, %d groups evaluated", len(as), evaluated)
	})
	return m, f
}

func TestRulesHandlerShape(t *testing.T) {
	m, f := startAPIManager(t)
	code, body := get(t, RulesHandler(m), "")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, []string{"data", "status"}, keys(body))
	require.Equal(t, "success", body["status"])
	data := body["data"].(map[string]any)
	require.Equal(t, []string{"groups"}, keys(data))

	groups := data["groups"].([]any)
	require.Len(t, groups, 2)
	ga := groups[0].(map[string]any)
	require.Equal(t, []string{"evaluationTime", "file", "interval", "lastEvaluation", "limit", "name", "rules"}, keys(ga))
	require.Equal(t, "a", ga["name"])
	require.Equal(t, f, ga["file"])
	require.Equal(t, testInterval.Seconds(), ga["interval"])
	require.Equal(t, 1.0, groups[1].(map[string]any)["interval"])
	_, err := time.Parse(time.RFC3339Nano, ga["lastEvaluation"].(string))
	require.NoError(t, err)

	rules := ga["rules"].([]any)
	require.Len(t, rules, 2)
	alerting := rules[0].(map[string]any)
	require.Equal(t, []string{"alerts", "annotations", "duration", "evaluationTime", "health", "keepFiringFor", "labels", "lastEvaluation", "name", "query", "state", "type"}, keys(alerting))
	require.Equal(t, "alerting", alerting["type"])
	require.Equal(t, "Up", alerting["name"])
	require.Equal(t, "vector(3)", alerting["query"])
	require.Equal(t, "firing", alerting["state"])
	require.Equal(t, "ok", alerting["health"])
	require.Equal(t, 0.0, alerting["duration"])
	require.Equal(t, 60.0, alerting["keepFiringFor"])
	require.Equal(t, map[string]any{"severity": "page"}, alerting["labels"])
	require.Equal(t, map[string]any{"summary": "value {{ $value }}"}, alerting["annotations"])

	alerts := alerting["alerts"].([]any)
	require.Len(t, alerts, 1)
	alert := alerts[0].(map[string]any)
	require.Equal(t, []string{"activeAt", "annotations", "labels", "state", "value"}, keys(alert))
	require.Equal(t, map[string]any{"alertname": "Up", "severity": "page"}, alert["labels"])
	require.Equal(t, map[string]any{"summary": "value 3"}, alert["annotations"])
	require.Equal(t, "firing", alert["state"])
	require.Equal(t, "3e+00", alert["value"])

	recording := rules[1].(map[string]any)
	require.Equal(t, []string{"evaluationTime", "health", "labels", "lastEvaluation", "name", "query", "type"}, keys(recording))
	require.Equal(t, "recording", recording["type"])
	require.Equal(t, "a:rec", recording["name"])
	require.Equal(t, map[string]any{}, recording["labels"])
}

func TestRulesHandlerFilters(t *testing.T) {
	m, f := startAPIManager(t)
	h := RulesHandler(m)
	// names lists "group/rule" of the answer.
	names := func(body map[string]any) []string {
		var out []string
		for _, g := range body["data"].(map[string]any)["groups"].([]any) {
			g := g.(map[string]any)
			for _, r := range g["rules"].([]any) {
				out = append(out, g["name"].(string)+"/"+r.(map[string]any)["name"].(string))
			}
		}
		return out
	}
	for _, tc := range []struct {
		name  string
		query url.Values
		want  []string
	}{
		{"all", nil, []string{"a/Up", "a/a:rec", "b/b:rec"}},
		{"alerting", url.Values{"type": {"alert"}}, []string{"a/Up"}},
		{"recording", url.Values{"type": {"RECORD"}}, []string{"a/a:rec", "b/b:rec"}},
		{"rule names", url.Values{"rule_name[]": {"b:rec", "Up"}}, []string{"a/Up", "b/b:rec"}},
		{"group", url.Values{"rule_group[]": {"b"}}, []string{"b/b:rec"}},
		{"file", url.Values{"file[]": {f}}, []string{"a/Up", "a/a:rec", "b/b:rec"}},
		{"other file", url.Values{"file[]": {"/elsewhere.yml"}}, nil},
		{"match", url.Values{"match[]": {`{severity="page"}`}}, []string{"a/Up"}},
		{"recording in group a", url.Values{"type": {"record"}, "rule_group[]": {"a"}}, []string{"a/a:rec"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := get(t, h, tc.query.Encode())
			require.Equal(t, http.StatusOK, code, body)
			require.Equal(t, tc.want, names(body))
		})
	}

	t.Run("exclude alerts", func(t *testing.T) {
		_, body := get(t, h, "type=alert&exclude_alerts=true")
		rule := body["data"].(map[string]any)["groups"].([]any)[0].(map[string]any)["rules"].([]any)[0].(map[string]any)
		require.Contains(t, rule, "alerts")
		require.Nil(t, rule["alerts"])
	})

	t.Run("pagination", func(t *testing.T) {
		_, body := get(t, h, "group_limit=1")
		data := body["data"].(map[string]any)
		require.Equal(t, []string{"a/Up", "a/a:rec"}, names(body))
		token := data["groupNextToken"].(string)
		require.NotEmpty(t, token)
		_, body = get(t, h, "group_limit=1&group_next_token="+token)
		require.Equal(t, []string{"b/b:rec"}, names(body))
		require.NotContains(t, body["data"].(map[string]any), "groupNextToken")
	})

	for _, tc := range []struct {
		name  string
		query string
		err   string
	}{
		{"bad type", "type=both", `invalid parameter "type": not supported value "both"`},
		{"bad exclude_alerts", "exclude_alerts=maybe", `invalid parameter "exclude_alerts"`},
		{"bad match", "match[]=" + url.QueryEscape(`{a=~""}`), "match[] must contain at least one non-empty matcher"},
		{"token without limit", "group_next_token=x", "group_limit needs to be present"},
		{"bad limit", "group_limit=0", "group_limit needs to be greater than 0"},
		{"unknown token", "group_limit=1&group_next_token=nope", "invalid group_next_token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := get(t, h, tc.query)
			require.Equal(t, http.StatusBadRequest, code)
			require.Equal(t, "error", body["status"])
			require.Equal(t, "bad_data", body["errorType"])
			require.Contains(t, body["error"], tc.err)
		})
	}
}

func TestAlertsHandlerShape(t *testing.T) {
	m, _ := startAPIManager(t)
	code, body := get(t, AlertsHandler(m), "")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "success", body["status"])
	data := body["data"].(map[string]any)
	require.Equal(t, []string{"alerts"}, keys(data))
	alerts := data["alerts"].([]any)
	require.Len(t, alerts, 1)
	a := alerts[0].(map[string]any)
	require.Equal(t, []string{"activeAt", "annotations", "labels", "state", "value"}, keys(a))
	require.Equal(t, map[string]any{"alertname": "Up", "severity": "page"}, a["labels"])
	require.Equal(t, "firing", a["state"])
	activeAt, err := time.Parse(time.RFC3339Nano, a["activeAt"].(string))
	require.NoError(t, err)
	require.WithinDuration(t, time.Now(), activeAt, time.Minute)

	rec := httptest.NewRecorder()
	AlertsHandler(m).ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/api/v1/alerts", nil))
	require.Equal(t, http.StatusMethodNotAllowed, rec.Code)
}

// An empty source answers with empty lists, not null, as Prometheus does.
func TestHandlersEmpty(t *testing.T) {
	store := openStore(t)
	m, _ := newManager(t, testConfig(), Deps{Queryable: store, Appendable: store})
	_, body := get(t, RulesHandler(m), "")
	require.Equal(t, map[string]any{"groups": []any{}}, body["data"])
	_, body = get(t, AlertsHandler(m), "")
	require.Equal(t, map[string]any{"alerts": []any{}}, body["data"])
}
