package e2e

import (
	"fmt"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pharos-obs/pharos/internal/testutil"
)

// TestReloadLosesNothing reloads the scrape configuration twice during
// ingest — POST /-/reload and SIGHUP — adding a job each time: the job that
// stays keeps every sample, and the new jobs start scraping.
func TestReloadLosesNothing(t *testing.T) {
	t.Parallel()
	const series = 50
	target := startCountingTarget(t, series)
	extra := startTarget(t)
	cfgPath := writeFastScrapeConfig(t, "reload", target.addr)
	p := startPharos(t, "pharos", append([]string{"-data.dir", t.TempDir(), "-nats.partitions", "4", "-scrape.config-file", cfgPath}, adminArgs...))

	addJob := func(job string) {
		raw, err := os.ReadFile(cfgPath)
		require.NoError(t, err)
		raw = append(raw, fmt.Sprintf("  - job_name: %s\n    static_configs:\n      - targets: [%q]\n", job, extra)...)
		require.NoError(t, os.WriteFile(cfgPath, raw, 0o600))
	}
	waitScrapes := func(n int64) {
		seen := target.scrapes.Load()
		testutil.Poll(t, 30*time.Second, 50*time.Millisecond, func() (bool, string) {
			return target.scrapes.Load() >= seen+n, "waiting for scrapes"
		})
	}
	waitUp := func(job string) {
		testutil.Poll(t, 30*time.Second, 200*time.Millisecond, func() (bool, string) {
			got, err := promtoolQuery(t, p.addr, fmt.Sprintf(`up{job=%q}`, job), time.Now())
			return err == nil && len(got) == 1 && got[0].Value == 1, fmt.Sprintf("up{job=%q}: %v %v", job, got, err)
		})
	}

	waitScrapes(3)
	addJob("added-by-post")
	// Admin endpoints are not on the public port.
	resp, err := httpClient.Post("http://"+p.addr+"/-/reload", "", strings.NewReader(""))
	require.NoError(t, err)
	resp.Body.Close()
	require.NotEqual(t, http.StatusOK, resp.StatusCode)
	code, body := p.reload()
	require.Equal(t, http.StatusOK, code, body)
	waitUp("added-by-post")

	waitScrapes(3)
	addJob("added-by-sighup")
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGHUP))
	waitUp("added-by-sighup")

	// A broken file is refused and scraping goes on.
	require.NoError(t, os.WriteFile(cfgPath, []byte("scrape_configs: [{job_name: 5}"), 0o600))
	code, body = p.reload()
	require.Equal(t, http.StatusInternalServerError, code, body)

	waitScrapes(3)
	scrapes := target.freeze(t)
	testutil.Poll(t, 30*time.Second, 500*time.Millisecond, func() (bool, string) {
		got := instant(t, p.addr, `count(count_over_time(delivery_series{job="reload"}[1h]) == `+fmt.Sprint(scrapes)+`)`, time.Now())
		return len(got) == 1 && strings.HasSuffix(got[0], fmt.Sprintf("=> %d", series)),
			fmt.Sprintf("series holding all %d scrapes: %v", scrapes, got)
	})
	requireCountPerSeries(t, p.addr, "reload", series, scrapes)
	p.Stop()
}
