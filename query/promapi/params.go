package promapi

import (
	"errors"
	"fmt"
	"math"
	"mime"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

var (
	// MinTime is the start of an open time range (no `start` given). It has Prometheus's
	// value, not time.Unix(math.MinInt64/1000, 0), because clients echo it back and
	// Prometheus only recognises its own sentinel strings.
	MinTime = time.Unix(math.MinInt64/1000+62135596801, 0).UTC()

	// MaxTime is the end of an open time range (no `end` given), with Prometheus's value.
	MaxTime = time.Unix(math.MaxInt64/1000-62135596801, 999999999).UTC()

	minTimeFormatted = MinTime.Format(time.RFC3339Nano)
	maxTimeFormatted = MaxTime.Format(time.RFC3339Nano)

	// Bounds of a float timestamp in seconds that still converts to an int64 of milliseconds.
	minTimeSeconds = float64(MinTime.Unix())
	maxTimeSeconds = float64(MaxTime.Unix())
)

// maxPointsPerSeries caps a range query's resolution, as Prometheus does: enough for 60s
// steps over a week or 1h steps over a year.
const maxPointsPerSeries = 11000

// maxMultipartMemory bounds what a multipart/form-data body may hold in memory; the rest
// spills to temporary files that net/http removes after the request.
const maxMultipartMemory = 32 << 20

// parseForm merges URL and body parameters the way Prometheus's r.FormValue does: for POST
// with application/x-www-form-urlencoded (or multipart) the body's values come first, then
// the URL's.
func parseForm(r *http.Request) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err == nil && mt == "multipart/form-data" {
			return r.ParseMultipartForm(maxMultipartMemory)
		}
	}
	return r.ParseForm()
}

// formValue returns the first value of key; it assumes parseForm has run, so it never
// triggers a second parse the way http.Request.FormValue may.
func formValue(r *http.Request, key string) string {
	if vs := r.Form[key]; len(vs) > 0 {
		return vs[0]
	}
	return ""
}

// parseTime accepts RFC 3339 or (fractional) Unix seconds, like Prometheus. Fractions are
// rounded to the millisecond, the storage's resolution. Unlike Prometheus, numbers that do
// not fit the millisecond int64 range (and NaN, ±Inf) are rejected instead of wrapping around.
func parseTime(s string) (time.Time, error) {
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		if math.IsNaN(f) || f < minTimeSeconds || f > maxTimeSeconds {
			return time.Time{}, fmt.Errorf("cannot parse %q to a valid timestamp", s)
		}
		sec, frac := math.Modf(f)
		ns := math.Round(frac*1000) / 1000 * float64(time.Second)
		return time.Unix(int64(sec), int64(ns)).UTC(), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	// time.Parse only handles four-digit years, so our own sentinels need a special case.
	switch s {
	case minTimeFormatted:
		return MinTime, nil
	case maxTimeFormatted:
		return MaxTime, nil
	}
	return time.Time{}, fmt.Errorf("cannot parse %q to a valid timestamp", s)
}

// parseTimeParam parses the named parameter, returning def when it is absent.
func parseTimeParam(r *http.Request, name string, def time.Time) (time.Time, error) {
	v := formValue(r, name)
	if v == "" {
		return def, nil
	}
	t, err := parseTime(v)
	if err != nil {
		return time.Time{}, fmt.Errorf("invalid time value for '%s': %w", name, err)
	}
	return t, nil
}

// parseDuration accepts float seconds or a Prometheus duration ("5m", "1h30m").
func parseDuration(s string) (time.Duration, error) {
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		ns := f * float64(time.Second)
		// float64(math.MaxInt64) rounds up to 2^63, which int64 cannot hold; NaN fails every
		// comparison, so test for it explicitly.
		if math.IsNaN(ns) || ns >= float64(math.MaxInt64) || ns < float64(math.MinInt64) {
			return 0, fmt.Errorf("cannot parse %q to a valid duration. It overflows int64", s)
		}
		return time.Duration(ns), nil
	}
	if d, err := model.ParseDuration(s); err == nil {
		return time.Duration(d), nil
	}
	return 0, fmt.Errorf("cannot parse %q to a valid duration", s)
}

// parseLimit returns 0 for "no limit".
func parseLimit(s string) (int, error) {
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, err
	}
	if n < 0 {
		return 0, errors.New("limit must be non-negative")
	}
	return n, nil
}

// hintLimit asks the storage for one more item than the limit so that truncation, and the
// warning that goes with it, can be detected.
func hintLimit(limit int) int {
	if limit > 0 && limit < math.MaxInt {
		return limit + 1
	}
	return limit
}

// parseMatchers parses each match[] value. A set whose every matcher matches the empty
// string would select every series in the store, so it is refused, as in Prometheus.
func parseMatchers(p parser.Parser, values []string) ([][]*labels.Matcher, error) {
	sets, err := p.ParseMetricSelectors(values)
	if err != nil {
		return nil, err
	}
	for _, set := range sets {
		selective := false
		for _, m := range set {
			if m != nil && !m.Matches("") {
				selective = true
				break
			}
		}
		if !selective {
			return nil, errors.New("match[] must contain at least one non-empty matcher")
		}
	}
	return sets, nil
}

// parseRange reads start and end for endpoints where both are optional.
func parseRange(r *http.Request) (start, end time.Time, apiErr *apiError) {
	start, err := parseTimeParam(r, "start", MinTime)
	if err != nil {
		return start, end, invalidParam(err, "start")
	}
	end, err = parseTimeParam(r, "end", MaxTime)
	if err != nil {
		return start, end, invalidParam(err, "end")
	}
	return start, end, nil
}
