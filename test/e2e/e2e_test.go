package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pharos-obs/pharos/internal/testutil"
)

// TestAllInOne runs the default target: scrape → embedded JetStream → TSDB
// → Prometheus API in one process, then restarts it on the same data
// directory and requires the data stored before the restart.
func TestAllInOne(t *testing.T) {
	t.Parallel()
	promtool(t) // fail before starting anything
	target := startTarget(t)
	args := []string{
		"-data.dir", t.TempDir(),
		"-scrape.config-file", writeScrapeConfig(t, target),
		"-nats.partitions", "4",
		"-http.listen-address", "127.0.0.1:0",
		"-nats.embedded.listen-address", "127.0.0.1:0",
	}
	p := startPharos(t, "all", args)

	t.Run("promtool", func(t *testing.T) { requireE2EValues(t, p.addr, target) })
	t.Run("http api", func(t *testing.T) { requireE2EAPI(t, p.addr, target) })
	t.Run("buildinfo", func(t *testing.T) { requireBuildInfo(t, p.addr) })

	// Take the stored samples of one series, with at least a few scrapes.
	const series = `e2e_value{case="a"}`
	const minSamples = 5
	var before []rawSample
	testutil.Poll(t, dataTimeout, 500*time.Millisecond, func() (bool, string) {
		s, err := querySamples(p.addr, series+"[1h]", time.Now())
		if err != nil {
			return false, err.Error()
		}
		before = s
		return len(s) >= minSamples, fmt.Sprintf("want at least %d samples of %s, got %d", minSamples, series, len(s))
	})
	for _, s := range before {
		require.Equal(t, wantValues["a"], s.V, "sample at %d", s.T)
	}
	last := before[len(before)-1].T
	t.Logf("before restart: %d samples of %s from %d to %d", len(before), series, before[0].T, last)
	p.Stop()

	restartedAt := time.Now()
	p = startPharos(t, "all-restarted", args)

	// Evaluated just after the first run's last sample seen, so that only
	// the samples of the first run count; later scrapes are a second apart.
	at := time.UnixMilli(last).Add(100 * time.Millisecond)
	after, err := querySamples(p.addr, series+"[1h]", at)
	require.NoError(t, err)
	t.Logf("after restart: %d samples of %s up to %d", len(after), series, last)
	require.Subset(t, after, before, "samples of %s stored before the restart", series)

	counts, err := promtoolQuery(t, p.addr, "count_over_time("+series+"[1h])", at)
	require.NoError(t, err)
	require.Len(t, counts, 1, "count_over_time: %+v", counts)
	require.GreaterOrEqual(t, counts[0].Value, float64(len(before)), "count_over_time(%s[1h]) at the first run's last sample", series)

	// Ingestion resumes after the restart.
	testutil.Poll(t, dataTimeout, 500*time.Millisecond, func() (bool, string) {
		s, err := querySamples(p.addr, series+"[1m]", time.Now())
		if err != nil {
			return false, err.Error()
		}
		if len(s) == 0 || s[len(s)-1].T < restartedAt.UnixMilli() {
			return false, fmt.Sprintf("no sample of %s scraped after the restart at %d: %v", series, restartedAt.UnixMilli(), s)
		}
		return true, ""
	})
	p.Stop()
}

// TestDefaultSelfScrape runs the all-in-one without a scrape configuration:
// Pharos scrapes its own /metrics (every 15 s) as job "pharos".
func TestDefaultSelfScrape(t *testing.T) {
	t.Parallel()
	promtool(t)
	p := startPharos(t, "all-self", []string{
		"-data.dir", t.TempDir(),
		"-nats.partitions", "4",
		"-http.listen-address", "127.0.0.1:0",
		"-nats.embedded.listen-address", "127.0.0.1:0",
	})
	for _, q := range []struct {
		expr string
		name string
	}{
		{`up{job="pharos"}`, "up"},
		{`pharos_build_info{job="pharos"}`, "pharos_build_info"},
	} {
		testutil.Poll(t, dataTimeout, time.Second, func() (bool, string) {
			s, err := promtoolQuery(t, p.addr, q.expr, time.Time{})
			if err != nil {
				return false, err.Error()
			}
			if len(s) != 1 || s[0].Value != 1 {
				return false, fmt.Sprintf("%s: want one sample 1, got %+v", q.expr, s)
			}
			require.Equal(t, q.name, s[0].Labels["__name__"])
			require.Equal(t, p.addr, s[0].Labels["instance"], "self-scrape target is the bound HTTP address")
			return true, ""
		})
	}
	p.Stop()
}

// TestSplitRoles runs each role as its own process around an external
// NATS server: agent → NATS → aggregator ← query.
func TestSplitRoles(t *testing.T) {
	t.Parallel()
	promtool(t)
	nats := testutil.StartNATS(t)
	target := startTarget(t)
	common := []string{"-nats.partitions", "4", "-http.listen-address", "127.0.0.1:0"}
	args := func(extra ...string) []string {
		return append(append([]string{"-data.dir", t.TempDir()}, common...), extra...)
	}

	agg := startPharos(t, "aggregator", args("-target=aggregator", "-nats.url", nats.ClientURL()))
	agent := startPharos(t, "agent", args("-target=agent", "-nats.url", nats.ClientURL(),
		"-scrape.config-file", writeScrapeConfig(t, target)))
	query := startPharos(t, "query", args("-target=query", "-query.aggregator.addresses", agg.addr))

	t.Run("promtool", func(t *testing.T) { requireE2EValues(t, query.addr, target) })
	t.Run("http api", func(t *testing.T) { requireE2EAPI(t, query.addr, target) })
	t.Run("buildinfo", func(t *testing.T) { requireBuildInfo(t, query.addr) })

	// The agent first, so that it flushes into a running aggregator.
	agent.Stop()
	query.Stop()
	agg.Stop()
}
