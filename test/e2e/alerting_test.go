package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
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
	require.NotEmpty(t, a.GeneratorURL)
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
	bin, err := exec.LookPath("prometheus-alertmanager")
	require.NoError(t, err, "Debian's prometheus-alertmanager is required (make test installs it)")
	addr := freeAddr(t)
	cfg := writeFile(t, "alertmanager.yml", `route:
  receiver: blackhole
  group_wait: 1s
receivers:
  - name: blackhole
`)
	logPath := filepath.Join(t.TempDir(), "alertmanager.log")
	logf, err := os.Create(logPath)
	require.NoError(t, err)
	defer logf.Close()
	cmd := exec.Command(bin, "--config.file="+cfg, "--storage.path="+t.TempDir(),
		"--web.listen-address="+addr, "--cluster.listen-address=", "--log.level=warn")
	cmd.Stdout, cmd.Stderr = logf, logf
	require.NoError(t, cmd.Start())
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			raw, _ := os.ReadFile(logPath)
			t.Logf("alertmanager log:\n%s", raw)
		}
	})
	testutil.Poll(t, 60*time.Second, 100*time.Millisecond, func() (bool, string) {
		select {
		case <-exited:
			raw, _ := os.ReadFile(logPath)
			t.Fatalf("alertmanager exited: %s", raw)
		default:
		}
		resp, err := httpClient.Get("http://" + addr + "/-/ready")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, "alertmanager not ready: " + resp.Status
	})
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
