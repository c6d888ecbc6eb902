// Package tracestest is an in-memory traces.Querier (and traces.Appender)
// for tests, with the semantics storage/traces documents: a trace matches a
// search when one of its spans meets every condition of one of the groups;
// Start and End bound the matching spans' start times; MinDuration and
// MaxDuration bound the trace's duration; hits come most recent first, up
// to Limit (0: all), each listing up to SpansPerSpanSet matching spans (0:
// all).
//
// Conditions compare as Tempo does where the text form allows: regular
// expressions are fully anchored; a missing attribute meets no condition,
// != included; numbers compare numerically with numeric attributes,
// booleans with boolean ones, and everything else as strings; a condition
// on an unscoped attribute (.x) is met by the span's or the resource's.
package tracestest

import (
	"cmp"
	"context"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/pharos-obs/pharos/internal/otlpwire"
	"github.com/pharos-obs/pharos/query/traceql"
	"github.com/pharos-obs/pharos/storage/traces"
)

// Querier holds traces in memory. It is safe for concurrent use.
type Querier struct {
	mu      sync.Mutex
	tenants map[string]map[traces.TraceID]*trace
	groups  int // numbers each appended ResourceSpans and ScopeSpans
	err     error
}

var (
	_ traces.Querier  = (*Querier)(nil)
	_ traces.Appender = (*Querier)(nil)
)

// trace is one trace's spans in arrival order, each stored once.
type trace struct {
	spans []*span
	ids   map[pcommon.SpanID]bool
}

// span is a stored span with copies of its resource and scope; rsGroup
// and ssGroup say which spans arrived in one ResourceSpans and ScopeSpans.
type span struct {
	resource         pcommon.Resource
	resourceSchema   string
	scope            pcommon.InstrumentationScope
	scopeSchema      string
	span             ptrace.Span
	rsGroup, ssGroup int
}

// New returns an empty Querier.
func New() *Querier {
	return &Querier{tenants: map[string]map[traces.TraceID]*trace{}}
}

// SetErr makes every later call fail with err (nil: succeed again).
func (q *Querier) SetErr(err error) {
	q.mu.Lock()
	q.err = err
	q.mu.Unlock()
}

// AppendWire implements traces.Appender, through Append.
func (q *Querier) AppendWire(tenant string, t *otlpwire.Traces) error {
	td, err := (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(t.AppendProto(nil))
	if err != nil {
		return err
	}
	return q.Append(tenant, td)
}

// Append implements traces.Appender. It copies td; a span already stored
// (same trace and span ID) is dropped.
func (q *Querier) Append(tenant string, td ptrace.Traces) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.err != nil {
		return q.err
	}
	byID := q.tenants[tenant]
	if byID == nil {
		byID = map[traces.TraceID]*trace{}
		q.tenants[tenant] = byID
	}
	rss := td.ResourceSpans()
	for i := range rss.Len() {
		rs := rss.At(i)
		q.groups++
		rsGroup := q.groups
		res := pcommon.NewResource()
		rs.Resource().CopyTo(res)
		for j := range rs.ScopeSpans().Len() {
			ss := rs.ScopeSpans().At(j)
			q.groups++
			ssGroup := q.groups
			scope := pcommon.NewInstrumentationScope()
			ss.Scope().CopyTo(scope)
			for k := range ss.Spans().Len() {
				s := ss.Spans().At(k)
				id := traces.TraceID(s.TraceID())
				t := byID[id]
				if t == nil {
					t = &trace{ids: map[pcommon.SpanID]bool{}}
					byID[id] = t
				}
				if t.ids[s.SpanID()] {
					continue
				}
				t.ids[s.SpanID()] = true
				cp := ptrace.NewSpan()
				s.CopyTo(cp)
				t.spans = append(t.spans, &span{
					resource: res, resourceSchema: rs.SchemaUrl(),
					scope: scope, scopeSchema: ss.SchemaUrl(),
					span: cp, rsGroup: rsGroup, ssGroup: ssGroup,
				})
			}
		}
	}
	return nil
}

// WaitDurable implements traces.Appender: memory is as durable as it gets.
func (q *Querier) WaitDurable(context.Context) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.err
}

// Trace implements traces.Querier. With start or end set, the trace is
// returned only when one of its spans starts within them.
func (q *Querier) Trace(_ context.Context, tenant string, id traces.TraceID, start, end time.Time) (ptrace.Traces, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := ptrace.NewTraces()
	if q.err != nil {
		return out, q.err
	}
	t := q.tenants[tenant][id]
	if t == nil || !slices.ContainsFunc(t.spans, func(s *span) bool { return inWindow(s, start, end) }) {
		return out, nil
	}
	rsByGroup := map[int]ptrace.ResourceSpans{}
	ssByGroup := map[int]ptrace.ScopeSpans{}
	for _, s := range t.spans {
		rs, ok := rsByGroup[s.rsGroup]
		if !ok {
			rs = out.ResourceSpans().AppendEmpty()
			s.resource.CopyTo(rs.Resource())
			rs.SetSchemaUrl(s.resourceSchema)
			rsByGroup[s.rsGroup] = rs
		}
		ss, ok := ssByGroup[s.ssGroup]
		if !ok {
			ss = rs.ScopeSpans().AppendEmpty()
			s.scope.CopyTo(ss.Scope())
			ss.SetSchemaUrl(s.scopeSchema)
			ssByGroup[s.ssGroup] = ss
		}
		s.span.CopyTo(ss.Spans().AppendEmpty())
	}
	return out, nil
}

func inWindow(s *span, start, end time.Time) bool {
	t := s.span.StartTimestamp().AsTime()
	return (start.IsZero() || !t.Before(start)) && (end.IsZero() || !t.After(end))
}

// traceInfo is what trace-level intrinsics read.
type traceInfo struct {
	start, end time.Time
	root       *span
}

func info(t *trace) traceInfo {
	var ti traceInfo
	for i, s := range t.spans {
		st, en := s.span.StartTimestamp().AsTime(), s.span.EndTimestamp().AsTime()
		if i == 0 || st.Before(ti.start) {
			ti.start = st
		}
		if i == 0 || en.After(ti.end) {
			ti.end = en
		}
		if ti.root == nil && s.span.ParentSpanID().IsEmpty() {
			ti.root = s
		}
	}
	return ti
}

func serviceName(s *span) string {
	v, ok := s.resource.Attributes().Get("service.name")
	if !ok {
		return ""
	}
	return v.AsString()
}

// Search implements traces.Querier.
func (q *Querier) Search(_ context.Context, p traces.SearchParams) ([]traces.TraceSummary, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.err != nil {
		return nil, q.err
	}
	m := matcher{regexps: map[string]*regexp.Regexp{}}
	for _, g := range p.Any {
		for _, c := range g {
			if c.Op == "=~" || c.Op == "!~" {
				re, err := regexp.Compile("^(?:" + c.Value + ")$")
				if err != nil {
					return nil, fmt.Errorf("condition %s: %w", c.Name, err)
				}
				m.regexps[c.Value] = re
			}
		}
	}
	var out []traces.TraceSummary
	for id, t := range q.tenants[p.Tenant] {
		ti := info(t)
		d := ti.end.Sub(ti.start)
		if (p.MinDuration > 0 && d < p.MinDuration) || (p.MaxDuration > 0 && d > p.MaxDuration) {
			continue
		}
		var matched []*span
		for _, s := range t.spans {
			if inWindow(s, p.Start, p.End) && m.matchesAny(p.Any, s, ti) {
				matched = append(matched, s)
			}
		}
		if len(matched) == 0 {
			continue
		}
		sum := traces.TraceSummary{
			TraceID:           id,
			StartTimeUnixNano: uint64(ti.start.UnixNano()),
			DurationMs:        uint64(d.Milliseconds()),
			MatchedAll:        len(matched),
		}
		if ti.root != nil {
			sum.RootServiceName, sum.RootTraceName = serviceName(ti.root), ti.root.span.Name()
		}
		slices.SortStableFunc(matched, func(a, b *span) int {
			return cmp.Compare(a.span.StartTimestamp(), b.span.StartTimestamp())
		})
		if p.SpansPerSpanSet > 0 && len(matched) > p.SpansPerSpanSet {
			matched = matched[:p.SpansPerSpanSet]
		}
		for _, s := range matched {
			sum.Matched = append(sum.Matched, summary(s, p.Any))
		}
		out = append(out, sum)
	}
	slices.SortFunc(out, func(a, b traces.TraceSummary) int {
		return cmp.Or(cmp.Compare(b.StartTimeUnixNano, a.StartTimeUnixNano), slices.Compare(a.TraceID[:], b.TraceID[:]))
	})
	if p.Limit > 0 && len(out) > p.Limit {
		out = out[:p.Limit]
	}
	return out, nil
}

// summary lists a matching span with service.name and the attributes and
// intrinsics (but name and duration, listed anyway) the conditions name.
func summary(s *span, groups [][]traces.Condition) traces.SpanSummary {
	sp := s.span
	ss := traces.SpanSummary{
		SpanID:            sp.SpanID(),
		Name:              sp.Name(),
		StartTimeUnixNano: uint64(sp.StartTimestamp()),
		DurationNanos:     uint64(max(sp.EndTimestamp()-sp.StartTimestamp(), 0)),
		Attributes:        map[string]string{},
	}
	if name := serviceName(s); name != "" {
		ss.Attributes["service.name"] = name
	}
	for _, g := range groups {
		for _, c := range g {
			switch c.Scope {
			case traceql.ScopeIntrinsic:
				switch c.Name {
				case "status":
					ss.Attributes["status"] = statusString(sp.Status().Code())
				case "kind":
					ss.Attributes["kind"] = kindString(sp.Kind())
				}
			default:
				if vs := attributes(s, c.Scope, c.Name); len(vs) > 0 {
					ss.Attributes[c.Name] = vs[0].AsString()
				}
			}
		}
	}
	return ss
}

func statusString(c ptrace.StatusCode) string {
	switch c {
	case ptrace.StatusCodeError:
		return "error"
	case ptrace.StatusCodeOk:
		return "ok"
	}
	return "unset"
}

func kindString(k ptrace.SpanKind) string {
	switch k {
	case ptrace.SpanKindInternal:
		return "internal"
	case ptrace.SpanKindServer:
		return "server"
	case ptrace.SpanKindClient:
		return "client"
	case ptrace.SpanKindProducer:
		return "producer"
	case ptrace.SpanKindConsumer:
		return "consumer"
	}
	return "unspecified"
}

// attributes returns the values of attribute name in scope: the span's
// first, then the resource's, for the unscoped "".
func attributes(s *span, scope, name string) []pcommon.Value {
	var vs []pcommon.Value
	if scope == "span" || scope == "" {
		if v, ok := s.span.Attributes().Get(name); ok {
			vs = append(vs, v)
		}
	}
	if scope == "resource" || scope == "" {
		if v, ok := s.resource.Attributes().Get(name); ok {
			vs = append(vs, v)
		}
	}
	return vs
}

type matcher struct {
	regexps map[string]*regexp.Regexp
}

func (m matcher) matchesAny(groups [][]traces.Condition, s *span, ti traceInfo) bool {
	if len(groups) == 0 {
		return true
	}
	for _, g := range groups {
		if !slices.ContainsFunc(g, func(c traces.Condition) bool { return !m.matches(c, s, ti) }) {
			return true
		}
	}
	return false
}

func (m matcher) matches(c traces.Condition, s *span, ti traceInfo) bool {
	if c.Scope != traceql.ScopeIntrinsic {
		for _, v := range attributes(s, c.Scope, c.Name) {
			if m.compareValue(v, c) {
				return true
			}
		}
		return false
	}
	sp := s.span
	switch c.Name {
	case "name":
		return m.compareString(sp.Name(), c)
	case "status":
		return m.compareString(statusString(sp.Status().Code()), c)
	case "kind":
		return m.compareString(kindString(sp.Kind()), c)
	case "duration":
		return compareDuration(sp.EndTimestamp().AsTime().Sub(sp.StartTimestamp().AsTime()), c)
	case "traceDuration":
		return compareDuration(ti.end.Sub(ti.start), c)
	case "rootName":
		return ti.root != nil && m.compareString(ti.root.span.Name(), c)
	case "rootServiceName":
		return ti.root != nil && m.compareString(serviceName(ti.root), c)
	}
	return false
}

func (m matcher) compareString(s string, c traces.Condition) bool {
	switch c.Op {
	case "=~":
		return m.regexps[c.Value].MatchString(s)
	case "!~":
		return !m.regexps[c.Value].MatchString(s)
	}
	return order(strings.Compare(s, c.Value), c.Op)
}

func (m matcher) compareValue(v pcommon.Value, c traces.Condition) bool {
	if c.Op == "=~" || c.Op == "!~" {
		return m.compareString(v.AsString(), c)
	}
	switch v.Type() {
	case pcommon.ValueTypeInt, pcommon.ValueTypeDouble:
		want, err := strconv.ParseFloat(c.Value, 64)
		if err != nil {
			return false
		}
		got := v.Double()
		if v.Type() == pcommon.ValueTypeInt {
			got = float64(v.Int())
		}
		return order(cmp.Compare(got, want), c.Op)
	case pcommon.ValueTypeBool:
		want, err := strconv.ParseBool(c.Value)
		if err != nil || (c.Op != "=" && c.Op != "!=") {
			return false
		}
		return (v.Bool() == want) == (c.Op == "=")
	}
	return order(strings.Compare(v.AsString(), c.Value), c.Op)
}

func compareDuration(d time.Duration, c traces.Condition) bool {
	want, err := time.ParseDuration(c.Value)
	if err != nil {
		return false
	}
	return order(cmp.Compare(d, want), c.Op)
}

// order applies a comparison operator to the result of a compare.
func order(r int, op string) bool {
	switch op {
	case "=":
		return r == 0
	case "!=":
		return r != 0
	case ">":
		return r > 0
	case ">=":
		return r >= 0
	case "<":
		return r < 0
	case "<=":
		return r <= 0
	}
	return false
}

// intrinsicNames are the intrinsics TagNames lists.
var intrinsicNames = []string{"duration", "kind", "name", "rootName", "rootServiceName", "status", "traceDuration"}

// TagNames implements traces.Querier: the attribute names of the spans
// that start within the bounds, by scope, and the intrinsics.
func (q *Querier) TagNames(_ context.Context, p traces.TagParams) (map[string][]string, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.err != nil {
		return nil, q.err
	}
	sets := map[string]map[string]bool{"resource": {}, "span": {}}
	for _, t := range q.tenants[p.Tenant] {
		for _, s := range t.spans {
			if !inWindow(s, p.Start, p.End) {
				continue
			}
			for k := range s.resource.Attributes().All() {
				sets["resource"][k] = true
			}
			for k := range s.span.Attributes().All() {
				sets["span"][k] = true
			}
		}
	}
	out := map[string][]string{}
	for scope, set := range sets {
		if p.Scope == "" || p.Scope == scope {
			out[scope] = limit(sortedKeys(set), p.Limit)
		}
	}
	if p.Scope == "" || p.Scope == traceql.ScopeIntrinsic {
		out[traceql.ScopeIntrinsic] = limit(slices.Clone(intrinsicNames), p.Limit)
	}
	return out, nil
}

// TagValues implements traces.Querier.
func (q *Querier) TagValues(_ context.Context, tag string, p traces.TagParams) ([]string, error) {
	scope, name, err := parseTag(tag)
	if err != nil {
		return nil, err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.err != nil {
		return nil, q.err
	}
	set := map[string]bool{}
	for _, t := range q.tenants[p.Tenant] {
		ti := info(t)
		for _, s := range t.spans {
			if !inWindow(s, p.Start, p.End) {
				continue
			}
			if scope != traceql.ScopeIntrinsic {
				for _, v := range attributes(s, scope, name) {
					set[v.AsString()] = true
				}
				continue
			}
			switch name {
			case "name":
				set[s.span.Name()] = true
			case "status":
				set[statusString(s.span.Status().Code())] = true
			case "kind":
				set[kindString(s.span.Kind())] = true
			case "rootName":
				if ti.root != nil {
					set[ti.root.span.Name()] = true
				}
			case "rootServiceName":
				if ti.root != nil {
					set[serviceName(ti.root)] = true
				}
			}
		}
	}
	return limit(sortedKeys(set), p.Limit), nil
}

// parseTag splits a tag as traces.Querier names it: "resource.x",
// "span.x", ".x" (x as it is, unquoted) or an intrinsic.
func parseTag(tag string) (scope, name string, err error) {
	for _, scope := range []string{"resource", "span", ""} {
		if name, ok := strings.CutPrefix(tag, scope+"."); ok && name != "" {
			return scope, name, nil
		}
	}
	if slices.Contains(intrinsicNames, tag) {
		return traceql.ScopeIntrinsic, tag, nil
	}
	return "", "", fmt.Errorf("tag %q: want resource.x, span.x, .x or an intrinsic", tag)
}

func sortedKeys(set map[string]bool) []string {
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func limit(ss []string, n int) []string {
	if n > 0 && len(ss) > n {
		return ss[:n]
	}
	return ss
}

// Services implements traces.Querier: the service names of the spans that
// start within the bounds, sorted; spans without one are left out.
func (q *Querier) Services(_ context.Context, tenant string, start, end time.Time) ([]string, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.err != nil {
		return nil, q.err
	}
	set := map[string]bool{}
	for _, t := range q.tenants[tenant] {
		for _, s := range t.spans {
			if name := serviceName(s); name != "" && inWindow(s, start, end) {
				set[name] = true
			}
		}
	}
	return sortedKeys(set), nil
}

// Operations implements traces.Querier.
func (q *Querier) Operations(_ context.Context, tenant, service string, start, end time.Time) ([]traces.Operation, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.err != nil {
		return nil, q.err
	}
	set := map[traces.Operation]bool{}
	for _, t := range q.tenants[tenant] {
		for _, s := range t.spans {
			if serviceName(s) == service && inWindow(s, start, end) {
				set[traces.Operation{Name: s.span.Name(), Kind: kindString(s.span.Kind())}] = true
			}
		}
	}
	out := make([]traces.Operation, 0, len(set))
	for op := range set {
		out = append(out, op)
	}
	slices.SortFunc(out, func(a, b traces.Operation) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.Kind, b.Kind))
	})
	return out, nil
}
