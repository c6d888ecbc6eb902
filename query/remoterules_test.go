package query

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/pharos-obs/pharos/alerting/rules"
	"github.com/pharos-obs/pharos/internal/testutil"
	metricstore "github.com/pharos-obs/pharos/storage/metrics"
)

const fanOutRules = `groups:
  - name: a
    interval: 100ms
    rules:
      - alert: Up
        expr: vector(1)
        labels:
          severity: page
      - record: a:rec
        expr: vector(1)
  - name: b
    interval: 100ms
    rules:
      - record: b:rec
        expr: vector(2)
`

// openRulesStore opens a metrics store with the flag defaults, closed at
// cleanup.
func openRulesStore(t *testing.T) *metricstore.Store {
	t.Helper()
	var scfg metricstore.Config
	scfg.RegisterFlags(flag.NewFlagSet("test", flag.PanicOnError))
	store, err := metricstore.Open(scfg, t.TempDir(), slog.New(slog.DiscardHandler), nil)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, store.Close()) })
	return store
}

// startRulesManager runs a real rules Manager over its own store that
// evaluates the groups of file named in owned, as an aggregator of a
// cluster does, and stops it at cleanup.
func startRulesManager(t *testing.T, file string, owned ...string) *rules.Manager {
	t.Helper()
	store := openRulesStore(t)

	var cfg rules.Config
	cfg.RegisterFlags(flag.NewFlagSet("test", flag.PanicOnError))
	cfg.Files = []string{file}
	cfg.EvaluationInterval = 100 * time.Millisecond
	keys := map[string]bool{}
	for _, g := range owned {
		keys[rules.GroupKey(file, g)] = true
	}
	m, err := rules.New(cfg, rules.Deps{Queryable: store, Appendable: store, Owns: func(k string) bool { return keys[k] }},
		slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	require.NoError(t, err)
	require.NoError(t, services.StartAndAwaitRunning(context.Background(), m))
	t.Cleanup(func() { require.NoError(t, services.StopAndAwaitTerminated(context.Background(), m)) })
	return m
}

// awaitEvaluated polls until every group of m has been evaluated and its
// alert fires.
func awaitEvaluated(t *testing.T, m *rules.Manager, groups int) {
	t.Helper()
	testutil.Poll(t, 20*time.Second, 10*time.Millisecond, func() (bool, string) {
		gs := m.Groups()
		evaluated := 0
		for _, g := range gs {
			if !g.GetLastEvaluation().IsZero() {
				evaluated++
			}
		}
		as := m.Alerts()
		return len(gs) == groups && evaluated == groups && len(as) == 1 && as[0].State.String() == "firing",
			fmt.Sprintf("%d of %d groups evaluated, alerts %v", evaluated, len(gs), as)
	})
}

// aggregatorServer serves the rules API of m as an aggregator does, and
// records the queries it gets.
type aggregatorServer struct {
	*httptest.Server
	mu      sync.Mutex
	queries []url.Values
}

func startAggregatorServer(t *testing.T, m *rules.Manager, notifications string) *aggregatorServer {
	t.Helper()
	s := &aggregatorServer{}
	mux := http.NewServeMux()
	mux.Handle("GET "+RulesPath, rules.RulesHandler(m))
	mux.Handle("GET "+AlertsPath, rules.AlertsHandler(m))
	mux.HandleFunc("GET "+NotificationsPath, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, notifications)
	})
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.queries = append(s.queries, r.URL.Query())
		s.mu.Unlock()
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *aggregatorServer) addr() string { return s.Listener.Addr().String() }

func (s *aggregatorServer) lastQuery() url.Values {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queries[len(s.queries)-1]
}

// deadAddr is an address nothing listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	s := httptest.NewServer(http.NotFoundHandler())
	addr := s.Listener.Addr().String()
	s.Close()
	return addr
}

// answer is a fan-out's answer, decoded.
type answer struct {
	Status    string          `json:"status"`
	Data      json.RawMessage `json:"data"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
	Warnings  []string        `json:"warnings"`
}

func serve(t *testing.T, h http.Handler, query string) (int, answer) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/x?"+query, nil))
	require.Equal(t, "application/json", rec.Header().Get("Content-Type"))
	var a answer
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &a), rec.Body.String())
	return rec.Code, a
}

type testGroup struct {
	Name           string    `json:"name"`
	File           string    `json:"file"`
	LastEvaluation time.Time `json:"lastEvaluation"`
	Rules          []struct {
		Name   string `json:"name"`
		Type   string `json:"type"`
		State  string `json:"state"`
		Alerts []struct {
			State    string    `json:"state"`
			ActiveAt time.Time `json:"activeAt"`
		} `json:"alerts"`
	} `json:"rules"`
}

type testAlert struct {
	Labels   map[string]string `json:"labels"`
	State    string            `json:"state"`
	ActiveAt time.Time         `json:"activeAt"`
}

// TestRemoteRulesFanOut runs two real rules Managers behind the
// aggregators' handlers, as a cluster in the middle of a hand-over: agg-1
// evaluates group a, agg-2 evaluates a (it is taking it over, started
// later) and b. A third aggregator does not answer.
func TestRemoteRulesFanOut(t *testing.T) {
	file := filepath.Join(t.TempDir(), "rules.yml")
	require.NoError(t, os.WriteFile(file, []byte(fanOutRules), 0o644))
	m1 := startRulesManager(t, file, "a")
	awaitEvaluated(t, m1, 1)
	m2 := startRulesManager(t, file, "a", "b")
	awaitEvaluated(t, m2, 2)

	agg1 := startAggregatorServer(t, m1, `{"status":"success","data":{
		"receivers":[{"name":"web","sent":3,"failed":0,"lastSuccess":"2026-01-02T03:04:05Z","lastFailure":"","lastError":"","breaker":"closed","queued":0}],
		"failures":[{"receiver":"web","groupKey":"{}:{}","time":"2026-01-02T03:00:00Z","error":"503","attempts":1,"alerts":1}],
		"alertmanagers":[]}}`)
	agg2 := startAggregatorServer(t, m2, `{"status":"success","data":{
		"receivers":[{"name":"web","sent":1,"failed":2,"lastSuccess":"","lastFailure":"2026-01-02T03:04:05Z","lastError":"boom","breaker":"open","queued":1},
			{"name":"chat","sent":0,"failed":0,"lastSuccess":"","lastFailure":"","lastError":"","breaker":"closed","queued":0}],
		"failures":[{"receiver":"web","groupKey":"{}:{}","time":"2026-01-02T03:04:05Z","error":"boom","attempts":3,"alerts":1}],
		"alertmanagers":[{"url":"http://am:9093/api/v2/alerts","sent":4,"errors":0,"dropped":0,"queued":0}]}}`)
	dead := deadAddr(t)
	rr := NewRemoteRules(func() []Endpoint {
		return []Endpoint{{Name: "agg-1", Addr: agg1.addr()}, {Name: "agg-2", Addr: agg2.addr()}, {Name: "agg-3", Addr: dead}}
	}, nil, 2*time.Second)

	t.Run("rules", func(t *testing.T) {
		code, ans := serve(t, rr.RulesHandler(), "")
		require.Equal(t, http.StatusOK, code, ans.Error)
		require.Equal(t, "success", ans.Status)
		require.Len(t, ans.Warnings, 1)
		require.Contains(t, ans.Warnings[0], "aggregator agg-3 ("+dead+"): ")
		require.Equal(t, "local", agg1.lastQuery().Get("scope"), "aggregators are asked for their own rules")

		var data struct{ Groups []testGroup }
		require.NoError(t, json.Unmarshal(ans.Data, &data))
		require.Len(t, data.Groups, 2, "group a once, though two aggregators list it")
		a, b := data.Groups[0], data.Groups[1]
		require.Equal(t, []string{"a", "b"}, []string{a.Name, b.Name})
		require.Equal(t, file, a.File)
		require.False(t, a.LastEvaluation.IsZero())
		require.False(t, b.LastEvaluation.IsZero())
		require.Len(t, a.Rules, 2)
		require.Equal(t, "firing", a.Rules[0].State)
		require.Len(t, a.Rules[0].Alerts, 1)
		require.Equal(t, "b:rec", b.Rules[0].Name)

		// Filters pass through.
		code, ans = serve(t, rr.RulesHandler(), "type=record&rule_group[]=a")
		require.Equal(t, http.StatusOK, code, ans.Error)
		require.NoError(t, json.Unmarshal(ans.Data, &data))
		require.Len(t, data.Groups, 1)
		require.Equal(t, "a:rec", data.Groups[0].Rules[0].Name)
		require.Len(t, data.Groups[0].Rules, 1)
		require.Equal(t, []string{"a"}, agg2.lastQuery()["rule_group[]"])

		// Bad parameters are the aggregators' 400, relayed.
		code, ans = serve(t, rr.RulesHandler(), "type=both")
		require.Equal(t, http.StatusBadRequest, code)
		require.Equal(t, "bad_data", ans.ErrorType)
		require.Contains(t, ans.Error, `invalid parameter "type": not supported value "both"`)
	})

	t.Run("rules pagination", func(t *testing.T) {
		var names []string
		query := "group_limit=1"
		for range 3 {
			code, ans := serve(t, rr.RulesHandler(), query)
			require.Equal(t, http.StatusOK, code, ans.Error)
			var data struct {
				Groups         []testGroup
				GroupNextToken string
			}
			require.NoError(t, json.Unmarshal(ans.Data, &data))
			require.Len(t, data.Groups, 1)
			names = append(names, data.Groups[0].Name)
			if data.GroupNextToken == "" {
				break
			}
			query = "group_limit=1&group_next_token=" + data.GroupNextToken
		}
		require.Equal(t, []string{"a", "b"}, names)
		require.Empty(t, agg1.lastQuery().Get("group_limit"), "pages are cut from the merged groups")

		code, ans := serve(t, rr.RulesHandler(), "group_limit=1&group_next_token=nope")
		require.Equal(t, http.StatusBadRequest, code)
		require.Contains(t, ans.Error, "invalid group_next_token")
		code, ans = serve(t, rr.RulesHandler(), "group_limit=0")
		require.Equal(t, http.StatusBadRequest, code)
		require.Contains(t, ans.Error, "group_limit needs to be greater than 0")
	})

	t.Run("alerts", func(t *testing.T) {
		code, ans := serve(t, rr.AlertsHandler(), "")
		require.Equal(t, http.StatusOK, code, ans.Error)
		require.Len(t, ans.Warnings, 1)
		var data struct{ Alerts []testAlert }
		require.NoError(t, json.Unmarshal(ans.Data, &data))
		require.Len(t, data.Alerts, 1, "the alert of group a once")
		require.Equal(t, map[string]string{"alertname": "Up", "severity": "page"}, data.Alerts[0].Labels)
		require.Equal(t, "firing", data.Alerts[0].State)
		first := m1.Alerts()[0].ActiveAt
		require.True(t, first.Before(m2.Alerts()[0].ActiveAt), "agg-2 started later")
		require.True(t, first.Equal(data.Alerts[0].ActiveAt), "the earlier start is kept: %s", data.Alerts[0].ActiveAt)
	})

	t.Run("notifications", func(t *testing.T) {
		code, ans := serve(t, rr.NotificationsHandler(), "")
		require.Equal(t, http.StatusOK, code, ans.Error)
		require.Len(t, ans.Warnings, 1)
		var data struct {
			Receivers []struct {
				Name     string `json:"name"`
				Instance string `json:"instance"`
				Sent     uint64 `json:"sent"`
				Breaker  string `json:"breaker"`
			} `json:"receivers"`
			Failures []struct {
				Receiver string `json:"receiver"`
				Instance string `json:"instance"`
				Error    string `json:"error"`
			} `json:"failures"`
			Alertmanagers []struct {
				URL      string `json:"url"`
				Instance string `json:"instance"`
				Sent     float64
			} `json:"alertmanagers"`
		}
		require.NoError(t, json.Unmarshal(ans.Data, &data))
		require.Len(t, data.Receivers, 3)
		got := make([]string, len(data.Receivers))
		for i, r := range data.Receivers {
			got[i] = fmt.Sprintf("%s@%s sent %d %s", r.Name, r.Instance, r.Sent, r.Breaker)
		}
		require.Equal(t, []string{"chat@agg-2 sent 0 closed", "web@agg-1 sent 3 closed", "web@agg-2 sent 1 open"}, got)
		require.Len(t, data.Failures, 2)
		require.Equal(t, "agg-2", data.Failures[0].Instance, "newest first")
		require.Equal(t, "boom", data.Failures[0].Error)
		require.Equal(t, "agg-1", data.Failures[1].Instance)
		require.Len(t, data.Alertmanagers, 1)
		require.Equal(t, "agg-2", data.Alertmanagers[0].Instance)
		require.Equal(t, 4.0, data.Alertmanagers[0].Sent)
	})

	t.Run("scope local", func(t *testing.T) {
		for _, h := range []http.Handler{rr.RulesHandler(), rr.AlertsHandler(), rr.NotificationsHandler()} {
			code, ans := serve(t, h, "scope=local")
			require.Equal(t, http.StatusNotFound, code, "a querier never fans out for another")
			require.Contains(t, ans.Error, "evaluates no rules")
		}
	})

	t.Run("all failing", func(t *testing.T) {
		failing := NewRemoteRules(StaticEndpoints([]string{dead, deadAddr(t)}), nil, time.Second)
		for _, h := range []http.Handler{failing.RulesHandler(), failing.AlertsHandler(), failing.NotificationsHandler()} {
			code, ans := serve(t, h, "")
			require.Equal(t, http.StatusServiceUnavailable, code)
			require.Equal(t, "error", ans.Status)
			require.Equal(t, "unavailable", ans.ErrorType)
			require.Contains(t, ans.Error, "every aggregator failed")
			require.Contains(t, ans.Error, "aggregator "+dead)
		}
	})

	t.Run("none", func(t *testing.T) {
		none := NewRemoteRules(func() []Endpoint { return nil }, nil, time.Second)
		code, ans := serve(t, none.RulesHandler(), "")
		require.Equal(t, http.StatusServiceUnavailable, code)
		require.Contains(t, ans.Error, "no healthy aggregators known")
	})

	t.Run("no rules anywhere", func(t *testing.T) {
		// Aggregators without rule files answer 404; so does the querier,
		// as a single process without rules does.
		s := httptest.NewServer(http.NotFoundHandler())
		t.Cleanup(s.Close)
		norules := NewRemoteRules(StaticEndpoints([]string{s.Listener.Addr().String()}), nil, time.Second)
		code, ans := serve(t, norules.RulesHandler(), "")
		require.Equal(t, http.StatusNotFound, code)
		require.Contains(t, ans.Error, "no aggregator evaluates rules")
	})
}

// TestMergeRules merges copies of a real aggregator's answer whose group
// times differ: the copy evaluated last is kept.
func TestMergeRules(t *testing.T) {
	file := filepath.Join(t.TempDir(), "rules.yml")
	require.NoError(t, os.WriteFile(file, []byte(fanOutRules), 0o644))
	m := startRulesManager(t, file, "a", "b")
	awaitEvaluated(t, m, 2)
	rec := httptest.NewRecorder()
	rules.RulesHandler(m).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, RulesPath+"?scope=local", nil))
	require.Equal(t, http.StatusOK, rec.Code, "aggregators ignore scope")
	var env apiEnvelope
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &env))

	// withTimes returns the real answer with group a and b last evaluated
	// at the given times ("" drops the group, "zero" is never).
	withTimes := func(ta, tb string) json.RawMessage {
		var d struct{ Groups []map[string]any }
		require.NoError(t, json.Unmarshal(env.Data, &d))
		var kept []map[string]any
		for _, g := range d.Groups {
			at := map[string]string{"a": ta, "b": tb}[g["name"].(string)]
			switch at {
			case "":
				continue
			case "zero":
				at = time.Time{}.Format(time.RFC3339Nano)
			}
			g["lastEvaluation"] = at
			kept = append(kept, g)
		}
		if kept == nil {
			kept = []map[string]any{}
		}
		b, err := json.Marshal(map[string]any{"groups": kept})
		require.NoError(t, err)
		return b
	}
	const (
		t1 = "2026-01-02T03:04:05Z"
		t2 = "2026-01-02T03:04:06Z"
	)
	type want struct{ name, at string }
	for _, tc := range []struct {
		name    string
		answers []json.RawMessage
		want    []want
	}{
		{"one owner each", []json.RawMessage{withTimes(t1, ""), withTimes("", t2)}, []want{{"a", t1}, {"b", t2}}},
		{"the later evaluation wins", []json.RawMessage{withTimes(t2, t1), withTimes(t1, t2)}, []want{{"a", t2}, {"b", t2}}},
		{"over a never evaluated copy", []json.RawMessage{withTimes("zero", "zero"), withTimes(t1, "")}, []want{{"a", t1}, {"b", "zero"}}},
		{"nothing", []json.RawMessage{withTimes("", "")}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			answers := make([]rulesAnswer, len(tc.answers))
			for i, d := range tc.answers {
				answers[i] = rulesAnswer{ep: Endpoint{Name: fmt.Sprint("agg-", i)}, data: d}
			}
			res, err := mergeRules(answers, 0, "")
			require.NoError(t, err)
			b, err := json.Marshal(res)
			require.NoError(t, err)
			var got struct{ Groups []testGroup }
			require.NoError(t, json.Unmarshal(b, &got))
			require.Len(t, got.Groups, len(tc.want))
			for i, w := range tc.want {
				g := got.Groups[i]
				require.Equal(t, w.name, g.Name)
				require.Equal(t, file, g.File)
				if w.at == "zero" {
					require.True(t, g.LastEvaluation.IsZero())
				} else {
					require.Equal(t, w.at, g.LastEvaluation.UTC().Format(time.RFC3339))
				}
				require.NotEmpty(t, g.Rules, "the rules pass as they are")
			}
		})
	}
}

func TestMergeAlerts(t *testing.T) {
	alert := func(state, at string, ls ...string) string {
		l := map[string]string{}
		for i := 0; i < len(ls); i += 2 {
			l[ls[i]] = ls[i+1]
		}
		b, _ := json.Marshal(map[string]any{"labels": l, "annotations": map[string]string{}, "state": state, "activeAt": at, "value": "1e+00"})
		return string(b)
	}
	answer := func(alerts ...string) rulesAnswer {
		b := `{"alerts":[`
		for i, a := range alerts {
			if i > 0 {
				b += ","
			}
			b += a
		}
		return rulesAnswer{data: json.RawMessage(b + "]}")}
	}
	for _, tc := range []struct {
		name    string
		answers []rulesAnswer
		want    []string
	}{
		{"none", []rulesAnswer{answer(), answer()}, []string{}},
		{"union, sorted by name", []rulesAnswer{answer(alert("firing", "2026-01-02T03:00:00Z", "alertname", "Z")), answer(alert("pending", "2026-01-02T03:00:00Z", "alertname", "A"))},
			[]string{"A pending 03:00:00", "Z firing 03:00:00"}},
		{"same labels: earliest start", []rulesAnswer{
			answer(alert("firing", "2026-01-02T03:00:05Z", "alertname", "A", "x", "1")),
			answer(alert("firing", "2026-01-02T03:00:01Z", "alertname", "A", "x", "1"), alert("pending", "2026-01-02T03:00:09Z", "alertname", "A", "x", "2")),
		}, []string{"A firing 03:00:01", "A pending 03:00:09"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := mergeAlerts(tc.answers)
			require.NoError(t, err)
			b, err := json.Marshal(res)
			require.NoError(t, err)
			var got struct{ Alerts []testAlert }
			require.NoError(t, json.Unmarshal(b, &got))
			s := []string{}
			for _, a := range got.Alerts {
				s = append(s, fmt.Sprintf("%s %s %s", a.Labels["alertname"], a.State, a.ActiveAt.UTC().Format(time.TimeOnly)))
			}
			require.Equal(t, tc.want, s)
		})
	}
}

// TestRemoteRulesForwardsTenant runs a real rules Manager with a tenants
// directory behind an aggregator's handlers (which resolve the tenant as
// internal/app serves them): the querier sends its client's tenant to the
// aggregator, which answers with that tenant's groups and alerts only.
func TestRemoteRulesForwardsTenant(t *testing.T) {
	dir := t.TempDir()
	def := filepath.Join(dir, "default.yml")
	require.NoError(t, os.WriteFile(def, []byte(fanOutRules), 0o644))
	tenants := filepath.Join(dir, "tenants")
	require.NoError(t, os.MkdirAll(filepath.Join(tenants, "team-a"), 0o755))
	teamA := filepath.Join(tenants, "team-a", "rules.yml")
	require.NoError(t, os.WriteFile(teamA, []byte(`groups:
  - name: a
    interval: 100ms
    rules:
      - alert: TeamA
        expr: vector(1)
`), 0o644))

	store := openRulesStore(t)
	var cfg rules.Config
	cfg.RegisterFlags(flag.NewFlagSet("test", flag.PanicOnError))
	cfg.Files = []string{def}
	cfg.TenantsDir = tenants
	cfg.EvaluationInterval = 100 * time.Millisecond
	m, err := rules.New(cfg, rules.Deps{Queryable: store, Appendable: store}, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	require.NoError(t, err)
	require.NoError(t, services.StartAndAwaitRunning(context.Background(), m))
	t.Cleanup(func() { require.NoError(t, services.StopAndAwaitTerminated(context.Background(), m)) })
	testutil.Poll(t, 20*time.Second, 10*time.Millisecond, func() (bool, string) {
		as := m.Alerts()
		return len(as) == 2 && as[0].State.String() == "firing" && as[1].State.String() == "firing", fmt.Sprintf("alerts %v", as)
	})

	mux := http.NewServeMux()
	mux.Handle("GET "+RulesPath, WithTenant(rules.RulesHandler(m)))
	mux.Handle("GET "+AlertsPath, WithTenant(rules.AlertsHandler(m)))
	agg := httptest.NewServer(mux)
	t.Cleanup(agg.Close)
	rr := NewRemoteRules(StaticEndpoints([]string{agg.Listener.Addr().String()}), nil, 2*time.Second)

	as := func(h http.Handler, id string) answer {
		t.Helper()
		req := httptest.NewRequest(http.MethodGet, "/x", nil)
		if id != "" {
			req.Header.Set("X-Scope-OrgID", id)
		}
		rec := httptest.NewRecorder()
		WithTenant(h).ServeHTTP(rec, req)
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		var a answer
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &a))
		require.Empty(t, a.Warnings)
		return a
	}
	groups := func(id string) []string {
		var d struct{ Groups []testGroup }
		require.NoError(t, json.Unmarshal(as(rr.RulesHandler(), id).Data, &d))
		out := []string{}
		for _, g := range d.Groups {
			out = append(out, g.File+":"+g.Name)
		}
		return out
	}
	alerts := func(id string) []string {
		var d struct{ Alerts []testAlert }
		require.NoError(t, json.Unmarshal(as(rr.AlertsHandler(), id).Data, &d))
		out := []string{}
		for _, a := range d.Alerts {
			out = append(out, a.Labels["alertname"])
		}
		return out
	}
	require.Equal(t, []string{def + ":a", def + ":b"}, groups(""))
	require.Equal(t, []string{def + ":a", def + ":b"}, groups("anonymous"))
	require.Equal(t, []string{teamA + ":a"}, groups("team-a"), "a group named like the default tenant's, team-a's own")
	require.Empty(t, groups("team-b"))
	require.Equal(t, []string{"Up"}, alerts(""))
	require.Equal(t, []string{"TeamA"}, alerts("team-a"))
	require.Empty(t, alerts("team-b"))
}
