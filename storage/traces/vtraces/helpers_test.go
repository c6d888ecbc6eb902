package vtraces

import (
	"encoding/binary"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/pharos-obs/pharos/storage/traces"
)

// testLogger shows warnings and errors of the store (and of VictoriaLogs).
func testLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// openTestStore opens a store in a temporary directory, closed at cleanup.
func openTestStore(t testing.TB, edit ...func(*Config)) (*Store, *prometheus.Registry) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Path = filepath.Join(t.TempDir(), "traces")
	for _, e := range edit {
		e(&cfg)
	}
	reg := prometheus.NewRegistry()
	s, err := Open(cfg, testLogger(), reg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	return s, reg
}

// searchable makes appended spans visible to queries at once.
func searchable(s *Store) { s.eng.DebugFlush() }

// baseTime is an hour ago, well inside the default retention.
func baseTime() time.Time { return time.Now().Add(-time.Hour).Truncate(time.Second) }

func traceID(n uint64) traces.TraceID {
	var id traces.TraceID
	binary.BigEndian.PutUint64(id[:8], 0xabcdef)
	binary.BigEndian.PutUint64(id[8:], n)
	return id
}

func spanID(trace, n uint64) pcommon.SpanID {
	var id pcommon.SpanID
	binary.BigEndian.PutUint32(id[:4], uint32(trace))
	binary.BigEndian.PutUint32(id[4:], uint32(n))
	return id
}

// spec describes a test span; its resource is its service's (plus res),
// its scope "test-scope".
type spec struct {
	trace, id, parent uint64 // parent 0: a root span
	service           string
	res               map[string]any
	name              string
	kind              ptrace.SpanKind
	status            ptrace.StatusCode
	start, dur        time.Duration // start after base
	attrs             map[string]any
}

// build makes a batch of specs' spans, a ResourceSpans per distinct
// service and resource, in order of first appearance.
func build(t testing.TB, base time.Time, specs ...spec) ptrace.Traces {
	t.Helper()
	td := ptrace.NewTraces()
	scopes := map[string]ptrace.ScopeSpans{}
	for _, sp := range specs {
		rk := sp.service + "\x00" + fmt.Sprint(sp.res) // fmt sorts map keys
		ss, ok := scopes[rk]
		if !ok {
			rs := td.ResourceSpans().AppendEmpty()
			attrs := rs.Resource().Attributes()
			require.NoError(t, attrs.FromRaw(sp.res))
			if sp.service != "" {
				attrs.PutStr("service.name", sp.service)
			}
			ss = rs.ScopeSpans().AppendEmpty()
			ss.Scope().SetName("test-scope")
			scopes[rk] = ss
		}
		s := ss.Spans().AppendEmpty()
		s.SetTraceID(pcommon.TraceID(traceID(sp.trace)))
		s.SetSpanID(spanID(sp.trace, sp.id))
		if sp.parent != 0 {
			s.SetParentSpanID(spanID(sp.trace, sp.parent))
		}
		s.SetName(sp.name)
		s.SetKind(sp.kind)
		s.Status().SetCode(sp.status)
		st := base.Add(sp.start)
		s.SetStartTimestamp(pcommon.NewTimestampFromTime(st))
		s.SetEndTimestamp(pcommon.NewTimestampFromTime(st.Add(sp.dur)))
		require.NoError(t, s.Attributes().FromRaw(sp.attrs))
	}
	return td
}

// normalise flattens td into one JSON document per span (a TracesData
// holding the span with its resource and scope), sorted: two batches are
// equal in it when they hold the same spans, however grouped and ordered.
func normalise(t testing.TB, td ptrace.Traces) []string {
	t.Helper()
	var out []string
	var m ptrace.JSONMarshaler
	rss := td.ResourceSpans()
	for i := range rss.Len() {
		rs := rss.At(i)
		for j := range rs.ScopeSpans().Len() {
			ss := rs.ScopeSpans().At(j)
			for k := range ss.Spans().Len() {
				one := ptrace.NewTraces()
				ors := one.ResourceSpans().AppendEmpty()
				rs.Resource().CopyTo(ors.Resource())
				ors.SetSchemaUrl(rs.SchemaUrl())
				oss := ors.ScopeSpans().AppendEmpty()
				ss.Scope().CopyTo(oss.Scope())
				oss.SetSchemaUrl(ss.SchemaUrl())
				ss.Spans().At(k).CopyTo(oss.Spans().AppendEmpty())
				b, err := m.MarshalTraces(one)
				require.NoError(t, err)
				out = append(out, string(b))
			}
		}
	}
	slices.Sort(out)
	return out
}

// metricValue returns the value of the metric family name whose labels
// include want, from reg.
func metricValue(t testing.TB, reg *prometheus.Registry, name string, want map[string]string) (float64, bool) {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, lp := range m.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			for k, v := range want {
				if got[k] != v {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue(), true
			case m.Gauge != nil:
				return m.Gauge.GetValue(), true
			}
		}
	}
	return 0, false
}
