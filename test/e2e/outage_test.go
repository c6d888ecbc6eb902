package e2e

import (
	"fmt"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/pharos-obs/pharos/internal/bus"
	"github.com/pharos-obs/pharos/internal/testutil"
)

// metricValue reads one unlabelled-or-summed metric from a process's /metrics.
func metricValue(t *testing.T, addr, name string) (float64, error) {
	t.Helper()
	resp, err := httpClient.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return 0, err
	}
	mf, ok := mfs[name]
	if !ok {
		return 0, fmt.Errorf("%s: no metric %s", addr, name)
	}
	sum := 0.0
	for _, m := range mf.GetMetric() {
		switch {
		case m.Gauge != nil:
			sum += m.GetGauge().GetValue()
		case m.Counter != nil:
			sum += m.GetCounter().GetValue()
		}
	}
	return sum, nil
}

// waitSpoolEmpty polls until the agent has replayed its whole spool.
func waitSpoolEmpty(t *testing.T, agent *pharosProc) {
	t.Helper()
	testutil.Poll(t, 90*time.Second, 200*time.Millisecond, func() (bool, string) {
		agent.requireRunning()
		n, err := metricValue(t, agent.addr, "pharos_agent_spool_records")
		if err != nil {
			return false, err.Error()
		}
		return n == 0, fmt.Sprintf("%g records still spooled", n)
	})
}

// requireCountPerSeries checks with one query that each of the n series
// of job holds exactly want samples.
func requireCountPerSeries(t *testing.T, addr, job string, n int, want int64) {
	t.Helper()
	var data struct {
		Result []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		} `json:"result"`
	}
	q := fmt.Sprintf(`count_over_time(delivery_series{job=%q}[1h])`, job)
	require.NoError(t, getAPI(addr, "/api/v1/query", url.Values{"query": {q}}, &data))
	require.Len(t, data.Result, n, "series with samples")
	for _, r := range data.Result {
		got, err := strconv.ParseFloat(r.Value[1].(string), 64)
		require.NoError(t, err)
		require.Equal(t, float64(want), got, "samples of series %v (target answered %d scrapes)", r.Metric, want)
	}
}

// outageFixture is a NATS server the test can stop and bring back on the
// same address with its data, a counting target, and the flags every pharos
// process of the test shares.
type outageFixture struct {
	nats     *bus.EmbeddedServer
	natsURL  string
	host     string
	storeDir string
	target   *countingTarget
	common   []string
}

func newOutageFixture(t *testing.T, series, partitions int) *outageFixture {
	t.Helper()
	f := &outageFixture{storeDir: t.TempDir()}
	f.nats = testutil.StartNATSAt(t, "127.0.0.1:0", f.storeDir)
	f.natsURL = f.nats.ClientURL()
	u, err := url.Parse(f.natsURL)
	require.NoError(t, err)
	f.host = u.Host
	f.target = startCountingTarget(t, series)
	f.common = []string{"-nats.partitions", fmt.Sprint(partitions), "-nats.url", f.natsURL}
	return f
}

// restartNATS brings NATS back where the processes expect it, with its data.
func (f *outageFixture) restartNATS(t *testing.T) {
	t.Helper()
	f.nats = testutil.StartNATSAt(t, f.host, f.storeDir)
}

// TestNATSOutage takes NATS away for 60 s while the agent scrapes 1,000
// series every second: the agent spools to disk and replays in order when
// NATS returns, and every sample arrives exactly once.
func TestNATSOutage(t *testing.T) {
	t.Parallel()
	const series, partitions = 1000, 4
	f := newOutageFixture(t, series, partitions)
	nats, natsURL, target, common := f.nats, f.natsURL, f.target, f.common

	agg := startPharos(t, "aggregator", append([]string{"-target=aggregator,query", "-data.dir", t.TempDir()}, common...))
	agent := startPharos(t, "agent", append([]string{"-target=agent", "-data.dir", t.TempDir(),
		"-scrape.config-file", writeFastScrapeConfig(t, "outage", target.addr)}, common...))
	testutil.Poll(t, 30*time.Second, 100*time.Millisecond, func() (bool, string) {
		return target.scrapes.Load() >= 3, "waiting for scrapes before the outage"
	})

	nats.Shutdown()
	down := time.Now()
	before := target.scrapes.Load()
	testutil.Poll(t, 90*time.Second, time.Second, func() (bool, string) {
		agent.requireRunning()
		return time.Since(down) >= 60*time.Second, "NATS is down"
	})
	require.Greater(t, target.scrapes.Load()-before, int64(45), "the agent kept scraping during the outage")
	f.restartNATS(t)

	scrapes := target.freeze(t)
	waitSpoolEmpty(t, agent)
	agent.Stop()
	waitConsumed(t, natsURL, partitions)
	requireCountPerSeries(t, agg.addr, "outage", series, scrapes)
	agg.Stop()
}

// TestAgentKilledWhileSpooling SIGKILLs the agent while NATS is down and it
// is spooling; the restarted agent replays its spool once NATS is back.
// What reached the spool must arrive; only what was still in memory (the
// last flush interval) may be lost.
func TestAgentKilledWhileSpooling(t *testing.T) {
	t.Parallel()
	const series, partitions = 200, 4
	f := newOutageFixture(t, series, partitions)
	nats, natsURL, target, common := f.nats, f.natsURL, f.target, f.common
	agentDir := t.TempDir()
	agentArgs := append([]string{"-target=agent", "-data.dir", agentDir, "-agent.publish.flush-interval=1s",
		"-scrape.config-file", writeFastScrapeConfig(t, "spool", target.addr)}, common...)

	agg := startPharos(t, "aggregator", append([]string{"-target=aggregator,query", "-data.dir", t.TempDir()}, common...))
	agent := startPharos(t, "agent", agentArgs)
	testutil.Poll(t, 30*time.Second, 100*time.Millisecond, func() (bool, string) {
		return target.scrapes.Load() >= 3, "waiting for scrapes"
	})
	nats.Shutdown()
	before := target.scrapes.Load()
	testutil.Poll(t, 60*time.Second, 100*time.Millisecond, func() (bool, string) {
		return target.scrapes.Load() >= before+8, "waiting for scrapes while NATS is down"
	})
	// Everything answered up to here has been flushed to the spool once a
	// flush interval (1 s here) and a scrape have passed.
	spooled := target.scrapes.Load()
	testutil.Poll(t, 30*time.Second, 50*time.Millisecond, func() (bool, string) {
		return target.scrapes.Load() >= spooled+5, "waiting for the spooled scrapes to be flushed"
	})
	agent.Kill()

	f.restartNATS(t)
	// The target stays frozen from now on, so the restarted agent adds
	// nothing but its spool.
	target.frozen.Store(true)
	agent = startPharos(t, "agent-restarted", agentArgs)
	waitSpoolEmpty(t, agent)
	waitConsumed(t, natsURL, partitions)
	testutil.Poll(t, 60*time.Second, 500*time.Millisecond, func() (bool, string) {
		var data struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		}
		q := `min(count_over_time(delivery_series{job="spool"}[1h]))`
		if err := getAPI(agg.addr, "/api/v1/query", url.Values{"query": {q}}, &data); err != nil || len(data.Result) != 1 {
			return false, fmt.Sprintf("%s: %v %v", q, data.Result, err)
		}
		got, _ := strconv.ParseFloat(data.Result[0].Value[1].(string), 64)
		return got >= float64(spooled), fmt.Sprintf("fewest samples of a series %g, want at least the %d scrapes answered before the spool flush", got, spooled)
	})
	agent.Stop()
	agg.Stop()
}
