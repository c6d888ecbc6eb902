package otlp

import (
	"encoding/hex"
	"fmt"
	"math"
	"strconv"
	"time"
	"unsafe"

	"github.com/prometheus/common/model"
	"github.com/prometheus/otlptranslator"
	"github.com/prometheus/prometheus/model/labels"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/pharos-obs/pharos/collector/receive"
	"github.com/pharos-obs/pharos/storage/logs"
)

// OTLP log records become log stream entries as in Loki 3's native OTLP
// ingestion (its default otlp_config):
//
//   - Stream labels: the resource attributes in streamLabelAttributes,
//     when present and not empty, named with dots as underscores
//     (service.name → service_name). Without service.name the stream gets
//     service_name="unknown_service". Records of every resource with the
//     same label set form one stream, in request order.
//   - Structured metadata of each entry: the other resource attributes;
//     the scope's attributes, scope_name, scope_version and
//     scope_dropped_attributes_count (when set); the record's attributes;
//     and the record's fields severity_text, severity_number (when not
//     UNSPECIFIED), trace_id and span_id (hex, when not empty), flags
//     (when not 0) and observed_timestamp (Unix ns, when both it and the
//     timestamp are set). Attribute names become label names (invalid
//     characters → '_', a leading digit gets "key_", as Prometheus's OTLP
//     translation does; names that end up empty or all underscores are
//     dropped); map values are flattened (a map attribute k with key
//     x becomes k_x), other values rendered with pcommon's AsString
//     (slices as JSON, bytes as base64); empty values are dropped. A name
//     set at several levels keeps the most specific value: record fields
//     over record attributes over scope over resource.
//   - Line: the body, a string as is, other types as AsString renders
//     them (maps and slices as JSON, bytes as base64).
//   - Timestamp: time_unix_nano, else observed_time_unix_nano, else the
//     time of receipt. One beyond int64 nanoseconds (year 2262) rejects
//     its record.

// streamLabelAttributes maps the resource attributes that become stream
// labels to their label names: Loki 3's default index labels.
var streamLabelAttributes = func() map[string]string {
	m := map[string]string{}
	for _, a := range []string{
		"service.name", "service.namespace", "service.instance.id",
		"deployment.environment", "deployment.environment.name",
		"cloud.region", "cloud.availability_zone",
		"k8s.cluster.name", "k8s.namespace.name", "k8s.pod.name", "k8s.container.name",
		"container.name", "k8s.replicaset.name", "k8s.deployment.name",
		"k8s.statefulset.name", "k8s.daemonset.name", "k8s.cronjob.name", "k8s.job.name",
	} {
		m[a] = otlpLabelName(a)
	}
	return m
}()

const (
	serviceNameLabel   = "service_name"
	unknownServiceName = "unknown_service"
	// maxAttributeDepth bounds the flattening of nested maps; deeper ones
	// are rendered as JSON.
	maxAttributeDepth = 8
	// maxNameCache bounds the sanitized attribute names kept per converter.
	maxNameCache = 4096
	// maxPooledArena bounds the arena a pooled converter keeps.
	maxPooledArena = 4 << 20
)

// severityNumbers renders every defined severity number without an
// allocation per record.
var severityNumbers = func() (s [25]string) {
	for i := range s {
		s[i] = strconv.Itoa(i)
	}
	return s
}()

func otlpLabelName(attr string) string {
	n, err := (&otlptranslator.LabelNamer{}).Build(attr)
	if err != nil {
		return ""
	}
	return n
}

// logsConverter turns one request's plog.Logs into streams; it is reused.
type logsConverter struct {
	streams []logs.Stream
	byHash  map[uint64]int // first stream with a label hash
	next    []int          // next stream with the same hash, or -1

	sb        labels.ScratchBuilder
	resMeta   []labels.Label    // the current resource's metadata
	scopeMeta []labels.Label    // the current scope's
	meta      []labels.Label    // one record's
	names     map[string]string // attribute names sanitized

	// arena holds the values rendered for the request (numbers, IDs):
	// strings alias it until the entries' metadata is built, which copies
	// them. Growing it leaves the earlier ones on the old array, unchanged.
	arena []byte

	records       int
	badTimestamps int
	rej           receive.LogsRejection
}

func newLogsConverter() *logsConverter {
	return &logsConverter{
		byHash: map[uint64]int{},
		sb:     labels.NewScratchBuilder(32),
		names:  map[string]string{},
	}
}

func (c *logsConverter) reset() {
	clear(c.streams)
	clear(c.byHash)
	clear(c.resMeta)
	clear(c.scopeMeta)
	clear(c.meta)
	c.streams, c.next = c.streams[:0], c.next[:0]
	c.resMeta, c.scopeMeta, c.meta = c.resMeta[:0], c.scopeMeta[:0], c.meta[:0]
	c.arena = c.arena[:0]
	if cap(c.arena) > maxPooledArena {
		c.arena = nil
	}
	c.records, c.badTimestamps = 0, 0
	c.rej = receive.LogsRejection{}
	if len(c.names) > maxNameCache {
		clear(c.names)
	}
}

// convert maps ld as the comment above says; records it cannot map are
// counted in c.rej and c.badTimestamps. now stands in for missing times.
func (c *logsConverter) convert(ld plog.Logs, now time.Time) []logs.Stream {
	rls := ld.ResourceLogs()
	for i := range rls.Len() {
		rl := rls.At(i)
		ls := c.resource(rl.Resource())
		si := -1
		sls := rl.ScopeLogs()
		for j := range sls.Len() {
			sl := sls.At(j)
			lrs := sl.LogRecords()
			if lrs.Len() == 0 {
				continue
			}
			if si < 0 {
				si = c.stream(ls)
			}
			c.scope(sl.Scope())
			for k := range lrs.Len() {
				c.records++
				if e, ok := c.entry(lrs.At(k), ls, now); ok {
					c.streams[si].Entries = append(c.streams[si].Entries, e)
				}
			}
		}
	}
	return c.streams
}

// resource returns the resource's stream labels and sets c.resMeta.
func (c *logsConverter) resource(res pcommon.Resource) labels.Labels {
	c.sb.Reset()
	clear(c.resMeta)
	c.resMeta = c.resMeta[:0]
	service := false
	res.Attributes().Range(func(k string, v pcommon.Value) bool {
		if name, ok := streamLabelAttributes[k]; ok {
			if s := v.AsString(); s != "" {
				c.sb.Add(name, s)
				service = service || name == serviceNameLabel
			}
			return true
		}
		c.resMeta = c.attribute(c.resMeta, "", k, v, 0)
		return true
	})
	if !service {
		c.sb.Add(serviceNameLabel, unknownServiceName)
	}
	c.sb.Sort()
	return c.sb.Labels()
}

func (c *logsConverter) scope(s pcommon.InstrumentationScope) {
	clear(c.scopeMeta)
	m := c.scopeMeta[:0]
	s.Attributes().Range(func(k string, v pcommon.Value) bool {
		m = c.attribute(m, "", k, v, 0)
		return true
	})
	if n := s.Name(); n != "" {
		m = append(m, labels.Label{Name: "scope_name", Value: n})
	}
	if v := s.Version(); v != "" {
		m = append(m, labels.Label{Name: "scope_version", Value: v})
	}
	if d := s.DroppedAttributesCount(); d != 0 {
		m = append(m, labels.Label{Name: "scope_dropped_attributes_count", Value: strconv.FormatUint(uint64(d), 10)})
	}
	c.scopeMeta = m
}

// stream returns the index of the stream with labels ls, adding it.
func (c *logsConverter) stream(ls labels.Labels) int {
	h := ls.Hash()
	first, ok := c.byHash[h]
	if ok {
		for i := first; i >= 0; i = c.next[i] {
			if labels.Equal(c.streams[i].Labels, ls) {
				return i
			}
		}
	} else {
		first = -1
	}
	i := len(c.streams)
	c.streams = append(c.streams, logs.Stream{Labels: ls})
	c.next = append(c.next, first)
	c.byHash[h] = i
	return i
}

func (c *logsConverter) entry(lr plog.LogRecord, stream labels.Labels, now time.Time) (logs.Entry, bool) {
	ts := uint64(lr.Timestamp())
	if ts == 0 {
		ts = uint64(lr.ObservedTimestamp())
	}
	if ts == 0 {
		ts = uint64(now.UnixNano())
	}
	if ts > math.MaxInt64 {
		c.badTimestamps++
		c.rej.Add(&receive.LogsError{Reason: receive.ReasonLogsInvalidTimestamp, Stream: stream,
			Detail: fmt.Sprintf("a log record's time %d ns is beyond what int64 Unix nanoseconds hold (year 2262)", ts),
			Rule:   receive.ReasonLogsInvalidTimestamp}, 1)
		return logs.Entry{}, false
	}

	m := append(c.meta[:0], c.resMeta...)
	m = append(m, c.scopeMeta...)
	lr.Attributes().Range(func(k string, v pcommon.Value) bool {
		m = c.attribute(m, "", k, v, 0)
		return true
	})
	field := func(name string, render func([]byte) []byte) {
		m = append(m, labels.Label{Name: name, Value: c.render(render)})
	}
	if lr.Timestamp() != 0 && lr.ObservedTimestamp() != 0 {
		field("observed_timestamp", func(b []byte) []byte { return strconv.AppendUint(b, uint64(lr.ObservedTimestamp()), 10) })
	}
	if sn := lr.SeverityNumber(); sn != plog.SeverityNumberUnspecified {
		if sn > 0 && int(sn) < len(severityNumbers) {
			m = append(m, labels.Label{Name: "severity_number", Value: severityNumbers[sn]})
		} else {
			field("severity_number", func(b []byte) []byte { return strconv.AppendInt(b, int64(sn), 10) })
		}
	}
	if st := lr.SeverityText(); st != "" {
		m = append(m, labels.Label{Name: "severity_text", Value: st})
	}
	if id := lr.TraceID(); !id.IsEmpty() {
		field("trace_id", func(b []byte) []byte { return hex.AppendEncode(b, id[:]) })
	}
	if id := lr.SpanID(); !id.IsEmpty() {
		field("span_id", func(b []byte) []byte { return hex.AppendEncode(b, id[:]) })
	}
	if f := lr.Flags(); f != 0 {
		field("flags", func(b []byte) []byte { return strconv.AppendUint(b, uint64(f), 10) })
	}
	md := receive.BuildMetadata(&c.sb, m)
	clear(m)
	c.meta = m[:0]
	return logs.Entry{Timestamp: int64(ts), Line: lr.Body().AsString(), Metadata: md}, true
}

// attribute appends attribute k (under prefix, for nested maps) to dst.
func (c *logsConverter) attribute(dst []labels.Label, prefix, k string, v pcommon.Value, depth int) []labels.Label {
	name := c.name(k)
	if name == "" {
		return dst
	}
	if prefix != "" {
		name = prefix + "_" + name
	}
	if v.Type() == pcommon.ValueTypeMap && depth < maxAttributeDepth {
		v.Map().Range(func(k2 string, v2 pcommon.Value) bool {
			dst = c.attribute(dst, name, k2, v2, depth+1)
			return true
		})
		return dst
	}
	var s string
	switch v.Type() {
	case pcommon.ValueTypeInt:
		s = c.render(func(b []byte) []byte { return strconv.AppendInt(b, v.Int(), 10) })
	case pcommon.ValueTypeBool:
		s = strconv.FormatBool(v.Bool())
	default:
		s = v.AsString()
	}
	if s != "" {
		dst = append(dst, labels.Label{Name: name, Value: s})
	}
	return dst
}

// render appends a value to the arena and returns it as a string.
func (c *logsConverter) render(f func([]byte) []byte) string {
	lo := len(c.arena)
	c.arena = f(c.arena)
	return yolo(c.arena[lo:])
}

// name returns an attribute name as a label name, "" to drop it.
func (c *logsConverter) name(k string) string {
	if model.LegacyValidation.IsValidLabelName(k) && !underscoresOnly(k) {
		return k
	}
	if n, ok := c.names[k]; ok {
		return n
	}
	n := otlpLabelName(k)
	c.names[k] = n
	return n
}

func underscoresOnly(s string) bool {
	for i := range len(s) {
		if s[i] != '_' {
			return false
		}
	}
	return true
}

// yolo returns b as a string without copying; it is valid while b is.
func yolo(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(unsafe.SliceData(b), len(b))
}
