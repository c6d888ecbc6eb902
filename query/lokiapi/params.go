package lokiapi

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"

	"github.com/pharos-obs/pharos/storage/logs"
)

// Loki's defaults.
const (
	defaultLimit = 100
	defaultSince = time.Hour
	maxPoints    = 11000
	maxDelayFor  = 5
)

// paramError is a bad request parameter: 400 with the message as body.
type paramError struct{ msg string }

func (e *paramError) Error() string { return e.msg }

func badParam(format string, args ...any) error {
	return &paramError{msg: fmt.Sprintf(format, args...)}
}

// parseTimestamp reads Loki's time formats: Unix seconds with a fraction
// ("1700000000.5"), Unix seconds (10 digits or fewer) or nanoseconds as an
// integer, or RFC 3339.
func parseTimestamp(value string, def time.Time) (time.Time, error) {
	if value == "" {
		return def, nil
	}
	if strings.Contains(value, ".") {
		if f, err := strconv.ParseFloat(value, 64); err == nil {
			if math.IsNaN(f) || math.IsInf(f, 0) || math.Abs(f) > math.MaxInt64/1e9 {
				return time.Time{}, fmt.Errorf("invalid timestamp %q", value)
			}
			s, frac := math.Modf(f)
			frac = math.Round(frac*1000) / 1000
			return time.Unix(int64(s), int64(frac*float64(time.Second))), nil
		}
	}
	n, err := strconv.ParseInt(value, 10, 64)
	if err != nil {
		if t, err := time.Parse(time.RFC3339Nano, value); err == nil {
			return t, nil
		}
		return time.Time{}, fmt.Errorf("invalid timestamp %q: want RFC 3339, Unix seconds or Unix nanoseconds", value)
	}
	if len(value) <= 10 {
		return time.Unix(n, 0), nil
	}
	return time.Unix(0, n), nil
}

// bounds reads start, end and since like Loki: end defaults to now, start
// to since (default 1h) before end, or before now if end is in the future.
func bounds(r *http.Request, now time.Time) (start, end time.Time, err error) {
	since := defaultSince
	if s := r.Form.Get("since"); s != "" {
		d, err := model.ParseDuration(s)
		if err != nil {
			return start, end, badParam("could not parse 'since' parameter: %v", err)
		}
		since = time.Duration(d)
	}
	end, err = parseTimestamp(r.Form.Get("end"), now)
	if err != nil {
		return start, end, badParam("could not parse 'end' parameter: %v", err)
	}
	endOrNow := end
	if end.After(now) {
		endOrNow = now
	}
	start, err = parseTimestamp(r.Form.Get("start"), endOrNow.Add(-since))
	if err != nil {
		return start, end, badParam("could not parse 'start' parameter: %v", err)
	}
	return start, end, nil
}

// parseStep reads a step as a duration (15s) or float seconds (0.5); the
// default is Loki's: the range over 250 points, at least a second.
func parseStep(value string, start, end time.Time) (time.Duration, error) {
	if value == "" {
		return time.Duration(max(math.Floor(end.Sub(start).Seconds()/250), 1)) * time.Second, nil
	}
	if f, err := strconv.ParseFloat(value, 64); err == nil {
		ns := f * float64(time.Second)
		if math.IsNaN(ns) || ns > math.MaxInt64 || ns < math.MinInt64 {
			return 0, badParam("cannot parse %q to a valid duration. It overflows int64", value)
		}
		return time.Duration(ns), nil
	}
	if d, err := model.ParseDuration(value); err == nil {
		return time.Duration(d), nil
	}
	return 0, badParam("cannot parse %q to a valid duration", value)
}

func parseLimit(r *http.Request) (int, error) {
	v := r.Form.Get("limit")
	if v == "" {
		return defaultLimit, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, badParam("invalid limit %q: %v", v, err)
	}
	if n <= 0 {
		return 0, badParam("limit must be a positive value")
	}
	return n, nil
}

func parseDirection(r *http.Request) (logs.Direction, error) {
	d, err := logs.ParseDirection(strings.ToLower(r.Form.Get("direction")))
	if err != nil {
		return 0, badParam("invalid direction '%s'", r.Form.Get("direction"))
	}
	return d, nil
}

var errEndBeforeStart = errors.New("end timestamp must not be before or equal to start time")

// categorizeLabels reports whether the client asked for Loki's
// categorize-labels encoding (Grafana does, to tell stream labels from
// structured metadata and parsed labels).
func categorizeLabels(r *http.Request) bool {
	for _, v := range r.Header.Values("X-Loki-Response-Encoding-Flags") {
		for _, f := range strings.Split(v, ",") {
			if strings.TrimSpace(f) == "categorize-labels" {
				return true
			}
		}
	}
	return false
}
