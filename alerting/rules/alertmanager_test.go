package rules

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// postedAlert is an alert of Alertmanager's v2 API (PostableAlert).
type postedAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
}

// fakeAlertmanager stands in for Alertmanager's v2 API on a random port.
type fakeAlertmanager struct {
	srv *httptest.Server

	mu     sync.Mutex
	alerts []postedAlert
	paths  []string
	auth   []string
}

func newFakeAlertmanager(t *testing.T) *fakeAlertmanager {
	t.Helper()
	am := &fakeAlertmanager{}
	am.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil || r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		var as []postedAlert
		if err := json.Unmarshal(body, &as); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		am.mu.Lock()
		defer am.mu.Unlock()
		am.paths = append(am.paths, r.URL.Path)
		am.auth = append(am.auth, r.Header.Get("Authorization"))
		am.alerts = append(am.alerts, as...)
	}))
	t.Cleanup(am.srv.Close)
	return am
}

func (am *fakeAlertmanager) received() ([]postedAlert, []string, []string) {
	am.mu.Lock()
	defer am.mu.Unlock()
	return append([]postedAlert(nil), am.alerts...), append([]string(nil), am.paths...), append([]string(nil), am.auth...)
}

func TestAlertmanagerV2Notifications(t *testing.T) {
	store := openStore(t)
	plain, prefixed := newFakeAlertmanager(t), newFakeAlertmanager(t)
	f := writeFile(t, t.TempDir(), "am.yml", `groups:
  - name: am
    rules:
      - alert: Always
        expr: vector(7)
        labels:
          severity: ticket
        annotations:
          summary: "value {{ $value }}"
`)
	cfg := testConfig(f)
	withAuth := strings.Replace(prefixed.srv.URL, "http://", "http://user:s3cret@", 1) + "/am/"
	cfg.Alertmanager.URLs = []string{plain.srv.URL, withAuth}
	h := &hook{}
	m, reg := startManager(t, cfg, Deps{Queryable: store, Appendable: store, Send: h.send})

	for _, tc := range []struct {
		name     string
		am       *fakeAlertmanager
		path     string
		authPref string
	}{
		{"plain", plain, "/api/v2/alerts", ""},
		{"path prefix and basic auth", prefixed, "/am/api/v2/alerts", "Basic "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []postedAlert
			var paths, auth []string
			poll(t, 10*time.Second, func() (bool, string) {
				got, paths, auth = tc.am.received()
				return len(got) > 0, "no alert received"
			})
			a := got[0]
			require.Equal(t, map[string]string{"alertname": "Always", "severity": "ticket"}, a.Labels)
			require.Equal(t, map[string]string{"summary": "value 7"}, a.Annotations)
			require.False(t, a.StartsAt.IsZero())
			require.True(t, a.EndsAt.After(a.StartsAt))
			require.Equal(t, "http://pharos.example.com:8080/ui/metrics?q=vector%287%29&range=1h", a.GeneratorURL)
			require.Equal(t, tc.path, paths[0])
			if tc.authPref == "" {
				require.Empty(t, auth[0])
			} else {
				require.Equal(t, "Basic dXNlcjpzM2NyZXQ=", auth[0]) // user:s3cret
			}
		})
	}
	// The hook gets the same alerts.
	require.NotEmpty(t, h.all())
	require.Equal(t, "Always", string(h.all()[0].Labels["alertname"]))
	require.Positive(t, metricSum(t, reg, "prometheus_notifications_sent_total"))
	require.Positive(t, metricSum(t, reg, "pharos_rules_alerts_sent_total"))
	require.Len(t, m.Alerts(), 1)

	// Per Alertmanager, from the notifier's own metrics, without the
	// credentials of the URL.
	var ams []AlertmanagerStatus
	poll(t, 10*time.Second, func() (bool, string) {
		ams = m.Alertmanagers()
		return len(ams) == 2 && ams[0].Sent > 0 && ams[1].Sent > 0, fmt.Sprintf("%+v", ams)
	})
	want := []string{plain.srv.URL + "/api/v2/alerts", prefixed.srv.URL + "/am/api/v2/alerts"}
	slices.Sort(want)
	require.Equal(t, want, []string{ams[0].URL, ams[1].URL})
	for _, am := range ams {
		require.Zero(t, am.Errors, am.URL)
		require.Zero(t, am.Dropped, am.URL)
	}
}
