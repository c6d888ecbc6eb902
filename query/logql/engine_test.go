package logql

import (
	"context"
	"errors"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/stretchr/testify/require"

	"github.com/pharos-obs/pharos/query/limits"
	"github.com/pharos-obs/pharos/query/logql/logqltest"
	"github.com/pharos-obs/pharos/storage/logs"
)

// t0 is the fixture's origin; entries sit at whole seconds after it.
var t0 = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

func at(sec float64) time.Time { return t0.Add(time.Duration(sec * float64(time.Second))) }

func ns(sec float64) int64 { return at(sec).UnixNano() }

func ms(sec float64) int64 { return at(sec).UnixMilli() }

const (
	prodInfo  = `{"level":"info","status":200,"latency":"50ms","size":"512B","msg":"ok"}`
	prodError = `{"level":"error","status":500,"latency":"250ms","size":"2KB","msg":"boom"}`
)

// fixture stores:
//
//	{app="api", env="prod"}: JSON every 10s from 10s to 120s; every third (30, 60, 90, 120s) is an error.
//	{app="api", env="dev"}:  logfmt every 20s from 20s to 120s; the one at 120s is an error.
//	{app="web"}:             plain lines at 15s and 45s, and at 75s one with metadata trace_id="abc".
func fixture(t *testing.T) *logqltest.Querier {
	t.Helper()
	q := logqltest.New()
	var prod, dev []logs.Entry
	for i := 1; i <= 12; i++ {
		line := prodInfo
		if i%3 == 0 {
			line = prodError
		}
		prod = append(prod, logs.Entry{Timestamp: ns(float64(10 * i)), Line: line})
	}
	for i := 1; i <= 6; i++ {
		line := "level=info status=200 latency=10ms"
		if i == 6 {
			line = "level=error status=503 latency=1s"
		}
		dev = append(dev, logs.Entry{Timestamp: ns(float64(20 * i)), Line: line})
	}
	web := []logs.Entry{
		{Timestamp: ns(15), Line: "GET /index 200"},
		{Timestamp: ns(45), Line: "POST /login 401"},
		{Timestamp: ns(75), Line: "GET /about 200", Metadata: labels.FromStrings("trace_id", "abc")},
	}
	require.NoError(t, q.Append("t1", []logs.Stream{
		{Labels: labels.FromStrings("app", "api", "env", "prod"), Entries: prod},
		{Labels: labels.FromStrings("app", "api", "env", "dev"), Entries: dev},
		{Labels: labels.FromStrings("app", "web"), Entries: web},
	}))
	// Another tenant's data must never show up.
	require.NoError(t, q.Append("other", []logs.Stream{
		{Labels: labels.FromStrings("app", "api", "env", "prod"), Entries: prod},
	}))
	return q
}

// rangeQuery evaluates query from 60s to 120s every 30s.
func rangeQuery(t *testing.T, e *Engine, q logs.Querier, query string) promql.Matrix {
	t.Helper()
	res, err := e.Query(context.Background(), q, "t1", Params{Query: query, Start: at(60), End: at(120), Step: 30 * time.Second})
	require.NoError(t, err)
	m, ok := res.Data.(promql.Matrix)
	require.True(t, ok, "got %T", res.Data)
	return m
}

func instantQuery(t *testing.T, e *Engine, q logs.Querier, query string, sec float64) promql.Vector {
	t.Helper()
	res, err := e.Query(context.Background(), q, "t1", Params{Query: query, Start: at(sec), End: at(sec)})
	require.NoError(t, err)
	v, ok := res.Data.(promql.Vector)
	require.True(t, ok, "got %T", res.Data)
	return v
}

// series builds a matrix series with points at 60, 90 and 120s (NaN: none).
func series(lbls labels.Labels, v60, v90, v120 float64) promql.Series {
	s := promql.Series{Metric: lbls}
	for i, v := range []float64{v60, v90, v120} {
		if !math.IsNaN(v) {
			s.Floats = append(s.Floats, promql.FPoint{T: ms(60 + 30*float64(i)), F: v})
		}
	}
	return s
}

func requireMatrix(t *testing.T, want, got promql.Matrix) {
	t.Helper()
	require.Equal(t, len(want), len(got), "got %v", got)
	for i := range want {
		require.Equal(t, want[i].Metric.String(), got[i].Metric.String())
		require.Equal(t, len(want[i].Floats), len(got[i].Floats), "%s: %v", want[i].Metric, got[i].Floats)
		for j, p := range want[i].Floats {
			require.Equal(t, p.T, got[i].Floats[j].T)
			require.InDelta(t, p.F, got[i].Floats[j].F, 1e-9, "%s at %d", want[i].Metric, p.T)
		}
	}
}

func sample(lbls labels.Labels, sec, v float64) promql.Sample {
	return promql.Sample{Metric: lbls, T: ms(sec), F: v}
}

func requireVector(t *testing.T, want, got promql.Vector) {
	t.Helper()
	require.Equal(t, len(want), len(got), "got %v", got)
	for i := range want {
		require.Equal(t, want[i].Metric.String(), got[i].Metric.String())
		require.Equal(t, want[i].T, got[i].T)
		require.InDelta(t, want[i].F, got[i].F, 1e-9, want[i].Metric.String())
	}
}

var (
	nan     = math.NaN()
	apiProd = labels.FromStrings("app", "api", "env", "prod")
	apiDev  = labels.FromStrings("app", "api", "env", "dev")
	web     = labels.FromStrings("app", "web")
	webMeta = labels.FromStrings("app", "web", "trace_id", "abc")
)

func TestRangeAggregations(t *testing.T) {
	q := fixture(t)
	e := NewEngine(EngineOpts{})
	f := func(query string, want ...promql.Series) {
		t.Helper()
		requireMatrix(t, want, rangeQuery(t, e, q, query))
	}
	// Windows are (t-1m, t]: at 60s prod has 10..60s, dev 20, 40, 60s.
	f(`count_over_time({app="api"}[1m])`, series(apiDev, 3, 3, 3), series(apiProd, 6, 6, 6))
	f(`rate({app="api"}[1m])`, series(apiDev, 3./60, 3./60, 3./60), series(apiProd, 6./60, 6./60, 6./60))
	// Line filters: prod errors at 30, 60, 90, 120s; dev's at 120s.
	f(`count_over_time({app="api"} |= "error" [1m])`, series(apiDev, nan, nan, 1), series(apiProd, 2, 2, 2))
	f(`count_over_time({app="api"} |~ "err.r" != "boom" [1m])`, series(apiDev, nan, nan, 1))
	// Metadata makes its own series; web has 15, 45 (plain) and 75s (trace_id).
	f(`count_over_time({app="web"}[1m])`, series(web, 2, 1, nan), series(webMeta, nan, 1, 1))
	f(`bytes_over_time({app="web"}[1m])`, series(web, 14+15, 15, nan), series(webMeta, nan, 14, 14))
	f(`bytes_rate({app="web"}[1m])`, series(web, 29./60, 15./60, nan), series(webMeta, nan, 14./60, 14./60))
	// Offset shifts the window back: at 60s it is (-30s, 30s].
	f(`count_over_time({app="web"}[1m] offset 30s)`, series(web, 1, 2, 1), series(webMeta, nan, nan, 1))
	// A short range: (t-30s, t].
	f(`absent_over_time({app="web"}[30s])`, series(web, nan, nan, 1))
	f(`absent_over_time({app="nope", env="x", env!="y"}[1m])`, series(labels.FromStrings("app", "nope"), 1, 1, 1))
	// Parsed labels split series; drop merges them again.
	f(`count_over_time({app="api", env="prod"} | json | drop latency, size, msg, status [1m])`,
		series(labels.FromStrings("app", "api", "env", "prod", "level", "error"), 2, 2, 2),
		series(labels.FromStrings("app", "api", "env", "prod", "level", "info"), 4, 4, 4))
	f(`count_over_time({app="api"} | json | __error__="" | level="error" [1m])`,
		series(labels.FromStrings("app", "api", "env", "prod", "latency", "250ms", "level", "error", "msg", "boom", "size", "2KB", "status", "500"), 2, 2, 2))
}

func TestUnwrap(t *testing.T) {
	q := fixture(t)
	e := NewEngine(EngineOpts{})
	f := func(query string, want ...promql.Series) {
		t.Helper()
		requireMatrix(t, want, rangeQuery(t, e, q, query))
	}
	prod := labels.FromStrings("env", "prod")
	sel := `{app="api", env="prod"} | json | unwrap duration(latency)`
	// Windows hold four info (0.05s) and two error (0.25s) entries at every
	// step, in this order at 60s: .05 .05 .25 .05 .05 .25.
	f(`avg_over_time(`+sel+` [1m]) by (env)`, series(prod, 0.7/6, 0.7/6, 0.7/6))
	f(`max_over_time(`+sel+` [1m]) by (env)`, series(prod, .25, .25, .25))
	f(`min_over_time(`+sel+` [1m]) by (env)`, series(prod, .05, .05, .05))
	f(`first_over_time(`+sel+` [1m]) by (env)`, series(prod, .05, .05, .05))
	f(`last_over_time(`+sel+` [1m]) by (env)`, series(prod, .25, .25, .25))
	f(`quantile_over_time(0.75, `+sel+` [1m]) by (env)`, series(prod, .2, .2, .2))
	variance := (4*math.Pow(.05-0.7/6, 2) + 2*math.Pow(.25-0.7/6, 2)) / 6
	f(`stdvar_over_time(`+sel+` [1m]) by (env)`, series(prod, variance, variance, variance))
	f(`stddev_over_time(`+sel+` [1m]) by (env)`, series(prod, math.Sqrt(variance), math.Sqrt(variance), math.Sqrt(variance)))
	f(`sum by (env) (sum_over_time(`+sel+` [1m]))`, series(prod, .7, .7, .7))
	f(`sum by (env) (rate(`+sel+` [1m]))`, series(prod, .7/60, .7/60, .7/60))
	// Without grouping the unwrapped label leaves the series labels.
	f(`max_over_time({app="api", env="prod"} | json | keep app, latency, level | unwrap duration(latency) [1m])`,
		series(labels.FromStrings("app", "api", "level", "error"), .25, .25, .25),
		series(labels.FromStrings("app", "api", "level", "info"), .05, .05, .05))
	f(`sum by (env) (sum_over_time({app="api", env="prod"} | json | unwrap bytes(size) [1m]))`, series(prod, 4*512+2*2000, 4*512+2*2000, 4*512+2*2000))
	f(`sum by (env) (sum_over_time({app="api", env="prod"} | json | unwrap status [1m]))`, series(prod, 4*200+2*500, 4*200+2*500, 4*200+2*500))
	// Lines without the label have no sample; a value that does not convert
	// is a pipeline error unless filtered.
	f(`sum by (env) (sum_over_time({app="api"} | logfmt | unwrap duration(latency) | __error__="" [1m]))`,
		series(labels.FromStrings("env", "dev"), .03, .03, 1.02))
	_, err := e.Query(context.Background(), q, "t1", Params{Query: `sum(sum_over_time({app="api", env="prod"} | json | unwrap msg [1m]))`, Start: at(60), End: at(60)})
	var pe *PipelineError
	require.True(t, errors.As(err, &pe), "%v", err)
	require.Equal(t, ErrSampleExtraction, pe.Series.Get(errorLabel))
	f(`sum(sum_over_time({app="api", env="prod"} | json | unwrap msg | __error__!="SampleExtractionErr" [1m]))`)
}

func TestPipelineErrorsInMetricQueries(t *testing.T) {
	q := fixture(t)
	e := NewEngine(EngineOpts{})
	for _, query := range []string{
		`count_over_time({app="web"} | json [1m])`,
		`sum by (app) (count_over_time({app="web"} | json [1m]))`,
		`absent_over_time({app="web"} | json [1m])`,
	} {
		_, err := e.Query(context.Background(), q, "t1", Params{Query: query, Start: at(60), End: at(60)})
		var pe *PipelineError
		require.True(t, errors.As(err, &pe), "%s: %v", query, err)
		require.Equal(t, ErrJSON, pe.Series.Get(errorLabel))
		require.Contains(t, err.Error(), "pipeline error: 'JSONParserErr'")
		require.True(t, IsUserError(err))
	}
	requireVector(t, nil, instantQuery(t, e, q, `count_over_time({app="web"} | json | __error__="" [1m])`, 60))
	requireVector(t, promql.Vector{sample(web, 60, 2)},
		instantQuery(t, e, q, `count_over_time({app="web"} | json | drop __error__, __error_details__ [1m])`, 60))
}

func TestVectorAggregations(t *testing.T) {
	q := fixture(t)
	e := NewEngine(EngineOpts{})
	f := func(query string, want ...promql.Sample) {
		t.Helper()
		requireVector(t, want, instantQuery(t, e, q, query, 120))
	}
	// At 120s over (60s, 120s]: prod 6, dev 3, web (only the 75s entry, with metadata) 1.
	inner := `count_over_time({app=~".+"}[1m])`
	mean := 10. / 3
	variance := (math.Pow(6-mean, 2) + math.Pow(3-mean, 2) + math.Pow(1-mean, 2)) / 3
	f(`sum(`+inner+`)`, sample(labels.EmptyLabels(), 120, 10))
	f(`avg(`+inner+`)`, sample(labels.EmptyLabels(), 120, mean))
	f(`min(`+inner+`)`, sample(labels.EmptyLabels(), 120, 1))
	f(`max(`+inner+`)`, sample(labels.EmptyLabels(), 120, 6))
	f(`count(`+inner+`)`, sample(labels.EmptyLabels(), 120, 3))
	f(`stdvar(`+inner+`)`, sample(labels.EmptyLabels(), 120, variance))
	f(`stddev(`+inner+`)`, sample(labels.EmptyLabels(), 120, math.Sqrt(variance)))
	f(`sum by (env) (`+inner+`)`, sample(labels.EmptyLabels(), 120, 1), sample(labels.FromStrings("env", "dev"), 120, 3), sample(labels.FromStrings("env", "prod"), 120, 6))
	f(`sum(`+inner+`) by (env)`, sample(labels.EmptyLabels(), 120, 1), sample(labels.FromStrings("env", "dev"), 120, 3), sample(labels.FromStrings("env", "prod"), 120, 6))
	f(`sum without (env) (`+inner+`)`, sample(labels.FromStrings("app", "api"), 120, 9), sample(webMeta, 120, 1))
	f(`max by (app) (`+inner+`)`, sample(labels.FromStrings("app", "api"), 120, 6), sample(labels.FromStrings("app", "web"), 120, 1))
	f(`topk(2, `+inner+`)`, sample(apiDev, 120, 3), sample(apiProd, 120, 6))
	f(`bottomk(1, `+inner+`)`, sample(webMeta, 120, 1))
	f(`topk by (app) (1, `+inner+`)`, sample(apiProd, 120, 6), sample(webMeta, 120, 1))
	f(`topk(0, ` + inner + `)`)

	// The same over a range, where the sum of a linear aggregation is pushed
	// into sample extraction.
	requireMatrix(t, promql.Matrix{
		series(labels.FromStrings("app", "api"), 9, 9, 9),
		series(labels.FromStrings("app", "web"), 2, 2, 1),
	}, rangeQuery(t, e, q, `sum by (app) (count_over_time({app=~".+"}[1m]))`))
	requireMatrix(t, promql.Matrix{
		series(labels.EmptyLabels(), 2, 2, 3),
	}, rangeQuery(t, e, q, `sum(count_over_time({app="api"} |= "error" [1m]))`))
}

func TestBinaryOperations(t *testing.T) {
	q := fixture(t)
	e := NewEngine(EngineOpts{})
	f := func(query string, want ...promql.Sample) {
		t.Helper()
		requireVector(t, want, instantQuery(t, e, q, query, 120))
	}
	api := labels.FromStrings("app", "api")
	count := `count_over_time({app="api"}[1m])` // prod 6, dev 3 at 120s
	f(count+` * 2`, sample(apiDev, 120, 6), sample(apiProd, 120, 12))
	f(`2 - `+count, sample(apiDev, 120, -1), sample(apiProd, 120, -4))
	f(count+` / 4`, sample(apiDev, 120, .75), sample(apiProd, 120, 1.5))
	f(count+` % 4`, sample(apiDev, 120, 3), sample(apiProd, 120, 2))
	f(count+` ^ 2`, sample(apiDev, 120, 9), sample(apiProd, 120, 36))
	f(count+` > 4`, sample(apiProd, 120, 6))
	f(count+` >= 3`, sample(apiDev, 120, 3), sample(apiProd, 120, 6))
	f(count+` == 3`, sample(apiDev, 120, 3))
	f(count+` != 3`, sample(apiProd, 120, 6))
	f(count+` < 4`, sample(apiDev, 120, 3))
	f(count+` <= 6`, sample(apiDev, 120, 3), sample(apiProd, 120, 6))
	f(count+` > bool 4`, sample(apiDev, 120, 0), sample(apiProd, 120, 1))
	f(`4 < `+count, sample(apiProd, 120, 6))
	f(`4 < bool `+count, sample(apiDev, 120, 0), sample(apiProd, 120, 1))
	// Errors over all lines, per app: (1 + 2) / 9.
	f(`sum by (app) (count_over_time({app="api"} |= "error" [1m])) / sum by (app) (`+count+`)`, sample(api, 120, 3./9))
	f(count+` / ignoring (env) group_left sum by (app) (`+count+`)`, sample(apiDev, 120, 3./9), sample(apiProd, 120, 6./9))
	f(`sum by (app) (`+count+`) / ignoring (env) group_right `+count, sample(apiDev, 120, 9./3), sample(apiProd, 120, 9./6))
	f(`count_over_time({app="api", env="prod"}[1m]) - on (app) count_over_time({app="api", env="dev"}[1m])`, sample(api, 120, 3))
	f(count + ` - ignoring (env) count_over_time({app="web"}[1m])`)
	f(count+` and on (env) count_over_time({env="prod"}[1m])`, sample(apiProd, 120, 6))
	f(count+` unless count_over_time({env="dev"}[1m])`, sample(apiProd, 120, 6))
	f(`count_over_time({app="api", env="prod"}[1m]) or `+count, sample(apiDev, 120, 3), sample(apiProd, 120, 6))
	f(`count_over_time({env="prod"}[1m]) * on (env) group_left (app) count_over_time({app="api"}[1m])`, sample(apiProd, 120, 36))

	_, err := e.Query(context.Background(), q, "t1", Params{Query: count + ` + on (app) ` + count, Start: at(120), End: at(120)})
	require.ErrorContains(t, err, "many-to-many matching not allowed")
	_, err = e.Query(context.Background(), q, "t1", Params{Query: count + ` + on (app) sum by (app) (` + count + `)`, Start: at(120), End: at(120)})
	require.ErrorContains(t, err, "many-to-one matching must be explicit")

	// Scalars.
	res, err := e.Query(context.Background(), q, "t1", Params{Query: `1 + 2 * 3`, Start: at(120), End: at(120)})
	require.NoError(t, err)
	require.Equal(t, promql.Scalar{T: ms(120), V: 7}, res.Data)
	res, err = e.Query(context.Background(), q, "t1", Params{Query: `2 > bool 1`, Start: at(120), End: at(120)})
	require.NoError(t, err)
	require.Equal(t, promql.Scalar{T: ms(120), V: 1}, res.Data)
	requireMatrix(t, promql.Matrix{series(labels.EmptyLabels(), 4, 4, 4)}, rangeQuery(t, e, q, `2 ^ 2`))

	// The alert rule of the brief, over a range: only at 120s do errors
	// exceed 0.04/s (3 in the last minute).
	requireMatrix(t, promql.Matrix{series(api, nan, nan, 3./60)},
		rangeQuery(t, e, q, `sum by (app) (rate({app="api"} |= "error" [1m])) > 0.04`))
}

func TestInstantVector(t *testing.T) {
	q := fixture(t)
	e := NewEngine(EngineOpts{})
	v, err := e.InstantVector(context.Background(), q, "t1", `sum by (app) (count_over_time({app="api"}[1m])) > 5`, at(120))
	require.NoError(t, err)
	requireVector(t, promql.Vector{sample(labels.FromStrings("app", "api"), 120, 9)}, v)
	v, err = e.InstantVector(context.Background(), q, "t1", `1 + 1`, at(120))
	require.NoError(t, err)
	requireVector(t, promql.Vector{sample(labels.EmptyLabels(), 120, 2)}, v)
	_, err = e.InstantVector(context.Background(), q, "t1", `{app="api"}`, at(120))
	require.ErrorContains(t, err, "a metric query is required")
	// Other tenants see their own data only.
	v, err = e.InstantVector(context.Background(), q, "other", `sum(count_over_time({app=~".+"}[1m]))`, at(120))
	require.NoError(t, err)
	requireVector(t, promql.Vector{sample(labels.EmptyLabels(), 120, 6)}, v)
}

// logQuery runs a log query over [0s, 121s).
func logQuery(t *testing.T, e *Engine, q logs.Querier, query string, limit int, dir logs.Direction) Streams {
	t.Helper()
	res, err := e.Query(context.Background(), q, "t1", Params{Query: query, Start: at(0), End: at(121), Step: time.Second, Limit: limit, Direction: dir})
	require.NoError(t, err)
	s, ok := res.Data.(Streams)
	require.True(t, ok, "got %T", res.Data)
	return s
}

// summary renders streams as label set → entry times in seconds.
func summary(s Streams) map[string][]float64 {
	out := map[string][]float64{}
	for _, st := range s {
		for _, e := range st.Entries {
			out[st.Labels.String()] = append(out[st.Labels.String()], float64(e.Timestamp-t0.UnixNano())/1e9)
		}
	}
	return out
}

func TestLogQueries(t *testing.T) {
	q := fixture(t)
	e := NewEngine(EngineOpts{})

	// The newest three over both streams: 120 (prod and dev), then 110.
	s := logQuery(t, e, q, `{app="api"}`, 3, logs.Backward)
	require.Equal(t, map[string][]float64{apiDev.String(): {120}, apiProd.String(): {120, 110}}, summary(s))
	require.Equal(t, apiDev.String(), s[0].Labels.String(), "streams sorted by labels")
	require.Equal(t, prodError, s[1].Entries[0].Line)
	// The oldest three: 10 (prod), then 20 (both).
	s = logQuery(t, e, q, `{app="api"}`, 3, logs.Forward)
	require.Equal(t, map[string][]float64{apiDev.String(): {20}, apiProd.String(): {10, 20}}, summary(s))

	// Parsed labels regroup entries.
	s = logQuery(t, e, q, `{app="api", env="prod"} | json | keep app, level`, 100, logs.Forward)
	require.Equal(t, map[string][]float64{
		`{app="api", level="error"}`: {30, 60, 90, 120},
		`{app="api", level="info"}`:  {10, 20, 40, 50, 70, 80, 100, 110},
	}, summary(s))
	// Lines that fail to parse carry the error, unless filtered.
	s = logQuery(t, e, q, `{app="api", env="dev"} | json | line_format "x"`, 1, logs.Backward)
	require.Len(t, s, 1)
	require.Equal(t, ErrJSON, s[0].Labels.Get(errorLabel))
	require.Equal(t, "x", s[0].Entries[0].Line)
	s = logQuery(t, e, q, `{app="api"} | json | __error__="" | level="error" | line_format "{{.msg}}"`, 2, logs.Backward)
	require.Equal(t, map[string][]float64{`{app="api", env="prod", latency="250ms", level="error", msg="boom", size="2KB", status="500"}`: {120, 90}}, summary(s))
	require.Equal(t, "boom", s[0].Entries[0].Line)

	// Metadata is part of the labels unless categorized.
	s = logQuery(t, e, q, `{app="web"}`, 100, logs.Forward)
	require.Equal(t, map[string][]float64{web.String(): {15, 45}, webMeta.String(): {75}}, summary(s))
	res, err := e.Query(context.Background(), q, "t1", Params{Query: `{app="web"} | regexp "(?P<method>\\w+) "`, Start: at(0), End: at(121), Step: time.Second, Limit: 100, Direction: logs.Forward, CategorizeLabels: true})
	require.NoError(t, err)
	s = res.Data.(Streams)
	require.Len(t, s, 1)
	require.Equal(t, web.String(), s[0].Labels.String())
	require.Len(t, s[0].Entries, 3)
	require.Equal(t, `{method="POST"}`, s[0].Entries[1].Parsed.String())
	require.Equal(t, `{trace_id="abc"}`, s[0].Entries[2].StructuredMetadata.String())
	require.True(t, s[0].Entries[0].StructuredMetadata.IsEmpty())
	require.Equal(t, int64(3), res.Stats.EntriesReturned)
	require.Equal(t, int64(3), res.Stats.LinesProcessed)
	require.Equal(t, int64(14+15+14), res.Stats.BytesProcessed)

	// The range is [start, end): an entry at end is out.
	res, err = e.Query(context.Background(), q, "t1", Params{Query: `{app="web"}`, Start: at(15), End: at(45), Step: time.Second, Limit: 10})
	require.NoError(t, err)
	require.Equal(t, map[string][]float64{web.String(): {15}}, summary(res.Data.(Streams)))
}

func TestLogQueryPushdown(t *testing.T) {
	q := fixture(t)
	e := NewEngine(EngineOpts{})
	f := func(query string, limit int, wantFilters []logs.LineFilter, wantLimit int) {
		t.Helper()
		q.ResetSelects()
		logQuery(t, e, q, query, limit, logs.Backward)
		sel := q.Selects()
		require.NotEmpty(t, sel)
		require.Equal(t, wantFilters, sel[0].LineFilters)
		require.Equal(t, wantLimit, sel[0].Limit)
		require.Equal(t, "t1", sel[0].Tenant)
		require.Equal(t, ns(0), sel[0].Start)
		require.Equal(t, ns(121), sel[0].End)
	}
	errFilter := logs.LineFilter{Op: logs.LineContains, Values: []string{"error"}}
	f(`{app="api"} |= "error"`, 7, []logs.LineFilter{errFilter}, 7)
	f(`{app="api"} |= "error" | json | line_format "{{.msg}}"`, 7, []logs.LineFilter{errFilter}, 7)
	f(`{app="api"} |= "error" | json |~ "a|b" | level="error"`, 7,
		[]logs.LineFilter{errFilter, {Op: logs.LineMatches, Values: []string{"a|b"}}}, DefaultBatchSize)
	f(`{app="api"} | line_format "{{.app}}" |= "api"`, 7, nil, DefaultBatchSize)

	q.ResetSelects()
	rangeQuery(t, e, q, `count_over_time({app="api"} != "x" [1m] offset 10s)`)
	sel := q.Selects()
	require.Len(t, sel, 1, "one selection for all steps")
	require.Equal(t, ns(60-10-60)+1, sel[0].Start)
	require.Equal(t, ns(120-10)+1, sel[0].End)
	require.Equal(t, logs.Forward, sel[0].Direction)
	require.Equal(t, []logs.LineFilter{{Op: logs.LineNotContains, Values: []string{"x"}}}, sel[0].LineFilters)
}

// TestPaging checks that paging through small batches, including many
// entries at one timestamp, returns what one big selection does.
func TestPaging(t *testing.T) {
	q := fixture(t)
	var same []logs.Entry
	for i := range 7 {
		same = append(same, logs.Entry{Timestamp: ns(50), Line: fmt.Sprintf("level=error n=%d", i)})
	}
	require.NoError(t, q.Append("t1", []logs.Stream{{Labels: labels.FromStrings("app", "api", "env", "burst"), Entries: same}}))
	big := NewEngine(EngineOpts{})
	for _, batch := range []int{1, 2, 3, 5} {
		small := NewEngine(EngineOpts{BatchSize: batch})
		for _, dir := range []logs.Direction{logs.Forward, logs.Backward} {
			for _, limit := range []int{1, 4, 9, 30} {
				query := `{app="api"} |= "error" | level != "x"`
				require.Equal(t, summary(logQuery(t, big, q, query, limit, dir)), summary(logQuery(t, small, q, query, limit, dir)),
					"batch %d dir %s limit %d", batch, dir, limit)
			}
		}
		requireMatrix(t, rangeQuery(t, big, q, `count_over_time({app="api"}[1m])`), rangeQuery(t, small, q, `count_over_time({app="api"}[1m])`))
	}
	// The burst counts whole: 7 entries at 50s, all in the windows of 60 and 90s.
	m := rangeQuery(t, NewEngine(EngineOpts{BatchSize: 2}), q, `count_over_time({env="burst"}[1m])`)
	requireMatrix(t, promql.Matrix{series(labels.FromStrings("app", "api", "env", "burst"), 7, 7, nan)}, m)
}

func TestLimitsAndErrors(t *testing.T) {
	q := fixture(t)
	ctx := context.Background()
	e := NewEngine(EngineOpts{MaxEntries: 10, MaxSeries: 1})
	// The query limits are *limits.Error, naming their flags; user errors all the same.
	_, err := e.Query(ctx, q, "t1", Params{Query: `{app="api"}`, Start: at(0), End: at(121), Step: time.Second, Limit: 11})
	require.NotNil(t, limits.As(err), "%v", err)
	require.True(t, IsUserError(err))
	require.Contains(t, err.Error(), "max entries limit per query exceeded, limit > max_entries_limit_per_query (11 > 10) (limit -query.logql.max-entries-limit-per-query=10)")
	_, err = e.Query(ctx, q, "t1", Params{Query: `count_over_time({app="api"}[1m])`, Start: at(60), End: at(120), Step: time.Second, Limit: 1000})
	require.NotNil(t, limits.As(err), "%v", err)
	require.Contains(t, err.Error(), "maximum number of series (1)", "the entries limit does not apply to metric queries")
	_, err = e.Query(ctx, q, "t1", Params{Query: `count_over_time({app="api"}[1m])`, Start: at(60), End: at(60)})
	require.NotNil(t, limits.As(err), "%v", err)
	_, err = e.Query(ctx, q, "t1", Params{Query: `count_over_time({app="api"}[1m])`, Start: at(0), End: at(20000), Step: time.Second})
	require.ErrorContains(t, err, "exceeded maximum resolution of 11000 points")
	_, err = e.Query(ctx, q, "t1", Params{Query: `count_over_time({app="api"}[1m])`, Start: at(60), End: at(0), Step: time.Second})
	require.ErrorContains(t, err, "end timestamp must not be before start time")
	_, err = e.Query(ctx, q, "t1", Params{Query: `{app="api"}`, Start: at(60), End: at(60)})
	require.ErrorIs(t, err, ErrInstantLogQuery)
	require.True(t, IsUserError(err))

	// Store errors pass through, wrapped.
	boom := errors.New("boom")
	q.SetErr(boom)
	_, err = e.Query(ctx, q, "t1", Params{Query: `{app="api"}`, Start: at(0), End: at(121), Step: time.Second, Limit: 5})
	require.ErrorIs(t, err, boom)
	require.False(t, IsUserError(err))
	q.SetErr(nil)

	// Timeouts cancel the selection.
	slow := NewEngine(EngineOpts{Timeout: time.Nanosecond})
	_, err = slow.Query(ctx, q, "t1", Params{Query: `{app="api"}`, Start: at(0), End: at(121), Step: time.Second, Limit: 5})
	require.ErrorIs(t, err, context.DeadlineExceeded)
}

func TestEngineOpts(t *testing.T) {
	require.NoError(t, (&EngineOpts{}).Validate())
	err := (&EngineOpts{MaxEntries: -1, MaxSeries: -1, Timeout: -1, BatchSize: -1}).Validate()
	require.ErrorContains(t, err, "query.logql.max_entries_limit_per_query")
	require.ErrorContains(t, err, "query.logql.max_query_series")
	require.ErrorContains(t, err, "query.logql.query_timeout")
	require.ErrorContains(t, err, "query.logql.select_batch_size")
	o := NewEngine(EngineOpts{}).Opts()
	require.Equal(t, EngineOpts{MaxEntries: DefaultMaxEntries, MaxSeries: DefaultMaxSeries, Timeout: DefaultTimeout, BatchSize: DefaultBatchSize}, o)
}
