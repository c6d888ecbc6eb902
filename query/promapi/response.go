package promapi

import (
	"encoding/json"
	"fmt"
	"slices"

	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/util/stats"
)

// queryData is the "data" of /query and /query_range.
type queryData struct {
	value parser.Value
	stats stats.QueryStats // nil unless the `stats` parameter asked for it
}

// appendData encodes one endpoint's data into e, flushing between items so that large
// results stream out.
func (a *API) appendData(e *encoder, data any) {
	switch d := data.(type) {
	case *queryData:
		e.buf = append(e.buf, `{"resultType":"`...)
		e.buf = append(e.buf, d.value.Type()...)
		e.buf = append(e.buf, `","result":`...)
		appendValue(e, d.value)
		if d.stats != nil {
			// Statistics are small and rarely asked for; encoding/json gives the exact shape
			// Prometheus's codec gives for the same structs.
			b, err := json.Marshal(d.stats)
			if err != nil {
				a.logger.Error("error encoding query statistics", "err", err)
			} else {
				e.buf = append(e.buf, `,"stats":`...)
				e.buf = append(e.buf, b...)
			}
		}
		e.buf = append(e.buf, '}')
	case []string:
		e.buf = append(e.buf, '[')
		for i, s := range d {
			if i > 0 {
				e.buf = append(e.buf, ',')
			}
			e.buf = appendString(e.buf, s)
			e.maybeFlush()
		}
		e.buf = append(e.buf, ']')
	case []labels.Labels:
		e.buf = append(e.buf, '[')
		for i, ls := range d {
			if i > 0 {
				e.buf = append(e.buf, ',')
			}
			e.buf = appendLabels(e.buf, ls)
			e.maybeFlush()
		}
		e.buf = append(e.buf, ']')
	case []exemplar.QueryResult:
		e.buf = append(e.buf, '[')
		for i := range d {
			if i > 0 {
				e.buf = append(e.buf, ',')
			}
			e.buf = appendExemplarResult(e.buf, &d[i])
			e.maybeFlush()
		}
		e.buf = append(e.buf, ']')
	case map[string][]metadata.Metadata:
		appendMetadata(e, d)
	case BuildInfo:
		e.buf = append(e.buf, `{"version":`...)
		e.buf = appendString(e.buf, d.Version)
		e.buf = append(e.buf, `,"revision":`...)
		e.buf = appendString(e.buf, d.Revision)
		e.buf = append(e.buf, `,"branch":`...)
		e.buf = appendString(e.buf, d.Branch)
		e.buf = append(e.buf, `,"buildUser":`...)
		e.buf = appendString(e.buf, d.BuildUser)
		e.buf = append(e.buf, `,"buildDate":`...)
		e.buf = appendString(e.buf, d.BuildDate)
		e.buf = append(e.buf, `,"goVersion":`...)
		e.buf = appendString(e.buf, d.GoVersion)
		e.buf = append(e.buf, '}')
	case string:
		e.buf = appendString(e.buf, d)
	default:
		// Only reachable through a programming error in this package.
		panic(fmt.Sprintf("promapi: cannot encode %T", data))
	}
}

// appendValue encodes a PromQL result; vectors and matrices flush between elements and stop
// early once the client is gone.
func appendValue(e *encoder, v parser.Value) {
	switch v := v.(type) {
	case promql.Matrix:
		e.buf = append(e.buf, '[')
		for i := range v {
			if i > 0 {
				e.buf = append(e.buf, ',')
			}
			e.buf = appendSeries(e.buf, &v[i])
			e.maybeFlush()
			if e.failed() {
				return
			}
		}
		e.buf = append(e.buf, ']')
	case promql.Vector:
		e.buf = append(e.buf, '[')
		for i := range v {
			if i > 0 {
				e.buf = append(e.buf, ',')
			}
			e.buf = appendSample(e.buf, &v[i])
			e.maybeFlush()
			if e.failed() {
				return
			}
		}
		e.buf = append(e.buf, ']')
	case promql.Scalar:
		e.buf = appendScalar(e.buf, v)
	case promql.String:
		e.buf = appendStringValue(e.buf, v)
	default:
		panic(fmt.Sprintf("promapi: cannot encode PromQL value %T", v))
	}
}

// appendMetadata writes {"family":[{"type":…,"unit":…,"help":…}],…}, families in name
// order (as encoding/json orders map keys) and fields in Prometheus's struct order.
func appendMetadata(e *encoder, md map[string][]metadata.Metadata) {
	names := make([]string, 0, len(md))
	for name := range md {
		names = append(names, name)
	}
	slices.Sort(names)
	e.buf = append(e.buf, '{')
	for i, name := range names {
		if i > 0 {
			e.buf = append(e.buf, ',')
		}
		e.buf = appendString(e.buf, name)
		e.buf = append(e.buf, ":["...)
		for j, m := range md[name] {
			if j > 0 {
				e.buf = append(e.buf, ',')
			}
			e.buf = append(e.buf, `{"type":`...)
			e.buf = appendString(e.buf, string(m.Type))
			e.buf = append(e.buf, `,"unit":`...)
			e.buf = appendString(e.buf, m.Unit)
			e.buf = append(e.buf, `,"help":`...)
			e.buf = appendString(e.buf, m.Help)
			e.buf = append(e.buf, '}')
		}
		e.buf = append(e.buf, ']')
		e.maybeFlush()
	}
	e.buf = append(e.buf, '}')
}
