package rules

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/types"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	promrules "github.com/prometheus/prometheus/rules"
	"github.com/stretchr/testify/require"
)

const alertRules = `groups:
  - name: test
    rules:
      - alert: HighValue
        expr: test_metric > 10
        for: 2s
        labels:
          severity: page
          instance_copy: "{{ $labels.instance }}"
        annotations:
          summary: "value is {{ $value }} on {{ $labels.instance }}"
`

func TestAlertPendingFiringResolved(t *testing.T) {
	store := openStore(t)
	f := writeFile(t, t.TempDir(), "alerts.yml", alertRules)
	h := &hook{}
	m, _ := startManager(t, testConfig(f), Deps{Queryable: store, Appendable: store, Send: h.send})

	series := labels.FromStrings("__name__", "test_metric", "instance", "a", "job", "j")
	// A minute back, so that every evaluation from now on sees it within
	// the lookback.
	appendSample(t, store, series, time.Now().Add(-time.Minute), 42)

	poll(t, 10*time.Second, func() (bool, string) {
		sent := h.all() // before the state: what was sent while pending
		a := activeAlert(t, m)
		if a == nil || a.State != promrules.StatePending {
			return false, describe(a)
		}
		require.Empty(t, sent, "a pending alert is not notified")
		return true, ""
	})
	poll(t, 10*time.Second, func() (bool, string) {
		a := activeAlert(t, m)
		return a != nil && a.State == promrules.StateFiring, describe(a)
	})

	var firing *types.Alert
	poll(t, 10*time.Second, func() (bool, string) {
		as := h.all()
		if len(as) == 0 {
			return false, "hook got nothing"
		}
		firing = as[0]
		return true, ""
	})
	require.Equal(t, model.LabelSet{
		"alertname":     "HighValue",
		"instance":      "a",
		"job":           "j",
		"severity":      "page",
		"instance_copy": "a",
	}, firing.Labels)
	require.Equal(t, model.LabelSet{"summary": "value is 42 on a"}, firing.Annotations)
	require.False(t, firing.StartsAt.IsZero())
	require.True(t, firing.EndsAt.After(time.Now()), "a firing alert ends in the future: %s", firing.EndsAt)
	require.Equal(t, "http://pharos.example.com:8080/ui/metrics?q=test_metric+%3E+10&range=1h", firing.GeneratorURL)

	// The series ends: the alert resolves and the hook hears of it.
	appendSample(t, store, series, time.Now(), staleNaN)
	poll(t, 10*time.Second, func() (bool, string) {
		as := h.all()
		last := as[len(as)-1]
		return !last.EndsAt.After(time.Now()) && last.Labels["alertname"] == "HighValue",
			fmt.Sprintf("last notification ends at %s", last.EndsAt)
	})
	require.Empty(t, m.Alerts())
}

func TestRecordingRuleResultIsAppended(t *testing.T) {
	store := openStore(t)
	f := writeFile(t, t.TempDir(), "rec.yml", `groups:
  - name: rec
    rules:
      - record: job:test_metric:sum
        expr: sum by (job) (test_metric)
        labels:
          source: rule
`)
	startManager(t, testConfig(f), Deps{Queryable: store, Appendable: store})
	appendSample(t, store, labels.FromStrings("__name__", "test_metric", "instance", "a", "job", "j"), time.Now().Add(-time.Minute), 2)
	appendSample(t, store, labels.FromStrings("__name__", "test_metric", "instance", "b", "job", "j"), time.Now().Add(-time.Minute), 3)

	want := labels.FromStrings("__name__", "job:test_metric:sum", "job", "j", "source", "rule").String()
	poll(t, 10*time.Second, func() (bool, string) {
		got := series(t, store, "job:test_metric:sum")
		vs := got[want]
		return len(vs) > 0 && vs[len(vs)-1] == 5, fmt.Sprintf("series: %v", got)
	})
}

func TestReloadKeepsOldRulesOnError(t *testing.T) {
	store := openStore(t)
	dir := t.TempDir()
	f := writeFile(t, dir, "a.yml", "groups:\n  - name: a\n    rules:\n      - record: first\n        expr: vector(1)\n")
	m, reg := startManager(t, testConfig(filepath.Join(dir, "*.yml")), Deps{Queryable: store, Appendable: store})
	require.Equal(t, []string{"a"}, groupNames(m))

	rulesOf := func() []string {
		var names []string
		for _, g := range m.Groups() {
			for _, r := range g.Rules() {
				names = append(names, g.Name()+"/"+r.Name())
			}
		}
		return names
	}

	// Broken: the error names the file and the line; the rules stay.
	writeFile(t, dir, "a.yml", "groups:\n  - name: a\n    rules:\n      - record: second\n        expr: vector(\n")
	err := m.Reload()
	require.ErrorIs(t, err, ErrInvalidRules)
	require.Contains(t, err.Error(), f+": 5:15: ")
	require.Contains(t, err.Error(), "could not parse expression")
	require.Equal(t, []string{"a/first"}, rulesOf())
	requireMetric(t, reg, "pharos_rules_last_reload_successful", 0)

	// A second file, itself broken: both are named.
	g := writeFile(t, dir, "b.yml", "groups:\n  - name: b\n    rules:\n      - alert: B\n        expr: up\n        annotations:\n          x: '{{ '\n")
	err = m.Reload()
	require.Contains(t, err.Error(), f+": 5:15: ")
	require.Contains(t, err.Error(), g+": 7:")
	require.Equal(t, []string{"a/first"}, rulesOf())

	// Fixed: the new rules, and the new file, are used.
	writeFile(t, dir, "a.yml", "groups:\n  - name: a\n    rules:\n      - record: second\n        expr: vector(2)\n")
	writeFile(t, dir, "b.yml", "groups:\n  - name: b\n    rules:\n      - alert: B\n        expr: up\n")
	require.NoError(t, m.Reload())
	require.Equal(t, []string{"a/second", "b/B"}, rulesOf())
	requireMetric(t, reg, "pharos_rules_last_reload_successful", 1)
	requireMetric(t, reg, "pharos_rules_groups", 2)

	// The reloaded group is evaluated.
	poll(t, 10*time.Second, func() (bool, string) {
		got := series(t, store, "second")
		return len(got) == 1, fmt.Sprintf("series: %v", got)
	})
}

func TestNewRefusesBrokenRulesAndMissingDeps(t *testing.T) {
	store := openStore(t)
	f := writeFile(t, t.TempDir(), "bad.yml", "groups:\n  - name: a\n    rules:\n      - alert: X\n        expr: up\n        for: soon\n")
	_, err := New(testConfig(f), Deps{Queryable: store, Appendable: store}, testLogger(t), nil)
	require.ErrorIs(t, err, ErrInvalidRules)
	require.Contains(t, err.Error(), f+": 6:")

	_, err = New(testConfig(), Deps{Appendable: store}, testLogger(t), nil)
	require.ErrorIs(t, err, ErrMissingDependency)
	_, err = New(testConfig(), Deps{Queryable: store}, testLogger(t), nil)
	require.ErrorIs(t, err, ErrMissingDependency)

	cfg := testConfig()
	cfg.EvaluationInterval = 0
	_, err = New(cfg, Deps{Queryable: store, Appendable: store}, testLogger(t), nil)
	require.ErrorContains(t, err, "rules.evaluation_interval")
}

// A manager that is built but never started holds no goroutines (goleak
// checks at the end), and one stopped right after start stops cleanly.
func TestStartStopWithoutEvaluations(t *testing.T) {
	store := openStore(t)
	f := writeFile(t, t.TempDir(), "a.yml", alertRules)
	newManager(t, testConfig(f), Deps{Queryable: store, Appendable: store})
	m, _ := startManager(t, testConfig(f), Deps{Queryable: store, Appendable: store})
	m.OwnershipChanged()
	stopManager(t, m)
	require.NoError(t, m.Reload(), "reloading a stopped manager only reads the files")
	m.OwnershipChanged()
}
