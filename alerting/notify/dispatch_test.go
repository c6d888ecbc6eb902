package notify

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
)

func TestNeedsUpdate(t *testing.T) {
	now := time.Now()
	set := func(fps ...model.Fingerprint) fpSet {
		s := fpSet{}
		for _, fp := range fps {
			s[fp] = struct{}{}
		}
		return s
	}
	// The cases of Alertmanager's TestDedupStageNeedsUpdate.
	for _, tc := range []struct {
		name         string
		last         *sentEntry
		firing       fpSet
		resolved     fpSet
		sendResolved bool
		repeat       time.Duration
		want         notifyReason
	}{
		{"first, firing", nil, set(1), set(), true, time.Hour, reasonFirstNotification},
		{"first, only resolved", nil, set(), set(1), true, time.Hour, reasonNone},
		{"new firing alert", &sentEntry{firing: set(1), at: now}, set(1, 2), set(), true, time.Hour, reasonNewAlertsInGroup},
		{"after a resolution", &sentEntry{firing: set(), resolved: set(1), at: now}, set(1), set(), true, time.Hour, reasonFirstNotification},
		{"unchanged", &sentEntry{firing: set(1, 2), at: now}, set(1, 2), set(), true, time.Hour, reasonNone},
		{"fewer firing, not resolved", &sentEntry{firing: set(1, 2), at: now}, set(1), set(), true, time.Hour, reasonNone},
		{"repeat elapsed", &sentEntry{firing: set(1), at: now.Add(-2 * time.Hour)}, set(1), set(), true, time.Hour, reasonRepeatIntervalElapsed},
		{"some resolved", &sentEntry{firing: set(1, 2), at: now}, set(1), set(2), true, time.Hour, reasonNewResolvedAlerts},
		{"some resolved, not wanted", &sentEntry{firing: set(1, 2), at: now}, set(1), set(2), false, time.Hour, reasonNone},
		{"resolved already sent", &sentEntry{firing: set(1), resolved: set(2), at: now}, set(1), set(2), true, time.Hour, reasonNone},
		{"all resolved", &sentEntry{firing: set(1), at: now}, set(), set(1), true, time.Hour, reasonAllAlertsResolved},
		{"all resolved, not wanted", &sentEntry{firing: set(1), at: now}, set(), set(1), false, time.Hour, reasonAllAlertsResolved},
		{"resolved twice", &sentEntry{firing: set(), resolved: set(1), at: now}, set(), set(1), true, time.Hour, reasonNone},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, needsUpdate(tc.last, tc.firing, tc.resolved, tc.sendResolved, tc.repeat, now))
		})
	}
}

// timingRouting is one receiver with the given timers, grouped by alertname.
func timingRouting(url string, sendResolved bool, wait, interval, repeat string) string {
	return fmt.Sprintf(`
receivers:
  - name: hook
    url: %s
    send_resolved: %t
route:
  receiver: hook
  group_by: [alertname]
  group_wait: %s
  group_interval: %s
  repeat_interval: %s
`, url, sendResolved, wait, interval, repeat)
}

func TestGroupWaitAndGroupInterval(t *testing.T) {
	h := newHook(t, nil)
	n, _ := startNotifier(t, testConfig(t, timingRouting(h.srv.URL, true, "150ms", "400ms", "1h")))

	start := time.Now()
	n.Send(alert(model.LabelSet{"alertname": "A", "i": "1"}, start, start.Add(time.Hour)))
	reqs := h.waitRequests(t, 1, 5*time.Second)
	require.GreaterOrEqual(t, reqs[0].at.Sub(start), 150*time.Millisecond, "first notification waits for group_wait")
	first := reqs[0].message(t)
	require.Len(t, first.Alerts, 1)
	require.Equal(t, "first notification", first.NotificationReason)

	// A second alert of the group: sent with the first, but not before
	// group_interval has passed since the last flush.
	n.Send(alert(model.LabelSet{"alertname": "A", "i": "2"}, time.Now(), time.Now().Add(time.Hour)))
	reqs = h.waitRequests(t, 2, 5*time.Second)
	require.GreaterOrEqual(t, reqs[1].at.Sub(reqs[0].at), 300*time.Millisecond, "changes wait for group_interval (400ms)")
	second := reqs[1].message(t)
	require.Len(t, second.Alerts, 2)
	require.Equal(t, "new alerts added", second.NotificationReason)

	// Another alertname is another group, with its own group_wait.
	n.Send(alert(model.LabelSet{"alertname": "B"}, time.Now(), time.Now().Add(time.Hour)))
	reqs = h.waitRequests(t, 3, 5*time.Second)
	require.Equal(t, map[string]string{"alertname": "B"}, map[string]string(reqs[2].message(t).GroupLabels))
	require.Equal(t, 2, n.disp.groupCount())
}

func TestRepeatInterval(t *testing.T) {
	h := newHook(t, nil)
	n, _ := startNotifier(t, testConfig(t, timingRouting(h.srv.URL, true, "0s", "100ms", "600ms")))

	now := time.Now()
	n.Send(alert(model.LabelSet{"alertname": "A"}, now, now.Add(time.Hour)))
	reqs := h.waitRequests(t, 2, 5*time.Second)
	// Unchanged: the group is flushed every 100 ms, but only re-sent once
	// repeat_interval has passed.
	require.GreaterOrEqual(t, reqs[1].at.Sub(reqs[0].at), 500*time.Millisecond, "repeat_interval is 600ms")
	require.Equal(t, "repeat interval elapsed", reqs[1].message(t).NotificationReason)
}

func TestResolvedSentThenForgotten(t *testing.T) {
	for _, sendResolved := range []bool{true, false} {
		t.Run(fmt.Sprintf("send_resolved=%t", sendResolved), func(t *testing.T) {
			h := newHook(t, nil)
			n, _ := startNotifier(t, testConfig(t, timingRouting(h.srv.URL, sendResolved, "0s", "100ms", "1h")))

			start := time.Now().Add(-time.Minute)
			ls := model.LabelSet{"alertname": "A"}
			n.Send(alert(ls, start, time.Now().Add(time.Hour)))
			h.waitRequests(t, 1, 5*time.Second)

			n.Send(alert(ls, start, time.Now()))
			poll(t, 5*time.Second, func() (bool, string) {
				return n.disp.groupCount() == 0, "group still held"
			})
			reqs := h.requests()
			if !sendResolved {
				require.Len(t, reqs, 1, "resolved alerts are not sent")
				return
			}
			require.Len(t, reqs, 2)
			m := reqs[1].message(t)
			require.Equal(t, "resolved", m.Status)
			require.Equal(t, "all alerts resolved", m.NotificationReason)
			require.Equal(t, "resolved", m.Alerts[0].Status)
		})
	}
}

func TestOldAlertSkipsGroupWait(t *testing.T) {
	h := newHook(t, nil)
	n, _ := startNotifier(t, testConfig(t, timingRouting(h.srv.URL, true, "1h", "1h", "1h")))
	// Firing for longer than group_wait already (a restart, say).
	n.Send(alert(model.LabelSet{"alertname": "A"}, time.Now().Add(-2*time.Hour), time.Now().Add(time.Hour)))
	h.waitRequests(t, 1, 5*time.Second)
}

func TestResolvedBeforeNotifiedIsNeverSent(t *testing.T) {
	h := newHook(t, nil)
	n, _ := startNotifier(t, testConfig(t, timingRouting(h.srv.URL, true, "100ms", "100ms", "1h")))
	now := time.Now()
	ls := model.LabelSet{"alertname": "A"}
	n.Send(alert(ls, now, now.Add(time.Hour)))
	n.Send(alert(ls, now, time.Now())) // resolved within group_wait
	poll(t, 5*time.Second, func() (bool, string) {
		return n.disp.groupCount() == 0, "group still held"
	})
	require.Empty(t, h.requests(), "the receiver never heard of it, so it hears nothing")
}

func TestMaxGroups(t *testing.T) {
	h := newHook(t, nil)
	cfg := testConfig(t, timingRouting(h.srv.URL, true, "1h", "1h", "1h"))
	cfg.MaxGroups = 1
	n, _ := startNotifier(t, cfg)
	now := time.Now()
	n.Send(
		alert(model.LabelSet{"alertname": "A"}, now, now.Add(time.Hour)),
		alert(model.LabelSet{"alertname": "A", "x": "y"}, now, now.Add(time.Hour)), // same group
		alert(model.LabelSet{"alertname": "B"}, now, now.Add(time.Hour)),           // would be a second
	)
	poll(t, 5*time.Second, func() (bool, string) {
		v := testutil.ToFloat64(n.m.dropped.WithLabelValues(reasonGroupLimit))
		return v == 1, fmt.Sprintf("dropped for group_limit: %v", v)
	})
	require.Equal(t, 1, n.disp.groupCount())
}
