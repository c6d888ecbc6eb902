package rules

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/prometheus/alertmanager/types"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	promrules "github.com/prometheus/prometheus/rules"
	"github.com/stretchr/testify/require"

	"github.com/pharos-obs/pharos/query/logql/logqltest"
	"github.com/pharos-obs/pharos/storage/logs"
)

const logRules = `groups:
  - name: logs
    rules:
      - alert: ApiErrors
        expr: sum by (app) (count_over_time({app="api"} |= "error" [1m])) > 2
        for: 1s
        labels:
          severity: page
        annotations:
          summary: "{{ $labels.app }} logged {{ $value }} errors"
      - alert: StreamErrors
        expr: count_over_time({app=~"api|web"} |= "error" [1m]) > 0
      - record: app:log_errors:count1m
        expr: sum by (app) (count_over_time({app=~".+"} |= "error" [1m]))
`

// testLogConfig is testConfig with log rule files.
func testLogConfig(logFiles ...string) Config {
	cfg := testConfig()
	cfg.LogFiles = logFiles
	return cfg
}

// pushLogs appends lines to one stream of the default tenant, one
// millisecond apart, ending a second ago: inside every rule's range.
func pushLogs(t *testing.T, q logs.Appender, stream labels.Labels, lines ...string) {
	t.Helper()
	end := time.Now().Add(-time.Second)
	entries := make([]logs.Entry, len(lines))
	for i, l := range lines {
		entries[i] = logs.Entry{Timestamp: end.Add(time.Duration(i-len(lines)) * time.Millisecond).UnixNano(), Line: l}
	}
	require.NoError(t, q.Append("", []logs.Stream{{Labels: stream, Entries: entries}}))
}

// lastFiring returns the last firing notification the hook got for the
// alert whose labels include want.
func lastFiring(h *hook, want map[string]string) *types.Alert {
	as := h.all()
	for i := len(as) - 1; i >= 0; i-- {
		a := as[i]
		if a.Resolved() {
			continue
		}
		match := true
		for k, v := range want {
			match = match && string(a.Labels[model.LabelName(k)]) == v
		}
		if match {
			return a
		}
	}
	return nil
}

// alertOf returns m's active alert named name with app, or nil.
func alertOf(m *Manager, name, app string) *promrules.Alert {
	for _, a := range m.Alerts() {
		if a.Labels.Get("alertname") == name && a.Labels.Get("app") == app {
			return a
		}
	}
	return nil
}

// TestLogRulesEvaluate runs log alerting and recording rules over an
// in-memory log store: alerts go pending, then fire, and their
// notifications carry the lines behind them, per alert; the recording
// rule and ALERTS go to the Appendable; the rules API lists the group.
func TestLogRulesEvaluate(t *testing.T) {
	store := openStore(t)
	lq := logqltest.New()
	f := writeFile(t, t.TempDir(), "logs.yml", logRules)
	h := &hook{}
	m, reg := startManager(t, testLogConfig(f), Deps{Queryable: store, Appendable: store, Logs: lq, Send: h.send})

	api, web := labels.FromStrings("app", "api"), labels.FromStrings("app", "web")
	pushLogs(t, lq, api, "info: started", "error 1: timeout", "info: ok", "error 2: refused", "error 3: reset")
	pushLogs(t, lq, web, "error W: 404")

	// `for: 1s`: pending first, not notified, then firing.
	poll(t, 10*time.Second, func() (bool, string) {
		sent := lastFiring(h, map[string]string{"alertname": "ApiErrors"})
		a := alertOf(m, "ApiErrors", "api")
		if a == nil || a.State != promrules.StatePending {
			return false, describe(a)
		}
		require.Nil(t, sent, "a pending alert is not notified")
		return true, ""
	})
	var apiAlert *types.Alert
	poll(t, 10*time.Second, func() (bool, string) {
		apiAlert = lastFiring(h, map[string]string{"alertname": "ApiErrors"})
		return apiAlert != nil, fmt.Sprintf("alerts %v", m.Alerts())
	})
	require.Equal(t, "page", string(apiAlert.Labels["severity"]))
	require.Equal(t, "api", string(apiAlert.Labels["app"]))
	require.Equal(t, "api logged 3 errors", string(apiAlert.Annotations["summary"]))
	require.Equal(t, "error 1: timeout\nerror 2: refused\nerror 3: reset", string(apiAlert.Annotations[SampleLinesAnnotation]),
		"the rule's matching lines, oldest first")
	require.True(t, strings.HasPrefix(apiAlert.GeneratorURL, "http://pharos.example.com:8080/ui/logs?q="), "links to the rule on the logs page: %s", apiAlert.GeneratorURL)

	// One alert per stream, each with its own stream's lines only.
	var apiStream, webStream *types.Alert
	poll(t, 10*time.Second, func() (bool, string) {
		apiStream = lastFiring(h, map[string]string{"alertname": "StreamErrors", "app": "api"})
		webStream = lastFiring(h, map[string]string{"alertname": "StreamErrors", "app": "web"})
		return apiStream != nil && webStream != nil, "StreamErrors not notified for both apps"
	})
	require.Equal(t, "error 1: timeout\nerror 2: refused\nerror 3: reset", string(apiStream.Annotations[SampleLinesAnnotation]))
	require.Equal(t, "error W: 404", string(webStream.Annotations[SampleLinesAnnotation]))
	require.Positive(t, metricSumLabelled(t, reg, "pharos_rules_log_samples_total", "added"))

	// The recording rule's series and ALERTS went to the Appendable.
	poll(t, 10*time.Second, func() (bool, string) {
		got := series(t, store, "app:log_errors:count1m")
		a := got[labels.FromStrings("__name__", "app:log_errors:count1m", "app", "api").String()]
		w := got[labels.FromStrings("__name__", "app:log_errors:count1m", "app", "web").String()]
		return len(a) > 0 && a[len(a)-1] == 3 && len(w) > 0 && w[len(w)-1] == 1, fmt.Sprintf("series: %v", got)
	})
	poll(t, 10*time.Second, func() (bool, string) {
		got := series(t, store, "ALERTS")
		want := labels.FromStrings("__name__", "ALERTS", "alertname", "ApiErrors", "alertstate", "firing", "app", "api", "severity", "page").String()
		return len(got[want]) > 0, fmt.Sprintf("ALERTS: %v", got)
	})

	// The rules API lists the log group, with the LogQL as written.
	rec := httptest.NewRecorder()
	RulesHandler(m).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/v1/rules", nil))
	require.Equal(t, http.StatusOK, rec.Code)
	var resp struct {
		Data struct {
			Groups []struct {
				Name  string `json:"name"`
				File  string `json:"file"`
				Rules []struct {
					Name   string `json:"name"`
					Query  string `json:"query"`
					Type   string `json:"type"`
					Health string `json:"health"`
				} `json:"rules"`
			} `json:"groups"`
		} `json:"data"`
	}
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &resp))
	require.Len(t, resp.Data.Groups, 1)
	g := resp.Data.Groups[0]
	require.Equal(t, "logs", g.Name)
	require.Equal(t, f, g.File)
	require.Len(t, g.Rules, 3)
	require.Equal(t, `sum by (app) (count_over_time({app="api"} |= "error" [1m])) > 2`, g.Rules[0].Query)
	require.Equal(t, "alerting", g.Rules[0].Type)
	require.Equal(t, "recording", g.Rules[2].Type)
	for _, r := range g.Rules {
		require.Equal(t, "ok", r.Health, r.Name)
	}
}

// metricSumLabelled returns the counter of name whose one label is value.
func metricSumLabelled(t *testing.T, reg *prometheus.Registry, name, value string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) == 1 && m.GetLabel()[0].GetValue() == value {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("metric %s{%s} not registered", name, value)
	return 0
}

// TestLogRuleSampleIsBounded: at most five lines, the most recent, each
// cut to 512 bytes at a character boundary, valid UTF-8, one per line.
func TestLogRuleSampleIsBounded(t *testing.T) {
	store := openStore(t)
	lq := logqltest.New()
	f := writeFile(t, t.TempDir(), "big.yml", `groups:
  - name: big
    rules:
      - alert: Big
        expr: count_over_time({app="big"} |= "error" [1m]) > 0
`)
	h := &hook{}
	startManager(t, testLogConfig(f), Deps{Queryable: store, Appendable: store, Logs: lq, Send: h.send})
	var lines []string
	for i := range 8 {
		lines = append(lines, fmt.Sprintf("error %d ", i)+strings.Repeat("é", 400))
	}
	lines[6] = "error 6 two\nlines \xff"
	pushLogs(t, lq, labels.FromStrings("app", "big"), lines...)

	var a *types.Alert
	poll(t, 10*time.Second, func() (bool, string) {
		a = lastFiring(h, map[string]string{"alertname": "Big"})
		return a != nil, "not notified"
	})
	sample := string(a.Annotations[SampleLinesAnnotation])
	got := strings.Split(sample, "\n")
	require.Len(t, got, 5, sample)
	for i, l := range got {
		require.LessOrEqual(t, len(l), 512, "line %d", i)
		require.True(t, utf8.ValidString(l), "line %d", i)
	}
	require.True(t, strings.HasPrefix(got[0], "error 3 é"), got[0])
	require.True(t, strings.HasSuffix(got[0], "é…"), "cut at a character boundary: %q", got[0][len(got[0])-8:])
	require.Equal(t, `error 6 two\nlines `+"\uFFFD", got[3])
	require.True(t, strings.HasPrefix(got[4], "error 7 "), got[4])
}

func TestSampleLine(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"short", "short"},
		{"a\r\nb\nc", `a\nb\nc`},
		{"bad \xff\xfe byte", "bad \uFFFD byte"},
		{strings.Repeat("x", 512), strings.Repeat("x", 512)},
		{strings.Repeat("x", 513), strings.Repeat("x", 509) + "…"},
		{"x" + strings.Repeat("€", 200), "x" + strings.Repeat("€", 169) + "…"},
	} {
		got := sampleLine(tc.in)
		require.Equal(t, tc.want, got)
		require.LessOrEqual(t, len(got), maxSampleLineBytes)
	}
}

// stuckLogs is a log store whose sample look-ups (newest first, which
// rule evaluations never ask for) fail, or hang until released, ignoring
// their context: the worst a remote store can do.
type stuckLogs struct {
	*logqltest.Querier
	err     error
	release chan struct{}
}

func (s *stuckLogs) Select(ctx context.Context, p logs.SelectParams) ([]logs.Stream, error) {
	if p.Direction == logs.Backward {
		if s.err != nil {
			return nil, s.err
		}
		<-s.release
	}
	return s.Querier.Select(ctx, p)
}

// TestLogRuleSampleFailureDoesNotHoldNotifications: a look-up that fails
// or hangs costs the notification its sample, never the notification,
// and delays it by the timeout at most.
func TestLogRuleSampleFailureDoesNotHoldNotifications(t *testing.T) {
	for _, tc := range []struct {
		name   string
		err    error
		result string
	}{
		{name: "hangs", result: sampleTimeout},
		{name: "fails", err: errors.New("store down"), result: sampleFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := openStore(t)
			lq := &stuckLogs{Querier: logqltest.New(), err: tc.err, release: make(chan struct{})}
			f := writeFile(t, t.TempDir(), "logs.yml", logRules)
			cfg := testLogConfig(f)
			cfg.LogSampleTimeout = 200 * time.Millisecond
			h := &hook{}
			m, reg := startManager(t, cfg, Deps{Queryable: store, Appendable: store, Logs: lq, Send: h.send})
			// Before the manager stops (cleanups run last first): the
			// look-ups it waits for end.
			t.Cleanup(func() { close(lq.release) })
			pushLogs(t, lq.Querier, labels.FromStrings("app", "api"), "error 1", "error 2", "error 3")

			var a *types.Alert
			poll(t, 10*time.Second, func() (bool, string) {
				a = lastFiring(h, map[string]string{"alertname": "ApiErrors"})
				return a != nil, "not notified"
			})
			require.NotContains(t, a.Annotations, model.LabelName(SampleLinesAnnotation))
			require.Positive(t, metricSumLabelled(t, reg, "pharos_rules_log_samples_total", tc.result))
			// The group's evaluations, notifications included, stay well
			// under a second although look-ups hang for ever.
			g := m.Groups()[0]
			require.Less(t, g.GetEvaluationTime(), time.Second, "evaluation time %s", g.GetEvaluationTime())
		})
	}
}

// TestLogRulesAlongsidePromQL: both kinds of files load into one listing,
// sorted by file; ownership applies to log groups by the same key.
func TestLogRulesAlongsidePromQL(t *testing.T) {
	store := openStore(t)
	dir := t.TempDir()
	prom := writeFile(t, dir, "a.yml", "groups:\n  - name: prom\n    rules:\n      - record: one\n        expr: vector(1)\n")
	logf := writeFile(t, dir, "b.yml", "groups:\n  - name: log\n    rules:\n      - record: log_lines\n        expr: sum(count_over_time({app=\"api\"}[1m]))\n")
	own := newOwner(GroupKey(prom, "prom"))
	cfg := testLogConfig(filepath.Join(dir, "b.yml"))
	cfg.Files = []string{prom}
	lq := logqltest.New()
	pushLogs(t, lq, labels.FromStrings("app", "api"), "a line")
	m, reg := startManager(t, cfg, Deps{Queryable: store, Appendable: store, Logs: lq, Owns: own.owns})
	require.Equal(t, []string{"prom"}, groupNames(m))
	requireMetric(t, reg, "pharos_rules_groups", 2)
	requireMetric(t, reg, "pharos_rules_files", 2)

	own.set(GroupKey(logf, "log"), true)
	m.OwnershipChanged()
	poll(t, 10*time.Second, func() (bool, string) {
		names := groupNames(m)
		return len(names) == 2, fmt.Sprintf("groups %v", names)
	})
	require.Equal(t, []string{"prom", "log"}, groupNames(m), "by file: a.yml, then b.yml")
	requireMetric(t, reg, "pharos_rules_owned_groups", 2)
	poll(t, 10*time.Second, func() (bool, string) {
		got := series(t, store, "log_lines")
		vs := got[labels.FromStrings("__name__", "log_lines").String()]
		return len(vs) > 0 && vs[len(vs)-1] == 1, fmt.Sprintf("series: %v", got)
	})

	// A broken log file: Reload names it and its line; the rules stay.
	writeFile(t, dir, "b.yml", "groups:\n  - name: log\n    rules:\n      - record: log_lines\n        expr: sum(count_over_time({app=\"api\"} |> \"x\" [1m]))\n")
	err := m.Reload()
	require.ErrorIs(t, err, ErrInvalidRules)
	require.Contains(t, err.Error(), logf+": 5:15: ")
	require.Contains(t, err.Error(), "unsupported LogQL feature: pattern line filter")
	require.Equal(t, []string{"prom", "log"}, groupNames(m))
}

func TestNewRefusesLogRulesWithoutLogsOrInBothLists(t *testing.T) {
	store := openStore(t)
	f := writeFile(t, t.TempDir(), "logs.yml", logRules)
	_, err := New(testLogConfig(f), Deps{Queryable: store, Appendable: store}, testLogger(t), nil)
	require.ErrorIs(t, err, ErrMissingDependency)

	cfg := testLogConfig(f)
	cfg.Files = []string{f}
	_, err = New(cfg, Deps{Queryable: store, Appendable: store, Logs: logqltest.New()}, testLogger(t), nil)
	require.ErrorIs(t, err, ErrInvalidRules)
	require.ErrorContains(t, err, f+": matched by both rules.files and rules.log_files")

	// A PromQL expression in a log rule file.
	g := writeFile(t, t.TempDir(), "promql.yml", "groups:\n  - name: g\n    rules:\n      - alert: Down\n        expr: up == 0\n")
	_, err = New(testLogConfig(g), Deps{Queryable: store, Appendable: store, Logs: logqltest.New()}, testLogger(t), nil)
	require.ErrorIs(t, err, ErrInvalidRules)
	require.ErrorContains(t, err, g+": 5:15: ")
}

// TestLogAlertForStateSurvivesRestart: a log alert's `for` state is kept
// in ALERTS_FOR_STATE, a series, and restored from the metrics Queryable
// like a PromQL alert's.
func TestLogAlertForStateSurvivesRestart(t *testing.T) {
	const hold = 4 * time.Second
	store := openStore(t)
	lq := logqltest.New()
	f := writeFile(t, t.TempDir(), "held.yml", `groups:
  - name: held
    rules:
      - alert: Held
        expr: sum by (app) (count_over_time({app="api"} |= "error" [5m])) > 0
        for: 4s
`)
	pushLogs(t, lq, labels.FromStrings("app", "api"), "error")
	first, _ := startManager(t, testLogConfig(f), Deps{Queryable: store, Appendable: store, Logs: lq})
	var fired *promrules.Alert
	poll(t, 20*time.Second, func() (bool, string) {
		fired = activeAlert(t, first)
		return fired != nil && fired.State == promrules.StateFiring && time.Since(fired.FiredAt) > 1500*time.Millisecond, describe(fired)
	})
	stopManager(t, first)

	started := time.Now()
	second, _ := startManager(t, testLogConfig(f), Deps{Queryable: store, Appendable: store, Logs: lq})
	var again *promrules.Alert
	poll(t, 20*time.Second, func() (bool, string) {
		again = activeAlert(t, second)
		return again != nil && again.State == promrules.StateFiring, describe(again)
	})
	require.Equal(t, fired.ActiveAt.Unix(), again.ActiveAt.Unix(), "active time restored from ALERTS_FOR_STATE")
	require.Less(t, again.FiredAt.Sub(started), hold, "fired without waiting a whole `for` again")
}

func TestCheckLogQL(t *testing.T) {
	dir := t.TempDir()
	good := writeFile(t, dir, "good.yml", logRules)
	require.Empty(t, CheckLogQL(good))
	require.NotEmpty(t, Check(good), "LogQL is not PromQL")

	for _, tc := range []struct {
		name, expr string
		msg        string
	}{
		{"syntax", `sum(count_over_time({app="x"} |= [1m]))`, "could not parse expression: parse error at line 1, col "},
		{"unsupported", `sum(count_over_time({app="x"} |> "<_>" [1m]))`, "unsupported LogQL feature: pattern line filter"},
		{"log query", `{app="x"} |= "error"`, "a metric query is required"},
		{"promql", `rate(http_requests_total[5m])`, "could not parse expression"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The expression on line 7, after a valid rule.
			f := writeFile(t, dir, tc.name+".yml", fmt.Sprintf(`groups:
  - name: g
    rules:
      - record: fine
        expr: sum(rate({app="x"}[5m]))
      - alert: Broken
        expr: '%s'
`, strings.ReplaceAll(tc.expr, "'", "''")))
			errs := CheckLogQL(f)
			require.Len(t, errs, 1, "%v", errs)
			require.Equal(t, 7, errLine(t, f, errs[0]))
			require.Contains(t, errs[0].Error(), `group "g", rule 2, "Broken": `)
			require.Contains(t, errs[0].Error(), tc.msg)
		})
	}
}

func TestRunCheckLogQL(t *testing.T) {
	dir := t.TempDir()
	good := writeFile(t, dir, "good.yml", logRules)
	bad := writeFile(t, dir, "bad.yml", "groups:\n  - name: a\n    rules:\n      - alert: X\n        expr: count_over_time({app=\"x\"}[1m] @ 5)\n")

	var stdout, stderr bytes.Buffer
	require.Equal(t, CheckOK, RunCheck([]string{"-logql", good}, &stdout, &stderr), stderr.String())
	require.Equal(t, "Checking "+good+"\n  SUCCESS: 3 rules found\n\n", stdout.String())
	require.Empty(t, stderr.String())

	stdout.Reset()
	require.Equal(t, CheckFailed, RunCheck([]string{"--logql", good, bad}, &stdout, &stderr))
	require.Contains(t, stderr.String(), "  FAILED:\n"+bad+": 5:15: group \"a\", rule 1, \"X\": could not parse expression: unsupported LogQL feature: @ modifier")

	// Without -logql, log rules are PromQL errors.
	stdout.Reset()
	stderr.Reset()
	require.Equal(t, CheckFailed, RunCheck([]string{good}, &stdout, &stderr))

	stderr.Reset()
	require.Equal(t, CheckUsage, RunCheck([]string{"-logql"}, &stdout, &stderr))
	require.Contains(t, stderr.String(), "usage: pharos rules check FILE...")
	stderr.Reset()
	require.Equal(t, CheckUsage, RunCheck([]string{"-nope", good}, &stdout, &stderr))
	require.Contains(t, stderr.String(), "flag provided but not defined: -nope")
}

// FuzzCheckLogQL is FuzzCheck for log rule files: what CheckLogQL accepts,
// a rules manager with the log parser loads, and its dependency analysis
// (turned off for log rules) is never reached with a LogQL expression.
func FuzzCheckLogQL(f *testing.F) {
	f.Add([]byte(logRules))
	f.Add([]byte("groups:\n  - name: a\n    rules:\n      - alert: X\n        expr: sum(count_over_time({a=\"b\"} |> \"x\" [1m]))\n"))
	f.Add([]byte("groups: [{name: a, rules: [{record: r, expr: 'rate({a=\"b\"} | json | unwrap x [1m])'}]}]"))
	f.Add([]byte("groups: [{name: a, rules: [{record: r, expr: '{a=\"b\"}'}, {record: s, expr: 'vector(1)'}]}]"))
	file := filepath.Join(f.TempDir(), "rules.yml")
	f.Fuzz(func(t *testing.T, data []byte) {
		require.NoError(t, os.WriteFile(file, data, 0o600))
		errs := CheckLogQL(file)
		for _, err := range errs {
			require.True(t, strings.HasPrefix(err.Error(), file+": "), "error without the file name: %s", err)
		}
		if len(errs) > 0 {
			return
		}
		m := promrules.NewManager(&promrules.ManagerOptions{Parser: newLogParser(), RuleDependencyController: noRuleDependencies{}})
		_, loadErrs := m.LoadGroups(testInterval, labels.EmptyLabels(), "", nil, false, file)
		require.Empty(t, loadErrs, "CheckLogQL accepted what the rules manager refuses")
	})
}

// TestLogRuleSampleOffOrOwn: a rule's own sample_lines annotation stays,
// and -rules.log-sample-timeout=0 looks nothing up.
func TestLogRuleSampleOffOrOwn(t *testing.T) {
	const own = `groups:
  - name: own
    rules:
      - alert: Own
        expr: count_over_time({app="api"} |= "error" [1m]) > 0
        annotations:
          sample_lines: see the dashboard
`
	for _, tc := range []struct {
		name    string
		timeout time.Duration
		rules   string
		want    string
	}{
		{name: "rule's own annotation", timeout: time.Second, rules: own, want: "see the dashboard"},
		{name: "off", rules: logRules},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := openStore(t)
			lq := logqltest.New()
			cfg := testLogConfig(writeFile(t, t.TempDir(), "logs.yml", tc.rules))
			cfg.LogSampleTimeout = tc.timeout
			h := &hook{}
			startManager(t, cfg, Deps{Queryable: store, Appendable: store, Logs: lq, Send: h.send})
			pushLogs(t, lq, labels.FromStrings("app", "api"), "error 1", "error 2", "error 3")
			var a *types.Alert
			poll(t, 10*time.Second, func() (bool, string) {
				a = lastFiring(h, map[string]string{"app": "api"})
				return a != nil, "not notified"
			})
			require.Equal(t, tc.want, string(a.Annotations[SampleLinesAnnotation]))
			for _, p := range lq.Selects() {
				require.Equal(t, logs.Forward, p.Direction, "only the rules' own queries ran, no sample look-up")
			}
		})
	}
}
