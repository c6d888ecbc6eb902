package query

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"sync"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/pharos-obs/pharos/storage/traces"
)

// Internal trace read API of the aggregators (see aggregator/tracesread.go).
const (
	tracesTracePath     = "/internal/v1/traces/trace"
	tracesManyPath      = "/internal/v1/traces/traces"
	tracesSearchPath    = "/internal/v1/traces/search"
	tracesTagNamesPath  = "/internal/v1/traces/tags"
	tracesTagValuesPath = "/internal/v1/traces/tag_values"
	tracesServicesPath  = "/internal/v1/traces/services"
	tracesOpsPath       = "/internal/v1/traces/operations"
)

type servicesRequest struct {
	Tenant  string    `json:"tenant"`
	Service string    `json:"service,omitempty"`
	Start   time.Time `json:"start"`
	End     time.Time `json:"end"`
}

// RemoteTraces is a traces.Querier over the internal trace read API of a
// set of aggregators. A trace's spans are written by its partition's owner
// — by more than one during a hand-over or with replicas — so answers are
// merged and a span stored twice comes back once.
type RemoteTraces struct {
	logs *RemoteLogs // the fan-out and its partial-response policy
}

// NewRemoteTraces reads from the aggregators endpoints returns, with the
// same partial-response policy as NewRemoteLogs.
func NewRemoteTraces(endpoints EndpointsFunc, client *http.Client, partial bool, logger *slog.Logger) *RemoteTraces {
	return &RemoteTraces{logs: NewRemoteLogs(endpoints, client, partial, logger)}
}

type traceRequest struct {
	Tenant  string         `json:"tenant"`
	TraceID traces.TraceID `json:"trace_id"`
	Start   time.Time      `json:"start"`
	End     time.Time      `json:"end"`
}

type tracesRequest struct {
	Tenant   string           `json:"tenant"`
	TraceIDs []traces.TraceID `json:"trace_ids"`
	Start    time.Time        `json:"start"`
	End      time.Time        `json:"end"`
}

// maxTracesPerRequest is the aggregators' bound on the IDs of one request
// for several traces (aggregator.MaxTracesPerRequest).
const maxTracesPerRequest = 1000

type tagRequest struct {
	Tag    string           `json:"tag,omitempty"`
	Params traces.TagParams `json:"params"`
}

// Trace implements traces.Querier.
func (r *RemoteTraces) Trace(ctx context.Context, tenant string, id traces.TraceID, start, end time.Time) (ptrace.Traces, error) {
	var (
		mu      sync.Mutex
		answers []ptrace.Traces
	)
	err := r.logs.fanOut(ctx, func(ctx context.Context, ep Endpoint) error {
		td, err := r.postTraces(ctx, ep, tracesTracePath, traceRequest{Tenant: tenant, TraceID: id, Start: start, End: end})
		if err != nil {
			return err
		}
		mu.Lock()
		answers = append(answers, td)
		mu.Unlock()
		return nil
	})
	if err != nil {
		return ptrace.NewTraces(), err
	}
	return MergeTraces(answers), nil
}

// Traces is Trace for several traces: one request to each aggregator
// (per maxTracesPerRequest IDs) instead of one per trace, or a request per
// trace to an aggregator that predates it (404). found[i] is ids[i],
// empty when unknown.
func (r *RemoteTraces) Traces(ctx context.Context, tenant string, ids []traces.TraceID, start, end time.Time) ([]ptrace.Traces, error) {
	var (
		mu      sync.Mutex
		answers = make(map[traces.TraceID][]ptrace.Traces, len(ids))
	)
	add := func(td ptrace.Traces) {
		byID := splitByTrace(td)
		mu.Lock()
		defer mu.Unlock()
		for id, t := range byID {
			answers[id] = append(answers[id], t)
		}
	}
	err := r.logs.fanOut(ctx, func(ctx context.Context, ep Endpoint) error {
		for from := 0; from < len(ids); from += maxTracesPerRequest {
			chunk := ids[from:min(len(ids), from+maxTracesPerRequest)]
			td, err := r.postTraces(ctx, ep, tracesManyPath, tracesRequest{Tenant: tenant, TraceIDs: chunk, Start: start, End: end})
			var se aggregatorStatusError
			if errors.As(err, &se) && se.code == http.StatusNotFound {
				// An aggregator of an earlier version: a trace a request.
				for _, id := range chunk {
					td, err := r.postTraces(ctx, ep, tracesTracePath, traceRequest{Tenant: tenant, TraceID: id, Start: start, End: end})
					if err != nil {
						return err
					}
					add(td)
				}
				continue
			}
			if err != nil {
				return err
			}
			add(td)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	found := make([]ptrace.Traces, len(ids))
	merged := make(map[traces.TraceID]ptrace.Traces, len(answers))
	for i, id := range ids {
		td, ok := merged[id]
		if !ok {
			td = MergeTraces(answers[id])
			merged[id] = td
		} else {
			// An ID asked twice: a copy of its own.
			c := ptrace.NewTraces()
			td.CopyTo(c)
			td = c
		}
		found[i] = td
	}
	return found, nil
}

// postTraces posts req to ep's path and decodes the OTLP answer.
func (r *RemoteTraces) postTraces(ctx context.Context, ep Endpoint, path string, req any) (ptrace.Traces, error) {
	resp, err := r.logs.post(ctx, ep, path, req)
	if err != nil {
		return ptrace.Traces{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxLogsResponseBytes+1))
	if err != nil {
		return ptrace.Traces{}, err
	}
	if len(body) > maxLogsResponseBytes {
		return ptrace.Traces{}, fmt.Errorf("traces larger than %d bytes", maxLogsResponseBytes)
	}
	td, err := (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(body)
	if err != nil {
		return ptrace.Traces{}, fmt.Errorf("decode traces: %w", err)
	}
	return td, nil
}

// splitByTrace moves td's spans into one ptrace.Traces per trace ID, each
// span under copies of its resource and scope, grouped as in td.
func splitByTrace(td ptrace.Traces) map[traces.TraceID]ptrace.Traces {
	type place struct {
		rs   ptrace.ResourceSpans
		from int // index in td of the resource rs copies
	}
	out := map[traces.TraceID]ptrace.Traces{}
	last := map[traces.TraceID]place{} // each trace's latest resource copy
	rss := td.ResourceSpans()
	for i := range rss.Len() {
		rs := rss.At(i)
		sss := rs.ScopeSpans()
		for j := range sss.Len() {
			ss := sss.At(j)
			scopes := map[traces.TraceID]ptrace.SpanSlice{} // this scope's copy in each trace
			spans := ss.Spans()
			for k := range spans.Len() {
				sp := spans.At(k)
				id := traces.TraceID(sp.TraceID())
				dst, ok := scopes[id]
				if !ok {
					pl, ok := last[id]
					if !ok || pl.from != i {
						t, ok := out[id]
						if !ok {
							t = ptrace.NewTraces()
							out[id] = t
						}
						pl = place{rs: t.ResourceSpans().AppendEmpty(), from: i}
						rs.Resource().CopyTo(pl.rs.Resource())
						pl.rs.SetSchemaUrl(rs.SchemaUrl())
						last[id] = pl
					}
					dss := pl.rs.ScopeSpans().AppendEmpty()
					ss.Scope().CopyTo(dss.Scope())
					dss.SetSchemaUrl(ss.SchemaUrl())
					dst = dss.Spans()
					scopes[id] = dst
				}
				sp.MoveTo(dst.AppendEmpty())
			}
		}
	}
	return out
}

// MergeTraces merges answers for one trace, keeping the first copy of each
// span ID.
func MergeTraces(answers []ptrace.Traces) ptrace.Traces {
	out := ptrace.NewTraces()
	seen := map[pcommon.SpanID]bool{}
	for _, td := range answers {
		rss := td.ResourceSpans()
		for i := range rss.Len() {
			rs := rss.At(i)
			rs.ScopeSpans().RemoveIf(func(ss ptrace.ScopeSpans) bool {
				ss.Spans().RemoveIf(func(s ptrace.Span) bool {
					if seen[s.SpanID()] {
						return true
					}
					seen[s.SpanID()] = true
					return false
				})
				return ss.Spans().Len() == 0
			})
			if rs.ScopeSpans().Len() > 0 {
				rs.MoveTo(out.ResourceSpans().AppendEmpty())
			}
		}
	}
	return out
}

// Search implements traces.Querier: each aggregator's hits, a trace found
// on several merged (its earliest start, longest duration, matched spans
// united), most recent first, up to the limit.
func (r *RemoteTraces) Search(ctx context.Context, p traces.SearchParams) ([]traces.TraceSummary, error) {
	var mu sync.Mutex
	byID := map[traces.TraceID]*traces.TraceSummary{}
	err := r.logs.fanOut(ctx, func(ctx context.Context, ep Endpoint) error {
		resp, err := r.logs.post(ctx, ep, tracesSearchPath, p)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var hits []traces.TraceSummary
		if err := json.NewDecoder(io.LimitReader(resp.Body, maxLogsResponseBytes)).Decode(&hits); err != nil {
			return fmt.Errorf("decode search response: %w", err)
		}
		mu.Lock()
		defer mu.Unlock()
		for _, h := range hits {
			cur, ok := byID[h.TraceID]
			if !ok {
				byID[h.TraceID] = &h
				continue
			}
			mergeSummary(cur, &h, p.SpansPerSpanSet)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]traces.TraceSummary, 0, len(byID))
	for _, h := range byID {
		out = append(out, *h)
	}
	slices.SortFunc(out, func(a, b traces.TraceSummary) int {
		return cmp.Or(cmp.Compare(b.StartTimeUnixNano, a.StartTimeUnixNano), slices.Compare(a.TraceID[:], b.TraceID[:]))
	})
	if p.Limit > 0 && len(out) > p.Limit {
		out = out[:p.Limit]
	}
	return out, nil
}

func mergeSummary(cur, h *traces.TraceSummary, spss int) {
	end := max(cur.StartTimeUnixNano+cur.DurationMs*1e6, h.StartTimeUnixNano+h.DurationMs*1e6)
	cur.StartTimeUnixNano = min(cur.StartTimeUnixNano, h.StartTimeUnixNano)
	cur.DurationMs = (end - cur.StartTimeUnixNano) / 1e6
	if cur.RootServiceName == "" {
		cur.RootServiceName, cur.RootTraceName = h.RootServiceName, h.RootTraceName
	}
	have := map[[8]byte]bool{}
	for _, s := range cur.Matched {
		have[s.SpanID] = true
	}
	for _, s := range h.Matched {
		if !have[s.SpanID] {
			cur.MatchedAll++
			if spss <= 0 || len(cur.Matched) < spss {
				cur.Matched = append(cur.Matched, s)
			}
		}
	}
}

// TagNames implements traces.Querier.
func (r *RemoteTraces) TagNames(ctx context.Context, p traces.TagParams) (map[string][]string, error) {
	var mu sync.Mutex
	sets := map[string]map[string]bool{}
	err := r.logs.fanOut(ctx, func(ctx context.Context, ep Endpoint) error {
		resp, err := r.logs.post(ctx, ep, tracesTagNamesPath, tagRequest{Params: p})
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var names map[string][]string
		if err := json.NewDecoder(io.LimitReader(resp.Body, maxLogsResponseBytes)).Decode(&names); err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		for scope, ns := range names {
			if sets[scope] == nil {
				sets[scope] = map[string]bool{}
			}
			for _, n := range ns {
				sets[scope][n] = true
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make(map[string][]string, len(sets))
	for scope, set := range sets {
		out[scope] = slices.Sorted(maps.Keys(set))
	}
	return out, nil
}

// TagValues implements traces.Querier.
func (r *RemoteTraces) TagValues(ctx context.Context, tag string, p traces.TagParams) ([]string, error) {
	var mu sync.Mutex
	set := map[string]bool{}
	err := r.logs.fanOut(ctx, func(ctx context.Context, ep Endpoint) error {
		resp, err := r.logs.post(ctx, ep, tracesTagValuesPath, tagRequest{Tag: tag, Params: p})
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var vs []string
		if err := json.NewDecoder(io.LimitReader(resp.Body, maxLogsResponseBytes)).Decode(&vs); err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		for _, v := range vs {
			set[v] = true
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := slices.Sorted(maps.Keys(set))
	if p.Limit > 0 && len(out) > p.Limit {
		out = out[:p.Limit]
	}
	return out, nil
}

// Services implements traces.Querier.
func (r *RemoteTraces) Services(ctx context.Context, tenant string, start, end time.Time) ([]string, error) {
	var mu sync.Mutex
	set := map[string]bool{}
	err := r.logs.fanOut(ctx, func(ctx context.Context, ep Endpoint) error {
		resp, err := r.logs.post(ctx, ep, tracesServicesPath, servicesRequest{Tenant: tenant, Start: start, End: end})
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var vs []string
		if err := json.NewDecoder(io.LimitReader(resp.Body, maxLogsResponseBytes)).Decode(&vs); err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		for _, v := range vs {
			set[v] = true
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return slices.Sorted(maps.Keys(set)), nil
}

// Operations implements traces.Querier.
func (r *RemoteTraces) Operations(ctx context.Context, tenant, service string, start, end time.Time) ([]traces.Operation, error) {
	var mu sync.Mutex
	set := map[traces.Operation]bool{}
	err := r.logs.fanOut(ctx, func(ctx context.Context, ep Endpoint) error {
		resp, err := r.logs.post(ctx, ep, tracesOpsPath, servicesRequest{Tenant: tenant, Service: service, Start: start, End: end})
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var ops []traces.Operation
		if err := json.NewDecoder(io.LimitReader(resp.Body, maxLogsResponseBytes)).Decode(&ops); err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		for _, op := range ops {
			set[op] = true
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := slices.Collect(maps.Keys(set))
	slices.SortFunc(out, func(a, b traces.Operation) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.Kind, b.Kind))
	})
	return out, nil
}

var _ traces.TracesQuerier = (*RemoteTraces)(nil)
