package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/grafana/dskit/services"
	"github.com/stretchr/testify/require"

	"github.com/pharos-obs/pharos/internal/cluster"
	"github.com/pharos-obs/pharos/internal/testutil"
)

const (
	statusWait = 60 * time.Second
	statusPoll = 50 * time.Millisecond
)

// startApp runs the modules of a process built from args (a data directory
// and loopback listeners on free ports are added), as Run does but without
// signals, and stops them at cleanup.
func startApp(t *testing.T, args ...string) *App {
	t.Helper()
	dir := t.TempDir()
	args = append([]string{
		"-data.dir=" + filepath.Join(dir, "data"),
		"-http.listen-address=127.0.0.1:0",
		"-otlp.grpc.listen-address=127.0.0.1:0",
		"-otlp.http.listen-address=127.0.0.1:0",
		"-nats.embedded.listen-address=127.0.0.1:0",
		"-nats.partitions=2",
		"-nats.stream.max-bytes=67108864",
	}, args...)
	cfg, _, err := Load(args, env(nil), nil)
	require.NoError(t, err)
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	a, err := New(cfg, logger)
	require.NoError(t, err)
	servs := make([]services.Service, 0, len(a.services))
	for _, s := range a.services {
		servs = append(servs, s)
	}
	sm, err := services.NewManager(servs...)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), statusWait)
	defer cancel()
	require.NoError(t, sm.StartAsync(context.Background()))
	t.Cleanup(func() {
		sm.StopAsync()
		stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		require.NoError(t, sm.AwaitStopped(stopCtx))
	})
	require.NoError(t, sm.AwaitHealthy(ctx))
	a.started.Store(true)
	return a
}

// get fetches path from the process and decodes its JSON into v; it
// returns the status code and, for other than 200, the body.
func get(t *testing.T, a *App, path string, v any) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + a.server.Addr() + path)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	if resp.StatusCode == http.StatusOK && v != nil {
		require.NoError(t, json.Unmarshal(body, v), "%s", body)
	}
	return resp.StatusCode, string(body)
}

// envelope is the Prometheus-style answer of the /api/v1/status endpoints.
type envelope[T any] struct {
	Status string `json:"status"`
	Data   T      `json:"data"`
}

type tailStatusDoc struct {
	Files []tailFileStatus `json:"files"`
}

type notificationsDoc struct {
	Receivers []struct {
		Name        string `json:"name"`
		Sent        uint64 `json:"sent"`
		Failed      uint64 `json:"failed"`
		LastSuccess string `json:"lastSuccess"`
		LastFailure string `json:"lastFailure"`
		LastError   string `json:"lastError"`
		Breaker     string `json:"breaker"`
		Queued      int    `json:"queued"`
	} `json:"receivers"`
	Failures []struct {
		Receiver string    `json:"receiver"`
		GroupKey string    `json:"groupKey"`
		Time     time.Time `json:"time"`
		Error    string    `json:"error"`
		Attempts int       `json:"attempts"`
		Alerts   int       `json:"alerts"`
	} `json:"failures"`
	Alertmanagers []json.RawMessage `json:"alertmanagers"`
}

// TestStatusEndpointsAllInOne runs an all-in-one process that tails a
// file, evaluates an always-firing rule and notifies a webhook that fails,
// and reads the three status endpoints.
func TestStatusEndpointsAllInOne(t *testing.T) {
	dir := t.TempDir()
	logDir := filepath.Join(dir, "logs")
	require.NoError(t, os.MkdirAll(logDir, 0o755))
	logFile := filepath.Join(logDir, "app.log")
	lines := "one\ntwo\nthree\n"
	require.NoError(t, os.WriteFile(logFile, []byte(lines), 0o644))

	rulesFile := filepath.Join(dir, "rules.yml")
	require.NoError(t, os.WriteFile(rulesFile, []byte(`groups:
  - name: always
    interval: 100ms
    rules:
      - alert: Always
        expr: vector(1)
`), 0o644))
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
	}))
	t.Cleanup(hook.Close)
	notifyFile := filepath.Join(dir, "notify.yml")
	require.NoError(t, os.WriteFile(notifyFile, []byte(fmt.Sprintf(`receivers:
  - {name: broken, url: %q}
route:
  receiver: broken
  group_wait: 0s
  group_interval: 100ms
  repeat_interval: 100ms
`, hook.URL)), 0o644))

	a := startApp(t,
		"-agent.tail.include="+filepath.Join(logDir, "*.log"),
		"-agent.tail.poll-interval=50ms",
		"-agent.tail.positions-sync-period=50ms",
		"-agent.tail.batch-wait=0s",
		"-agent.tail.kubernetes-labels=false",
		"-rules.files="+rulesFile,
		"-notify.config-file="+notifyFile,
		"-notify.allow-private-addresses=true",
		"-notify.retry.max-attempts=1",
		"-notify.breaker.failures=1",
		"-notify.breaker.open-timeout=1h",
	)

	t.Run("tail", func(t *testing.T) {
		var doc envelope[tailStatusDoc]
		n := int64(len(lines))
		testutil.Poll(t, statusWait, statusPoll, func() (bool, string) {
			code, body := get(t, a, "/api/v1/status/tail", &doc)
			if code != http.StatusOK {
				return false, body
			}
			fs := doc.Data.Files
			return len(fs) == 1 && fs[0].AckedOffset == n, fmt.Sprintf("%+v", fs)
		})
		require.Equal(t, "success", doc.Status)
		f := doc.Data.Files[0]
		require.Equal(t, logFile, f.Path)
		require.Equal(t, logFile, f.Source)
		require.Equal(t, map[string]string{"filename": logFile}, f.Labels)
		require.Equal(t, n, f.Size)
		require.Equal(t, n, f.ReadOffset, "read and acked (published to NATS, PubAck received)")
		require.Equal(t, map[string]int64{"truncated": 0, "deleted": 0}, f.LostBytes)
		require.Equal(t, "eof", f.State)
		_, err := time.Parse(time.RFC3339, f.LastRead)
		require.NoError(t, err)
	})

	t.Run("notifications", func(t *testing.T) {
		var doc envelope[notificationsDoc]
		testutil.Poll(t, statusWait, statusPoll, func() (bool, string) {
			code, body := get(t, a, "/api/v1/status/notifications", &doc)
			if code != http.StatusOK {
				return false, body
			}
			rs := doc.Data.Receivers
			return len(rs) == 1 && rs[0].Failed > 0 && len(doc.Data.Failures) > 0, fmt.Sprintf("%+v", doc.Data)
		})
		r := doc.Data.Receivers[0]
		require.Equal(t, "broken", r.Name)
		require.Zero(t, r.Sent)
		require.Empty(t, r.LastSuccess)
		_, err := time.Parse(time.RFC3339, r.LastFailure)
		require.NoError(t, err)
		require.NotEmpty(t, r.LastError)
		require.Equal(t, "open", r.Breaker, "one failure trips it")
		// Newest first: the webhook's refusal that tripped the breaker is
		// the oldest entry; later ones are refused by the open breaker.
		oldest := doc.Data.Failures[len(doc.Data.Failures)-1]
		require.Equal(t, "broken", oldest.Receiver)
		require.NotEmpty(t, oldest.GroupKey)
		require.Contains(t, oldest.Error, "503")
		require.Equal(t, 1, oldest.Attempts)
		require.Equal(t, 1, oldest.Alerts)
		require.NotNil(t, doc.Data.Alertmanagers)
		require.Empty(t, doc.Data.Alertmanagers, "no -alertmanager.url")
	})

	t.Run("cluster", func(t *testing.T) {
		var st clusterStatus
		testutil.Poll(t, statusWait, statusPoll, func() (bool, string) {
			code, body := get(t, a, "/cluster/status", &st)
			if code != http.StatusOK {
				return false, body
			}
			for _, s := range st.Streams {
				if s.Name == "PHAROS_LOGS" && s.LastSeq > 0 && s.Error == "" {
					return true, ""
				}
			}
			return false, fmt.Sprintf("streams %+v", st.Streams)
		})
		require.Equal(t, a.cfg.Agent.ID, st.Instance)
		require.Empty(t, st.Members)
		require.NotNil(t, st.Members)
		require.Equal(t, 2, st.Partitions)
		require.Equal(t, map[string][]string{"0": {st.Instance}, "1": {st.Instance}}, st.Owners)

		var names []string
		for _, s := range st.Streams {
			names = append(names, s.Name)
			require.Empty(t, s.Error, s.Name)
			require.Equal(t, []string{"pharos." + strings.ToLower(strings.TrimPrefix(s.Name, "PHAROS_")) + ".*"}, s.Subjects)
			require.Equal(t, 2, s.Consumers, "one per partition at RF 1")
			require.Equal(t, 1, s.Replicas)
		}
		require.Equal(t, []string{"PHAROS_METRICS", "PHAROS_LOGS", "PHAROS_TRACES"}, names)

		// Every signal's durable consumer of every partition.
		got := map[string]int{}
		for _, c := range st.Consumers {
			require.Empty(t, c.Error)
			require.Equal(t, st.Instance, c.Instance)
			require.Zero(t, c.Replica)
			got[c.Signal]++
		}
		require.Equal(t, map[string]int{"metrics": 2, "logs": 2, "traces": 2}, got)

		require.Len(t, st.Spools, 2)
		for i, signal := range []string{"metrics", "traces"} {
			sp := st.Spools[i]
			require.Equal(t, signal, sp.Signal)
			require.Equal(t, a.cfg.Agent.Spool.MaxBytes, sp.LimitBytes)
			require.GreaterOrEqual(t, sp.Bytes, int64(0))
		}

		// A querier's view: it asks each healthy member for its local
		// status and merges the consumers and streams; a member that does
		// not answer says so.
		dead := httptest.NewServer(http.NotFoundHandler())
		deadAddr := dead.Listener.Addr().String()
		dead.Close()
		instances := []cluster.Instance{
			{ID: "agg-1", Addr: a.server.Addr(), State: cluster.StateActive, Healthy: true},
			{ID: "agg-2", Addr: deadAddr, State: cluster.StateActive, Healthy: true},
			{ID: "agg-3", Addr: deadAddr, State: cluster.StateActive, Healthy: false},
		}
		q := &App{cfg: a.cfg}
		merged := clusterStatus{Members: make([]memberStatus, len(instances))}
		ctx, cancel := context.WithTimeout(context.Background(), statusTimeout)
		defer cancel()
		q.fanOutStatus(ctx, &merged, instances)
		require.Empty(t, merged.Members[0].Error)
		require.NotEmpty(t, merged.Members[1].Error, "agg-2 does not answer")
		require.Empty(t, merged.Members[2].Error, "agg-3 is not asked: unhealthy")
		require.Len(t, merged.Consumers, 6)
		require.Equal(t, "metrics", merged.Consumers[0].Signal)
		require.Equal(t, "traces", merged.Consumers[5].Signal)
		require.Len(t, merged.Streams, 3)
	})

	t.Run("scope local", func(t *testing.T) {
		var st clusterStatus
		code, body := get(t, a, "/cluster/status?scope=local", &st)
		require.Equal(t, http.StatusOK, code, body)
		require.Len(t, st.Consumers, 6)
	})

	t.Run("rules from a querier", func(t *testing.T) {
		// A query-only process evaluates no rules: it asks its aggregators,
		// one of which does not answer.
		dead := httptest.NewServer(http.NotFoundHandler())
		deadAddr := dead.Listener.Addr().String()
		dead.Close()
		q := startApp(t, "-target=query", "-query.aggregator.addresses="+a.server.Addr()+","+deadAddr)
		type warned struct {
			Warnings []string `json:"warnings"`
		}

		var rulesDoc struct {
			envelope[struct {
				Groups []struct {
					Name           string    `json:"name"`
					LastEvaluation time.Time `json:"lastEvaluation"`
					Rules          []struct {
						Name  string `json:"name"`
						State string `json:"state"`
					} `json:"rules"`
				} `json:"groups"`
			}]
			warned
		}
		code, body := get(t, q, "/api/v1/rules", &rulesDoc)
		require.Equal(t, http.StatusOK, code, body)
		require.Len(t, rulesDoc.Data.Groups, 1, body)
		g := rulesDoc.Data.Groups[0]
		require.Equal(t, "always", g.Name)
		require.False(t, g.LastEvaluation.IsZero())
		require.Equal(t, "Always", g.Rules[0].Name)
		require.Equal(t, "firing", g.Rules[0].State)
		require.Len(t, rulesDoc.Warnings, 1)
		require.Contains(t, rulesDoc.Warnings[0], "aggregator "+deadAddr)

		var alertsDoc struct {
			envelope[struct {
				Alerts []struct {
					Labels map[string]string `json:"labels"`
					State  string            `json:"state"`
				} `json:"alerts"`
			}]
			warned
		}
		code, body = get(t, q, "/api/v1/alerts", &alertsDoc)
		require.Equal(t, http.StatusOK, code, body)
		require.Len(t, alertsDoc.Data.Alerts, 1, body)
		require.Equal(t, "Always", alertsDoc.Data.Alerts[0].Labels["alertname"])
		require.Equal(t, "firing", alertsDoc.Data.Alerts[0].State)

		var notifDoc struct {
			envelope[struct {
				Receivers []struct {
					Name     string `json:"name"`
					Instance string `json:"instance"`
					Failed   uint64 `json:"failed"`
				} `json:"receivers"`
				Failures []struct {
					Receiver string `json:"receiver"`
					Instance string `json:"instance"`
				} `json:"failures"`
			}]
			warned
		}
		code, body = get(t, q, "/api/v1/status/notifications", &notifDoc)
		require.Equal(t, http.StatusOK, code, body)
		require.Len(t, notifDoc.Data.Receivers, 1, body)
		r := notifDoc.Data.Receivers[0]
		require.Equal(t, "broken", r.Name)
		require.Equal(t, a.server.Addr(), r.Instance, "a static aggregator is named by its address")
		require.NotZero(t, r.Failed)
		require.NotEmpty(t, notifDoc.Data.Failures)
		require.Equal(t, a.server.Addr(), notifDoc.Data.Failures[0].Instance)
		require.Len(t, notifDoc.Warnings, 1)

		// Asked as an aggregator, the querier has nothing of its own.
		for _, path := range []string{"/api/v1/rules", "/api/v1/alerts", "/api/v1/status/notifications"} {
			code, body := get(t, q, path+"?scope=local", nil)
			require.Equal(t, http.StatusNotFound, code, path)
			require.Contains(t, body, "evaluates no rules", path)
		}
	})
}

// TestStatusNotFound: a process without the data says why.
func TestStatusNotFound(t *testing.T) {
	a := &App{cfg: &Config{Target: []string{TargetQuery}}}
	a.cfg.Query.Aggregators = []string{"127.0.0.1:1"}
	for _, tc := range []struct {
		path, want string
		handler    http.HandlerFunc
	}{
		{"/api/v1/status/tail", "tails no log files", a.handleTailStatus},
		{"/api/v1/status/notifications", "evaluates no rules", a.handleNotificationsStatus},
		{"/cluster/status", "not in a ring", a.handleClusterStatus},
	} {
		rec := httptest.NewRecorder()
		tc.handler(rec, httptest.NewRequest(http.MethodGet, tc.path, nil))
		require.Equal(t, http.StatusNotFound, rec.Code, tc.path)
		require.Contains(t, rec.Body.String(), tc.want, tc.path)
		require.True(t, strings.HasPrefix(rec.Header().Get("Content-Type"), "text/plain"), tc.path)
	}
}
