package e2e

import (
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pharos-obs/pharos/internal/testutil"
)

const logRulesFile = `groups:
  - name: api-logs
    interval: 1s
    rules:
      - alert: ApiErrors
        expr: sum by (app) (count_over_time({app="api"} |= "error" [1m])) > 2
        for: 0s
        labels:
          severity: page
        annotations:
          summary: "{{ $labels.app }} logged {{ $value }} errors in a minute"
      - record: app:log_errors:count1m
        expr: sum by (app) (count_over_time({app="api"} |= "error" [1m]))
`

// TestLogRules runs the all-in-one with a LogQL rule file: log lines
// pushed through the Loki API fire the log alert, whose webhook
// notification carries the matching lines; the recording rule's series is
// queryable through the Prometheus API; the rules API lists the group; and
// `pharos rules check -logql` accepts the file.
func TestLogRules(t *testing.T) {
	t.Parallel()
	sink, hookURL := startWebhookSink(t)
	rulesFile := writeFile(t, "log-rules.yml", logRulesFile)

	stdout, stderr, code := runPharos(t, []string{"rules", "check", "-logql", rulesFile})
	require.Equal(t, 0, code, stdout+stderr)
	require.Contains(t, stdout, "SUCCESS: 2 rules found")
	_, _, code = runPharos(t, []string{"rules", "check", rulesFile})
	require.Equal(t, 1, code, "LogQL is not PromQL")

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
		"-rules.log-files", rulesFile, "-rules.evaluation-interval", "1s",
		"-notify.config-file", notifyFile, "-notify.allow-private-addresses",
		"-agent.publish.flush-interval", "1s"})

	now := time.Now()
	ns := func(d time.Duration) string { return strconv.FormatInt(now.Add(d).UnixNano(), 10) }
	push := fmt.Sprintf(`{"streams":[{"stream":{"app":"api"},"values":[
		["%s","error 1: upstream timeout"],
		["%s","info: request served"],
		["%s","error 2: connection refused"],
		["%s","error 3: connection reset"]]},
	{"stream":{"app":"web"},"values":[["%s","error W: not counted"]]}]}`,
		ns(-4*time.Second), ns(-3*time.Second), ns(-2*time.Second), ns(-time.Second), ns(-time.Second))
	status, body := post(t, "http://"+p.addr+"/loki/api/v1/push", "application/json", []byte(push))
	require.Equal(t, http.StatusNoContent, status, body)

	var firing webhookPayload
	testutil.Poll(t, 60*time.Second, 100*time.Millisecond, func() (bool, string) {
		var ok bool
		firing, _, ok = sink.find("firing")
		return ok, "no firing notification yet"
	})
	t.Logf("firing notification %s after start", time.Since(start).Round(time.Millisecond))
	require.Len(t, firing.Alerts, 1)
	a := firing.Alerts[0]
	require.Equal(t, "ApiErrors", a.Labels["alertname"])
	require.Equal(t, "api", a.Labels["app"])
	require.Equal(t, "page", a.Labels["severity"])
	require.Equal(t, "api logged 3 errors in a minute", a.Annotations["summary"])
	require.Equal(t, "error 1: upstream timeout\nerror 2: connection refused\nerror 3: connection reset", a.Annotations["sample_lines"],
		"the matching lines, oldest first")

	// The recording rule's result went through the pipeline to storage.
	testutil.Poll(t, 30*time.Second, 200*time.Millisecond, func() (bool, string) {
		got, err := querySamples(p.addr, `app:log_errors:count1m{app="api"}[1m]`, time.Now())
		if err != nil {
			return false, err.Error()
		}
		if len(got) == 0 {
			return false, "recording rule result not stored yet"
		}
		return got[len(got)-1].V == 3, fmt.Sprintf("samples %v", got)
	})

	// The rules API lists the log group with its LogQL.
	var rulesResp struct {
		Groups []struct {
			Name  string `json:"name"`
			Rules []struct {
				Name   string `json:"name"`
				Query  string `json:"query"`
				State  string `json:"state"`
				Health string `json:"health"`
			} `json:"rules"`
		} `json:"groups"`
	}
	require.NoError(t, getAPI(p.addr, "/api/v1/rules", nil, &rulesResp))
	require.Len(t, rulesResp.Groups, 1)
	g := rulesResp.Groups[0]
	require.Equal(t, "api-logs", g.Name)
	require.Len(t, g.Rules, 2)
	require.Equal(t, `sum by (app) (count_over_time({app="api"} |= "error" [1m])) > 2`, g.Rules[0].Query)
	require.Equal(t, "firing", g.Rules[0].State)
	require.Equal(t, "ok", g.Rules[1].Health)
	p.Stop()
}
