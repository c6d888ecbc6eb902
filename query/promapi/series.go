package promapi

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/model/timestamp"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/pharos-obs/pharos/query/limits"
)

// checkContextEvery is how many series /series reads between checks for cancellation: often
// enough to stop promptly, rarely enough to cost nothing.
const checkContextEvery = 128

// effectiveLimit combines a request's `limit` (0 = none) with Config.MaxSeriesLimit: the
// smaller non-zero one wins.
func (a *API) effectiveLimit(requested int) int {
	if ceiling := a.cfg.MaxSeriesLimit; ceiling > 0 && (requested == 0 || requested > ceiling) {
		return ceiling
	}
	return requested
}

// series serves /series: the label sets of the series match[] selects (required), merged
// and de-duplicated across several match[].
func (a *API) series(c *gin.Context) (res result) {
	r := c.Request
	if len(r.Form["match[]"]) == 0 {
		return result{err: badData(errors.New("no match[] parameter provided"))}
	}
	limit, err := parseLimit(formValue(r, "limit"))
	if err != nil {
		return result{err: invalidParam(err, "limit")}
	}
	limit = a.effectiveLimit(limit)
	start, end, apiErr := parseRange(r)
	if apiErr != nil {
		return result{err: apiErr}
	}
	sets, err := parseMatchers(a.parser, r.Form["match[]"])
	if err != nil {
		return result{err: invalidParam(err, "match[]")}
	}
	ctx, cancel, apiErr := a.requestContext(r, false)
	if apiErr != nil {
		return result{err: apiErr}
	}
	defer cancel()

	q, err := a.queryable.Querier(timestamp.FromTime(start), timestamp.FromTime(end))
	if err != nil {
		return result{err: classify(err)}
	}
	// Label sets may point into memory the querier owns, so it stays open until the
	// response is written; on any other way out it is closed here.
	defer func() {
		if res.finalizer == nil {
			_ = q.Close()
		}
	}()
	closer := func() { _ = q.Close() }

	hints := &storage.SelectHints{
		Start: timestamp.FromTime(start),
		End:   timestamp.FromTime(end),
		Func:  "series", // Not a real function: tells the storage no samples are needed.
		Limit: hintLimit(limit),
	}
	var set storage.SeriesSet
	if len(sets) == 1 {
		set = q.Select(ctx, false, hints, sets[0]...)
	} else {
		// Merging de-duplicates, which needs each input sorted.
		selected := make([]storage.SeriesSet, 0, len(sets))
		for _, ms := range sets {
			selected = append(selected, q.Select(ctx, true, hints, ms...))
		}
		set = storage.NewMergeSeriesSet(selected, 0, storage.ChainedSeriesMerge)
	}

	out := []labels.Labels{}
	for i := 1; set.Next(); i++ {
		if i%checkContextEvery == 0 {
			if err := ctx.Err(); err != nil {
				return result{err: classify(err), warnings: set.Warnings(), finalizer: closer}
			}
		}
		out = append(out, set.At().Labels())
		if limit > 0 && len(out) > limit {
			warnings := set.Warnings()
			warnings.Add(errTruncated)
			return result{data: out[:limit], warnings: warnings, finalizer: closer}
		}
	}
	if err := set.Err(); err != nil {
		return result{err: classify(err), warnings: set.Warnings(), finalizer: closer}
	}
	if err := limits.FromContext(ctx).Err(); err != nil {
		return result{err: classify(err), warnings: set.Warnings(), finalizer: closer}
	}
	return result{data: out, warnings: set.Warnings(), finalizer: closer}
}

// labelLookup is one label lookup against a querier: names or the values of one name.
type labelLookup func(ctx context.Context, q storage.Querier, hints *storage.LabelHints, matchers ...*labels.Matcher) ([]string, annotations.Annotations, error)

// labelNames serves /labels: the label names of the series match[] selects (all series
// without match[]), sorted and unique.
func (a *API) labelNames(c *gin.Context) result {
	return a.labelQuery(c, func(ctx context.Context, q storage.Querier, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
		return q.LabelNames(ctx, hints, ms...)
	})
}

// labelValues serves /label/:name/values: the values of one label, sorted and unique.
func (a *API) labelValues(c *gin.Context) result {
	name := c.Param("name")
	// Clients that cannot put arbitrary UTF-8 in a path escape the name as U__…, the
	// Prometheus 3 convention.
	if strings.HasPrefix(name, "U__") {
		name = model.UnescapeName(name, model.ValueEncodingEscaping)
	}
	if !model.UTF8Validation.IsValidLabelName(name) {
		return result{err: badData(fmt.Errorf("invalid label name: %q", name))}
	}
	return a.labelQuery(c, func(ctx context.Context, q storage.Querier, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
		return q.LabelValues(ctx, name, hints, ms...)
	})
}

// labelQuery runs a label lookup once per match[] (once without any), unions the answers,
// sorts them and applies the limit.
func (a *API) labelQuery(c *gin.Context, lookup labelLookup) (res result) {
	r := c.Request
	limit, err := parseLimit(formValue(r, "limit"))
	if err != nil {
		return result{err: invalidParam(err, "limit")}
	}
	limit = a.effectiveLimit(limit)
	start, end, apiErr := parseRange(r)
	if apiErr != nil {
		return result{err: apiErr}
	}
	sets, err := parseMatchers(a.parser, r.Form["match[]"])
	if err != nil {
		return result{err: badData(err)}
	}
	ctx, cancel, apiErr := a.requestContext(r, false)
	if apiErr != nil {
		return result{err: apiErr}
	}
	defer cancel()

	q, err := a.queryable.Querier(timestamp.FromTime(start), timestamp.FromTime(end))
	if err != nil {
		return result{err: classify(err)}
	}
	// The strings may point into the querier's (memory-mapped) index, so it stays open
	// until the response is written; on any other way out it is closed here.
	defer func() {
		if res.finalizer == nil {
			_ = q.Close()
		}
	}()
	closer := func() { _ = q.Close() }

	// The limit on fetched series bounds label look-ups too: asking the storage for one
	// more than it tells a result that would exceed it without reading all of it.
	hintMax := limit
	if maxSeries := a.cfg.Limits.MaxFetchedSeries; maxSeries > 0 && (hintMax == 0 || hintMax > maxSeries) {
		hintMax = maxSeries
	}
	hints := &storage.LabelHints{Limit: hintLimit(hintMax)}
	var (
		vals     []string
		warnings annotations.Annotations
	)
	if len(sets) <= 1 {
		var ms []*labels.Matcher
		if len(sets) == 1 {
			ms = sets[0]
		}
		vals, warnings, err = lookup(ctx, q, hints, ms...)
		if err != nil {
			return result{err: classify(err), warnings: warnings, finalizer: closer}
		}
	} else {
		for _, ms := range sets {
			v, w, err := lookup(ctx, q, hints, ms...)
			warnings.Merge(w)
			if err != nil {
				return result{err: classify(err), warnings: warnings, finalizer: closer}
			}
			vals = append(vals, v...)
		}
	}
	// A single lookup is sorted already (the Querier contract), and then sorting is a
	// linear check; the union of several needs the sort to de-duplicate.
	slices.Sort(vals)
	vals = slices.Compact(vals)
	if vals == nil {
		vals = []string{}
	}
	if limit > 0 && len(vals) > limit {
		vals = vals[:limit]
		warnings.Add(errTruncated)
	}
	if err := limits.FromContext(ctx).AddSeries(len(vals)); err != nil {
		return result{err: classify(err), warnings: warnings, finalizer: closer}
	}
	return result{data: vals, warnings: warnings, finalizer: closer}
}

// metricMetadata serves /metadata.
func (a *API) metricMetadata(c *gin.Context) result {
	r := c.Request
	limit := -1
	if s := formValue(r, "limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			return result{err: badData(errors.New("limit must be a number"))}
		}
		limit = n
	}
	limitPerMetric := -1
	if s := formValue(r, "limit_per_metric"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			return result{err: badData(errors.New("limit_per_metric must be a number"))}
		}
		limitPerMetric = n
	}
	if a.metadata == nil {
		return result{data: map[string][]metadata.Metadata{}}
	}
	ctx, cancel, apiErr := a.requestContext(r, false)
	if apiErr != nil {
		return result{err: apiErr}
	}
	defer cancel()
	md, err := a.metadata.Metadata(ctx, formValue(r, "metric"), limit, limitPerMetric)
	if err != nil {
		return result{err: classify(err)}
	}
	return result{data: limitMetadata(md, limit, limitPerMetric)}
}

// limitMetadata enforces the limits whatever the source did, keeping the families that sort
// first so that a limited answer is stable.
func limitMetadata(md map[string][]metadata.Metadata, limit, limitPerMetric int) map[string][]metadata.Metadata {
	if md == nil {
		return map[string][]metadata.Metadata{}
	}
	if limitPerMetric > 0 {
		for name, ms := range md {
			if len(ms) > limitPerMetric {
				md[name] = ms[:limitPerMetric]
			}
		}
	}
	if limit >= 0 && len(md) > limit {
		names := make([]string, 0, len(md))
		for name := range md {
			names = append(names, name)
		}
		slices.Sort(names)
		for _, name := range names[limit:] {
			delete(md, name)
		}
	}
	return md
}

// buildInfo serves /status/buildinfo.
func (a *API) buildInfo(*gin.Context) result {
	return result{data: a.build}
}
