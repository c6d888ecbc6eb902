package notify

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/grafana/dskit/services"
	"github.com/prometheus/alertmanager/types"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
)

func firing(name string) *types.Alert {
	now := time.Now()
	return alert(model.LabelSet{"alertname": model.LabelValue(name)}, now, now.Add(time.Hour))
}

func TestBrokenReceiversTripBreakersWithoutDelayingOthers(t *testing.T) {
	hang := newHook(t, func(h *hook) { h.hang = true })
	fail := newHook(t, func(h *hook) {
		h.respond = func(_ int, w http.ResponseWriter) { w.WriteHeader(http.StatusInternalServerError) }
	})
	ok := newHook(t, nil)
	cfg := testConfig(t, fmt.Sprintf(`
receivers:
  - {name: hang, url: %q, timeout: 1s}
  - {name: fail, url: %q}
  - {name: ok, url: %q}
route:
  receiver: ok
  group_by: [alertname]
  group_wait: 0s
  group_interval: 100ms
  routes:
    - {receiver: hang, continue: true}
    - {receiver: fail, continue: true}
    - {receiver: ok}
`, hang.srv.URL, fail.srv.URL, ok.srv.URL))
	cfg.Retry.MaxAttempts = 2
	cfg.Breaker.Failures = 2
	cfg.Breaker.OpenTimeout = time.Hour
	n, _ := startNotifier(t, cfg)

	n.Send(firing("A"))
	ok.waitRequests(t, 1, 5*time.Second)
	// The hanging receiver holds its first request for a second; the
	// healthy one was notified without waiting for it.
	_, hangFinished := hang.counts()
	require.Zero(t, hangFinished, "ok was notified only after hang gave up")

	state := func(r string) float64 { return testutil.ToFloat64(n.m.breakerState.WithLabelValues(r)) }
	poll(t, 10*time.Second, func() (bool, string) {
		return state("hang") == 2 && state("fail") == 2,
			fmt.Sprintf("breaker states hang=%v fail=%v, want 2 (open)", state("hang"), state("fail"))
	})
	require.Equal(t, 0.0, state("ok"))
	hangStarted, _ := hang.counts()
	failStarted, _ := fail.counts()
	require.Equal(t, 2, hangStarted, "two attempts, then the breaker is open")
	require.Equal(t, 2, failStarted)

	// Open breakers fail fast: a new group reaches ok at once, and nothing
	// reaches the broken receivers.
	before := time.Now()
	n.Send(firing("B"))
	ok.waitRequests(t, 2, 5*time.Second)
	require.Less(t, time.Since(before), time.Second)
	poll(t, 5*time.Second, func() (bool, string) {
		v := testutil.ToFloat64(n.m.notifications.WithLabelValues("hang", resultCircuitOpen))
		return v >= 1, fmt.Sprintf("circuit_open notifications of hang: %v", v)
	})
	hangStarted, _ = hang.counts()
	failStarted, _ = fail.counts()
	require.Equal(t, 2, hangStarted)
	require.Equal(t, 2, failStarted)

	var sawOpen, sawTimeout, sawStatus bool
	for _, f := range n.Failures() {
		switch {
		case strings.Contains(f.Error, ErrCircuitOpen.Error()):
			sawOpen = true
		case f.Receiver == "hang":
			require.Contains(t, f.Error, "no response within 1s")
			require.Equal(t, 2, f.Attempts)
			sawTimeout = true
		case f.Receiver == "fail":
			require.Equal(t, "unexpected status code 500", f.Error)
			require.Equal(t, `{}/{}:{alertname="A"}`, f.GroupKey)
			require.Equal(t, 1, f.Alerts)
			sawStatus = true
		}
		require.NotEqual(t, "ok", f.Receiver)
	}
	require.True(t, sawOpen && sawTimeout && sawStatus, "failures: %+v", n.Failures())
	poll(t, 5*time.Second, func() (bool, string) {
		v := testutil.ToFloat64(n.m.notifications.WithLabelValues("ok", resultSuccess))
		return v == 2, fmt.Sprintf("ok successes: %v", v)
	})
}

func TestPermanentErrorNotRetriedAndRecorded(t *testing.T) {
	h := newHook(t, func(h *hook) {
		h.respond = func(_ int, w http.ResponseWriter) { http.Error(w, "bad payload", http.StatusBadRequest) }
	})
	cfg := testConfig(t, fmt.Sprintf(`
receivers: [{name: hook, url: %q}]
route: {receiver: hook, group_wait: 0s, group_interval: 1h}
`, h.srv.URL))
	cfg.Breaker.Failures = 1
	n, _ := startNotifier(t, cfg)
	n.Send(firing("A"))
	poll(t, 5*time.Second, func() (bool, string) {
		return len(n.Failures()) == 1, fmt.Sprintf("failures: %+v", n.Failures())
	})
	f := n.Failures()[0]
	require.Equal(t, "hook", f.Receiver)
	require.Equal(t, 1, f.Attempts)
	require.Equal(t, "unexpected status code 400: bad payload", f.Error)
	require.Len(t, h.requests(), 1)
	require.Equal(t, 0.0, testutil.ToFloat64(n.m.breakerState.WithLabelValues("hook")), "4xx does not trip the breaker")
}

func TestSendDrops(t *testing.T) {
	h := newHook(t, nil)
	cfg := testConfig(t, fmt.Sprintf(`
receivers: [{name: hook, url: %q}]
route: {receiver: hook}
`, h.srv.URL))
	cfg.QueueSize = 2
	reg := prometheus.NewPedanticRegistry()
	n, err := New(cfg, testLogger(t), reg)
	require.NoError(t, err)
	dropped := func(reason string) float64 { return testutil.ToFloat64(n.m.dropped.WithLabelValues(reason)) }

	// Not started: the queue holds two alerts, the rest are dropped.
	n.Send(firing("A"), firing("B"), firing("C"), nil, alert(model.LabelSet{}, time.Now(), time.Time{}))
	require.Equal(t, 1.0, dropped(reasonQueueFull))
	require.Equal(t, 2.0, dropped(reasonInvalid), "nil and no labels")
	require.Equal(t, 5.0, testutil.ToFloat64(n.m.received))

	require.NoError(t, services.StartAndAwaitRunning(context.Background(), n))
	poll(t, 5*time.Second, func() (bool, string) { return len(n.in) == 0, "queue not drained" })
	require.NoError(t, services.StopAndAwaitTerminated(context.Background(), n))

	n.Send(firing("D"))
	require.Equal(t, 1.0, dropped(reasonShutdown))
	require.Equal(t, 0.0, dropped(reasonGroupLimit))
}

func TestPrepareAlert(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		name    string
		in      *types.Alert
		want    func(*testing.T, *types.Alert)
		wantErr string
	}{
		{"defaults", alert(model.LabelSet{"a": "b", "empty": ""}, time.Time{}, time.Time{}), func(t *testing.T, a *types.Alert) {
			require.Equal(t, now, a.StartsAt)
			require.Equal(t, now.Add(5*time.Minute), a.EndsAt)
			require.True(t, a.Timeout)
			require.Equal(t, model.LabelSet{"a": "b"}, a.Labels, "empty labels are absent labels")
			require.Equal(t, now, a.UpdatedAt)
		}, ""},
		{"only an end", alert(model.LabelSet{"a": "b"}, time.Time{}, now.Add(-time.Minute)), func(t *testing.T, a *types.Alert) {
			require.Equal(t, now.Add(-time.Minute), a.StartsAt)
			require.False(t, a.Timeout)
		}, ""},
		{"no labels", alert(model.LabelSet{}, now, time.Time{}), nil, "at least one label pair required"},
		{"ends before it starts", alert(model.LabelSet{"a": "b"}, now, now.Add(-time.Second)), nil, "start time must be before end time"},
		{"nil", nil, nil, "nil alert"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := prepareAlert(tc.in, now, 5*time.Minute)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.NotSame(t, tc.in, got)
			tc.want(t, got)
		})
	}
}

func TestReceiverQueueBounded(t *testing.T) {
	hang := newHook(t, func(h *hook) { h.hang = true })
	cfg := testConfig(t, fmt.Sprintf(`
receivers: [{name: hang, url: %q, timeout: 1m}]
route: {receiver: hang, group_by: [alertname], group_wait: 0s, group_interval: 1h}
`, hang.srv.URL))
	cfg.ReceiverQueueSize = 1
	n, _ := startNotifier(t, cfg)
	// One notification per group: one in flight, one queued, three dropped.
	n.Send(firing("A"))
	poll(t, 5*time.Second, func() (bool, string) {
		started, _ := hang.counts()
		return started == 1, "first notification not in flight"
	})
	n.Send(firing("B"), firing("C"), firing("D"), firing("E"))
	poll(t, 5*time.Second, func() (bool, string) {
		v := testutil.ToFloat64(n.m.notifications.WithLabelValues("hang", resultQueueFull))
		return v == 3, fmt.Sprintf("queue_full: %v", v)
	})
	for _, f := range n.Failures() {
		require.Equal(t, ErrQueueFull.Error(), f.Error)
		require.Zero(t, f.Attempts)
	}
}

func TestStopAbandonsHangingDelivery(t *testing.T) {
	hang := newHook(t, func(h *hook) { h.hang = true })
	cfg := testConfig(t, fmt.Sprintf(`
receivers: [{name: hang, url: %q, timeout: 1h}]
route: {receiver: hang, group_by: [alertname], group_wait: 0s}
`, hang.srv.URL))
	cfg.ReceiverQueueSize = 5
	n, err := New(cfg, testLogger(t), prometheus.NewPedanticRegistry())
	require.NoError(t, err)
	require.NoError(t, services.StartAndAwaitRunning(context.Background(), n))
	n.Send(firing("A"), firing("B"))
	poll(t, 5*time.Second, func() (bool, string) {
		started, _ := hang.counts()
		return started == 1 && testutil.ToFloat64(n.m.queued.WithLabelValues("hang")) == 1, "first request not in flight, second not queued"
	})

	stopped := time.Now()
	require.NoError(t, services.StopAndAwaitTerminated(context.Background(), n))
	require.Less(t, time.Since(stopped), 5*time.Second)
	require.Equal(t, 2.0, testutil.ToFloat64(n.m.notifications.WithLabelValues("hang", resultShutdown)))
	require.Equal(t, 0.0, testutil.ToFloat64(n.m.queued.WithLabelValues("hang")))
	require.Equal(t, 0.0, testutil.ToFloat64(n.m.breakerState.WithLabelValues("hang")), "shutdown is no failure")
	// goleak in TestMain checks that the workers are gone.
}

func TestFailureLogRing(t *testing.T) {
	l := newFailureLog(3)
	require.Empty(t, l.list())
	for i := range 5 {
		l.add(Failure{GroupKey: fmt.Sprint(i)})
	}
	var keys []string
	for _, f := range l.list() {
		keys = append(keys, f.GroupKey)
	}
	require.Equal(t, []string{"4", "3", "2"}, keys, "newest first, oldest overwritten")
}

func TestMetricsRegistered(t *testing.T) {
	h := newHook(t, nil)
	n, reg := startNotifier(t, testConfig(t, fmt.Sprintf(`
receivers: [{name: hook, url: %q}]
route: {receiver: hook, group_wait: 0s}
`, h.srv.URL)))
	n.Send(firing("A"))
	h.waitRequests(t, 1, 5*time.Second)
	poll(t, 5*time.Second, func() (bool, string) {
		v := testutil.ToFloat64(n.m.notifications.WithLabelValues("hook", resultSuccess))
		return v == 1, fmt.Sprintf("successes: %v", v)
	})
	names, err := testutil.GatherAndCount(reg)
	require.NoError(t, err)
	require.Positive(t, names)
	for _, name := range []string{
		"pharos_notify_alerts_received_total",
		"pharos_notify_alerts_dropped_total",
		"pharos_notify_aggregation_groups",
		"pharos_notify_notifications_total",
		"pharos_notify_requests_total",
		"pharos_notify_notification_duration_seconds",
		"pharos_notify_receiver_queue_length",
		"pharos_notify_circuit_breaker_state",
	} {
		c, err := testutil.GatherAndCount(reg, name)
		require.NoError(t, err)
		require.Positive(t, c, name)
	}
}
