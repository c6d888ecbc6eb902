package query

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/pharos-obs/pharos/aggregator"
	"github.com/pharos-obs/pharos/query/tempoapi/tracestest"
	"github.com/pharos-obs/pharos/storage/traces"
)

// spansOfTraces makes, for each trace n in ns, spans from..to-1 of service
// svc (span IDs from n and the span's number), in two scopes.
func spansOfTraces(svc string, from, to int, ns ...byte) ptrace.Traces {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", svc)
	now := time.Now()
	for sc := range 2 {
		ss := rs.ScopeSpans().AppendEmpty()
		ss.Scope().SetName(fmt.Sprint("scope-", sc))
		for _, n := range ns {
			for k := from; k < to; k++ {
				if k%2 != sc {
					continue
				}
				sp := ss.Spans().AppendEmpty()
				sp.SetTraceID(pcommon.TraceID{n, 1})
				sp.SetSpanID(pcommon.SpanID{n, byte(k + 1)})
				sp.SetName(fmt.Sprintf("%s-%d", svc, k))
				sp.SetStartTimestamp(pcommon.NewTimestampFromTime(now.Add(time.Duration(k) * time.Millisecond)))
				sp.SetEndTimestamp(pcommon.NewTimestampFromTime(now.Add(time.Duration(k+1) * time.Millisecond)))
			}
		}
	}
	return td
}

// spanNames lists td's spans as scope/span ID. (Which copy of a span two
// aggregators hold comes back depends on which answers first.)
func spanNames(td ptrace.Traces) []string {
	var out []string
	rss := td.ResourceSpans()
	for i := range rss.Len() {
		sss := rss.At(i).ScopeSpans()
		for j := range sss.Len() {
			spans := sss.At(j).Spans()
			for k := range spans.Len() {
				out = append(out, sss.At(j).Scope().Name()+"/"+spans.At(k).SpanID().String())
			}
		}
	}
	return out
}

// Traces asks each aggregator once for all the IDs, and answers what
// Trace answers for each; an aggregator without the endpoint (an earlier
// version) is asked a trace at a time.
func TestRemoteTracesMany(t *testing.T) {
	var many, single atomic.Int32
	serve := func(td ptrace.Traces, old bool) string {
		q := tracestest.New()
		require.NoError(t, q.Append("t", td))
		mux := http.NewServeMux()
		aggregator.RegisterTracesReadAPI(mux, q, slog.New(slog.DiscardHandler))
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch {
			case r.URL.Path == aggregator.TracesManyPath && old:
				http.NotFound(w, r)
				return
			case r.URL.Path == aggregator.TracesManyPath:
				many.Add(1)
			case r.URL.Path == aggregator.TracesTracePath:
				single.Add(1)
			}
			mux.ServeHTTP(w, r)
		}))
		t.Cleanup(srv.Close)
		return strings.TrimPrefix(srv.URL, "http://")
	}
	// Traces 1 and 2 are split over two aggregators (a hand-over), with
	// span 2 on both; the third, older one holds trace 3.
	eps := StaticEndpoints([]string{
		serve(spansOfTraces("a", 0, 3, 1, 2), false),
		serve(spansOfTraces("b", 2, 5, 1, 2), false),
		serve(spansOfTraces("c", 0, 2, 3), true),
	})
	r := NewRemoteTraces(eps, http.DefaultClient, false, slog.New(slog.DiscardHandler))
	ctx := context.Background()
	ids := []traces.TraceID{{1, 1}, {9, 9}, {3, 1}, {2, 1}, {1, 1}}
	got, err := r.Traces(ctx, "t", ids, time.Time{}, time.Time{})
	require.NoError(t, err)
	require.EqualValues(t, 2, many.Load(), "one request to each current aggregator")
	require.EqualValues(t, len(ids), single.Load(), "a request per trace to the older one")
	require.Len(t, got, len(ids))
	for i, id := range ids {
		one, err := r.Trace(ctx, "t", id, time.Time{}, time.Time{})
		require.NoError(t, err)
		require.ElementsMatch(t, spanNames(one), spanNames(got[i]), "trace %d", i)
	}
	require.Equal(t, 5, got[0].SpanCount(), "spans 0-4, the one both hold once")
	require.Zero(t, got[1].SpanCount())
	require.Equal(t, 2, got[2].SpanCount())
	require.Equal(t, got[0].SpanCount(), got[4].SpanCount())

	// Resources and scopes are kept apart as stored.
	require.Equal(t, 2, got[2].ResourceSpans().At(0).ScopeSpans().Len())
}

func TestTracesRequestBound(t *testing.T) {
	mux := http.NewServeMux()
	aggregator.RegisterTracesReadAPI(mux, tracestest.New(), slog.New(slog.DiscardHandler))
	body, err := json.Marshal(aggregator.TracesRequest{Tenant: "t", TraceIDs: make([]traces.TraceID, aggregator.MaxTracesPerRequest+1)})
	require.NoError(t, err)
	req := httptest.NewRequest(http.MethodPost, aggregator.TracesManyPath, bytes.NewReader(body))
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, req)
	require.Equal(t, http.StatusBadRequest, rec.Code, rec.Body.String())
	require.Contains(t, rec.Body.String(), "at most 1000")
	require.Equal(t, aggregator.MaxTracesPerRequest, maxTracesPerRequest)
}
