package promapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/timestamp"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/util/stats"

	"github.com/pharos-obs/pharos/query/limits"
)

// errTruncated is the warning Prometheus attaches when `limit` cut a result short.
var errTruncated = errors.New("results truncated due to limit")

// query serves /query: an instant query at `time` (default now).
func (a *API) query(c *gin.Context) result {
	r := c.Request
	limit, err := parseLimit(formValue(r, "limit"))
	if err != nil {
		return result{err: invalidParam(err, "limit")}
	}
	ts, err := parseTimeParam(r, "time", a.now())
	if err != nil {
		return result{err: invalidParam(err, "time")}
	}
	ctx, cancel, apiErr := a.requestContext(r, true)
	if apiErr != nil {
		return result{err: apiErr}
	}
	defer cancel()
	opts, err := queryOpts(r)
	if err != nil {
		return result{err: badData(err)}
	}
	qry, err := a.engine.NewInstantQuery(ctx, a.queryable, opts, formValue(r, "query"), ts)
	if err != nil {
		return result{err: constructionError(err)}
	}
	return a.exec(ctx, qry, limit, formValue(r, "stats"))
}

// queryRange serves /query_range: start, end and step are required.
func (a *API) queryRange(c *gin.Context) result {
	r := c.Request
	limit, err := parseLimit(formValue(r, "limit"))
	if err != nil {
		return result{err: invalidParam(err, "limit")}
	}
	start, err := parseTime(formValue(r, "start"))
	if err != nil {
		return result{err: invalidParam(err, "start")}
	}
	end, err := parseTime(formValue(r, "end"))
	if err != nil {
		return result{err: invalidParam(err, "end")}
	}
	if end.Before(start) {
		return result{err: invalidParam(errors.New("end timestamp must not be before start time"), "end")}
	}
	step, err := parseDuration(formValue(r, "step"))
	if err != nil {
		return result{err: invalidParam(err, "step")}
	}
	if step <= 0 {
		return result{err: invalidParam(errors.New("zero or negative query resolution step widths are not accepted. Try a positive integer"), "step")}
	}
	// The result of a range query is held in memory whole; capping its points per series is
	// what keeps one request from exhausting it.
	if end.Sub(start)/step > maxPointsPerSeries {
		return result{err: badData(errors.New("exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)"))}
	}
	ctx, cancel, apiErr := a.requestContext(r, true)
	if apiErr != nil {
		return result{err: apiErr}
	}
	defer cancel()
	opts, err := queryOpts(r)
	if err != nil {
		return result{err: badData(err)}
	}
	qry, err := a.engine.NewRangeQuery(ctx, a.queryable, opts, formValue(r, "query"), start, end, step)
	if err != nil {
		return result{err: constructionError(err)}
	}
	return a.exec(ctx, qry, limit, formValue(r, "stats"))
}

// exec runs a built query. On success the query stays open until the response is written
// (its result's memory is pooled by the engine); on any other way out, including a panic,
// it is closed here.
func (a *API) exec(ctx context.Context, qry promql.Query, limit int, statsParam string) (res result) {
	defer func() {
		if res.finalizer == nil {
			qry.Close()
		}
	}()
	out := qry.Exec(ctx)
	if out.Err != nil {
		return result{err: classify(out.Err), warnings: out.Warnings}
	}
	// A limit hit where the engine does not look (an iterator it does not check, an
	// aggregator's failure turned into a warning) still fails the query.
	if err := limits.FromContext(ctx).Err(); err != nil {
		return result{err: classify(err), warnings: out.Warnings}
	}
	warnings := out.Warnings
	value := out.Value
	if limit > 0 {
		switch v := value.(type) {
		case promql.Matrix:
			if len(v) > limit {
				value = v[:limit]
				warnings.Add(errTruncated)
			}
		case promql.Vector:
			if len(v) > limit {
				value = v[:limit]
				warnings.Add(errTruncated)
			}
		}
	}
	switch statsParam {
	case "", "true", "all":
	default:
		// Prometheus still honours any non-empty value but warns that it will not for long.
		warnings.Add(fmt.Errorf("value %q for parameter \"stats\" is deprecated and will be rejected in the next major release, use %q or %q", statsParam, "true", "all"))
	}
	data := &queryData{value: value}
	if statsParam != "" {
		data.stats = stats.NewQueryStats(qry.Stats())
	}
	return result{data: data, warnings: warnings, finalizer: qry.Close}
}

// queryOpts reads the per-query engine options Prometheus accepts.
func queryOpts(r *http.Request) (promql.QueryOpts, error) {
	var lookback time.Duration
	if v := formValue(r, "lookback_delta"); v != "" {
		d, err := parseDuration(v)
		if err != nil {
			return nil, fmt.Errorf("error parsing lookback delta duration: %w", err)
		}
		lookback = d
	}
	var useStartTimestamps *bool
	if v := r.Header.Get("X-Prometheus-Use-Start-Timestamps"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, fmt.Errorf("error parsing X-Prometheus-Use-Start-Timestamps header: %w", err)
		}
		useStartTimestamps = &b
	}
	// Per-step statistics are only computed for stats=all, and only if the engine enables them.
	return promql.NewPrometheusQueryOpts(formValue(r, "stats") == "all", lookback, useStartTimestamps), nil
}

// formatQuery serves /format_query: the query pretty-printed.
func (a *API) formatQuery(c *gin.Context) result {
	expr, err := a.parser.ParseExpr(formValue(c.Request, "query"))
	if err != nil {
		return result{err: invalidParam(err, "query")}
	}
	return result{data: expr.Pretty(0)}
}

// queryExemplars serves /query_exemplars: the exemplars of the series the query's
// selectors select, within [start, end].
func (a *API) queryExemplars(c *gin.Context) result {
	r := c.Request
	start, end, apiErr := parseRange(r)
	if apiErr != nil {
		return result{err: apiErr}
	}
	if end.Before(start) {
		return result{err: badData(errors.New("end timestamp must not be before start timestamp"))}
	}
	expr, err := a.parser.ParseExpr(formValue(r, "query"))
	if err != nil {
		return result{err: badData(err)}
	}
	selectors := parser.ExtractSelectors(expr)
	if len(selectors) == 0 || a.exemplars == nil {
		// Prometheus answers 204 without a body when there is nothing to select; an empty
		// list is what clients parse without a special case.
		return result{data: []exemplar.QueryResult{}}
	}
	ctx, cancel, apiErr := a.requestContext(r, false)
	if apiErr != nil {
		return result{err: apiErr}
	}
	defer cancel()
	eq, err := a.exemplars.ExemplarQuerier(ctx)
	if err != nil {
		return result{err: classify(err)}
	}
	res, err := eq.Select(timestamp.FromTime(start), timestamp.FromTime(end), selectors...)
	if err != nil {
		return result{err: classify(err)}
	}
	if res == nil {
		res = []exemplar.QueryResult{}
	}
	return result{data: res}
}
