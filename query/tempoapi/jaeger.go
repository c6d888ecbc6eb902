package tempoapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/common/model"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/pharos-obs/pharos/query/traceql"
	"github.com/pharos-obs/pharos/storage/traces"
)

// errPanic answers a panic of the querier in a goroutine of the API's,
// which wrap's recover does not see.
var errPanic = errors.New("internal server error")

// Jaeger's query service defaults.
const (
	jaegerDefaultLimit    = 100
	jaegerDefaultLookback = 48 * time.Hour
)

// writeJaegerError answers as Jaeger's query service does: its envelope
// with the error, through http.Error (so as text/plain).
func writeJaegerError(w http.ResponseWriter, code int, msg string) {
	b := []byte(`{"data":null,"total":0,"limit":0,"offset":0,"errors":[{"code":`)
	b = strconv.AppendInt(b, int64(code), 10)
	b = append(b, `,"msg":`...)
	b = appendString(b, msg)
	b = append(b, "}]}"...)
	http.Error(w, string(b), code)
}

// jaegerError is an entry of the envelope's errors.
type jaegerError struct {
	code    int
	msg     string
	traceID *traces.TraceID
}

// respondJaeger writes Jaeger's envelope around the data appendData
// appends.
func respondJaeger(w http.ResponseWriter, total int, errs []jaegerError, appendData func([]byte) []byte) error {
	return respond(w, "application/json", func(b []byte) []byte {
		b = append(b, `{"data":`...)
		b = appendData(b)
		b = append(b, `,"total":`...)
		b = strconv.AppendInt(b, int64(total), 10)
		b = append(b, `,"limit":0,"offset":0,"errors":`...)
		if len(errs) == 0 {
			return append(b, "null}"...)
		}
		b = append(b, '[')
		for i, e := range errs {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"code":`...)
			b = strconv.AppendInt(b, int64(e.code), 10)
			b = append(b, `,"msg":`...)
			b = appendString(b, e.msg)
			if e.traceID != nil {
				b = append(b, `,"traceID":`...)
				b = appendJaegerTraceID(b, pcommon.TraceID(*e.traceID))
			}
			b = append(b, '}')
		}
		return append(b, "]}"...)
	})
}

// jaegerParamError is Jaeger's wording of a bad parameter.
func jaegerParamError(name string, err error) error {
	return badParam("unable to parse param '%s': %v", name, err)
}

// jaegerServices serves /api/services.
func (a *API) jaegerServices(w http.ResponseWriter, r *http.Request) error {
	services, err := a.q.Services(r.Context(), tenantOf(r), time.Time{}, time.Time{})
	if err != nil {
		return fmt.Errorf("services: %w", err)
	}
	return respondJaeger(w, len(services), nil, func(b []byte) []byte { return appendStrings(b, services) })
}

// jaegerServiceOperations serves /api/services/{service}/operations: the
// service's span names, sorted, each once.
func (a *API) jaegerServiceOperations(w http.ResponseWriter, r *http.Request) error {
	ops, err := a.q.Operations(r.Context(), tenantOf(r), r.PathValue("service"), time.Time{}, time.Time{})
	if err != nil {
		return fmt.Errorf("operations: %w", err)
	}
	names := make([]string, 0, len(ops))
	for _, op := range ops {
		names = append(names, op.Name)
	}
	slices.Sort(names)
	names = slices.Compact(names)
	return respondJaeger(w, len(names), nil, func(b []byte) []byte { return appendStrings(b, names) })
}

// jaegerOperations serves /api/operations?service=&spanKind=: the
// service's span names with their kinds.
func (a *API) jaegerOperations(w http.ResponseWriter, r *http.Request) error {
	service := r.FormValue("service")
	if service == "" {
		return badParam("parameter 'service' is required")
	}
	kind := r.FormValue("spanKind")
	ops, err := a.q.Operations(r.Context(), tenantOf(r), service, time.Time{}, time.Time{})
	if err != nil {
		return fmt.Errorf("operations: %w", err)
	}
	ops = slices.DeleteFunc(slices.Clone(ops), func(op traces.Operation) bool {
		return kind != "" && jaegerKind(op.Kind) != kind
	})
	return respondJaeger(w, len(ops), nil, func(b []byte) []byte {
		b = append(b, '[')
		for i, op := range ops {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"name":`...)
			b = appendString(b, op.Name)
			b = append(b, `,"spanKind":`...)
			b = appendString(b, jaegerKind(op.Kind))
			b = append(b, '}')
		}
		return append(b, ']')
	})
}

// jaegerKind is an Operation's kind as Jaeger spells it.
func jaegerKind(kind string) string {
	if kind == "unspecified" {
		return ""
	}
	return kind
}

// jaegerDependencies serves /api/dependencies: Pharos derives no service
// graph, so it is empty (Grafana's Jaeger data source asks for it).
func (a *API) jaegerDependencies(w http.ResponseWriter, _ *http.Request) error {
	return respondJaeger(w, 0, nil, func(b []byte) []byte { return append(b, "[]"...) })
}

// jaegerTrace serves /api/traces/{traceID}, with optional start and end in
// microseconds.
func (a *API) jaegerTrace(w http.ResponseWriter, r *http.Request) error {
	id, err := traces.ParseTraceID(r.PathValue("traceID"))
	if err != nil {
		return jaegerParamError("traceID", err)
	}
	var start, end time.Time
	for _, p := range []struct {
		name string
		t    *time.Time
	}{{"start", &start}, {"end", &end}} {
		if v := r.FormValue(p.name); v != "" {
			us, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return jaegerParamError(p.name, err)
			}
			*p.t = time.UnixMicro(us)
		}
	}
	td, err := a.q.Trace(r.Context(), tenantOf(r), id, start, end)
	if err == nil {
		err = chargeTrace(r.Context(), td)
	}
	if err != nil {
		return fmt.Errorf("trace %s: %w", id, err)
	}
	if td.SpanCount() == 0 {
		return errTraceNotFound
	}
	var e jaegerEncoder
	return respondJaeger(w, 0, nil, func(b []byte) []byte {
		return append(e.appendTrace(append(b, '['), td), ']')
	})
}

// jaegerQuery is a parsed /api/traces search.
type jaegerQuery struct {
	params   traces.SearchParams
	traceIDs []traces.TraceID
}

// parseJaegerQuery reads a search as Jaeger's query service does: service
// (required without traceID), operation, tags (a JSON object) or tag
// (key:value, repeated), minDuration and maxDuration (of a span), start and
// end (microseconds; end defaults to now, start to lookback before it),
// limit (default 100), traceID (repeated: fetch these instead).
func (a *API) parseJaegerQuery(r *http.Request) (jaegerQuery, error) {
	var jq jaegerQuery
	for _, v := range r.Form["traceID"] {
		id, err := traces.ParseTraceID(v)
		if err != nil {
			return jq, jaegerParamError("traceID", err)
		}
		jq.traceIDs = append(jq.traceIDs, id)
	}
	service, operation := r.FormValue("service"), r.FormValue("operation")
	if service == "" && len(jq.traceIDs) == 0 {
		return jq, badParam("parameter 'service' is required")
	}

	end := a.now()
	if v := r.FormValue("end"); v != "" {
		us, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return jq, jaegerParamError("end", err)
		}
		end = time.UnixMicro(us)
	}
	start := end.Add(-jaegerDefaultLookback)
	if v := r.FormValue("start"); v != "" {
		us, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return jq, jaegerParamError("start", err)
		}
		start = time.UnixMicro(us)
	} else if lb := r.FormValue("lookback"); lb != "" && lb != "custom" {
		d, err := model.ParseDuration(lb)
		if err != nil {
			return jq, jaegerParamError("lookback", err)
		}
		start = end.Add(-time.Duration(d))
	}

	var lo, hi time.Duration
	for _, p := range []struct {
		name string
		d    *time.Duration
	}{{"minDuration", &lo}, {"maxDuration", &hi}} {
		if v := r.FormValue(p.name); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil {
				return jq, jaegerParamError(p.name, err)
			}
			*p.d = d
		}
	}
	if lo != 0 && hi != 0 && hi < lo {
		return jq, badParam("'maxDuration' should be greater than 'minDuration'")
	}

	limit := jaegerDefaultLimit
	if v := r.FormValue("limit"); v != "" {
		n, err := strconv.ParseInt(v, 10, 32)
		if err != nil {
			return jq, jaegerParamError("limit", err)
		}
		if n > 0 {
			limit = int(n)
		}
	}
	if m := a.cfg.MaxResultLimit; m > 0 && limit > m {
		limit = m
	}

	tags := map[string]string{}
	for _, kv := range r.Form["tag"] {
		k, v, ok := strings.Cut(kv, ":")
		if !ok {
			return jq, badParam("malformed 'tag' parameter, expecting key:value, received: %s", kv)
		}
		tags[k] = v
	}
	if v := r.FormValue("tags"); v != "" {
		var m map[string]string
		if err := json.Unmarshal([]byte(v), &m); err != nil {
			return jq, badParam("malformed 'tags' parameter, cannot unmarshal JSON: %v", err)
		}
		for k, v := range m {
			tags[k] = v
		}
	}

	var g []traces.Condition
	intrinsic := func(name, op, v string) {
		g = append(g, traces.Condition{Scope: traceql.ScopeIntrinsic, Name: name, Op: op, Value: v})
	}
	if service != "" {
		g = append(g, traces.Condition{Scope: "resource", Name: "service.name", Op: "=", Value: service})
	}
	if operation != "" {
		intrinsic("name", "=", operation)
	}
	keys := make([]string, 0, len(tags))
	for k := range tags {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		g = append(g, jaegerTagCondition(k, tags[k]))
	}
	if lo > 0 {
		intrinsic("duration", ">=", lo.String())
	}
	if hi > 0 {
		intrinsic("duration", "<=", hi.String())
	}
	jq.params = traces.SearchParams{
		Tenant: tenantOf(r), Start: start, End: end, Limit: limit, SpansPerSpanSet: 1,
	}
	if len(g) > 0 {
		jq.params.Any = [][]traces.Condition{g}
	}
	return jq, nil
}

// jaegerTagCondition maps a Jaeger tag to a condition: the tags Jaeger's
// translator makes from OTLP fields (error, span.kind, otel.status_code)
// to the intrinsics, others to attributes of the span or its resource.
func jaegerTagCondition(k, v string) traces.Condition {
	in := func(name, op, v string) traces.Condition {
		return traces.Condition{Scope: traceql.ScopeIntrinsic, Name: name, Op: op, Value: v}
	}
	switch {
	case k == "error" && (v == "true" || v == "false"):
		if v == "true" {
			return in("status", "=", "error")
		}
		return in("status", "!=", "error")
	case k == "span.kind" && slices.Contains([]string{"server", "client", "producer", "consumer", "internal"}, strings.ToLower(v)):
		return in("kind", "=", strings.ToLower(v))
	case k == "otel.status_code" && slices.Contains([]string{"ok", "error", "unset"}, strings.ToLower(v)):
		return in("status", "=", strings.ToLower(v))
	}
	return traces.Condition{Name: k, Op: "=", Value: v}
}

// jaegerSearch serves /api/traces: Jaeger returns whole traces, so the
// hits of the search are fetched, JaegerFetchConcurrency at a time.
func (a *API) jaegerSearch(w http.ResponseWriter, r *http.Request) error {
	jq, err := a.parseJaegerQuery(r)
	if err != nil {
		return err
	}
	ids := jq.traceIDs
	if len(ids) == 0 {
		hits, err := a.q.Search(r.Context(), jq.params)
		if err != nil {
			return fmt.Errorf("search: %w", err)
		}
		for _, h := range hits {
			ids = append(ids, h.TraceID)
		}
	}
	found, err := a.fetchTraces(r.Context(), jq.params.Tenant, ids)
	if err != nil {
		return err
	}
	var errs []jaegerError
	for i := range ids {
		// Asked for by ID and not there: Jaeger says so per trace.
		if found[i].SpanCount() == 0 && len(jq.traceIDs) > 0 {
			errs = append(errs, jaegerError{code: http.StatusNotFound, msg: errTraceNotFound.Error(), traceID: &ids[i]})
		}
	}
	var e jaegerEncoder
	return respondJaeger(w, 0, errs, func(b []byte) []byte {
		b = append(b, '[')
		first := true
		for _, td := range found {
			if td.SpanCount() == 0 {
				continue
			}
			if !first {
				b = append(b, ',')
			}
			first = false
			b = e.appendTrace(b, td)
		}
		return append(b, ']')
	})
}

// fetchTraces fetches whole traces (in one pass when the querier can, see
// traces.TracesQuerier), unbounded in time since a search hit's
// spans may start outside the search's window; found[i] is ids[i] (empty
// when unknown).
func (a *API) fetchTraces(ctx context.Context, tenant string, ids []traces.TraceID) ([]ptrace.Traces, error) {
	if m, ok := a.q.(traces.TracesQuerier); ok {
		found, err := m.Traces(ctx, tenant, ids, time.Time{}, time.Time{})
		if err != nil {
			return nil, fmt.Errorf("traces: %w", err)
		}
		for _, td := range found {
			if err := chargeTrace(ctx, td); err != nil {
				return nil, err
			}
		}
		return found, nil
	}
	found := make([]ptrace.Traces, len(ids))
	errs := make([]error, len(ids))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, a.cfg.JaegerFetchConcurrency)
	var wg sync.WaitGroup
	for i, id := range ids {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			errs[i] = ctx.Err()
			continue
		}
		wg.Go(func() {
			defer func() {
				if p := recover(); p != nil {
					a.logger.Error("panic fetching a trace", "trace", id, "panic", p)
					errs[i] = errPanic
				}
				<-sem
			}()
			td, err := a.q.Trace(ctx, tenant, id, time.Time{}, time.Time{})
			if err == nil {
				err = chargeTrace(ctx, td)
			}
			if err != nil {
				errs[i] = fmt.Errorf("trace %s: %w", id, err)
				cancel()
				return
			}
			found[i] = td
		})
	}
	wg.Wait()
	// The first error of a store, not the cancellations it caused.
	for _, err := range errs {
		if err != nil && !errors.Is(err, context.Canceled) {
			return nil, err
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return found, nil
}
