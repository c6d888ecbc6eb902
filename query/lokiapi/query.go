package lokiapi

import (
	"context"
	"net/http"
	"slices"
	"strconv"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/pharos-obs/pharos/internal/jsonappend"
	"github.com/pharos-obs/pharos/query/logql"
	"github.com/pharos-obs/pharos/storage/logs"
)

func (a *API) queryRange(w http.ResponseWriter, r *http.Request) error {
	expr, err := logql.Parse(r.Form.Get("query"))
	if err != nil {
		return err
	}
	start, end, err := bounds(r, a.now())
	if err != nil {
		return err
	}
	if end.Before(start) {
		return badParam("%v", errEndBeforeStart)
	}
	limit, err := parseLimit(r)
	if err != nil {
		return err
	}
	dir, err := parseDirection(r)
	if err != nil {
		return err
	}
	step, err := parseStep(r.Form.Get("step"), start, end)
	if err != nil {
		return err
	}
	if step <= 0 {
		return badParam("zero or negative query resolution step widths are not accepted. Try a positive integer")
	}
	if end.Sub(start)/step > maxPoints {
		return badParam("exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)")
	}
	cat := categorizeLabels(r)
	res, err := a.engine.Exec(r.Context(), a.q, tenantOf(r), expr, logql.Params{
		Start: start, End: end, Step: step, Limit: limit, Direction: dir, CategorizeLabels: cat,
	})
	if err != nil {
		return err
	}
	return writeQueryResult(w, res, cat)
}

func (a *API) query(w http.ResponseWriter, r *http.Request) error {
	expr, err := logql.Parse(r.Form.Get("query"))
	if err != nil {
		return err
	}
	t, err := parseTimestamp(r.Form.Get("time"), a.now())
	if err != nil {
		return badParam("could not parse 'time' parameter: %v", err)
	}
	limit, err := parseLimit(r)
	if err != nil {
		return err
	}
	dir, err := parseDirection(r)
	if err != nil {
		return err
	}
	cat := categorizeLabels(r)
	res, err := a.engine.Exec(r.Context(), a.q, tenantOf(r), expr, logql.Params{
		Start: t, End: t, Limit: limit, Direction: dir, CategorizeLabels: cat,
	})
	if err != nil {
		return err
	}
	return writeQueryResult(w, res, cat)
}

// writeQueryResult writes {"status":"success","data":{"resultType":...,
// "result":...,"stats":...}}.
func writeQueryResult(w http.ResponseWriter, res logql.Result, categorize bool) error {
	b := make([]byte, 0, 4096)
	b = append(b, `{"status":"success","data":{"resultType":`...)
	b = appendString(b, string(res.Data.Type()))
	if categorize {
		b = append(b, `,"encodingFlags":["categorize-labels"]`...)
	}
	b = append(b, `,"result":`...)
	b = appendResult(b, res.Data, categorize)
	b = append(b, `,"stats":`...)
	b = appendStats(b, res.Stats)
	b = append(b, "}}"...)
	return writeJSON(w, b)
}

// labelParams reads the time range and the optional `query` of the label
// endpoints. A query with pipelines or aggregations is accepted; its first
// stream selector scopes the look-up.
func (a *API) labelParams(r *http.Request) (logs.LabelParams, error) {
	start, end, err := bounds(r, a.now())
	if err != nil {
		return logs.LabelParams{}, err
	}
	p := logs.LabelParams{Tenant: tenantOf(r), Start: start.UnixNano(), End: end.UnixNano()}
	if q := r.Form.Get("query"); q != "" {
		sels, err := selectors(q)
		if err != nil {
			return p, err
		}
		p.Matchers = sels[0]
	}
	return p, nil
}

// selectors returns the matchers of every stream selector of a query.
func selectors(q string) ([][]*labels.Matcher, error) {
	expr, err := logql.Parse(q)
	if err != nil {
		return nil, err
	}
	var out [][]*labels.Matcher
	for _, s := range logql.Selectors(expr) {
		out = append(out, s.Matchers)
	}
	if len(out) == 0 {
		return nil, badParam("query %q selects no streams", q)
	}
	return out, nil
}

func (a *API) timeout(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), a.cfg.Timeout)
}

func (a *API) labelNames(w http.ResponseWriter, r *http.Request) error {
	return a.labelStrings(w, r, a.q.LabelNames)
}

func (a *API) labelValues(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	return a.labelStrings(w, r, func(ctx context.Context, p logs.LabelParams) ([]string, error) {
		return a.q.LabelValues(ctx, name, p)
	})
}

// labelStrings answers a label endpoint with the list lookup returns for the
// request's range and query.
func (a *API) labelStrings(w http.ResponseWriter, r *http.Request, lookup func(context.Context, logs.LabelParams) ([]string, error)) error {
	p, err := a.labelParams(r)
	if err != nil {
		return err
	}
	ctx, cancel := a.timeout(r)
	defer cancel()
	ss, err := lookup(ctx, p)
	if err != nil {
		return err
	}
	b := append([]byte(nil), `{"status":"success","data":`...)
	b = jsonappend.Strings(b, ss, stringEscape) // nil is []
	b = append(b, '}')
	return writeJSON(w, b)
}

// seriesOf returns the streams each matcher set selects, merged and sorted;
// no matcher sets means all streams.
func (a *API) seriesOf(ctx context.Context, p logs.LabelParams, sets [][]*labels.Matcher) ([]labels.Labels, error) {
	if len(sets) == 0 {
		sets = [][]*labels.Matcher{nil}
	}
	seen := map[string]bool{}
	var out []labels.Labels
	for _, ms := range sets {
		p.Matchers = ms
		series, err := a.q.Series(ctx, p)
		if err != nil {
			return nil, err
		}
		for _, s := range series {
			if k := s.String(); !seen[k] {
				seen[k] = true
				out = append(out, s)
			}
		}
	}
	slices.SortFunc(out, labels.Compare)
	return out, nil
}

func (a *API) series(w http.ResponseWriter, r *http.Request) error {
	p, err := a.labelParams(r)
	if err != nil {
		return err
	}
	var sets [][]*labels.Matcher
	for _, m := range append(r.Form["match[]"], r.Form["match"]...) {
		s, err := selectors(m)
		if err != nil {
			return err
		}
		sets = append(sets, s...)
	}
	if p.Matchers != nil {
		sets = append(sets, p.Matchers)
		p.Matchers = nil
	}
	ctx, cancel := a.timeout(r)
	defer cancel()
	series, err := a.seriesOf(ctx, p, sets)
	if err != nil {
		return err
	}
	b := append([]byte(nil), `{"status":"success","data":[`...)
	for i, s := range series {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendLabels(b, s)
	}
	b = append(b, "]}"...)
	return writeJSON(w, b)
}

// indexStats answers Grafana's size estimate. Pharos keeps no per-chunk
// index statistics, and scanning the range to count entries would cost as
// much as the query the estimate is for, so streams is exact and chunks,
// bytes and entries are 0.
func (a *API) indexStats(w http.ResponseWriter, r *http.Request) error {
	q := r.Form.Get("query")
	if q == "" {
		return badParam("query is required")
	}
	sets, err := selectors(q)
	if err != nil {
		return err
	}
	start, end, err := bounds(r, a.now())
	if err != nil {
		return err
	}
	ctx, cancel := a.timeout(r)
	defer cancel()
	series, err := a.seriesOf(ctx, logs.LabelParams{Tenant: tenantOf(r), Start: start.UnixNano(), End: end.UnixNano()}, sets)
	if err != nil {
		return err
	}
	b := append([]byte(nil), `{"streams":`...)
	b = strconv.AppendInt(b, int64(len(series)), 10)
	b = append(b, `,"chunks":0,"bytes":0,"entries":0}`...)
	return writeJSON(w, b)
}

// volume answers the volume endpoints with an empty result: Pharos does
// not track per-stream volumes. Grafana's logs volume panel uses
// query_range instead.
func (a *API) volume(resultType string) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if _, err := selectors(r.Form.Get("query")); err != nil {
			return err
		}
		return writeJSON(w, []byte(`{"status":"success","data":{"resultType":"`+resultType+`","result":[]}}`))
	}
}

// detectedLabels, detectedFields and patterns back Grafana 11's log
// exploration features; empty answers make Grafana fall back to what it
// derives from query results.
func (a *API) detectedLabels(w http.ResponseWriter, _ *http.Request) error {
	return writeJSON(w, []byte(`{"detectedLabels":[]}`))
}

func (a *API) detectedFields(w http.ResponseWriter, r *http.Request) error {
	limit := 1000
	if v := r.Form.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return badParam("limit must be a positive value")
		}
		limit = n
	}
	return writeJSON(w, []byte(`{"fields":[],"limit":`+strconv.Itoa(limit)+`}`))
}

func (a *API) patterns(w http.ResponseWriter, _ *http.Request) error {
	return writeJSON(w, []byte(`{"status":"success","data":[]}`))
}

// formatQuery returns the query in the canonical form logql prints.
func (a *API) formatQuery(w http.ResponseWriter, r *http.Request) error {
	expr, err := logql.Parse(r.Form.Get("query"))
	if err != nil {
		return err
	}
	b := append([]byte(nil), `{"status":"success","data":`...)
	b = appendString(b, expr.String())
	b = append(b, '}')
	return writeJSON(w, b)
}
