package notify

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/types"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
)

func TestPayloadFiringThenResolved(t *testing.T) {
	h := newHook(t, nil)
	cfg := testConfig(t, fmt.Sprintf(`
receivers:
  - name: ops-team
    url: %s/alerts?x=1
    bearer_token: t0ken
route:
  receiver: ops-team
  group_by: [alertname, cluster]
  group_wait: 50ms
  group_interval: 100ms
  routes:
    - matchers: ['severity="page"']
`, h.srv.URL))
	cfg.ExternalURL = "https://pharos.example.com/alerts"
	n, _ := startNotifier(t, cfg)

	startsAt := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	mk := func(instance string, endsAt time.Time) *types.Alert {
		return &types.Alert{Alert: model.Alert{
			Labels:       model.LabelSet{"alertname": "DiskFull", "cluster": "eu1", "severity": "page", "instance": model.LabelValue(instance)},
			Annotations:  model.LabelSet{"summary": "disk full", "runbook": "https://runbooks.example.com/" + model.LabelValue(instance)},
			StartsAt:     startsAt,
			EndsAt:       endsAt,
			GeneratorURL: "https://pharos.example.com/graph?g0.expr=disk",
		}}
	}
	in1, in2 := mk("db1", time.Now().Add(time.Hour)), mk("db2", time.Now().Add(time.Hour))
	n.Send(in1, in2)
	// Send copies: what the caller does with its alerts afterwards is
	// not seen.
	in1.Labels["instance"], in2.Annotations["summary"] = "changed", "changed"
	a1, a2 := mk("db1", time.Time{}), mk("db2", time.Time{})
	reqs := h.waitRequests(t, 1, 5*time.Second)

	r := reqs[0]
	require.Equal(t, "application/json", r.header.Get("Content-Type"))
	require.Equal(t, "Bearer t0ken", r.header.Get("Authorization"))
	require.Equal(t, userAgent, r.header.Get("User-Agent"))
	require.Empty(t, r.header.Get(SignatureHeader), "no hmac_secret, no signature")
	require.True(t, strings.HasSuffix(string(r.body), "}\n"), "encoded like Alertmanager, with a trailing newline")

	// Field by field, as raw JSON: names and shapes must be Alertmanager's.
	var got map[string]any
	require.NoError(t, json.Unmarshal(r.body, &got))
	keys := make([]string, 0, len(got))
	for k := range got {
		keys = append(keys, k)
	}
	require.ElementsMatch(t, []string{
		"receiver", "status", "alerts", "groupLabels", "commonLabels", "commonAnnotations",
		"externalURL", "version", "groupKey", "truncatedAlerts",
		// Alertmanager v0.34 sends these two as well.
		"notification_reason", "routeLabels",
	}, keys)
	require.Equal(t, "ops-team", got["receiver"])
	require.Equal(t, "firing", got["status"])
	require.Equal(t, "4", got["version"])
	require.Equal(t, `{}/{severity="page"}:{alertname="DiskFull", cluster="eu1"}`, got["groupKey"])
	require.Equal(t, 0.0, got["truncatedAlerts"])
	require.Equal(t, "https://pharos.example.com/alerts", got["externalURL"])
	require.Equal(t, "first notification", got["notification_reason"])
	require.Equal(t, map[string]any{"alertname": "DiskFull", "cluster": "eu1"}, got["groupLabels"])
	require.Equal(t, map[string]any{"alertname": "DiskFull", "cluster": "eu1", "severity": "page"}, got["commonLabels"])
	require.Equal(t, map[string]any{"summary": "disk full"}, got["commonAnnotations"])
	require.Equal(t, map[string]any{}, got["routeLabels"])

	alerts := got["alerts"].([]any)
	require.Len(t, alerts, 2)
	for i, want := range []*types.Alert{a1, a2} {
		ga := alerts[i].(map[string]any)
		require.ElementsMatch(t, []string{"status", "labels", "annotations", "startsAt", "endsAt", "generatorURL", "fingerprint"}, mapKeys(ga))
		require.Equal(t, "firing", ga["status"])
		wantLabels := map[string]any{}
		for k, v := range want.Labels {
			wantLabels[string(k)] = string(v)
		}
		require.Equal(t, wantLabels, ga["labels"])
		wantAnnotations := map[string]any{}
		for k, v := range want.Annotations {
			wantAnnotations[string(k)] = string(v)
		}
		require.Equal(t, wantAnnotations, ga["annotations"])
		require.Equal(t, "2026-01-02T03:04:05Z", ga["startsAt"])
		// Firing alerts go out without an end, as Alertmanager sends them.
		require.Equal(t, "0001-01-01T00:00:00Z", ga["endsAt"])
		require.Equal(t, "https://pharos.example.com/graph?g0.expr=disk", ga["generatorURL"])
		require.Equal(t, want.Fingerprint().String(), ga["fingerprint"])
	}

	// Resolve one: sent after group_interval, with both alerts.
	resolvedAt := time.Now().Add(-time.Second).UTC().Truncate(time.Millisecond)
	n.Send(mk("db2", resolvedAt))
	reqs = h.waitRequests(t, 2, 5*time.Second)
	m := reqs[1].message(t)
	require.Equal(t, "firing", m.Status, "one alert still fires")
	require.Equal(t, "some alerts resolved", m.NotificationReason)
	require.Len(t, m.Alerts, 2)
	require.Equal(t, "firing", m.Alerts[0].Status)
	require.Equal(t, "resolved", m.Alerts[1].Status)
	require.True(t, m.Alerts[1].EndsAt.Equal(resolvedAt), "resolved alerts carry their end: %s", m.Alerts[1].EndsAt)

	// Resolve the other: the group is all resolved, then forgotten.
	n.Send(mk("db1", time.Now()))
	reqs = h.waitRequests(t, 3, 5*time.Second)
	m = reqs[2].message(t)
	require.Equal(t, "resolved", m.Status)
	require.Equal(t, "all alerts resolved", m.NotificationReason)
	require.Len(t, m.Alerts, 1, "the alert resolved earlier was forgotten once sent")
	require.Equal(t, a1.Fingerprint().String(), m.Alerts[0].Fingerprint)
	poll(t, 5*time.Second, func() (bool, string) { return n.disp.groupCount() == 0, "group still held" })
}

func TestPayloadAnnotationsAndTruncation(t *testing.T) {
	h := newHook(t, nil)
	n, _ := startNotifier(t, testConfig(t, fmt.Sprintf(`
receivers: [{name: hook, url: %q, max_alerts: 2}]
route: {receiver: hook, group_by: [alertname], group_wait: 100ms}
`, h.srv.URL)))
	now := time.Now()
	var batch []*types.Alert
	for _, i := range []string{"2", "0", "1"} {
		batch = append(batch, &types.Alert{Alert: model.Alert{
			Labels:       model.LabelSet{"alertname": "A", "instance": model.LabelValue(i)},
			Annotations:  model.LabelSet{"summary": "same", "detail": model.LabelValue(i)},
			StartsAt:     now,
			EndsAt:       now.Add(time.Hour),
			GeneratorURL: "https://pharos.example.com/g",
		}})
	}
	n.Send(batch...)
	m := h.waitRequests(t, 1, 5*time.Second)[0].message(t)
	require.Len(t, m.Alerts, 2)
	require.Equal(t, uint64(1), m.TruncatedAlerts)
	require.Equal(t, "0", m.Alerts[0].Labels["instance"], "sorted like Alertmanager: by instance")
	require.Equal(t, "https://pharos.example.com/g", m.Alerts[0].GeneratorURL)
	require.Equal(t, map[string]string{"summary": "same"}, map[string]string(m.CommonAnnotations))
	require.Equal(t, "1", m.Alerts[1].Annotations["detail"])
}

func mapKeys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestHMACSignatureAndBasicAuth(t *testing.T) {
	h := newHook(t, nil)
	n, _ := startNotifier(t, testConfig(t, fmt.Sprintf(`
receivers:
  - name: hook
    url: %s
    hmac_secret: k3y
    basic_auth: {username: alice, password: pw}
route: {receiver: hook, group_wait: 0s}
`, h.srv.URL)))
	now := time.Now()
	n.Send(alert(model.LabelSet{"alertname": "A"}, now, now.Add(time.Hour)))
	r := h.waitRequests(t, 1, 5*time.Second)[0]

	user, pass, ok := (&http.Request{Header: r.header}).BasicAuth()
	require.True(t, ok)
	require.Equal(t, "alice", user)
	require.Equal(t, "pw", pass)

	ts := r.header.Get(TimestampHeader)
	sec, err := strconv.ParseInt(ts, 10, 64)
	require.NoError(t, err)
	require.InDelta(t, time.Now().Unix(), sec, 60)

	// Verified independently of Signature: HMAC-SHA256 over "ts.body".
	mac := hmac.New(sha256.New, []byte("k3y"))
	mac.Write([]byte(ts + "." + string(r.body)))
	want := "sha256=" + hex.EncodeToString(mac.Sum(nil))
	require.Equal(t, want, r.header.Get(SignatureHeader))
	require.True(t, VerifySignature([]byte("k3y"), ts, r.body, r.header.Get(SignatureHeader)))

	for _, tc := range []struct {
		name           string
		secret, ts     string
		body           []byte
		verifiedSecret bool
	}{
		{"wrong secret", "other", ts, r.body, false},
		{"timestamp changed", "k3y", strconv.FormatInt(sec+1, 10), r.body, false},
		{"body changed", "k3y", ts, append([]byte(" "), r.body...), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.verifiedSecret, VerifySignature([]byte(tc.secret), tc.ts, tc.body, r.header.Get(SignatureHeader)))
		})
	}
}

// testReceiver builds a receiver for url with the given attempts and
// breaker threshold, and its own metrics.
func testReceiver(t *testing.T, url string, attempts, failures int, allowPrivate bool) (*receiver, *metrics) {
	t.Helper()
	cfg := testConfig(t, "")
	cfg.Retry.MaxAttempts = attempts
	cfg.Retry.MinBackoff, cfg.Retry.MaxBackoff = time.Millisecond, 5*time.Millisecond
	cfg.Breaker.Failures = failures
	cfg.Timeout = 2 * time.Second
	m := newMetrics(prometheus.NewPedanticRegistry())
	client := newHTTPClient(allowPrivate)
	t.Cleanup(client.CloseIdleConnections)
	r := newReceiver(ReceiverConfig{Name: "r", URL: url}, cfg, client, m, newFailureLog(10), testLogger(t))
	return r, m
}

func TestRetryPolicy(t *testing.T) {
	for _, tc := range []struct {
		name     string
		statuses []int // answers in order; 200 after the last
		wantReqs int
		wantErr  string // "" for delivered
		perm     bool
	}{
		{"ok", nil, 1, "", false},
		{"5xx retried", []int{500, 503, 502}, 4, "", false},
		{"429 retried", []int{429}, 2, "", false},
		{"attempts run out", []int{500, 500, 500, 500, 500, 500}, 5, "unexpected status code 500: nope", false},
		{"400 permanent", []int{400}, 1, "unexpected status code 400: nope", true},
		{"401 permanent", []int{401}, 1, "unexpected status code 401: nope", true},
		{"404 permanent", []int{404}, 1, "unexpected status code 404: nope", true},
		{"413 permanent", []int{413}, 1, "unexpected status code 413: nope", true},
		{"redirect not followed", []int{307}, 1, "unexpected status code 307: redirect to https://elsewhere.example.com not followed", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHook(t, func(h *hook) {
				h.respond = func(n int, w http.ResponseWriter) {
					if n > len(tc.statuses) {
						return
					}
					code := tc.statuses[n-1]
					if code/100 == 3 {
						w.Header().Set("Location", "https://elsewhere.example.com/secret-path?token=x")
					}
					if code == 429 {
						w.Header().Set("Retry-After", "0")
					}
					w.WriteHeader(code)
					_, _ = w.Write([]byte("nope\n"))
				}
			})
			r, m := testReceiver(t, h.srv.URL, 5, 100, true)
			attempts, err := r.deliver(context.Background(), []byte(`{}`))
			require.Equal(t, tc.wantReqs, attempts)
			require.Len(t, h.requests(), tc.wantReqs)
			if tc.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.EqualError(t, err, tc.wantErr)
			require.Equal(t, tc.perm, isPermanent(err))
			require.NotContains(t, err.Error(), "token")
			if n := len(tc.statuses); n > 0 {
				require.Equal(t, float64(min(n, tc.wantReqs)), testutil.ToFloat64(m.requests.WithLabelValues("r", strconv.Itoa(tc.statuses[0]))))
			}
		})
	}
}

func TestBlockedAddressAtConnect(t *testing.T) {
	h := newHook(t, nil)
	port := h.srv.URL[strings.LastIndexByte(h.srv.URL, ':')+1:]
	for _, url := range []string{
		h.srv.URL,                        // literal 127.0.0.1
		"http://localhost:" + port + "/", // resolved by DNS, refused after
	} {
		t.Run(url, func(t *testing.T) {
			r, m := testReceiver(t, url, 5, 100, false)
			attempts, err := r.deliver(context.Background(), []byte(`{}`))
			require.ErrorIs(t, err, ErrBlockedAddress)
			require.True(t, isPermanent(err), "not retried")
			require.Equal(t, 1, attempts)
			require.NotContains(t, err.Error(), "http://", "no URL in errors")
			require.Equal(t, 1.0, testutil.ToFloat64(m.requests.WithLabelValues("r", "error")))
		})
	}
	started, _ := h.counts()
	require.Zero(t, started, "no request reached the server")

	// Allowed, the same receiver gets through.
	r, _ := testReceiver(t, h.srv.URL, 1, 100, true)
	_, err := r.deliver(context.Background(), []byte(`{}`))
	require.NoError(t, err)
}

func TestBlockedAddr(t *testing.T) {
	for addr, blocked := range map[string]bool{
		"127.0.0.1":        true,
		"127.8.9.10":       true,
		"10.0.0.1":         true,
		"172.16.5.4":       true,
		"192.168.1.1":      true,
		"169.254.169.254":  true, // cloud metadata
		"100.100.100.200":  true, // shared address space metadata
		"0.0.0.0":          true,
		"224.0.0.1":        true,
		"::1":              true,
		"::":               true,
		"fe80::1":          true,
		"fc00::1":          true,
		"fd12:3456::1":     true,
		"::ffff:127.0.0.1": true,
		"::ffff:10.0.0.1":  true,
		"8.8.8.8":          false,
		"172.32.0.1":       false,
		"100.128.0.1":      false,
		"2001:4860::8888":  false,
	} {
		t.Run(addr, func(t *testing.T) {
			require.Equal(t, blocked, blockedAddr(netip.MustParseAddr(addr)))
			err := refuseInternal("tcp", netip.AddrPortFrom(netip.MustParseAddr(addr), 443).String(), nil)
			if blocked {
				require.ErrorIs(t, err, ErrBlockedAddress)
			} else {
				require.NoError(t, err)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	minB, maxB := 100*time.Millisecond, time.Second
	for _, tc := range []struct {
		attempt int
		base    time.Duration
	}{
		{1, 100 * time.Millisecond},
		{2, 200 * time.Millisecond},
		{4, 800 * time.Millisecond},
		{5, time.Second},
		{64, time.Second},
		{1 << 20, time.Second},
	} {
		t.Run(strconv.Itoa(tc.attempt), func(t *testing.T) {
			for range 100 {
				d := backoff(tc.attempt, minB, maxB)
				require.GreaterOrEqual(t, d, tc.base/2)
				require.LessOrEqual(t, d, tc.base)
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"3", 3 * time.Second},
		{"-1", 0},
		{"999999", time.Hour},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
		{"soon", 0},
	} {
		t.Run(tc.in, func(t *testing.T) {
			require.Equal(t, tc.want, parseRetryAfter(tc.in, now))
		})
	}
}
