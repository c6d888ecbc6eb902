package query

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"

	"github.com/pharos-obs/pharos/query/promapi"
)

// blockingQueryable holds every Querier call until release is closed.
type blockingQueryable struct {
	entered chan struct{}
	release chan struct{}
}

func (q *blockingQueryable) Querier(int64, int64) (storage.Querier, error) {
	select {
	case q.entered <- struct{}{}:
	default:
	}
	<-q.release
	return storage.NoopQuerier(), nil
}

// TestPrometheusConcurrencyLimit: with the only slot taken, a request waits
// -query.max-queue-wait, then gets 429 with Retry-After and a Prometheus
// error body naming the flag; the held request completes.
func TestPrometheusConcurrencyLimit(t *testing.T) {
	var cfg Config
	cfg.PromAPI = promapi.Config{Timeout: time.Minute, LookbackDelta: 5 * time.Minute}
	cfg.MaxSamples, cfg.LookbackDelta, cfg.ReadTimeout = 1000, 5*time.Minute, time.Minute
	cfg.MaxConcurrent, cfg.MaxQueueWait = 1, 10*time.Millisecond
	bq := &blockingQueryable{entered: make(chan struct{}, 1), release: make(chan struct{})}
	reg := prometheus.NewRegistry()
	api, err := New(cfg, Source{Queryable: bq}, promapi.BuildInfo{}, slog.New(slog.DiscardHandler), reg)
	require.NoError(t, err)
	srv := httptest.NewServer(api.PrometheusHandler())
	t.Cleanup(srv.Close)

	held := make(chan int, 1)
	go func() {
		resp, err := srv.Client().Get(srv.URL + "/api/v1/query?query=up")
		if err != nil {
			held <- 0
			return
		}
		resp.Body.Close()
		held <- resp.StatusCode
	}()
	<-bq.entered
	resp, err := srv.Client().Get(srv.URL + "/api/v1/query?query=up")
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	close(bq.release)
	require.Equal(t, http.StatusOK, <-held)

	require.Equal(t, http.StatusTooManyRequests, resp.StatusCode, string(body))
	require.Equal(t, "1", resp.Header.Get("Retry-After"))
	var e struct{ Status, ErrorType, Error string }
	require.NoError(t, json.Unmarshal(body, &e))
	require.Equal(t, "error", e.Status)
	require.Equal(t, "unavailable", e.ErrorType)
	require.Contains(t, e.Error, "(limit -query.max-concurrent=1)")
	require.Contains(t, e.Error, "-query.max-queue-wait")
	mfs, err := reg.Gather()
	require.NoError(t, err)
	found := false
	for _, mf := range mfs {
		if mf.GetName() == "pharos_query_limited_total" {
			found = true
			require.Equal(t, 1.0, mf.GetMetric()[0].GetCounter().GetValue())
		}
	}
	require.True(t, found)
}
