package tempoapi

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/pharos-obs/pharos/storage/traces"
)

// errLogsNotConfigured answers 501: no LogsByTrace was given.
var errLogsNotConfigured = errors.New("logs of traces are not configured: the trace API has no log store")

// logsMargin widens a trace's time span when looking for its log lines:
// a service may log just before its span starts or after it ends, and
// clocks differ.
const logsMargin = time.Minute

// traceLogs serves /api/traces/{traceID}/logs: the trace's log lines in
// [start, end] (Unix seconds); a missing bound is the trace's own start or
// end, widened by logsMargin.
func (a *API) traceLogs(w http.ResponseWriter, r *http.Request) error {
	if a.logs == nil {
		return errLogsNotConfigured
	}
	id, err := traces.ParseTraceID(r.PathValue("traceID"))
	if err != nil {
		return badParam("invalid trace ID: %v", err)
	}
	start, end, err := unixRange(r)
	if err != nil {
		return err
	}
	if start.IsZero() || end.IsZero() {
		td, err := a.q.Trace(r.Context(), tenantOf(r), id, time.Time{}, time.Time{})
		if err != nil {
			return fmt.Errorf("trace %s: %w", id, err)
		}
		if td.SpanCount() == 0 {
			return errTraceNotFound
		}
		first, last := timeSpan(td)
		if start.IsZero() {
			start = first.Add(-logsMargin)
		}
		if end.IsZero() {
			end = last.Add(logsMargin)
		}
	}
	lines, err := a.logs(r.Context(), tenantOf(r), id, start, end)
	if err != nil {
		return fmt.Errorf("logs of trace %s: %w", id, err)
	}
	return respond(w, "application/json", func(b []byte) []byte { return appendLogLines(b, lines) })
}

// timeSpan is the earliest start and the latest end of td's spans.
func timeSpan(td ptrace.Traces) (first, last time.Time) {
	rss := td.ResourceSpans()
	for i := range rss.Len() {
		sss := rss.At(i).ScopeSpans()
		for j := range sss.Len() {
			spans := sss.At(j).Spans()
			for k := range spans.Len() {
				s := spans.At(k)
				if st := s.StartTimestamp().AsTime(); first.IsZero() || st.Before(first) {
					first = st
				}
				if en := s.EndTimestamp().AsTime(); en.After(last) {
					last = en
				}
			}
		}
	}
	return first, last
}

// appendLogLines appends {"logs":[{"timestamp":"<ns>","labels":{...},
// "line":"..."}]}, labels sorted by name.
func appendLogLines(dst []byte, lines []LogLine) []byte {
	dst = append(dst, `{"logs":[`...)
	var names []string
	for i, l := range lines {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"timestamp":"`...)
		dst = strconv.AppendInt(dst, l.Timestamp.UnixNano(), 10)
		dst = append(dst, `","labels":{`...)
		names = names[:0]
		for k := range l.Labels {
			names = append(names, k)
		}
		slices.Sort(names)
		for j, k := range names {
			if j > 0 {
				dst = append(dst, ',')
			}
			dst = appendString(dst, k)
			dst = append(dst, ':')
			dst = appendString(dst, l.Labels[k])
		}
		dst = append(dst, `},"line":`...)
		dst = appendString(dst, l.Line)
		dst = append(dst, '}')
	}
	return append(dst, "]}"...)
}
