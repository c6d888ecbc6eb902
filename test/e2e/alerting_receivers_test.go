package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/pharos-obs/pharos/internal/testutil"
)

// arrival is one webhook payload and when its request reached the sink.
type arrival struct {
	at time.Time
	p  webhookPayload
}

// timedSink records every webhook payload with its arrival time, so that
// tests can bound how late notifications come.
type timedSink struct {
	mu  sync.Mutex
	got []arrival
}

func startTimedSink(t *testing.T) (*timedSink, string) {
	t.Helper()
	s := &timedSink{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		at := time.Now()
		body, err := io.ReadAll(r.Body)
		var p webhookPayload
		if err != nil || json.Unmarshal(body, &p) != nil {
			http.Error(w, "bad payload", http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		s.got = append(s.got, arrival{at: at, p: p})
		s.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	return s, srv.URL
}

// firing returns the firing notifications of alertname received so far,
// in arrival order.
func (s *timedSink) firing(alertname string) []arrival {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []arrival
	for _, a := range s.got {
		if a.p.Status == "firing" && a.p.GroupLabels["alertname"] == alertname {
			out = append(out, a)
		}
	}
	return out
}

// receiverMetric reads the series of metric name on addr's /metrics whose
// labels include want; a missing series is an error, so it can be polled.
func receiverMetric(addr, name string, want map[string]string) (float64, error) {
	resp, err := httpClient.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return 0, err
	}
	mf, ok := mfs[name]
	if !ok {
		return 0, fmt.Errorf("%s: no metric %s", addr, name)
	}
next:
	for _, m := range mf.GetMetric() {
		have := map[string]string{}
		for _, lp := range m.GetLabel() {
			have[lp.GetName()] = lp.GetValue()
		}
		for k, v := range want {
			if have[k] != v {
				continue next
			}
		}
		switch {
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), nil
		case m.Counter != nil:
			return m.GetCounter().GetValue(), nil
		}
	}
	return 0, fmt.Errorf("%s: no series %s%v", addr, name, want)
}

// TestReceiverBreakerIsolation routes every alert to a broken webhook and a
// healthy one. The broken one either hangs until the request times out or
// answers 500. The healthy one must get each alert within group_wait of it
// firing, and its repeats on time, while the broken one's retries run and
// after its circuit breaker has opened; the open breaker must then refuse
// notifications without sending requests.
func TestReceiverBreakerIsolation(t *testing.T) {
	t.Parallel()
	const (
		evalInterval   = time.Second
		groupWait      = time.Second
		groupInterval  = time.Second
		repeatInterval = 2 * time.Second
		maxAttempts    = 2 // also the failures that open the breaker
		brokenTimeout  = 2 * time.Second
		// slack covers process scheduling and the HTTP round trip on a
		// loaded machine.
		slack = 3 * time.Second
	)
	for _, tc := range []struct {
		name string
		// slow: the broken receiver's retries outlast the healthy
		// receiver's first delivery, so that delivery proves it did not
		// wait for them.
		slow    bool
		handler func(release <-chan struct{}) http.HandlerFunc
	}{
		{"hang", true, func(release <-chan struct{}) http.HandlerFunc {
			// Blocks until the test ends or Pharos gives up on the request.
			return func(_ http.ResponseWriter, r *http.Request) {
				select {
				case <-release:
				case <-r.Context().Done():
				}
			}
		}},
		{"status 500", false, func(<-chan struct{}) http.HandlerFunc {
			return func(w http.ResponseWriter, _ *http.Request) {
				http.Error(w, "broken on purpose", http.StatusInternalServerError)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			healthy, healthyURL := startTimedSink(t)
			var brokenRequests atomic.Int64
			release := make(chan struct{})
			h := tc.handler(release)
			broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				brokenRequests.Add(1)
				h(w, r)
			}))
			t.Cleanup(broken.Close)
			// Cleanups run last in, first out: the hanging handlers return
			// before Close waits for them.
			t.Cleanup(func() { close(release) })

			rulesFile := writeFile(t, "alerts.yml", fmt.Sprintf(`groups:
  - name: isolation
    interval: %s
    rules:
      - alert: AlwaysOn
        expr: vector(1) > 0
        for: 0s
      - alert: LaterOn
        expr: vector(1) > 0
        for: 6s
`, evalInterval))
			// Both children match every alert; continue on the first sends
			// it on to the second, so each alert goes to both receivers.
			notifyFile := writeFile(t, "notify.yml", fmt.Sprintf(`receivers:
  - name: healthy
    url: %s/hook
  - name: broken
    url: %s/hook
    timeout: %s
route:
  receiver: healthy
  group_by: [alertname]
  group_wait: %s
  group_interval: %s
  repeat_interval: %s
  routes:
    - receiver: broken
      continue: true
    - receiver: healthy
`, healthyURL, broken.URL, brokenTimeout, groupWait, groupInterval, repeatInterval))
			p := startPharos(t, "all", []string{"-data.dir", t.TempDir(),
				"-rules.files", rulesFile, "-rules.evaluation-interval", evalInterval.String(),
				"-notify.config-file", notifyFile, "-notify.allow-private-addresses",
				"-notify.retry.max-attempts", fmt.Sprint(maxAttempts),
				"-notify.retry.min-backoff", "100ms", "-notify.retry.max-backoff", "200ms",
				"-notify.breaker.failures", fmt.Sprint(maxAttempts),
				// Long enough that the breaker stays open for the whole test.
				"-notify.breaker.open-timeout", "10m"})
			started := time.Now()

			// The healthy receiver gets the alert after one evaluation and
			// group_wait, while the broken one is still being tried.
			testutil.Poll(t, 30*time.Second, 20*time.Millisecond, func() (bool, string) {
				return len(healthy.firing("AlwaysOn")) > 0, "healthy receiver: no AlwaysOn notification yet"
			})
			first := healthy.firing("AlwaysOn")[0]
			require.Len(t, first.p.Alerts, 1)
			require.Equal(t, "healthy", first.p.Receiver)
			t.Logf("healthy receiver: AlwaysOn %s after start, %s after it fired",
				first.at.Sub(started).Round(time.Millisecond), first.at.Sub(first.p.Alerts[0].StartsAt).Round(time.Millisecond))
			require.LessOrEqual(t, first.at.Sub(started), evalInterval+groupWait+slack, "first notification late")
			require.LessOrEqual(t, first.at.Sub(first.p.Alerts[0].StartsAt), groupWait+slack, "first notification late after firing")

			// The broken receiver's breaker opens after maxAttempts failed
			// requests, which the broken server saw.
			labels := map[string]string{"receiver": "broken"}
			testutil.Poll(t, 30*time.Second, 100*time.Millisecond, func() (bool, string) {
				v, err := receiverMetric(p.addr, "pharos_notify_circuit_breaker_state", labels)
				if err != nil {
					return false, err.Error()
				}
				return v == 2, fmt.Sprintf("broken receiver's breaker state %g, want 2 (open)", v)
			})
			openedAt := time.Now()
			t.Logf("broken receiver's breaker open %s after start", openedAt.Sub(started).Round(time.Millisecond))
			if tc.slow {
				require.True(t, first.at.Before(openedAt.Add(-time.Second)),
					"the healthy receiver's first notification came %s after start, not clearly before the broken one's %d hanging requests ended", first.at.Sub(started), maxAttempts)
			}
			failed, err := receiverMetric(p.addr, "pharos_notify_notifications_total", map[string]string{"receiver": "broken", "result": "failed"})
			require.NoError(t, err)
			require.GreaterOrEqual(t, failed, 1.0, "failed notifications of the broken receiver")
			healthyState, err := receiverMetric(p.addr, "pharos_notify_circuit_breaker_state", map[string]string{"receiver": "healthy"})
			require.NoError(t, err)
			require.Zero(t, healthyState, "the healthy receiver's breaker stays closed")

			// With the breaker open, the healthy receiver keeps getting its
			// repeats and the later alert on time, and the broken receiver's
			// notifications are refused without a request.
			testutil.Poll(t, 30*time.Second, 100*time.Millisecond, func() (bool, string) {
				after := 0
				for _, a := range healthy.firing("AlwaysOn") {
					if a.at.After(openedAt) {
						after++
					}
				}
				return after >= 3 && len(healthy.firing("LaterOn")) > 0,
					fmt.Sprintf("healthy receiver: %d AlwaysOn repeats since the breaker opened, %d LaterOn notifications", after, len(healthy.firing("LaterOn")))
			})
			all := healthy.firing("AlwaysOn")
			var maxGap time.Duration
			for i := 1; i < len(all); i++ {
				gap := all[i].at.Sub(all[i-1].at)
				maxGap = max(maxGap, gap)
				require.LessOrEqual(t, gap, repeatInterval+groupInterval+slack, "AlwaysOn repeat %d came %s after the previous one", i, gap)
			}
			later := healthy.firing("LaterOn")[0]
			t.Logf("healthy receiver: %d AlwaysOn notifications, at most %s apart; LaterOn %s after it fired", len(all), maxGap.Round(time.Millisecond),
				later.at.Sub(later.p.Alerts[0].StartsAt).Round(time.Millisecond))
			require.LessOrEqual(t, later.at.Sub(later.p.Alerts[0].StartsAt), groupWait+slack, "LaterOn notification late after firing")

			testutil.Poll(t, 30*time.Second, 100*time.Millisecond, func() (bool, string) {
				v, err := receiverMetric(p.addr, "pharos_notify_notifications_total", map[string]string{"receiver": "broken", "result": "circuit_open"})
				if err != nil {
					return false, err.Error()
				}
				return v >= 1, "no broken notification refused by the open breaker yet"
			})
			require.Equal(t, int64(maxAttempts), brokenRequests.Load(), "requests to the broken receiver: only those before the breaker opened")
			// The sink records a payload before Pharos sees the response,
			// so the last success may still be on its way to the counter.
			testutil.Poll(t, 10*time.Second, 100*time.Millisecond, func() (bool, string) {
				v, err := receiverMetric(p.addr, "pharos_notify_notifications_total", map[string]string{"receiver": "healthy", "result": "success"})
				if err != nil {
					return false, err.Error()
				}
				return v >= float64(len(all)+1), fmt.Sprintf("healthy receiver: %g successful notifications, want at least %d", v, len(all)+1)
			})
			p.Stop()
		})
	}
}

// flagTarget serves one gauge, latency_flag, whose value the test sets, and
// remembers when it first served 1.
type flagTarget struct {
	addr    string
	value   atomic.Int64
	scrapes atomic.Int64
	mu      sync.Mutex
	firstOn time.Time // first scrape answered with 1
}

func startFlagTarget(t *testing.T) *flagTarget {
	t.Helper()
	ft := &flagTarget{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		v := ft.value.Load()
		if v == 1 {
			ft.mu.Lock()
			if ft.firstOn.IsZero() {
				ft.firstOn = time.Now()
			}
			ft.mu.Unlock()
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprintf(w, "# TYPE latency_flag gauge\nlatency_flag %d\n", v)
		ft.scrapes.Add(1)
	}))
	t.Cleanup(srv.Close)
	ft.addr = srv.Listener.Addr().String()
	return ft
}

// TestAlertLatencyFigure measures the time from a condition becoming true
// at a scrape target to its alert's webhook arriving, through the whole
// pipeline: scrape, publish to NATS, ingestion, rule evaluation, grouping
// and delivery.
func TestAlertLatencyFigure(t *testing.T) {
	t.Parallel()
	const (
		scrapeInterval = time.Second // writeFastScrapeConfig
		flushInterval  = 200 * time.Millisecond
		evalInterval   = time.Second
		groupWait      = time.Second
		slack          = 2 * time.Second
		// The condition waits at most one scrape interval to be scraped,
		// one flush interval to be published, one evaluation interval to
		// be evaluated and group_wait to be sent; slack covers ingestion
		// through NATS and the HTTP round trips.
		bound = scrapeInterval + flushInterval + evalInterval + groupWait + slack
	)
	target := startFlagTarget(t)
	sink, hookURL := startTimedSink(t)
	rulesFile := writeFile(t, "alerts.yml", fmt.Sprintf(`groups:
  - name: latency
    interval: %s
    rules:
      - alert: FlagOn
        expr: latency_flag{job="latency"} == 1
        for: 0s
`, evalInterval))
	notifyFile := writeFile(t, "notify.yml", fmt.Sprintf(`receivers:
  - name: web
    url: %s/hook
route:
  receiver: web
  group_by: [alertname]
  group_wait: %s
  group_interval: 1s
  repeat_interval: 1h
`, hookURL, groupWait))
	p := startPharos(t, "all", []string{"-data.dir", t.TempDir(),
		"-scrape.config-file", writeFastScrapeConfig(t, "latency", target.addr),
		"-rules.files", rulesFile, "-rules.evaluation-interval", evalInterval.String(),
		"-notify.config-file", notifyFile, "-notify.allow-private-addresses",
		"-agent.publish.flush-interval", flushInterval.String()})

	// Warm up: the 0 samples are queryable, so the rule has been reading
	// the series, and nothing has fired.
	testutil.Poll(t, dataTimeout, 200*time.Millisecond, func() (bool, string) {
		got, err := querySamples(p.addr, `latency_flag{job="latency"}[1m]`, time.Now())
		if err != nil {
			return false, err.Error()
		}
		return len(got) >= 3, fmt.Sprintf("latency_flag: %d samples stored, want 3", len(got))
	})
	require.Empty(t, sink.firing("FlagOn"), "the alert fired before the condition was true")

	flipped := time.Now()
	target.value.Store(1)
	testutil.Poll(t, 30*time.Second, 10*time.Millisecond, func() (bool, string) {
		return len(sink.firing("FlagOn")) > 0, "no FlagOn notification yet"
	})
	got := sink.firing("FlagOn")[0]
	latency := got.at.Sub(flipped)
	target.mu.Lock()
	scraped := target.firstOn
	target.mu.Unlock()
	require.Len(t, got.p.Alerts, 1)
	fired := got.p.Alerts[0].StartsAt
	t.Logf("alert latency: condition true → webhook: %s (scraped +%s, fired +%s, webhook +%s; bound %s)",
		latency.Round(time.Millisecond), scraped.Sub(flipped).Round(time.Millisecond),
		fired.Sub(flipped).Round(time.Millisecond), latency.Round(time.Millisecond), bound)
	require.LessOrEqual(t, latency, bound, "alert latency above scrape + flush + evaluation interval + group_wait + %s", slack)
	p.Stop()
}
