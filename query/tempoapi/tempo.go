package tempoapi

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/pharos-obs/pharos/query/limits"
	"github.com/pharos-obs/pharos/query/traceql"
	"github.com/pharos-obs/pharos/storage/traces"
)

// bufPool holds response buffers; the encoders append to a reset one.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// maxPooledBuf keeps huge one-off responses out of the pool.
const maxPooledBuf = 1 << 20

// respond writes what appendBody appends to a pooled buffer.
func respond(w http.ResponseWriter, contentType string, appendBody func([]byte) []byte) error {
	bp := bufPool.Get().(*[]byte)
	b := appendBody((*bp)[:0])
	err := writeBody(w, contentType, b)
	if cap(b) <= maxPooledBuf {
		*bp = b
		bufPool.Put(bp)
	}
	return err
}

// wantsProtobuf reports whether the client asked for protobuf, as
// Grafana's Tempo data source does for traces.
func wantsProtobuf(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), "application/protobuf")
}

// traceByID serves /api/traces/{traceID} (v1: tempopb.Trace, whose JSON
// names the resource spans "batches") and /api/v2/traces/{traceID} (v2:
// tempopb.TraceByIDResponse, {"trace":{"resourceSpans":...}}).
func (a *API) traceByID(v2 bool) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		id, err := traces.ParseTraceID(r.PathValue("traceID"))
		if err != nil {
			return badParam("invalid trace ID: %v", err)
		}
		start, end, err := unixRange(r)
		if err != nil {
			return err
		}
		td, err := a.q.Trace(r.Context(), tenantOf(r), id, start, end)
		if err != nil {
			return fmt.Errorf("trace %s: %w", id, err)
		}
		if td.SpanCount() == 0 {
			return errTraceNotFound
		}
		if err := chargeTrace(r.Context(), td); err != nil {
			return err
		}
		if wantsProtobuf(r) {
			body, err := marshalTraceProto(td, v2)
			if err != nil {
				return err
			}
			return writeBody(w, "application/protobuf", body)
		}
		body, err := marshalTraceJSON(td, v2)
		if err != nil {
			return err
		}
		return writeJSON(w, body)
	}
}

// search serves /api/search: TraceQL in q, or Tempo's legacy tags.
func (a *API) search(w http.ResponseWriter, r *http.Request) error {
	q, tags := r.FormValue("q"), r.FormValue("tags")
	if q != "" && tags != "" {
		return badParam("invalid request: can't specify tags and q in the same query")
	}
	p := traces.SearchParams{Tenant: tenantOf(r)}
	var err error
	if p.Start, p.End, err = unixRange(r); err != nil {
		return err
	}
	if p.MinDuration, p.MaxDuration, err = durations(r); err != nil {
		return err
	}
	if p.Limit, err = a.resultLimit(r); err != nil {
		return err
	}
	if p.SpansPerSpanSet, err = positive(r, "spss", a.cfg.DefaultSpansPerSpanSet, a.cfg.MaxSpansPerSpanSet); err != nil {
		return err
	}
	switch {
	case q != "":
		p.Any, err = traceql.Parse(q)
	case tags != "":
		p.Any, err = legacyTags(tags)
	}
	if err != nil {
		return err
	}
	hits, err := a.q.Search(r.Context(), p)
	if err != nil {
		return fmt.Errorf("search: %w", err)
	}
	if err := limits.FromContext(r.Context()).Err(); err != nil {
		return err
	}
	return respond(w, "application/json", func(b []byte) []byte { return appendSearch(b, hits) })
}

// tagParams reads the tag endpoints' start, end, scope and limit.
func tagParams(r *http.Request) (traces.TagParams, error) {
	p := traces.TagParams{Tenant: tenantOf(r)}
	var err error
	if p.Start, p.End, err = unixRange(r); err != nil {
		return p, err
	}
	switch s := r.FormValue("scope"); s {
	case "", "all", "none":
	case "resource", "span", traceql.ScopeIntrinsic:
		p.Scope = s
	default:
		return p, badParam("invalid scope: %s (want resource, span, intrinsic or all)", s)
	}
	p.Limit, err = positive(r, "limit", 0, 0)
	return p, err
}

// tagNames serves /api/search/tags: the attribute names of every scope
// (the intrinsics too when scope=intrinsic), as one sorted list.
func (a *API) tagNames(w http.ResponseWriter, r *http.Request) error {
	p, err := tagParams(r)
	if err != nil {
		return err
	}
	byScope, err := a.q.TagNames(r.Context(), p)
	if err != nil {
		return fmt.Errorf("tag names: %w", err)
	}
	var names []string
	if p.Scope == "" {
		names = append(append(names, byScope["resource"]...), byScope["span"]...)
	} else {
		names = append(names, scopeTags(byScope, p.Scope)...)
	}
	slices.Sort(names)
	names = slices.Compact(names)
	return respond(w, "application/json", func(b []byte) []byte {
		b = append(b, `{"tagNames":`...)
		b = appendStrings(b, names)
		return append(b, '}')
	})
}

// scopeTags are a scope's names; a store that lists no intrinsics gets
// the ones TraceQL searches by.
func scopeTags(byScope map[string][]string, scope string) []string {
	if tags := byScope[scope]; len(tags) > 0 || scope != traceql.ScopeIntrinsic {
		return tags
	}
	return traceql.Intrinsics()
}

// tagNamesV2 serves /api/v2/search/tags: the names by scope.
func (a *API) tagNamesV2(w http.ResponseWriter, r *http.Request) error {
	p, err := tagParams(r)
	if err != nil {
		return err
	}
	byScope, err := a.q.TagNames(r.Context(), p)
	if err != nil {
		return fmt.Errorf("tag names: %w", err)
	}
	return respond(w, "application/json", func(b []byte) []byte {
		b = append(b, `{"scopes":[`...)
		first := true
		for _, scope := range []string{"resource", "span", traceql.ScopeIntrinsic} {
			if p.Scope != "" && p.Scope != scope {
				continue
			}
			if !first {
				b = append(b, ',')
			}
			first = false
			tags := slices.Clone(scopeTags(byScope, scope))
			slices.Sort(tags)
			b = append(b, `{"name":`...)
			b = appendString(b, scope)
			b = append(b, `,"tags":`...)
			b = appendStrings(b, slices.Compact(tags))
			b = append(b, '}')
		}
		return append(b, "]}"...)
	})
}

// legacyTag maps a tag of the v1 tag values endpoint to the querier's
// form: Tempo's legacy special tags, else an attribute of either scope.
func legacyTag(tag string) string {
	switch tag {
	case "name":
		return "name"
	case "root.name":
		return "rootName"
	case "root.service.name":
		return "rootServiceName"
	case "status.code":
		return "status"
	case "service.name":
		return "resource.service.name"
	}
	return "." + tag
}

// querierTag is the querier's form of a field: the intrinsic, or the
// scope, a dot and the name as it is (never quoted).
func querierTag(scope, name string) string {
	if scope == traceql.ScopeIntrinsic {
		return name
	}
	return scope + "." + name
}

// tagValues serves /api/search/tag/{tag}/values.
func (a *API) tagValues(w http.ResponseWriter, r *http.Request) error {
	p, err := tagParams(r)
	if err != nil {
		return err
	}
	values, err := a.q.TagValues(r.Context(), legacyTag(r.PathValue("tag")), p)
	if err != nil {
		return fmt.Errorf("tag values: %w", err)
	}
	return respond(w, "application/json", func(b []byte) []byte {
		b = append(b, `{"tagValues":`...)
		b = appendStrings(b, values)
		return append(b, '}')
	})
}

// tagValuesV2 serves /api/v2/search/tag/{tag}/values, the tag in TraceQL
// (resource.service.name, span.http.method, .x, name, status), with each
// value's type. The q parameter, which narrows values in Tempo, is
// ignored.
func (a *API) tagValuesV2(w http.ResponseWriter, r *http.Request) error {
	tag := r.PathValue("tag")
	scope, name, err := traceql.ParseField(tag)
	if err != nil {
		if traceql.IsUserError(err) {
			return err
		}
		return badParam("%v", err)
	}
	p, err := tagParams(r)
	if err != nil {
		return err
	}
	values, err := a.q.TagValues(r.Context(), querierTag(scope, name), p)
	if err != nil {
		return fmt.Errorf("tag values: %w", err)
	}
	typ := "string"
	if scope == traceql.ScopeIntrinsic {
		switch name {
		case "status", "kind":
			typ = "keyword"
		case "duration", "traceDuration":
			typ = "duration"
		}
	}
	return respond(w, "application/json", func(b []byte) []byte {
		b = append(b, `{"tagValues":[`...)
		for i, v := range values {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"type":`...)
			b = appendString(b, typ)
			b = append(b, `,"value":`...)
			b = appendString(b, v)
			b = append(b, '}')
		}
		return append(b, "]}"...)
	})
}

// echo serves /api/echo, which Grafana's data source test calls.
func (a *API) echo(w http.ResponseWriter, _ *http.Request) error {
	return writeBody(w, "text/plain; charset=utf-8", []byte("echo"))
}

// buildInfo serves /api/status/buildinfo.
func (a *API) buildInfo(w http.ResponseWriter, _ *http.Request) error {
	return respond(w, "application/json", func(b []byte) []byte {
		b = append(b, '{')
		for i, f := range []struct{ k, v string }{
			{"version", a.build.Version}, {"revision", a.build.Revision}, {"branch", a.build.Branch},
			{"buildUser", a.build.BuildUser}, {"buildDate", a.build.BuildDate}, {"goVersion", a.build.GoVersion},
		} {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, f.k)
			b = append(b, ':')
			b = appendString(b, f.v)
		}
		return append(b, '}')
	})
}

// resultLimit reads a search's limit: the traces it may return, at most
// MaxResultLimit.
func (a *API) resultLimit(r *http.Request) (int, error) {
	n, err := positive(r, "limit", a.cfg.DefaultResultLimit, 0)
	if err != nil {
		return 0, err
	}
	if m := a.cfg.MaxResultLimit; m > 0 && n > m {
		return 0, &limits.Error{
			Limit: limits.Traces, Flag: FlagMaxResultLimit, Value: strconv.Itoa(m),
			Msg: fmt.Sprintf("invalid limit: %d exceeds the maximum of %d traces per search", n, m),
		}
	}
	return n, nil
}

// chargeTrace charges a fetched trace's protobuf size to the request's
// budget: the local store hands whole traces, so that is what was read.
func chargeTrace(ctx context.Context, td ptrace.Traces) error {
	b := limits.FromContext(ctx)
	if b == nil {
		return nil
	}
	var m ptrace.ProtoMarshaler
	if err := b.AddBytes(int64(m.TracesSize(td))); err != nil {
		return err
	}
	return b.Err()
}
