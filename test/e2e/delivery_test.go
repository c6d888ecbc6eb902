package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pharos-obs/pharos/internal/bus"
	"github.com/pharos-obs/pharos/internal/testutil"
)

// countingTarget serves n gauge series and counts the scrapes it answered,
// so a test knows how many samples each series must have. Once frozen it
// answers 503, so the count stops moving while the agent keeps running.
type countingTarget struct {
	addr    string
	scrapes atomic.Int64
	refused atomic.Int64
	frozen  atomic.Bool
	body    string
}

// freeze stops serving samples and waits until the agent has been refused
// twice: scrapes of a target are sequential, so every answered scrape has
// then been committed by the agent, and the count is final.
func (ct *countingTarget) freeze(t *testing.T) int64 {
	t.Helper()
	ct.frozen.Store(true)
	testutil.Poll(t, 30*time.Second, 50*time.Millisecond, func() (bool, string) {
		return ct.refused.Load() >= 2, "waiting for the agent to see the target refuse"
	})
	return ct.scrapes.Load()
}

func startCountingTarget(t *testing.T, n int) *countingTarget {
	t.Helper()
	var b strings.Builder
	b.WriteString("# TYPE delivery_series gauge\n")
	for i := range n {
		fmt.Fprintf(&b, "delivery_series{i=\"%d\"} %d\n", i, i)
	}
	ct := &countingTarget{body: b.String()}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if ct.frozen.Load() {
			ct.refused.Add(1)
			http.Error(w, "frozen", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		_, _ = io.WriteString(w, ct.body)
		ct.scrapes.Add(1)
	}))
	t.Cleanup(srv.Close)
	ct.addr = srv.Listener.Addr().String()
	return ct
}

func writeFastScrapeConfig(t *testing.T, job, target string) string {
	t.Helper()
	return writeFile(t, "prometheus.yml", fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 900ms
scrape_configs:
  - job_name: %s
    static_configs:
      - targets: [%q]
`, job, target))
}

// waitConsumed polls until every partition's durable consumer has nothing
// pending or unacknowledged.
func waitConsumed(t *testing.T, natsURL string, partitions int) {
	t.Helper()
	cfg := bus.DefaultConfig()
	cfg.URL = natsURL
	cfg.Partitions = partitions
	conn, err := bus.Connect(cfg, nil, "e2e-observer", nil, nil)
	require.NoError(t, err)
	defer conn.Close()
	testutil.Poll(t, 60*time.Second, 200*time.Millisecond, func() (bool, string) {
		for p := range partitions {
			lag, err := conn.ConsumerLag(context.Background(), bus.SignalMetrics, bus.DurableName(bus.SignalMetrics, p, 0))
			if err != nil {
				return false, fmt.Sprintf("partition %d: %v", p, err)
			}
			if lag != 0 {
				return false, fmt.Sprintf("partition %d: %d messages not yet acknowledged", p, lag)
			}
		}
		return true, ""
	})
}

// requireEverySample checks that each of the n series holds exactly as many
// samples as the target answered scrapes: none lost, none stored twice.
func requireEverySample(t *testing.T, addr, job string, n int, scrapes int64) {
	t.Helper()
	at := time.Now()
	for i := range n {
		sel := fmt.Sprintf(`delivery_series{job=%q,i="%d"}[1h]`, job, i)
		samples, err := querySamples(addr, sel, at)
		require.NoError(t, err)
		require.Len(t, samples, int(scrapes), "series i=%d: samples stored vs scrapes answered", i)
		for k := 1; k < len(samples); k++ {
			require.Greater(t, samples[k].T, samples[k-1].T, "series i=%d: duplicate timestamp", i)
		}
	}
}

// TestAggregatorKilledDuringIngest kills the aggregator with SIGKILL five
// times while the agent scrapes: what the agent published stays in the
// stream until an aggregator acknowledges it after its TSDB commit, so
// every scraped sample must end up stored exactly once.
func TestAggregatorKilledDuringIngest(t *testing.T) {
	t.Parallel()
	const series, partitions = 300, 4
	nats := testutil.StartNATS(t)
	target := startCountingTarget(t, series)
	aggDir := t.TempDir()
	// A killed aggregator's pins expire after the pinned TTL, which its
	// restarted self waits out: keep it short.
	common := []string{"-nats.partitions", fmt.Sprint(partitions), "-nats.url", nats.ClientURL(), "-nats.consumer.pinned-ttl=2s"}
	aggArgs := func(target string) []string {
		return append([]string{"-target=" + target, "-data.dir", aggDir}, common...)
	}

	agg := startPharos(t, "aggregator-0", aggArgs("aggregator"))
	agent := startPharos(t, "agent", append([]string{"-target=agent", "-data.dir", t.TempDir(),
		"-scrape.config-file", writeFastScrapeConfig(t, "delivery", target.addr)}, common...))

	for i := 1; i <= 5; i++ {
		// Let a few scrapes through before each crash.
		seen := target.scrapes.Load()
		testutil.Poll(t, 30*time.Second, 50*time.Millisecond, func() (bool, string) {
			return target.scrapes.Load() >= seen+2, "waiting for scrapes"
		})
		agg.Kill()
		agg = startPharos(t, fmt.Sprintf("aggregator-%d", i), aggArgs("aggregator"))
	}
	// The last incarnation also answers queries from its local TSDB.
	agg.Stop()
	agg = startPharos(t, "aggregator-final", aggArgs("aggregator,query"))

	scrapes := target.freeze(t)
	agent.Stop() // flushes its last batches
	require.GreaterOrEqual(t, scrapes, int64(10))
	waitConsumed(t, nats.ClientURL(), partitions)
	requireEverySample(t, agg.addr, "delivery", series, scrapes)
	agg.Stop()
}
