package notify

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestReceiversStatus(t *testing.T) {
	fail := newHook(t, func(h *hook) {
		h.respond = func(_ int, w http.ResponseWriter) { w.WriteHeader(http.StatusServiceUnavailable) }
	})
	ok := newHook(t, nil)
	cfg := testConfig(t, fmt.Sprintf(`
receivers:
  - {name: ok, url: %q}
  - {name: fail, url: %q}
route:
  receiver: ok
  group_by: [alertname]
  group_wait: 0s
  group_interval: 100ms
  routes:
    - {receiver: fail, continue: true}
    - {receiver: ok}
`, ok.srv.URL, fail.srv.URL))
	cfg.Retry.MaxAttempts = 2
	cfg.Breaker.Failures = 2
	cfg.Breaker.OpenTimeout = time.Hour
	n, _ := startNotifier(t, cfg)

	before := time.Now()
	st := n.Receivers()
	require.Equal(t, []ReceiverStatus{
		{Name: "fail", Breaker: "closed"},
		{Name: "ok", Breaker: "closed"},
	}, st, "sorted by name, nothing sent yet")

	n.Send(firing("A"))
	poll(t, 10*time.Second, func() (bool, string) {
		st = n.Receivers()
		return st[0].Failed == 1 && st[1].Sent == 1, fmt.Sprintf("%+v", st)
	})
	failSt, okSt := st[0], st[1]
	require.Zero(t, failSt.Sent)
	require.Equal(t, "open", failSt.Breaker, "two failed attempts trip it")
	require.True(t, failSt.LastSuccess.IsZero())
	require.False(t, failSt.LastFailure.Before(before))
	require.Contains(t, failSt.LastError, "503")
	require.NotContains(t, failSt.LastError, fail.srv.URL)
	require.Zero(t, failSt.Queued)

	require.Zero(t, okSt.Failed)
	require.Equal(t, "closed", okSt.Breaker)
	require.False(t, okSt.LastSuccess.Before(before))
	require.True(t, okSt.LastFailure.IsZero())
	require.Empty(t, okSt.LastError)

	// The failure log has the same failure.
	fs := n.Failures()
	require.Len(t, fs, 1)
	require.Equal(t, "fail", fs[0].Receiver)
	require.Equal(t, failSt.LastError, fs[0].Error)
	require.Equal(t, failSt.LastFailure, fs[0].Time)
	require.Equal(t, 2, fs[0].Attempts)
	require.Equal(t, 1, fs[0].Alerts)
}
