package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pharos-obs/pharos/internal/testutil"
)

// webhookPayload is Alertmanager's webhook payload, version 4.
type webhookPayload struct {
	Version           string            `json:"version"`
	GroupKey          string            `json:"groupKey"`
	TruncatedAlerts   uint64            `json:"truncatedAlerts"`
	Status            string            `json:"status"`
	Receiver          string            `json:"receiver"`
	GroupLabels       map[string]string `json:"groupLabels"`
	CommonLabels      map[string]string `json:"commonLabels"`
	CommonAnnotations map[string]string `json:"commonAnnotations"`
	ExternalURL       string            `json:"externalURL"`
	Alerts            []struct {
		Status       string            `json:"status"`
		Labels       map[string]string `json:"labels"`
		Annotations  map[string]string `json:"annotations"`
		StartsAt     time.Time         `json:"startsAt"`
		EndsAt       time.Time         `json:"endsAt"`
		GeneratorURL string            `json:"generatorURL"`
		Fingerprint  string            `json:"fingerprint"`
	} `json:"alerts"`
}

// webhookSink records every payload it receives, with the raw keys.
type webhookSink struct {
	mu       sync.Mutex
	payloads []webhookPayload
	keys     [][]string
}

func startWebhookSink(t *testing.T) (*webhookSink, string) {
	t.Helper()
	s := &webhookSink{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil || r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		var p webhookPayload
		var raw map[string]json.RawMessage
		if json.Unmarshal(body, &p) != nil || json.Unmarshal(body, &raw) != nil {
			http.Error(w, "bad json", http.StatusBadRequest)
			return
		}
		var keys []string
		for k := range raw {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		s.mu.Lock()
		s.payloads = append(s.payloads, p)
		s.keys = append(s.keys, keys)
		s.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	return s, srv.URL
}

func (s *webhookSink) find(status string) (webhookPayload, []string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, p := range s.payloads {
		if p.Status == status {
			return p, s.keys[i], true
		}
	}
	return webhookPayload{}, nil, false
}

// TestAlertToWebhook runs the all-in-one with a rule file and a webhook
// receiver: the alert fires, the webhook gets Alertmanager's payload, the
// rules and alerts APIs show it, and when the condition ends the webhook
// gets the resolution.
func TestAlertToWebhook(t *testing.T) {
	t.Parallel()
	target := startCountingTarget(t, 1)
	sink, hookURL := startWebhookSink(t)
	rulesFile := writeFile(t, "alerts.yml", `groups:
  - name: e2e
    interval: 1s
    rules:
      - alert: TargetUp
        expr: up{job="e2e"} == 1
        labels:
          severity: page
        annotations:
          summary: "{{ $labels.instance }} answers ({{ $value }})"
      - record: job:up:sum
        expr: sum by (job) (up)
`)
	notifyFile := writeFile(t, "notify.yml", fmt.Sprintf(`receivers:
  - name: web
    url: %s/hook
route:
  receiver: web
  group_by: [alertname]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
`, hookURL))
	start := time.Now()
	p := startPharos(t, "all", []string{"-data.dir", t.TempDir(),
		"-scrape.config-file", writeFastScrapeConfig(t, "e2e", target.addr),
		"-rules.files", rulesFile, "-rules.evaluation-interval", "1s",
		"-notify.config-file", notifyFile, "-notify.allow-private-addresses",
		"-agent.publish.flush-interval", "1s"})

	var firing webhookPayload
	var keys []string
	testutil.Poll(t, 60*time.Second, 100*time.Millisecond, func() (bool, string) {
		var ok bool
		firing, keys, ok = sink.find("firing")
		return ok, "no firing notification yet"
	})
	t.Logf("firing notification %s after start", time.Since(start).Round(time.Millisecond))
	require.Equal(t, []string{"alerts", "commonAnnotations", "commonLabels", "externalURL", "groupKey", "groupLabels",
		"receiver", "status", "truncatedAlerts", "version"}, slices.DeleteFunc(keys, func(k string) bool {
		return k == "notification_reason" || k == "routeLabels" // also sent by Alertmanager 0.28+
	}))
	require.Equal(t, "4", firing.Version)
	require.Equal(t, "web", firing.Receiver)
	require.Equal(t, map[string]string{"alertname": "TargetUp"}, firing.GroupLabels)
	require.Equal(t, `{}:{alertname="TargetUp"}`, firing.GroupKey)
	require.Len(t, firing.Alerts, 1)
	a := firing.Alerts[0]
	require.Equal(t, "firing", a.Status)
	require.Equal(t, "TargetUp", a.Labels["alertname"])
	require.Equal(t, "page", a.Labels["severity"])
	require.Equal(t, "e2e", a.Labels["job"])
	require.Equal(t, target.addr+" answers (1)", a.Annotations["summary"])
	require.NotEmpty(t, a.Fingerprint)
	// The notification links to the rule's query in the dashboard, which
	// serves it (-rules.external-url unset: the link is relative).
	require.True(t, strings.HasPrefix(a.GeneratorURL, "/ui/metrics?q="), "generatorURL %q", a.GeneratorURL)
	gen, err := httpClient.Get("http://" + p.addr + a.GeneratorURL)
	require.NoError(t, err)
	_ = gen.Body.Close()
	require.Equal(t, http.StatusOK, gen.StatusCode, "GET %s", a.GeneratorURL)
	require.False(t, a.StartsAt.IsZero())

	// The APIs show the group, the firing alert and the recording rule's
	// result, stored through the pipeline.
	var rulesResp struct {
		Groups []struct {
			Name  string `json:"name"`
			Rules []struct {
				Name  string `json:"name"`
				Type  string `json:"type"`
				State string `json:"state"`
			} `json:"rules"`
		} `json:"groups"`
	}
	require.NoError(t, getAPI(p.addr, "/api/v1/rules", nil, &rulesResp))
	require.Len(t, rulesResp.Groups, 1)
	require.Equal(t, "e2e", rulesResp.Groups[0].Name)
	require.Equal(t, "firing", rulesResp.Groups[0].Rules[0].State)
	var alertsResp struct {
		Alerts []struct {
			Labels map[string]string `json:"labels"`
			State  string            `json:"state"`
		} `json:"alerts"`
	}
	require.NoError(t, getAPI(p.addr, "/api/v1/alerts", nil, &alertsResp))
	require.Len(t, alertsResp.Alerts, 1)
	require.Equal(t, "firing", alertsResp.Alerts[0].State)
	testutil.Poll(t, 30*time.Second, 200*time.Millisecond, func() (bool, string) {
		got, err := querySamples(p.addr, `job:up:sum{job="e2e"}[1m]`, time.Now())
		if err != nil {
			return false, err.Error()
		}
		return len(got) > 0, "recording rule result not stored yet"
	})

	// The condition ends: the webhook hears that the alert resolved.
	target.freeze(t)
	testutil.Poll(t, 60*time.Second, 100*time.Millisecond, func() (bool, string) {
		_, _, ok := sink.find("resolved")
		return ok, "no resolved notification yet"
	})
	resolved, _, _ := sink.find("resolved")
	require.Equal(t, "resolved", resolved.Alerts[0].Status)
	require.False(t, resolved.Alerts[0].EndsAt.IsZero())
	p.Stop()
}

// TestRulesCheck is `promtool check rules` for Pharos: errors name the file
// and line, and the exit code says whether the files are good.
func TestRulesCheck(t *testing.T) {
	t.Parallel()
	good := writeFile(t, "good.yml", "groups:\n  - name: g\n    rules:\n      - record: a:b\n        expr: sum(up)\n")
	bad := writeFile(t, "bad.yml", "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up ==\n")
	stdout, _, code := runPharos(t, []string{"rules", "check", good})
	require.Equal(t, 0, code, stdout)
	require.Contains(t, stdout, "SUCCESS: 1 rules found")
	stdout, stderr, code := runPharos(t, []string{"rules", "check", good, bad})
	require.Equal(t, 1, code)
	require.Contains(t, stdout+stderr, bad+": 5:")
}

// startAlertmanager runs Debian's Alertmanager on a free loopback port,
// clustering off, and stops it (SIGTERM, by PID) at cleanup.
func startAlertmanager(t *testing.T) string {
	t.Helper()
	addr := freeAddr(t)
	cfg := writeFile(t, "alertmanager.yml", `route:
  receiver: blackhole
  group_wait: 1s
receivers:
  - name: blackhole
`)
	startPeer(t, "prometheus-alertmanager", addr, "--config.file="+cfg, "--storage.path="+t.TempDir(),
		"--web.listen-address="+addr, "--cluster.listen-address=", "--log.level=warn")
	return addr
}

// amtoolAlerts lists the alerts Alertmanager holds, as amtool sees them
// (active ones by default; with all, the resolved ones too).
func amtoolAlerts(t *testing.T, amAddr string, args ...string) []map[string]any {
	t.Helper()
	cmdArgs := append([]string{"alert", "query", "--alertmanager.url=http://" + amAddr, "-o", "json"}, args...)
	out, err := exec.Command("amtool", cmdArgs...).CombinedOutput()
	require.NoError(t, err, "amtool: %s", out)
	var alerts []map[string]any
	require.NoError(t, json.Unmarshal(out, &alerts), "amtool output: %s", out)
	return alerts
}

// TestAlertToAlertmanager sends a firing alert to Debian's Alertmanager
// through its v2 API, checked with amtool, and later its resolution.
func TestAlertToAlertmanager(t *testing.T) {
	t.Parallel()
	am := startAlertmanager(t)
	target := startCountingTarget(t, 1)
	rulesFile := writeFile(t, "alerts.yml", `groups:
  - name: am
    interval: 1s
    rules:
      - alert: TargetUpAM
        expr: up{job="am"} == 1
        labels:
          team: e2e
`)
	p := startPharos(t, "all", []string{"-data.dir", t.TempDir(),
		"-scrape.config-file", writeFastScrapeConfig(t, "am", target.addr),
		"-rules.files", rulesFile, "-rules.evaluation-interval", "1s", "-rules.resend-delay", "1s",
		"-alertmanager.url", "http://" + am, "-agent.publish.flush-interval", "1s"})

	testutil.Poll(t, 60*time.Second, 200*time.Millisecond, func() (bool, string) {
		for _, a := range amtoolAlerts(t, am, "alertname=TargetUpAM") {
			if labels, ok := a["labels"].(map[string]any); ok && labels["team"] == "e2e" && labels["job"] == "am" {
				return true, ""
			}
		}
		return false, "amtool does not show TargetUpAM yet"
	})

	target.freeze(t)
	testutil.Poll(t, 60*time.Second, 200*time.Millisecond, func() (bool, string) {
		active := amtoolAlerts(t, am, "alertname=TargetUpAM")
		return len(active) == 0, fmt.Sprintf("still active in Alertmanager: %v", active)
	})
	p.Stop()
}

// TestAlertSurvivesOwnerKill evaluates a rule group on one of two
// aggregators (RF=2: each holds every partition); when that aggregator is
// killed, the other takes the group, restores the alert's `for` state from
// ALERTS_FOR_STATE and keeps it firing from its original start, with at most
// one duplicate notification.
func TestAlertSurvivesOwnerKill(t *testing.T) {
	t.Parallel()
	sink, hookURL := startWebhookSink(t)
	rulesFile := writeFile(t, "alerts.yml", `groups:
  - name: handover
    interval: 1s
    rules:
      - alert: SeriesPresent
        expr: count(delivery_series) > 0
        for: 4s
`)
	notifyFile := writeFile(t, "notify.yml", fmt.Sprintf(`receivers:
  - name: web
    url: %s/hook
route:
  receiver: web
  group_by: [alertname]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
`, hookURL))
	f := newClusterFixture(t, 4, 2, 5)
	// Prometheus restores `for` state only for rules whose `for` is at least
	// the grace period (default 10m).
	alerting := []string{"-rules.files", rulesFile, "-rules.evaluation-interval", "1s", "-rules.for-grace-period", "1s",
		"-notify.config-file", notifyFile, "-notify.allow-private-addresses"}
	start := func(name string) *pharosProc {
		if f.dirs[name] == "" {
			f.dirs[name] = t.TempDir()
		}
		args := append([]string{"-target=aggregator", "-data.dir", f.dirs[name], "-ring.instance-id", name}, f.common()...)
		p := startPharos(t, name, append(append(args, alerting...), f.join()...))
		if f.seed == "" {
			ev, ok := p.findLog(func(ev logEvent) bool { return ev.Msg == "gossip listening" })
			require.True(t, ok)
			f.seed = ev.Address
		}
		f.aggs[name] = p
		return p
	}
	start("agg-1")
	start("agg-2")
	agent := f.startAgent()
	f.requireBalanced("agg-1", "agg-2")

	type apiRules struct {
		Groups []struct {
			Rules []struct {
				State  string `json:"state"`
				Alerts []struct {
					ActiveAt time.Time `json:"activeAt"`
					State    string    `json:"state"`
				} `json:"alerts"`
			} `json:"rules"`
		} `json:"groups"`
	}
	// firingOn returns the alert's start as the aggregator's API shows it,
	// if the aggregator owns the group and the alert fires there.
	firingOn := func(name string) (time.Time, bool) {
		var r apiRules
		if getAPI(f.aggs[name].addr, "/api/v1/rules", nil, &r) != nil || len(r.Groups) == 0 {
			return time.Time{}, false
		}
		for _, a := range r.Groups[0].Rules[0].Alerts {
			if a.State == "firing" {
				return a.ActiveAt, true
			}
		}
		return time.Time{}, false
	}
	var owner, other string
	var activeAt time.Time
	testutil.Poll(t, 60*time.Second, 200*time.Millisecond, func() (bool, string) {
		for _, n := range []string{"agg-1", "agg-2"} {
			if at, ok := firingOn(n); ok {
				owner, activeAt = n, at
				return true, ""
			}
		}
		return false, "the alert fires on no aggregator yet"
	})
	other = map[string]string{"agg-1": "agg-2", "agg-2": "agg-1"}[owner]
	testutil.Poll(t, 30*time.Second, 100*time.Millisecond, func() (bool, string) {
		_, _, ok := sink.find("firing")
		return ok, "no firing notification yet"
	})
	t.Logf("%s owns the group; alert active since %s", owner, activeAt.Format(time.RFC3339Nano))

	// ALERTS_FOR_STATE goes through the publisher, which flushes every 5 s:
	// what the owner wrote in its last seconds dies with it (kill -9 loses
	// unflushed batches), so let some of it reach the stream first.
	testutil.Poll(t, 30*time.Second, 100*time.Millisecond, func() (bool, string) {
		return time.Since(activeAt) > 12*time.Second, "waiting for the for state to be published"
	})
	killed := time.Now()
	f.aggs[owner].Kill()
	var restoredAt time.Time
	testutil.Poll(t, 60*time.Second, 200*time.Millisecond, func() (bool, string) {
		at, ok := firingOn(other)
		restoredAt = at
		return ok, other + " does not show the alert firing yet"
	})
	t.Logf("%s fires the alert %s after the kill, active since %s", other, time.Since(killed).Round(time.Millisecond), restoredAt.Format(time.RFC3339Nano))
	require.WithinDuration(t, activeAt, restoredAt, 2*time.Second, "the for state was restored, not restarted")

	// Let the new owner's notifier do its part, then count.
	testutil.Poll(t, 30*time.Second, 200*time.Millisecond, func() (bool, string) {
		sink.mu.Lock()
		defer sink.mu.Unlock()
		return len(sink.payloads) >= 2, "waiting for the new owner's notification"
	})
	sink.mu.Lock()
	firing := 0
	for _, p := range sink.payloads {
		if p.Status == "firing" {
			firing++
		}
	}
	sink.mu.Unlock()
	require.LessOrEqual(t, firing, 2, "at most one duplicate notification")
	agent.Stop()
	f.aggs[other].Stop()
}
