package vtraces

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/pharos-obs/pharos/storage/traces"
)

const ms = time.Millisecond

// searchData is five traces, one every ten seconds from base:
//
//	1 @0s:  frontend "GET /api" (root, server, ok, 300ms, GET, 200)
//	        db "SELECT" (client, +10ms, 50ms, db.rows 12.5)
//	        payments{region=eu} "charge" (server, error, +100ms, 120ms, 500)
//	2 @10s: frontend "POST /api" (root, server, error, 2s, POST, 503)
//	        cache "GET" (client, +1ms, 5ms, hit)
//	3 @20s: frontend "GET /health" (root, server, 1ms, GET, 200)
//	4 @30s: worker "consume" (no root stored, consumer, 40ms, retries 3)
//	5 @40s: frontend{region=us} "a-span" (root, 10ms, x=1),
//	        frontend{region=us} "b-span" (+1ms, 1ms, y=2)
func searchData(t testing.TB, base time.Time) ptrace.Traces {
	return build(t, base,
		spec{trace: 1, id: 1, service: "frontend", name: "GET /api", kind: ptrace.SpanKindServer, status: ptrace.StatusCodeOk, dur: 300 * ms,
			attrs: map[string]any{"http.method": "GET", "http.status_code": 200}},
		spec{trace: 1, id: 2, parent: 1, service: "db", name: "SELECT", kind: ptrace.SpanKindClient, start: 10 * ms, dur: 50 * ms,
			attrs: map[string]any{"db.rows": 12.5}},
		spec{trace: 1, id: 3, parent: 1, service: "payments", res: map[string]any{"region": "eu"}, name: "charge", kind: ptrace.SpanKindServer,
			status: ptrace.StatusCodeError, start: 100 * ms, dur: 120 * ms, attrs: map[string]any{"http.status_code": 500}},
		spec{trace: 2, id: 1, service: "frontend", name: "POST /api", kind: ptrace.SpanKindServer, status: ptrace.StatusCodeError,
			start: 10 * time.Second, dur: 2 * time.Second, attrs: map[string]any{"http.method": "POST", "http.status_code": 503}},
		spec{trace: 2, id: 2, parent: 1, service: "cache", name: "GET", kind: ptrace.SpanKindClient, start: 10*time.Second + ms, dur: 5 * ms,
			attrs: map[string]any{"hit": true}},
		spec{trace: 3, id: 1, service: "frontend", name: "GET /health", kind: ptrace.SpanKindServer, start: 20 * time.Second, dur: ms,
			attrs: map[string]any{"http.method": "GET", "http.status_code": 200}},
		spec{trace: 4, id: 2, parent: 1, service: "worker", name: "consume", kind: ptrace.SpanKindConsumer, start: 30 * time.Second, dur: 40 * ms,
			attrs: map[string]any{"retries": 3}},
		spec{trace: 5, id: 1, service: "frontend", res: map[string]any{"region": "us"}, name: "a-span", kind: ptrace.SpanKindInternal,
			start: 40 * time.Second, dur: 10 * ms, attrs: map[string]any{"x": "1"}},
		spec{trace: 5, id: 2, parent: 1, service: "frontend", res: map[string]any{"region": "us"}, name: "b-span", kind: ptrace.SpanKindInternal,
			start: 40*time.Second + ms, dur: ms, attrs: map[string]any{"y": "2"}},
	)
}

func in(name, op, value string) traces.Condition {
	return traces.Condition{Scope: "intrinsic", Name: name, Op: op, Value: value}
}

func span(name, op, value string) traces.Condition {
	return traces.Condition{Scope: "span", Name: name, Op: op, Value: value}
}

func res(name, op, value string) traces.Condition {
	return traces.Condition{Scope: "resource", Name: name, Op: op, Value: value}
}

func attr(name, op, value string) traces.Condition {
	return traces.Condition{Name: name, Op: op, Value: value}
}

func all(conds ...traces.Condition) [][]traces.Condition { return [][]traces.Condition{conds} }

func anyOf(groups ...[]traces.Condition) [][]traces.Condition { return groups }

func ids(hits []traces.TraceSummary) []uint64 {
	out := []uint64{}
	for _, h := range hits {
		out = append(out, uint64(h.TraceID[15])|uint64(h.TraceID[14])<<8)
	}
	return out
}

func TestSearch(t *testing.T) {
	s, _ := openTestStore(t)
	base := baseTime()
	require.NoError(t, s.Append("", searchData(t, base)))
	searchable(s)

	for name, tc := range map[string]struct {
		p    traces.SearchParams
		want []uint64
	}{
		"every trace": {want: []uint64{5, 4, 3, 2, 1}},

		"name =":             {p: traces.SearchParams{Any: all(in("name", "=", "SELECT"))}, want: []uint64{1}},
		"name =~":            {p: traces.SearchParams{Any: all(in("name", "=~", "GET.*"))}, want: []uint64{3, 2, 1}},
		"name =~ anchored":   {p: traces.SearchParams{Any: all(in("name", "=~", "GET"))}, want: []uint64{2}},
		"name !=":            {p: traces.SearchParams{Any: all(in("name", "!=", "GET /api"))}, want: []uint64{5, 4, 3, 2, 1}},
		"name !~":            {p: traces.SearchParams{Any: all(in("name", "!~", ".*/.*"))}, want: []uint64{5, 4, 2, 1}},
		"span:name":          {p: traces.SearchParams{Any: all(in("span:name", "=", "consume"))}, want: []uint64{4}},
		"status = error":     {p: traces.SearchParams{Any: all(in("status", "=", "error"))}, want: []uint64{2, 1}},
		"status = ok":        {p: traces.SearchParams{Any: all(in("status", "=", "OK"))}, want: []uint64{1}},
		"status != unset":    {p: traces.SearchParams{Any: all(in("status", "!=", "unset"))}, want: []uint64{2, 1}},
		"status =~":          {p: traces.SearchParams{Any: all(in("status", "=~", "o.*"))}, want: []uint64{1}},
		"kind = client":      {p: traces.SearchParams{Any: all(in("kind", "=", "client"))}, want: []uint64{2, 1}},
		"kind = consumer":    {p: traces.SearchParams{Any: all(in("kind", "=", "consumer"))}, want: []uint64{4}},
		"statusMessage":      {p: traces.SearchParams{Any: all(in("statusMessage", "=", ""))}, want: []uint64{5, 4, 3, 2, 1}},
		"duration >":         {p: traces.SearchParams{Any: all(in("duration", ">", "100ms"))}, want: []uint64{2, 1}},
		"duration >=":        {p: traces.SearchParams{Any: all(in("duration", ">=", "300ms"))}, want: []uint64{2, 1}},
		"duration > edge":    {p: traces.SearchParams{Any: all(in("duration", ">", "300ms"))}, want: []uint64{2}},
		"duration <":         {p: traces.SearchParams{Any: all(in("duration", "<", "2ms"))}, want: []uint64{5, 3}},
		"duration <=":        {p: traces.SearchParams{Any: all(in("duration", "<=", "1ms"))}, want: []uint64{5, 3}},
		"duration =":         {p: traces.SearchParams{Any: all(in("duration", "=", "5ms"))}, want: []uint64{2}},
		"duration != in ns":  {p: traces.SearchParams{Any: all(in("duration", "!=", "1000000"), in("kind", "=", "internal"))}, want: []uint64{5}},
		"int attr >=":        {p: traces.SearchParams{Any: all(span("http.status_code", ">=", "500"))}, want: []uint64{2, 1}},
		"int attr =":         {p: traces.SearchParams{Any: all(span("http.status_code", "=", "200"))}, want: []uint64{3, 1}},
		"int attr = float":   {p: traces.SearchParams{Any: all(span("http.status_code", "=", "200.0"))}, want: []uint64{3, 1}},
		"int attr <":         {p: traces.SearchParams{Any: all(span("http.status_code", "<", "300"))}, want: []uint64{3, 1}},
		"int attr <=":        {p: traces.SearchParams{Any: all(span("http.status_code", "<=", "200"))}, want: []uint64{3, 1}},
		"int attr >":         {p: traces.SearchParams{Any: all(span("http.status_code", ">", "500"))}, want: []uint64{2}},
		"int attr !=":        {p: traces.SearchParams{Any: all(span("http.status_code", "!=", "200"))}, want: []uint64{2, 1}},
		"int attr =~":        {p: traces.SearchParams{Any: all(span("http.status_code", "=~", "5.."))}, want: []uint64{2, 1}},
		"str attr =":         {p: traces.SearchParams{Any: all(span("http.method", "=", "GET"))}, want: []uint64{3, 1}},
		"str attr =~":        {p: traces.SearchParams{Any: all(span("http.method", "=~", "P.*"))}, want: []uint64{2}},
		"str attr !~":        {p: traces.SearchParams{Any: all(span("http.method", "!~", "G.*"))}, want: []uint64{2}},
		"str attr != absent": {p: traces.SearchParams{Any: all(span("http.method", "!=", "nothing"))}, want: []uint64{3, 2, 1}},
		"double attr >":      {p: traces.SearchParams{Any: all(span("db.rows", ">", "12"))}, want: []uint64{1}},
		"double attr > edge": {p: traces.SearchParams{Any: all(span("db.rows", ">", "12.5"))}, want: []uint64{}},
		"double attr =":      {p: traces.SearchParams{Any: all(span("db.rows", "=", "12.5"))}, want: []uint64{1}},
		"bool attr":          {p: traces.SearchParams{Any: all(span("hit", "=", "true"))}, want: []uint64{2}},
		"resource attr":      {p: traces.SearchParams{Any: all(res("region", "=", "eu"))}, want: []uint64{1}},
		"resource service":   {p: traces.SearchParams{Any: all(res("service.name", "=", "payments"))}, want: []uint64{1}},
		"span scope misses":  {p: traces.SearchParams{Any: all(span("region", "=", "eu"))}, want: []uint64{}},
		"unscoped resource":  {p: traces.SearchParams{Any: all(attr("region", "=", "us"))}, want: []uint64{5}},
		"unscoped span":      {p: traces.SearchParams{Any: all(attr("http.method", "=", "POST"))}, want: []uint64{2}},
		"unscoped service":   {p: traces.SearchParams{Any: all(attr("service.name", "=", "worker"))}, want: []uint64{4}},
		"int attr > 2":       {p: traces.SearchParams{Any: all(span("retries", ">", "2"))}, want: []uint64{4}},
		"int attr > 3":       {p: traces.SearchParams{Any: all(span("retries", ">", "3"))}, want: []uint64{}},

		"rootName":               {p: traces.SearchParams{Any: all(in("rootName", "=", "GET /health"))}, want: []uint64{3}},
		"trace:rootName =~":      {p: traces.SearchParams{Any: all(in("trace:rootName", "=~", "GET.*"))}, want: []uint64{3, 1}},
		"trace:rootService":      {p: traces.SearchParams{Any: all(in("trace:rootService", "=", "frontend"))}, want: []uint64{5, 3, 2, 1}},
		"trace:duration":         {p: traces.SearchParams{Any: all(in("trace:duration", ">", "1s"))}, want: []uint64{2}},
		"span:duration":          {p: traces.SearchParams{Any: all(in("span:duration", ">", "1s"))}, want: []uint64{2}},
		"rootServiceName":        {p: traces.SearchParams{Any: all(in("rootServiceName", "=", "frontend"))}, want: []uint64{5, 3, 2, 1}},
		"rootServiceName !=":     {p: traces.SearchParams{Any: all(in("rootServiceName", "!=", "frontend"))}, want: []uint64{}},
		"traceDuration >":        {p: traces.SearchParams{Any: all(in("traceDuration", ">", "1s"))}, want: []uint64{2}},
		"traceDuration <":        {p: traces.SearchParams{Any: all(in("traceDuration", "<", "5ms"))}, want: []uint64{3}},
		"traceDuration = 300ms":  {p: traces.SearchParams{Any: all(in("traceDuration", "=", "300ms"))}, want: []uint64{1}},
		"root and span together": {p: traces.SearchParams{Any: all(in("rootServiceName", "=", "frontend"), in("kind", "=", "client"))}, want: []uint64{2, 1}},
		"root excludes span":     {p: traces.SearchParams{Any: all(in("rootName", "=", "GET /health"), in("kind", "=", "client"))}, want: []uint64{}},

		"and holds on one span": {p: traces.SearchParams{Any: all(span("x", "=", "1"), span("y", "=", "2"))}, want: []uint64{}},
		"and on the same span":  {p: traces.SearchParams{Any: all(span("x", "=", "1"), in("name", "=", "a-span"))}, want: []uint64{5}},
		"or of groups":          {p: traces.SearchParams{Any: anyOf([]traces.Condition{span("x", "=", "1")}, []traces.Condition{span("y", "=", "2")})}, want: []uint64{5}},
		"or mixes":              {p: traces.SearchParams{Any: anyOf([]traces.Condition{in("status", "=", "error")}, []traces.Condition{in("kind", "=", "consumer")})}, want: []uint64{4, 2, 1}},
		"or with a trace group": {p: traces.SearchParams{Any: anyOf([]traces.Condition{in("traceDuration", ">", "1s")}, []traces.Condition{in("name", "=", "consume")})}, want: []uint64{4, 2}},

		"min duration":     {p: traces.SearchParams{MinDuration: 200 * ms}, want: []uint64{2, 1}},
		"max duration":     {p: traces.SearchParams{MaxDuration: 100 * ms}, want: []uint64{5, 4, 3}},
		"min and max":      {p: traces.SearchParams{MinDuration: 5 * ms, MaxDuration: 100 * ms}, want: []uint64{5, 4}},
		"limit":            {p: traces.SearchParams{Limit: 2}, want: []uint64{5, 4}},
		"limit with conds": {p: traces.SearchParams{Limit: 1, Any: all(in("status", "=", "error"))}, want: []uint64{2}},
		"time range":       {p: traces.SearchParams{Start: base.Add(5 * time.Second), End: base.Add(25 * time.Second)}, want: []uint64{3, 2}},
		"inclusive range":  {p: traces.SearchParams{Start: base.Add(10 * time.Second), End: base.Add(20 * time.Second)}, want: []uint64{3, 2}},
		"range and span":   {p: traces.SearchParams{Start: base.Add(50 * ms), Any: all(in("name", "=", "SELECT"))}, want: []uint64{}},
		"empty range":      {p: traces.SearchParams{Start: base.Add(time.Second), End: base}, want: []uint64{}},
	} {
		t.Run(name, func(t *testing.T) {
			hits, err := s.Search(context.Background(), tc.p)
			require.NoError(t, err)
			require.Equal(t, tc.want, ids(hits))
		})
	}
}

func TestSearchSummaries(t *testing.T) {
	s, _ := openTestStore(t)
	base := baseTime()
	require.NoError(t, s.Append("", searchData(t, base)))
	// A redelivered span counts once.
	require.NoError(t, s.Append("", searchData(t, base)))
	searchable(s)
	ctx := context.Background()

	hits, err := s.Search(ctx, traces.SearchParams{Any: all(in("kind", "=", "server"), span("http.status_code", ">=", "200")), SpansPerSpanSet: 1})
	require.NoError(t, err)
	require.Equal(t, []uint64{3, 2, 1}, ids(hits))
	t1 := hits[2]
	require.Equal(t, traceID(1), t1.TraceID)
	require.Equal(t, "frontend", t1.RootServiceName)
	require.Equal(t, "GET /api", t1.RootTraceName)
	require.Equal(t, uint64(base.UnixNano()), t1.StartTimeUnixNano)
	require.Equal(t, uint64(300), t1.DurationMs)
	require.Equal(t, 2, t1.MatchedAll, "GET /api and charge")
	require.Equal(t, []traces.SpanSummary{{
		SpanID: spanID(1, 1), Name: "GET /api", StartTimeUnixNano: uint64(base.UnixNano()), DurationNanos: uint64(300 * ms),
		Attributes: map[string]string{"http.status_code": "200"},
	}}, t1.Matched)

	// Default: three spans listed.
	hits, err = s.Search(ctx, traces.SearchParams{Any: all(attr("service.name", "=~", ".+")), Limit: 1, Start: base, End: base.Add(time.Second)})
	require.NoError(t, err)
	require.Len(t, hits, 1)
	require.Equal(t, 3, hits[0].MatchedAll)
	require.Len(t, hits[0].Matched, 3)
	require.Equal(t, map[string]string{"service.name": "frontend"}, hits[0].Matched[0].Attributes)

	// A trace without its root.
	hits, err = s.Search(ctx, traces.SearchParams{Any: all(in("kind", "=", "consumer"))})
	require.NoError(t, err)
	require.Len(t, hits, 1)
	require.Empty(t, hits[0].RootServiceName)
	require.Empty(t, hits[0].RootTraceName)
	require.Equal(t, uint64(40), hits[0].DurationMs)
}

// TestSearchNumbers checks the numeric comparisons, and that what is
// pushed down to LogsQL keeps every span Go then matches, on values
// written in every way a number may be.
func TestSearchNumbers(t *testing.T) {
	s, _ := openTestStore(t)
	base := baseTime()
	values := map[uint64]any{
		10: "007",
		11: int64(9007199254740993),
		12: 0.30000000000000004,
		13: "1e3",
		14: -2.5,
		15: "abc",
		16: "1.50",
		17: "-0",
		18: 1e300,
		19: "12h", // a duration to LogsQL, not a number
	}
	var specs []spec
	for id, v := range values {
		specs = append(specs, spec{trace: id, id: 1, service: "n", name: "n", start: time.Duration(id) * time.Second, attrs: map[string]any{"v": v}})
	}
	require.NoError(t, s.Append("", build(t, base, specs...)))
	searchable(s)
	for _, tc := range []struct {
		op, value string
		want      []uint64
	}{
		{"=", "7", []uint64{10}},
		{">", "6", []uint64{18, 13, 11, 10}},
		{"=", "9007199254740993", []uint64{11}},
		{"=", "9007199254740992", []uint64{}},
		{">", "9007199254740992", []uint64{18, 11}},
		{">", "0.3", []uint64{18, 16, 13, 12, 11, 10}},
		{"<=", "0.3", []uint64{17, 14}},
		{"<", "0", []uint64{14}},
		{"=", "0", []uint64{17}},
		{"=", "1000", []uint64{13}},
		{"=", "1.5", []uint64{16}},
		{"=", "1e300", []uint64{18}},
		{">=", "-2.5", []uint64{18, 17, 16, 14, 13, 12, 11, 10}},
		{">", "-2.5", []uint64{18, 17, 16, 13, 12, 11, 10}},
		{"=", "abc", []uint64{15}},
		{">", "abb", []uint64{15}},
		{"<", "0", []uint64{14}},
		{"=", "12h", []uint64{19}},
		{">", "12", []uint64{18, 13, 11}},
	} {
		t.Run(tc.op+tc.value, func(t *testing.T) {
			hits, err := s.Search(context.Background(), traces.SearchParams{Any: all(span("v", tc.op, tc.value))})
			require.NoError(t, err)
			require.Equal(t, tc.want, ids(hits))
		})
	}
}

func TestSearchRejectsBadConditions(t *testing.T) {
	s, _ := openTestStore(t)
	for name, c := range map[string]traces.Condition{
		"operator":       in("name", "==", "x"),
		"intrinsic":      in("nope", "=", "x"),
		"scope":          {Scope: "event", Name: "x", Op: "=", Value: "x"},
		"no name":        span("", "=", "x"),
		"regexp":         span("x", "=~", "("),
		"duration":       in("duration", ">", "fast"),
		"duration regex": in("duration", "=~", "1.*"),
		"status":         in("status", "=", "broken"),
		"kind order":     in("kind", ">", "server"),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := s.Search(context.Background(), traces.SearchParams{Any: all(c)})
			require.ErrorIs(t, err, ErrBadCondition)
		})
	}
}

// TestSearchLimitOrder stores more traces than the limit, their spans out
// of order and across search windows, and checks that the most recent
// traces by start come back, whatever span matched.
func TestSearchLimitOrder(t *testing.T) {
	s, _ := openTestStore(t)
	base := baseTime()
	var specs []spec
	const n = 50
	for i := range uint64(n) {
		// Trace i starts at i minutes; its matching span comes late (up to
		// 10 minutes after the start), later for earlier traces.
		start := time.Duration(i) * time.Minute
		specs = append(specs,
			spec{trace: i + 1, id: 1, service: "svc", name: "root", start: start, dur: 11 * time.Minute},
			spec{trace: i + 1, id: 2, parent: 1, service: "svc", name: "late", start: start + time.Duration(n-i)*10*time.Second, dur: time.Second,
				attrs: map[string]any{"i": int64(i)}},
		)
	}
	require.NoError(t, s.Append("", build(t, base, specs...)))
	searchable(s)
	for _, limit := range []int{1, 5, 20, 60} {
		hits, err := s.Search(context.Background(), traces.SearchParams{Any: all(in("name", "=", "late")), Limit: limit})
		require.NoError(t, err)
		var want []uint64
		for i := n; i > 0 && len(want) < limit; i-- {
			want = append(want, uint64(i))
		}
		require.Equal(t, want, ids(hits), "limit %d", limit)
		for _, h := range hits {
			require.Equal(t, 1, h.MatchedAll)
			require.Equal(t, uint64(11*time.Minute/ms), h.DurationMs)
		}
	}
}

// TestSearchAfterQuietSpell stores a burst of traces an hour ago and
// nothing since: the windows growing back from the clock would first reach
// the burst with one holding all of it. The search jumps to the newest
// candidate span instead, reads a few seconds' worth, and still returns
// the most recent traces.
func TestSearchAfterQuietSpell(t *testing.T) {
	s, _ := openTestStore(t)
	base := baseTime()
	const n = 2000 // 20 traces a second for 100 s
	var specs []spec
	for i := range uint64(n) {
		specs = append(specs, spec{trace: i + 1, id: 1, service: "svc", name: "op", start: time.Duration(i) * 50 * time.Millisecond, dur: time.Millisecond})
	}
	require.NoError(t, s.Append("", build(t, base, specs...)))
	searchable(s)

	sr, err := s.newSearch(traces.SearchParams{Any: all(in("name", "=", "op")), Limit: 5})
	require.NoError(t, err)
	hits, err := sr.run(context.Background())
	require.NoError(t, err)
	require.Equal(t, []uint64{n, n - 1, n - 2, n - 3, n - 4}, ids(hits))
	require.Positive(t, sr.spansRead)
	require.LessOrEqual(t, sr.spansRead, 200, "read about the last 5 s of the burst, not all of it")

	// Nothing at all matches: the probe ends the search at once.
	sr, err = s.newSearch(traces.SearchParams{Any: all(in("name", "=", "absent")), Limit: 5})
	require.NoError(t, err)
	hits, err = sr.run(context.Background())
	require.NoError(t, err)
	require.Empty(t, hits)
	require.Zero(t, sr.spansRead)
}

// TestSearchDenseBurst stores 5,000 one-span traces within half a second,
// an hour ago: the short first window after the jump to the newest span
// holds a few hundred of them, which settle a search for the most recent
// traces; then traces of 200 spans, where the windows must grow on, and the
// answer is still exact.
func TestSearchDenseBurst(t *testing.T) {
	s, _ := openTestStore(t)
	base := baseTime()
	const n = 5000
	var specs []spec
	for i := range uint64(n) {
		specs = append(specs, spec{trace: i + 1, id: 1, service: "svc", name: "op", start: time.Duration(i) * 100 * time.Microsecond, dur: time.Millisecond})
	}
	require.NoError(t, s.Append("", build(t, base, specs...)))
	searchable(s)

	for _, limit := range []int{5, 20} {
		sr, err := s.newSearch(traces.SearchParams{Any: all(in("name", "=", "op")), Limit: limit})
		require.NoError(t, err)
		hits, err := sr.run(context.Background())
		require.NoError(t, err)
		var want []uint64
		for i := uint64(n); len(want) < limit; i-- {
			want = append(want, i)
		}
		require.Equal(t, want, ids(hits))
		require.LessOrEqual(t, sr.spansRead, 1000, "limit %d: read a window's worth, not the burst", limit)
	}

	specs = specs[:0]
	const big, perTrace = 100, 200
	for i := range uint64(big) {
		for k := range uint64(perTrace) {
			specs = append(specs, spec{trace: n + 1 + i, id: k + 1, service: "svc", name: "big",
				start: time.Second + time.Duration(i*perTrace+k)*10*time.Microsecond, dur: time.Millisecond})
		}
	}
	require.NoError(t, s.Append("", build(t, base, specs...)))
	searchable(s)
	hits, err := s.Search(context.Background(), traces.SearchParams{Any: all(in("name", "=", "big")), Limit: 20})
	require.NoError(t, err)
	var want []uint64
	for i := uint64(n + big); len(want) < 20; i-- {
		want = append(want, i)
	}
	require.Equal(t, want, ids(hits))
}
