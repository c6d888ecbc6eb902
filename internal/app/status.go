package app

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pharos-obs/pharos/aggregator"
	"github.com/pharos-obs/pharos/alerting/notify"
	"github.com/pharos-obs/pharos/collector/spool"
	"github.com/pharos-obs/pharos/internal/bus"
	"github.com/pharos-obs/pharos/internal/cluster"
)

// statusTimeout bounds a status request: its look-ups on NATS, the tailer's
// loop and, on a querier, the members' answers.
const statusTimeout = 2 * time.Second

// statusFanOut is how many members a querier asks for their status at once.
const statusFanOut = 8

// registerStatusRoutes adds the status endpoints the dashboard reads. They
// are registered on every process and answer 404, with the reason, where
// the process has nothing to report; /cluster/status is registered by the
// ring's module when there is a ring.
func (a *App) registerStatusRoutes() {
	a.server.mux.HandleFunc("GET /api/v1/status/tail", a.handleTailStatus)
	a.server.mux.HandleFunc("GET /api/v1/status/notifications", a.handleNotificationsStatus)
	if !a.cfg.ringEnabled() {
		a.server.mux.HandleFunc("GET /cluster/status", a.handleClusterStatus)
	}
}

// writeData writes a Prometheus-style success envelope.
func writeData(w http.ResponseWriter, data any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(struct {
		Status string `json:"status"`
		Data   any    `json:"data"`
	}{"success", data})
}

// writeError writes a Prometheus-style error envelope.
func writeError(w http.ResponseWriter, code int, errType string, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(struct {
		Status    string `json:"status"`
		ErrorType string `json:"errorType"`
		Error     string `json:"error"`
	}{"error", errType, err.Error()})
}

// formatTime is RFC 3339 in UTC, or "" for the zero time.
func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// tailFileStatus is one file of GET /api/v1/status/tail.
type tailFileStatus struct {
	Path        string            `json:"path"`
	Source      string            `json:"source"`
	Labels      map[string]string `json:"labels"`
	Size        int64             `json:"size"`
	ReadOffset  int64             `json:"readOffset"`
	AckedOffset int64             `json:"ackedOffset"`
	LostBytes   map[string]int64  `json:"lostBytes"`
	LastRead    string            `json:"lastRead"`
	State       string            `json:"state"`
}

func (a *App) handleTailStatus(w http.ResponseWriter, r *http.Request) {
	if a.tailer == nil {
		http.Error(w, "this process tails no log files (it runs no agent with -agent.tail.enabled)", http.StatusNotFound)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), statusTimeout)
	defer cancel()
	files, err := a.tailer.Files(ctx)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "unavailable", fmt.Errorf("tailer: %w", err))
		return
	}
	out := make([]tailFileStatus, len(files))
	for i, f := range files {
		out[i] = tailFileStatus{
			Path: f.Path, Source: f.Source, Labels: f.Labels, Size: f.Size,
			ReadOffset: f.ReadOffset, AckedOffset: f.AckedOffset, LostBytes: f.LostBytes,
			LastRead: formatTime(f.LastRead), State: f.State,
		}
	}
	writeData(w, struct {
		Files []tailFileStatus `json:"files"`
	}{out})
}

// notificationsStatus is the data of GET /api/v1/status/notifications.
type notificationsStatus struct {
	Receivers     []receiverStatus     `json:"receivers"`
	Failures      []notify.Failure     `json:"failures"`
	Alertmanagers []alertmanagerStatus `json:"alertmanagers"`
}

type receiverStatus struct {
	Name        string `json:"name"`
	Sent        uint64 `json:"sent"`
	Failed      uint64 `json:"failed"`
	LastSuccess string `json:"lastSuccess"`
	LastFailure string `json:"lastFailure"`
	LastError   string `json:"lastError"`
	Breaker     string `json:"breaker"`
	Queued      int    `json:"queued"`
}

type alertmanagerStatus struct {
	URL     string  `json:"url"`
	Sent    float64 `json:"sent"`
	Errors  float64 `json:"errors"`
	Dropped float64 `json:"dropped"`
	Queued  float64 `json:"queued"`
}

func (a *App) handleNotificationsStatus(w http.ResponseWriter, r *http.Request) {
	if !a.cfg.rulesEnabled() {
		if a.rulesFanOut != nil && r.URL.Query().Get("scope") != "local" {
			a.rulesFanOut.NotificationsHandler().ServeHTTP(w, r)
			return
		}
		http.Error(w, "this process evaluates no rules, so it sends no notifications (rules run on aggregators with -rules.files, -rules.log-files or -rules.tenants-dir)", http.StatusNotFound)
		return
	}
	st := notificationsStatus{Receivers: []receiverStatus{}, Failures: []notify.Failure{}, Alertmanagers: []alertmanagerStatus{}}
	if a.notifier != nil {
		for _, r := range a.notifier.Receivers() {
			st.Receivers = append(st.Receivers, receiverStatus{
				Name: r.Name, Sent: r.Sent, Failed: r.Failed,
				LastSuccess: formatTime(r.LastSuccess), LastFailure: formatTime(r.LastFailure), LastError: r.LastError,
				Breaker: r.Breaker, Queued: r.Queued,
			})
		}
		st.Failures = append(st.Failures, a.notifier.Failures()...)
	}
	if m := a.rules.Load(); m != nil {
		for _, am := range m.Alertmanagers() {
			st.Alertmanagers = append(st.Alertmanagers, alertmanagerStatus(am))
		}
	}
	writeData(w, st)
}

type streamStatus struct {
	Signal    string   `json:"signal"`
	Name      string   `json:"name"`
	Subjects  []string `json:"subjects"`
	Messages  uint64   `json:"messages"`
	Bytes     uint64   `json:"bytes"`
	FirstSeq  uint64   `json:"firstSeq"`
	LastSeq   uint64   `json:"lastSeq"`
	Consumers int      `json:"consumers"`
	Replicas  int      `json:"replicas"`
	Leader    string   `json:"leader"`
	Error     string   `json:"error"`
}

type spoolStatus struct {
	Signal     string `json:"signal"`
	Bytes      int64  `json:"bytes"`
	Segments   int    `json:"segments"`
	Records    int    `json:"records"`
	LimitBytes int64  `json:"limitBytes"`
}

// busConn is the NATS connection once every module has started (it is
// made while the bus module starts, when requests may already come in).
func (a *App) busConn() *bus.Conn {
	if !a.started.Load() {
		return nil
	}
	return a.conn
}

// localStatus adds what this process itself knows to st: its consumers
// (an aggregator), the streams (a process with a NATS connection) and its
// spool (a process that publishes).
func (a *App) localStatus(ctx context.Context, st *clusterStatus, ring bool) {
	conn := a.busConn()
	if conn != nil {
		var owned []aggregator.PartitionReplica
		switch {
		case a.agg != nil:
			owned = a.agg.Owned()
		case !ring && a.cfg.has(TargetAggregator):
			for p := range a.cfg.NATS.Partitions {
				owned = append(owned, aggregator.PartitionReplica{Partition: p})
			}
		}
		for _, s := range bus.Signals {
			for _, pr := range owned {
				cs := consumerStatus{Signal: string(s), Partition: pr.Partition, Replica: pr.Replica, Instance: st.Instance}
				stats, err := conn.ConsumerStats(ctx, s, bus.DurableName(s, pr.Partition, pr.Replica))
				if err != nil {
					cs.Error = err.Error()
				}
				cs.Lag, cs.AckPending = stats.Lag(), stats.AckPending
				st.Consumers = append(st.Consumers, cs)
			}
		}
		for _, ss := range conn.StreamStats(ctx) {
			st.Streams = append(st.Streams, streamStatusOf(ss))
		}
	}
	if a.batcher != nil {
		if sp, ok := a.batcher.SpoolStats(); ok {
			st.Spools = append(st.Spools, spoolStatusOf(bus.SignalMetrics, sp))
		}
	}
	if a.tracesPub != nil {
		if sp, ok := a.tracesPub.SpoolStats(); ok {
			st.Spools = append(st.Spools, spoolStatusOf(bus.SignalTraces, sp))
		}
	}
}

func spoolStatusOf(s bus.Signal, sp spool.Stats) spoolStatus {
	return spoolStatus{Signal: string(s), Bytes: sp.Bytes, Segments: sp.Segments, Records: sp.Records, LimitBytes: sp.LimitBytes}
}

func streamStatusOf(ss bus.StreamStats) streamStatus {
	out := streamStatus{
		Signal: string(ss.Signal), Name: ss.Name, Subjects: ss.Subjects, Messages: ss.Messages, Bytes: ss.Bytes,
		FirstSeq: ss.FirstSeq, LastSeq: ss.LastSeq, Consumers: ss.Consumers, Replicas: ss.Replicas, Leader: ss.Leader,
	}
	if out.Subjects == nil {
		out.Subjects = []string{}
	}
	if ss.Err != nil {
		out.Error = ss.Err.Error()
	}
	return out
}

// fanOutStatus asks every healthy member for its own status, a few at a
// time, and merges their consumers and, when this process has none, the
// streams of the first member (in member order) that reported them. A
// member that does not answer gets the error on its entry in st.Members,
// which follows instances.
func (a *App) fanOutStatus(ctx context.Context, st *clusterStatus, instances []cluster.Instance) {
	answers := make([]*clusterStatus, len(instances))
	errs := make([]error, len(instances))
	sem := make(chan struct{}, statusFanOut)
	client := a.internalClient(0) // ctx bounds each request
	var wg sync.WaitGroup
	for i, in := range instances {
		if !in.Healthy || in.Addr == "" || in.State == cluster.StateLeft {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
				defer func() { <-sem }()
			case <-ctx.Done():
				errs[i] = ctx.Err()
				return
			}
			answers[i], errs[i] = memberStatusOf(ctx, client, in.Addr)
		}()
	}
	wg.Wait()
	for i, ans := range answers {
		if errs[i] != nil {
			st.Members[i].Error = errs[i].Error()
			continue
		}
		if ans == nil {
			continue
		}
		for _, c := range ans.Consumers {
			if c.Instance == "" {
				c.Instance = instances[i].ID
			}
			st.Consumers = append(st.Consumers, c)
		}
		if len(st.Streams) == 0 && len(ans.Streams) > 0 {
			st.Streams = ans.Streams
		}
	}
	signalIndex := func(s string) int { return slices.Index(bus.Signals, bus.Signal(s)) }
	slices.SortStableFunc(st.Consumers, func(x, y consumerStatus) int {
		return cmp.Or(cmp.Compare(signalIndex(x.Signal), signalIndex(y.Signal)),
			cmp.Compare(x.Partition, y.Partition), cmp.Compare(x.Replica, y.Replica), cmp.Compare(x.Instance, y.Instance))
	})
}

// maxStatusBytes bounds a member's answer: a few hundred bytes per
// consumer, and there are at most partitions × replicas × 3 of them.
const maxStatusBytes = 8 << 20

// memberStatusOf gets a member's local view of /cluster/status.
// The client carries the internal credential (and TLS) of -auth.client.*.
func memberStatusOf(ctx context.Context, client *http.Client, addr string) (*clusterStatus, error) {
	u := url.URL{Scheme: "http", Host: addr, Path: "/cluster/status", RawQuery: "scope=local"}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxStatusBytes))
	if err != nil {
		return nil, fmt.Errorf("read status of %s: %w", addr, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status of %s: %s: %s", addr, resp.Status, bytesTrim(body))
	}
	var st clusterStatus
	if err := json.Unmarshal(body, &st); err != nil {
		return nil, fmt.Errorf("status of %s: %w", addr, err)
	}
	return &st, nil
}

// bytesTrim shortens an error body for a message.
func bytesTrim(b []byte) string {
	const limit = 200
	if len(b) > limit {
		b = b[:limit]
	}
	return strings.TrimSpace(string(b))
}
