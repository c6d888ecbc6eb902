package rules

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	promrules "github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"

	"github.com/pharos-obs/pharos/internal/tenant"
	"github.com/pharos-obs/pharos/query/logql/logqltest"
	"github.com/pharos-obs/pharos/storage/logs"
	metricstore "github.com/pharos-obs/pharos/storage/metrics"
)

// tenantStore is the metrics store as the aggregator writes into it: a
// series appended in the context of a tenant other than the default one
// gets the tenant label (the pipeline carries the context's tenant from
// the publisher to the aggregator, which sets it). Reads are scoped by the
// store itself.
type tenantStore struct{ *metricstore.Store }

func (s tenantStore) AppenderV2(ctx context.Context) storage.AppenderV2 {
	return &tenantAppender{AppenderV2: s.Store.AppenderV2(ctx), value: metricstore.TenantValue(tenant.FromContext(ctx))}
}

type tenantAppender struct {
	storage.AppenderV2
	value string
}

func (a *tenantAppender) Append(_ storage.SeriesRef, ls labels.Labels, st, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, opts storage.AOptions) (storage.SeriesRef, error) {
	if a.value != "" {
		ls = labels.NewBuilder(ls).Set(metricstore.TenantLabel, a.value).Labels()
	}
	return a.AppenderV2.Append(0, ls, st, t, v, h, fh, opts)
}

// appendAs appends one sample as tenant id.
func appendAs(t *testing.T, s tenantStore, id string, ls labels.Labels, ts time.Time, v float64) {
	t.Helper()
	app := s.AppenderV2(tenant.WithContext(context.Background(), id))
	_, err := app.Append(0, ls, 0, ts.UnixMilli(), v, nil, nil, storage.AOptions{})
	require.NoError(t, err)
	require.NoError(t, app.Commit())
}

// seriesAs is series as tenant id reads it.
func seriesAs(t *testing.T, s storage.Queryable, id, name string) map[string][]float64 {
	t.Helper()
	q, err := s.Querier(0, math.MaxInt64)
	require.NoError(t, err)
	defer q.Close()
	ss := q.Select(tenant.WithContext(context.Background(), id), false, nil, labels.MustNewMatcher(labels.MatchEqual, labels.MetricName, name))
	out := map[string][]float64{}
	for ss.Next() {
		it := ss.At().Iterator(nil)
		var vs []float64
		for it.Next() != 0 {
			_, v := it.At()
			vs = append(vs, v)
		}
		require.NoError(t, it.Err())
		out[ss.At().Labels().String()] = vs
	}
	require.NoError(t, ss.Err())
	return out
}

// lastOf returns the last value of the series ls in got, and whether it
// has one.
func lastOf(got map[string][]float64, ls labels.Labels) (float64, bool) {
	vs := got[ls.String()]
	if len(vs) == 0 {
		return 0, false
	}
	return vs[len(vs)-1], true
}

// writeTree writes files (path relative to dir → content), making their
// directories.
func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
	}
}

// recordGroup is a rule file with one group of one recording rule.
func recordGroup(group, record, expr string) string {
	return fmt.Sprintf("groups:\n  - name: %s\n    rules:\n      - record: %s\n        expr: %s\n", group, record, expr)
}

// tenantGroupNames returns the names of tenant id's groups, in API order.
func tenantGroupNames(m *Manager, id string) []string {
	names := []string{}
	for _, g := range m.TenantGroups(id) {
		names = append(names, g.Name())
	}
	return names
}

// tenantMetrics returns the values of a gauge by its tenant label.
func tenantMetrics(t *testing.T, reg *prometheus.Registry, name string) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			require.Len(t, m.GetLabel(), 1)
			require.Equal(t, "tenant", m.GetLabel()[0].GetName())
			out[m.GetLabel()[0].GetValue()] = m.GetGauge().GetValue()
		}
	}
	return out
}

func TestTenantGroupKey(t *testing.T) {
	require.Equal(t, GroupKey("f.yml", "g"), TenantGroupKey(tenant.Default, "f.yml", "g"), "the default tenant's groups keep their keys")
	require.Equal(t, GroupKey("f.yml", "g"), TenantGroupKey("", "f.yml", "g"))
	a, b := TenantGroupKey("team-a", "f.yml", "g"), TenantGroupKey("team-b", "f.yml", "g")
	require.NotEqual(t, a, b, "the same group of two tenants has two keys")
	require.NotEqual(t, GroupKey("f.yml", "g"), a)
}

// TestTenantsDirLayout loads a tenants directory with everything a real
// one may hold: tenants with PromQL and LogQL files, one named like the
// default tenant, one linked, one empty, and what is not rules.
func TestTenantsDirLayout(t *testing.T) {
	store := openStore(t)
	dir := t.TempDir()
	const broken = "groups:\n  - name: x\n    rules:\n      - record: x\n        expr: vector(\n"
	writeTree(t, dir, map[string]string{
		"team-a/rules.yml":       recordGroup("g", "a_g", "vector(1)"),
		"team-a/extra.yaml":      recordGroup("h", "a_h", "vector(1)"),
		"team-a/logs/logs.yml":   recordGroup("lg", "a_lg", `sum(count_over_time({app="x"}[1m]))`),
		"team-a/notes.txt":       "not rules",
		"team-a/.swap.yml":       broken, // hidden
		"team-a/sub/nested.yml":  broken, // not read: one level only
		"team-b/rules.yml":       recordGroup("g", "b_g", "vector(2)"),
		"anonymous/default.yml":  recordGroup("anon", "anon", "vector(3)"),
		"empty/README":           "no rules here",
		"..data/team-x/rule.yml": broken, // Kubernetes volume internals
		"README.md":              "a file, not a tenant",
	})
	linked := t.TempDir()
	writeTree(t, linked, map[string]string{"rules.yml": recordGroup("c", "c_g", "vector(4)")})
	require.NoError(t, os.Symlink(linked, filepath.Join(dir, "team-c")))
	def := writeFile(t, t.TempDir(), "default.yml", recordGroup("def", "def", "vector(5)"))

	cfg := testConfig(def)
	cfg.TenantsDir = dir
	m, reg := startManager(t, cfg, Deps{Queryable: store, Appendable: store, Logs: logqltest.New()})

	require.Equal(t, []string{"h", "lg", "g"}, tenantGroupNames(m, "team-a"), "by file: extra.yaml, logs/logs.yml, rules.yml")
	require.Equal(t, []string{"g"}, tenantGroupNames(m, "team-b"))
	require.Equal(t, []string{"c"}, tenantGroupNames(m, "team-c"))
	require.Empty(t, tenantGroupNames(m, "empty"))
	require.Empty(t, tenantGroupNames(m, "..data"))
	defaults := tenantGroupNames(m, tenant.Default)
	slices.Sort(defaults)
	require.Equal(t, []string{"anon", "def"}, defaults, "-rules.files and the directory named like the default tenant")
	require.Len(t, m.Groups(), 7)

	require.Equal(t, map[string]float64{"anonymous": 2, "team-a": 3, "team-b": 1, "team-c": 1, "empty": 0}, tenantMetrics(t, reg, "pharos_rules_groups"))
	require.Equal(t, map[string]float64{"anonymous": 2, "team-a": 3, "team-b": 1, "team-c": 1, "empty": 0}, tenantMetrics(t, reg, "pharos_rules_files"))
	require.Equal(t, map[string]float64{"anonymous": 2, "team-a": 3, "team-b": 1, "team-c": 1, "empty": 0}, tenantMetrics(t, reg, "pharos_rules_owned_groups"))
	require.Empty(t, CheckTenantsDir(dir))
}

// TestTenantsDirErrors: what does not load fails New (and Reload, which
// shares the load) with an error naming the field and the path, and the
// file and line for rule files.
func TestTenantsDirErrors(t *testing.T) {
	store := openStore(t)
	for _, tc := range []struct {
		name  string
		files map[string]string
		noLog bool   // no log store
		glob  string // -rules.files, relative to the directory
		want  []string
	}{
		{
			name:  "tenant name",
			files: map[string]string{"team a/rules.yml": recordGroup("g", "r", "vector(1)"), "team|b/rules.yml": recordGroup("g", "r", "vector(1)")},
			want: []string{
				`rules.tenants_dir: {dir}/team a: the directory's name is not a tenant ID: invalid tenant ID "team a": byte 4`,
				`rules.tenants_dir: {dir}/team|b: the directory's name is not a tenant ID: invalid tenant ID: multi-tenant queries are not supported`,
			},
		},
		{
			name:  "PromQL file",
			files: map[string]string{"team-a/rules.yml": "groups:\n  - name: g\n    rules:\n      - record: r\n        expr: vector(\n"},
			want:  []string{"{dir}/team-a/rules.yml: 5:15: ", "could not parse expression"},
		},
		{
			name:  "LogQL file",
			files: map[string]string{"team-a/logs/l.yaml": "groups:\n  - name: g\n    rules:\n      - alert: Down\n        expr: up == 0\n"},
			want:  []string{"{dir}/team-a/logs/l.yaml: 5:15: "},
		},
		{
			name:  "log rules without a log store",
			files: map[string]string{"team-a/logs/l.yaml": recordGroup("g", "r", `sum(count_over_time({a="b"}[1m]))`)},
			noLog: true,
			want:  []string{"rules.tenants_dir: {dir}/team-a/logs: log rules need the log store"},
		},
		{
			name:  "also matched by a glob",
			files: map[string]string{"team-a/rules.yml": recordGroup("g", "r", "vector(1)")},
			glob:  "*/*.yml",
			want:  []string{"{dir}/team-a/rules.yml: matched by both rules.files and rules.tenants_dir"},
		},
		{
			name: "missing directory",
			want: []string{"rules.tenants_dir: open {dir}/missing: no such file or directory"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeTree(t, dir, tc.files)
			cfg := testConfig()
			cfg.TenantsDir = dir
			if tc.files == nil {
				cfg.TenantsDir = filepath.Join(dir, "missing")
			}
			if tc.glob != "" {
				cfg.Files = []string{filepath.Join(dir, tc.glob)}
			}
			deps := Deps{Queryable: store, Appendable: store, Logs: logqltest.New()}
			if tc.noLog {
				deps.Logs = nil
			}
			_, err := New(cfg, deps, testLogger(t), nil)
			require.ErrorIs(t, err, ErrInvalidRules)
			for _, w := range tc.want {
				require.Contains(t, err.Error(), replaceDir(w, dir))
			}
			if !tc.noLog && tc.glob == "" {
				// pharos config check reports the same.
				errs := CheckTenantsDir(cfg.TenantsDir)
				require.NotEmpty(t, errs)
				require.Contains(t, fmt.Sprint(errs), replaceDir(tc.want[0], dir))
			}
		})
	}
}

func replaceDir(s, dir string) string { return strings.ReplaceAll(s, "{dir}", dir) }

// TestTenantsDirReload: a tenant directory that appears on reload starts
// its groups, one that goes away stops them (and its rules manager marks
// their series stale, as for any group removed), and a bad directory
// keeps the rules in use.
func TestTenantsDirReload(t *testing.T) {
	store := tenantStore{openStore(t)}
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"team-a/rules.yml": recordGroup("ga", "a_rec", "vector(1)")})
	cfg := testConfig()
	cfg.TenantsDir = dir
	m, reg := startManager(t, cfg, Deps{Queryable: store, Appendable: store})
	require.Equal(t, []string{"ga"}, tenantGroupNames(m, "team-a"))
	aRec := labels.FromStrings("__name__", "a_rec")
	poll(t, 10*time.Second, func() (bool, string) {
		v, ok := lastOf(seriesAs(t, store, "team-a", "a_rec"), aRec)
		return ok && v == 1, fmt.Sprintf("team-a's a_rec: %v", seriesAs(t, store, "team-a", "a_rec"))
	})
	require.Empty(t, series(t, store, "a_rec"), "written as team-a, not as the default tenant")

	// team-b appears.
	writeTree(t, dir, map[string]string{"team-b/rules.yml": recordGroup("gb", "b_rec", "vector(2)")})
	require.NoError(t, m.Reload())
	require.Equal(t, []string{"gb"}, tenantGroupNames(m, "team-b"))
	require.Equal(t, map[string]float64{"anonymous": 0, "team-a": 1, "team-b": 1}, tenantMetrics(t, reg, "pharos_rules_groups"))
	poll(t, 10*time.Second, func() (bool, string) {
		got := seriesAs(t, store, "team-b", "b_rec")
		v, ok := lastOf(got, labels.FromStrings("__name__", "b_rec"))
		return ok && v == 2, fmt.Sprintf("team-b's b_rec: %v", got)
	})

	// A directory that is not a tenant: the rules in use stay.
	require.NoError(t, os.Mkdir(filepath.Join(dir, "no tenant"), 0o755))
	err := m.Reload()
	require.ErrorIs(t, err, ErrInvalidRules)
	require.ErrorContains(t, err, "rules.tenants_dir: "+filepath.Join(dir, "no tenant")+": ")
	require.Equal(t, []string{"gb"}, tenantGroupNames(m, "team-b"))
	requireMetric(t, reg, "pharos_rules_last_reload_successful", 0)
	require.NoError(t, os.Remove(filepath.Join(dir, "no tenant")))

	// team-a goes: its group stops, its series end, its metrics go.
	require.NoError(t, os.RemoveAll(filepath.Join(dir, "team-a")))
	require.NoError(t, m.Reload())
	require.Empty(t, tenantGroupNames(m, "team-a"))
	require.Equal(t, []string{"gb"}, tenantGroupNames(m, "team-b"))
	require.Equal(t, map[string]float64{"anonymous": 0, "team-b": 1}, tenantMetrics(t, reg, "pharos_rules_groups"))
	require.Equal(t, map[string]float64{"anonymous": 0, "team-b": 1}, tenantMetrics(t, reg, "pharos_rules_owned_groups"))
	poll(t, 10*time.Second, func() (bool, string) {
		got := seriesAs(t, store, "team-a", "a_rec")
		v, _ := lastOf(got, aRec)
		return value.IsStaleNaN(v), fmt.Sprintf("team-a's a_rec: %v", got)
	})

	// And comes back.
	writeTree(t, dir, map[string]string{"team-a/rules.yml": recordGroup("ga", "a_rec", "vector(1)")})
	require.NoError(t, m.Reload())
	require.Equal(t, []string{"ga"}, tenantGroupNames(m, "team-a"))
	poll(t, 10*time.Second, func() (bool, string) {
		v, ok := lastOf(seriesAs(t, store, "team-a", "a_rec"), aRec)
		return ok && v == 1, "team-a's a_rec not written again"
	})
}

const tenantRules = `groups:
  - name: g
    rules:
      - record: input:sum
        expr: sum(tenant_input)
      - alert: Always
        expr: vector(1)
        labels:
          tenant: spoofed
`

const tenantLogRules = `groups:
  - name: lg
    rules:
      - record: log:lines
        expr: sum(count_over_time({app="x"}[1m]))
      - alert: LogErrors
        expr: sum by (app) (count_over_time({app="x"} |= "error" [1m])) > 0
`

// TestTenantRulesReadAndWriteTheirTenant runs the same group (same file
// name, same group name) for the default tenant, team-a and team-b over
// one store holding each tenant's input: each reads its own series and
// logs, writes its results and ALERTS as itself, is owned under its own
// key, is listed by the API to itself only, and team-a's notifications
// carry tenant="team-a".
func TestTenantRulesReadAndWriteTheirTenant(t *testing.T) {
	store := tenantStore{openStore(t)}
	lq := logqltest.New()
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{
		"team-a/rules.yml":     tenantRules,
		"team-a/logs/logs.yml": tenantLogRules,
		"team-b/rules.yml":     tenantRules,
	})
	def := writeFile(t, t.TempDir(), "rules.yml", tenantRules)
	fileA, fileB := filepath.Join(dir, "team-a", "rules.yml"), filepath.Join(dir, "team-b", "rules.yml")
	own := newOwner(GroupKey(def, "g"), TenantGroupKey("team-a", fileA, "g"), TenantGroupKey("team-a", filepath.Join(dir, "team-a", "logs", "logs.yml"), "lg"))
	cfg := testConfig(def)
	cfg.TenantsDir = dir
	h := &hook{}
	m, _ := startManager(t, cfg, Deps{Queryable: store, Appendable: store, Logs: lq, Owns: own.owns, Send: h.send})

	input := labels.FromStrings("__name__", "tenant_input", "job", "j")
	for id, v := range map[string]float64{tenant.Default: 1000, "team-a": 1, "team-b": 100} {
		appendAs(t, store, id, input, time.Now().Add(-time.Minute), v)
	}
	end := time.Now().Add(-time.Second).UnixNano()
	require.NoError(t, lq.Append(tenant.Key("team-a"), []logs.Stream{{Labels: labels.FromStrings("app", "x"), Entries: []logs.Entry{
		{Timestamp: end - 2e6, Line: "team-a error"}, {Timestamp: end - 1e6, Line: "team-a ok"},
	}}}))
	require.NoError(t, lq.Append("", []logs.Stream{{Labels: labels.FromStrings("app", "x"), Entries: []logs.Entry{
		{Timestamp: end - 3e6, Line: "default error"}, {Timestamp: end - 2e6, Line: "default error"}, {Timestamp: end - 1e6, Line: "default error"},
	}}}))

	sum := labels.FromStrings("__name__", "input:sum")
	poll(t, 10*time.Second, func() (bool, string) {
		d, okD := lastOf(seriesAs(t, store, tenant.Default, "input:sum"), sum)
		a, okA := lastOf(seriesAs(t, store, "team-a", "input:sum"), sum)
		return okD && okA && d == 1000 && a == 1, fmt.Sprintf("default %v, team-a %v", d, a)
	})
	poll(t, 10*time.Second, func() (bool, string) {
		got := seriesAs(t, store, "team-a", "log:lines")
		v, ok := lastOf(got, labels.FromStrings("__name__", "log:lines"))
		return ok && v == 2, fmt.Sprintf("team-a's log:lines: %v", got)
	})
	require.Empty(t, series(t, store, "log:lines"), "team-a's log rule writes as team-a")

	// team-b's group has the same file name and group name as team-a's
	// but its own key: not owned, not loaded, nothing written.
	require.Empty(t, tenantGroupNames(m, "team-b"))
	require.Empty(t, seriesAs(t, store, "team-b", "input:sum"))
	own.set(TenantGroupKey("team-b", fileB, "g"), true)
	m.OwnershipChanged()
	poll(t, 10*time.Second, func() (bool, string) {
		got := seriesAs(t, store, "team-b", "input:sum")
		v, ok := lastOf(got, sum)
		return ok && v == 100, fmt.Sprintf("team-b's input:sum: %v", got)
	})

	// ALERTS are each tenant's own.
	for _, id := range []string{tenant.Default, "team-a"} {
		poll(t, 10*time.Second, func() (bool, string) {
			got := seriesAs(t, store, id, "ALERTS")
			want := labels.FromStrings("__name__", "ALERTS", "alertname", "Always", "alertstate", "firing", "tenant", "spoofed")
			_, ok := lastOf(got, want)
			return ok, fmt.Sprintf("%s's ALERTS: %v", id, got)
		})
	}
	for name := range seriesAs(t, store, tenant.Default, "ALERTS") {
		require.NotContains(t, name, "LogErrors", "team-a's log alert is not the default tenant's")
	}

	// Notifications: team-a's carry its tenant, whatever the rule says,
	// and its log alert's sample lines are team-a's; the default tenant's
	// are as written.
	poll(t, 10*time.Second, func() (bool, string) {
		return lastFiring(h, map[string]string{"alertname": "LogErrors"}) != nil, "LogErrors not notified"
	})
	logAlert := lastFiring(h, map[string]string{"alertname": "LogErrors"})
	require.Equal(t, "team-a", string(logAlert.Labels[TenantLabel]))
	require.Equal(t, "team-a error", string(logAlert.Annotations[SampleLinesAnnotation]))
	var byTenant []string
	for _, a := range h.all() {
		if a.Labels["alertname"] == "Always" {
			byTenant = append(byTenant, string(a.Labels[TenantLabel]))
		}
	}
	require.Contains(t, byTenant, "team-a")
	require.Contains(t, byTenant, "spoofed", "the default tenant's alert is sent as the rule labels it")
	require.True(t, strings.HasPrefix(logAlert.GeneratorURL, "http://pharos.example.com:8080/ui/logs?q="), "generator URLs as for the default tenant: %s", logAlert.GeneratorURL)

	// The API shows each tenant its own groups and alerts.
	type apiGroup struct {
		Name string `json:"name"`
		File string `json:"file"`
	}
	groupsAs := func(id string) []apiGroup {
		var resp struct {
			Data struct {
				Groups []apiGroup `json:"groups"`
			} `json:"data"`
		}
		getAs(t, RulesHandler(m), id, &resp)
		return resp.Data.Groups
	}
	alertsAs := func(id string) []string {
		var resp struct {
			Data struct {
				Alerts []struct {
					Labels map[string]string `json:"labels"`
				} `json:"alerts"`
			} `json:"data"`
		}
		getAs(t, AlertsHandler(m), id, &resp)
		var names []string
		for _, a := range resp.Data.Alerts {
			names = append(names, a.Labels["alertname"])
		}
		slices.Sort(names)
		return names
	}
	require.Equal(t, []apiGroup{{"g", def}}, groupsAs(tenant.Default))
	require.Equal(t, []apiGroup{{"lg", filepath.Join(dir, "team-a", "logs", "logs.yml")}, {"g", fileA}}, groupsAs("team-a"))
	require.Equal(t, []apiGroup{{"g", fileB}}, groupsAs("team-b"))
	require.Empty(t, groupsAs("team-c"))
	require.Equal(t, []string{"Always"}, alertsAs(tenant.Default))
	require.Equal(t, []string{"Always", "LogErrors"}, alertsAs("team-a"))
	require.Empty(t, alertsAs("team-c"))
}

// getAs serves GET on h as tenant id and decodes the answer into v.
func getAs(t *testing.T, h http.Handler, id string, v any) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "/api/v1/x", nil)
	req = req.WithContext(tenant.WithContext(req.Context(), id))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), v))
}

// TestTenantForStateSurvivesRestart: a tenant's alert restores its `for`
// state from the tenant's own ALERTS_FOR_STATE after a restart.
func TestTenantForStateSurvivesRestart(t *testing.T) {
	const hold = 4 * time.Second
	store := tenantStore{openStore(t)}
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"team-a/held.yml": forStateRules})
	cfg := testConfig()
	cfg.TenantsDir = dir
	appendAs(t, store, "team-a", labels.FromStrings("__name__", "test_metric", "instance", "a"), time.Now().Add(-time.Minute), 42)

	first, _ := startManager(t, cfg, Deps{Queryable: store, Appendable: store})
	var fired *promrules.Alert
	poll(t, 20*time.Second, func() (bool, string) {
		fired = activeAlert(t, first)
		return fired != nil && fired.State == promrules.StateFiring && time.Since(fired.FiredAt) > 1500*time.Millisecond, describe(fired)
	})
	require.Len(t, seriesAs(t, store, "team-a", "ALERTS_FOR_STATE"), 1)
	require.Empty(t, series(t, store, "ALERTS_FOR_STATE"), "the state is team-a's")
	stopManager(t, first)

	started := time.Now()
	second, _ := startManager(t, cfg, Deps{Queryable: store, Appendable: store})
	var again *promrules.Alert
	poll(t, 20*time.Second, func() (bool, string) {
		again = activeAlert(t, second)
		return again != nil && again.State == promrules.StateFiring, describe(again)
	})
	require.Equal(t, fired.ActiveAt.Unix(), again.ActiveAt.Unix(), "active time restored from team-a's ALERTS_FOR_STATE")
	require.Less(t, again.FiredAt.Sub(started), hold, "fired without waiting a whole `for` again")
}
