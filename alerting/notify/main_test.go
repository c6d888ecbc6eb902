package notify

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/grafana/dskit/services"
	"github.com/prometheus/alertmanager/types"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/pharos-obs/pharos/internal/testutil"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testConfig returns the flag defaults with the receivers and route of
// routing, private addresses allowed (httptest listens on 127.0.0.1) and
// short retry waits.
func testConfig(t *testing.T, routing string) Config {
	t.Helper()
	var cfg Config
	cfg.RegisterFlags(flag.NewFlagSet("test", flag.PanicOnError))
	cfg.AllowPrivateAddresses = true
	cfg.Retry.MinBackoff = 5 * time.Millisecond
	cfg.Retry.MaxBackoff = 20 * time.Millisecond
	if routing != "" {
		r, err := ParseRouting([]byte(routing))
		require.NoError(t, err)
		cfg.Routing = *r
	}
	return cfg
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewJSONHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// startNotifier builds and starts a Notifier and stops it at cleanup.
func startNotifier(t *testing.T, cfg Config) (*Notifier, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	n, err := New(cfg, testLogger(t), reg)
	require.NoError(t, err)
	require.NoError(t, services.StartAndAwaitRunning(context.Background(), n))
	t.Cleanup(func() {
		require.NoError(t, services.StopAndAwaitTerminated(context.Background(), n))
	})
	return n, reg
}

// hookRequest is one request a hook received.
type hookRequest struct {
	at     time.Time
	header http.Header
	body   []byte
}

// message decodes the request's payload.
func (r hookRequest) message(t *testing.T) Message {
	t.Helper()
	var m Message
	require.NoError(t, json.Unmarshal(r.body, &m))
	return m
}

// hook is a webhook receiver on a random loopback port that records what
// it gets and answers with respond (200 when nil). A hanging hook blocks
// each request until the client gives up or the test ends.
type hook struct {
	srv     *httptest.Server
	respond func(n int, w http.ResponseWriter) // n counts requests from 1
	hang    bool

	mu       sync.Mutex
	reqs     []hookRequest
	started  int
	finished int
}

func newHook(t *testing.T, configure func(*hook)) *hook {
	t.Helper()
	h := &hook{}
	if configure != nil {
		configure(h)
	}
	release := make(chan struct{})
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		h.started++
		n := h.started
		h.mu.Unlock()
		defer func() {
			h.mu.Lock()
			h.finished++
			h.mu.Unlock()
		}()
		if h.hang {
			select {
			case <-r.Context().Done():
			case <-release:
			}
			return
		}
		h.mu.Lock()
		h.reqs = append(h.reqs, hookRequest{at: time.Now(), header: r.Header.Clone(), body: body})
		h.mu.Unlock()
		if h.respond != nil {
			h.respond(n, w)
		}
	}))
	t.Cleanup(func() {
		close(release)
		h.srv.Close()
	})
	return h
}

func (h *hook) requests() []hookRequest {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]hookRequest(nil), h.reqs...)
}

func (h *hook) counts() (started, finished int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.started, h.finished
}

// waitRequests polls until h has recorded at least n requests.
func (h *hook) waitRequests(t *testing.T, n int, timeout time.Duration) []hookRequest {
	t.Helper()
	var got []hookRequest
	poll(t, timeout, func() (bool, string) {
		got = h.requests()
		return len(got) >= n, fmt.Sprintf("%d requests, want %d", len(got), n)
	})
	return got
}

// poll checks cond every few milliseconds until it holds or timeout passes.
func poll(t *testing.T, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	testutil.Poll(t, timeout, 5*time.Millisecond, cond)
}

func alert(ls model.LabelSet, startsAt, endsAt time.Time) *types.Alert {
	return &types.Alert{Alert: model.Alert{Labels: ls, StartsAt: startsAt, EndsAt: endsAt}}
}
