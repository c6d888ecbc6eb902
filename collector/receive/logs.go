package receive

// Pushed logs: what the log receivers (Loki push in loki, OTLP logs in
// otlp) share. Admission and body reading are the Intake's, as for
// metrics; a LogsIntake adds the log ingestion rules, the log counters
// and the hand-off to the LogsSink (the agent's log publisher).

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/pharos-obs/pharos/internal/overrides"
	"github.com/pharos-obs/pharos/internal/tenant"
	"github.com/pharos-obs/pharos/storage/logs"
)

// ErrLogsRejected is wrapped by errors for log data that can never be
// accepted (it breaks an ingestion rule, or the sink cannot take it in
// any form, e.g. a batch too large for the bus). Receivers answer it with
// 400 / INVALID_ARGUMENT: the sender must not retry.
var ErrLogsRejected = errors.New("log data rejected")

// LogsSink takes pushed log streams: in the agent, the log publisher.
//
// PushStreams returns nil only once the streams are durable (the bus has
// acknowledged them). An error wrapping ErrLogsRejected means the data can
// never be accepted and is not retried (400 / INVALID_ARGUMENT); any other
// error (bus unavailable, timeout, ctx done) is retryable (503 /
// UNAVAILABLE with Retry-After), and the sender will send the whole
// request again, so a sink must not keep part of a failed push.
//
// Ownership: the streams, their entries and every string in them (labels
// included) belong to the caller and are valid only until PushStreams
// returns: they alias the request's buffers, which are reused for the
// next request. The sink must not retain any of it; it copies or encodes
// what it keeps. The streams are validated: non-empty label sets, at
// least one entry each, metadata sorted by name, valid UTF-8.
//
// PushStreams may block up to ctx's deadline. It is called concurrently,
// once per request, and must be safe for that.
type LogsSink interface {
	PushStreams(ctx context.Context, tenant string, streams []logs.Stream) error
}

// LogsSinkFunc adapts a function to a LogsSink.
type LogsSinkFunc func(ctx context.Context, tenant string, streams []logs.Stream) error

// PushStreams implements LogsSink.
func (f LogsSinkFunc) PushStreams(ctx context.Context, tenant string, streams []logs.Stream) error {
	return f(ctx, tenant, streams)
}

// The log push protocols, in metric labels. OTLP logs use ProtocolOTLPHTTP
// and ProtocolOTLPGRPC, the listeners they share with OTLP metrics.
const (
	// ProtocolLoki is a Loki push whose format is not known yet (refused
	// before its content type was understood).
	ProtocolLoki Protocol = "loki"
	// ProtocolLokiJSON is Loki's JSON push format.
	ProtocolLokiJSON Protocol = "loki_json"
	// ProtocolLokiProtobuf is Loki's snappy-compressed logproto.PushRequest.
	ProtocolLokiProtobuf Protocol = "loki_protobuf"
)

// TenantHeader carries the tenant of a push (tenant.Header); tenant.Resolve
// reads it, after the authenticated identity's tenant.
const TenantHeader = tenant.Header

// LogsConfig is the ingestion rules for pushed log entries, shared by the
// Loki and OTLP log receivers. A zero limit turns its rule off. Defaults
// are Loki's.
type LogsConfig struct {
	MaxLabelNamesPerStream int `yaml:"max_label_names_per_stream"`
	MaxLabelNameLength     int `yaml:"max_label_name_length"`
	MaxLabelValueLength    int `yaml:"max_label_value_length"`
	// MaxLineSize caps a line, in bytes. A longer line rejects its
	// request (Loki push) or log record (OTLP), unless TruncateLongLines.
	MaxLineSize       int  `yaml:"max_line_size"`
	TruncateLongLines bool `yaml:"truncate_long_lines"`
	// MaxMetadataEntries and MaxMetadataSize cap an entry's structured
	// metadata: its number of pairs and their names' and values' bytes.
	MaxMetadataEntries int `yaml:"max_structured_metadata_entries"`
	MaxMetadataSize    int `yaml:"max_structured_metadata_size"`
}

// RegisterFlags registers the options under -agent.receive.logs.
func (c *LogsConfig) RegisterFlags(f *flag.FlagSet) {
	f.IntVar(&c.MaxLabelNamesPerStream, "agent.receive.logs.max-label-names-per-stream", 15, "Most labels a pushed log stream may have; 0 disables the check.")
	f.IntVar(&c.MaxLabelNameLength, "agent.receive.logs.max-label-name-length", 1024, "Longest label name of a pushed log stream, in bytes; 0 disables the check.")
	f.IntVar(&c.MaxLabelValueLength, "agent.receive.logs.max-label-value-length", 2048, "Longest label value of a pushed log stream, in bytes; 0 disables the check.")
	f.IntVar(&c.MaxLineSize, "agent.receive.logs.max-line-size", 256<<10, "Longest pushed log line, in bytes; longer ones are refused with 400 (or truncated, see -agent.receive.logs.truncate-long-lines); 0 disables the check.")
	f.BoolVar(&c.TruncateLongLines, "agent.receive.logs.truncate-long-lines", false, "Truncate log lines over -agent.receive.logs.max-line-size instead of refusing them.")
	f.IntVar(&c.MaxMetadataEntries, "agent.receive.logs.max-structured-metadata-entries", 128, "Most structured metadata pairs of a pushed log entry; 0 disables the check.")
	f.IntVar(&c.MaxMetadataSize, "agent.receive.logs.max-structured-metadata-size", 64<<10, "Largest structured metadata of a pushed log entry (names and values), in bytes; 0 disables the check.")
}

// Validate reports every invalid field.
func (c *LogsConfig) Validate() error {
	var errs []error
	for _, f := range []struct {
		name string
		v    int
	}{
		{"max_label_names_per_stream", c.MaxLabelNamesPerStream},
		{"max_label_name_length", c.MaxLabelNameLength},
		{"max_label_value_length", c.MaxLabelValueLength},
		{"max_line_size", c.MaxLineSize},
		{"max_structured_metadata_entries", c.MaxMetadataEntries},
		{"max_structured_metadata_size", c.MaxMetadataSize},
	} {
		if f.v < 0 {
			errs = append(errs, fmt.Errorf("agent.receive.logs.%s: must not be negative (0 disables it), got %d", f.name, f.v))
		}
	}
	if c.TruncateLongLines && c.MaxLineSize <= 0 {
		errs = append(errs, errors.New("agent.receive.logs.truncate_long_lines: needs agent.receive.logs.max_line_size above 0"))
	}
	return errors.Join(errs...)
}

// Reasons a log entry is rejected, as in LogsError.Reason and the reason
// label of pharos_agent_rejected_log_entries_total.
const (
	ReasonLogsMissingLabels     = "missing_labels"
	ReasonLogsInvalidLabels     = "invalid_labels" // bad name, duplicate, invalid UTF-8 value
	ReasonLogsMaxLabelNames     = "max_label_names_per_stream"
	ReasonLogsLabelNameTooLong  = "label_name_too_long"
	ReasonLogsLabelValueTooLong = "label_value_too_long"
	ReasonLogsLineTooLong       = "line_too_long"
	ReasonLogsInvalidMetadata   = "invalid_structured_metadata"
	ReasonLogsMetadataTooLarge  = "structured_metadata_too_large"
	ReasonLogsInvalidTimestamp  = "invalid_timestamp"
	// ReasonLogsSinkRejected: the sink refused valid-looking data for good
	// (an error wrapping ErrLogsRejected).
	ReasonLogsSinkRejected = "sink_rejected"
)

// LogsReasons lists the reasons a log entry is rejected.
var LogsReasons = []string{
	ReasonLogsMissingLabels, ReasonLogsInvalidLabels, ReasonLogsMaxLabelNames,
	ReasonLogsLabelNameTooLong, ReasonLogsLabelValueTooLong, ReasonLogsLineTooLong,
	ReasonLogsInvalidMetadata, ReasonLogsMetadataTooLarge, ReasonLogsInvalidTimestamp,
	ReasonLogsSinkRejected,
}

// LogsError is a stream or entry refused by a log ingestion rule. Its
// message names the stream and the rule, for the sender to act on.
type LogsError struct {
	Reason string
	Stream labels.Labels
	Detail string
	// Rule names the configuration option behind the rule, or the rule.
	Rule string
}

// Error formats as `stream {…}: detail (rule)`.
func (e *LogsError) Error() string {
	return "stream " + FormatSeries(e.Stream) + ": " + e.Detail + " (" + e.Rule + ")"
}

// Unwrap makes errors.Is(err, ErrLogsRejected) hold.
func (e *LogsError) Unwrap() error { return ErrLogsRejected }

// maxReportedLogErrors bounds the rejections a response lists.
const maxReportedLogErrors = 10

// LogsRejection is what a request lost to the ingestion rules.
type LogsRejection struct {
	// Entries is the number of entries refused.
	Entries int
	// Errors is the number of rules broken (a stream whose labels break
	// one counts once, however many entries it has).
	Errors int
	msgs   []string
}

// Add records err, which refused n entries.
func (r *LogsRejection) Add(err error, n int) {
	r.Entries += n
	r.Errors++
	if len(r.msgs) < maxReportedLogErrors {
		r.msgs = append(r.msgs, err.Error())
	}
}

// Merge adds what o refused.
func (r *LogsRejection) Merge(o LogsRejection) {
	r.Entries += o.Entries
	r.Errors += o.Errors
	for _, m := range o.msgs {
		if len(r.msgs) < maxReportedLogErrors {
			r.msgs = append(r.msgs, m)
		}
	}
}

// Message says what was refused, out of total entries, listing the first
// errors.
func (r *LogsRejection) Message(total int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d of %d log entries rejected: ", r.Entries, total)
	b.WriteString(strings.Join(r.msgs, "; "))
	if more := r.Errors - len(r.msgs); more > 0 {
		fmt.Fprintf(&b, "; and %d more", more)
	}
	return b.String()
}

// LogsIntake checks pushed log streams against the LogsConfig, counts
// them and hands them to the sink. Admission, body reading and request
// metrics stay with the Intake it wraps. One LogsIntake serves every log
// receiver of the process; it is safe for concurrent use.
type LogsIntake struct {
	cfg    LogsConfig
	in     *Intake
	sink   LogsSink
	logger *slog.Logger
	m      *logsMetrics
}

// NewLogsIntake returns a LogsIntake checking against cfg and pushing to
// sink; in admits the requests and reads their bodies.
func NewLogsIntake(cfg LogsConfig, in *Intake, sink LogsSink, logger *slog.Logger, reg prometheus.Registerer) (*LogsIntake, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &LogsIntake{cfg: cfg, in: in, sink: sink, logger: logger, m: newLogsMetrics(reg)}, nil
}

// Intake returns the Intake the log receivers are admitted by.
func (li *LogsIntake) Intake() *Intake { return li.in }

// Config returns the rules the LogsIntake checks.
func (li *LogsIntake) Config() LogsConfig { return li.cfg }

// Logger returns the LogsIntake's logger, for receivers built on it.
func (li *LogsIntake) Logger() *slog.Logger { return li.logger }

// CheckStreams applies the ingestion rules to streams, in place: lines
// with invalid UTF-8 are repaired (U+FFFD), long lines truncated when so
// configured, empty-valued labels dropped; entries that break a rule are
// removed (all of a stream's when its labels do), and so are streams left
// without entries. It returns the streams kept (a prefix of streams) and
// what was refused, which it has counted.
//
// key is the tenant's store key (tenant.Key), whose label limits apply.
func (li *LogsIntake) CheckStreams(key string, streams []logs.Stream) ([]logs.Stream, LogsRejection) {
	var rej LogsRejection
	id := tenantID(key)
	lim := li.in.limitsFor(id)
	maxNames := li.cfg.MaxLabelNamesPerStream
	if lim.streamNames >= 0 {
		maxNames = lim.streamNames
	}
	rule := lim.rule(overrides.LimitMaxLabelNamesPerStream, "agent.receive.logs.max_label_names_per_stream")
	k := 0
	for i := range streams {
		s := streams[i]
		ls, lerr := li.checkLabels(s.Labels, maxNames, rule)
		if lerr != nil {
			li.reject(&rej, lerr, len(s.Entries))
			li.in.countLimited(id, overrides.SignalLogs, lerr.Reason, len(s.Entries))
			continue
		}
		s.Labels = ls
		kept := s.Entries[:0]
		for _, e := range s.Entries {
			if err := li.checkEntry(ls, &e); err != nil {
				li.reject(&rej, err, 1)
				continue
			}
			kept = append(kept, e)
		}
		clear(s.Entries[len(kept):])
		s.Entries = kept
		if len(kept) > 0 {
			streams[k] = s
			k++
		}
	}
	clear(streams[k:])
	return streams[:k], rej
}

func (li *LogsIntake) reject(rej *LogsRejection, err *LogsError, n int) {
	rej.Add(err, n)
	li.CountRejected(err.Reason, n)
}

// CountRejected counts n entries refused by a receiver's own rules
// (CheckStreams counts its own refusals).
func (li *LogsIntake) CountRejected(reason string, n int) {
	if n > 0 {
		li.m.rejected.WithLabelValues(reason).Add(float64(n))
	}
}

func (li *LogsIntake) checkLabels(ls labels.Labels, maxNames int, rule string) (labels.Labels, *LogsError) {
	ls = ls.WithoutEmpty()
	c := &li.cfg
	if ls.IsEmpty() {
		return ls, &LogsError{Reason: ReasonLogsMissingLabels, Stream: ls, Detail: "the stream has no labels", Rule: ReasonLogsMissingLabels}
	}
	if n := ls.Len(); maxNames > 0 && n > maxNames {
		return ls, &LogsError{Reason: ReasonLogsMaxLabelNames, Stream: ls,
			Detail: fmt.Sprintf("%d labels exceed the limit of %d", n, maxNames),
			Rule:   rule}
	}
	var (
		bad   *LogsError
		prev  string
		first = true
	)
	ls.Range(func(l labels.Label) {
		if bad != nil {
			return
		}
		name := func() string { return strconv.Quote(truncate(l.Name, maxFormattedValue)) }
		switch {
		case !model.LegacyValidation.IsValidLabelName(l.Name):
			bad = &LogsError{Reason: ReasonLogsInvalidLabels, Stream: ls,
				Detail: fmt.Sprintf("label name %s is not a valid label name ([a-zA-Z_][a-zA-Z0-9_]*)", name()), Rule: ReasonLogsInvalidLabels}
		case !first && l.Name == prev:
			bad = &LogsError{Reason: ReasonLogsInvalidLabels, Stream: ls,
				Detail: fmt.Sprintf("label name %s appears more than once", name()), Rule: ReasonLogsInvalidLabels}
		case !first && l.Name < prev:
			bad = &LogsError{Reason: ReasonLogsInvalidLabels, Stream: ls,
				Detail: fmt.Sprintf("label names are not sorted (%s after %s)", name(), strconv.Quote(truncate(prev, maxFormattedValue))), Rule: ReasonLogsInvalidLabels}
		case c.MaxLabelNameLength > 0 && len(l.Name) > c.MaxLabelNameLength:
			bad = &LogsError{Reason: ReasonLogsLabelNameTooLong, Stream: ls,
				Detail: fmt.Sprintf("label name %s is %d bytes long, over the limit of %d", name(), len(l.Name), c.MaxLabelNameLength),
				Rule:   "agent.receive.logs.max_label_name_length"}
		case !utf8.ValidString(l.Value):
			bad = &LogsError{Reason: ReasonLogsInvalidLabels, Stream: ls,
				Detail: fmt.Sprintf("value of label %s is not valid UTF-8", name()), Rule: ReasonLogsInvalidLabels}
		case c.MaxLabelValueLength > 0 && len(l.Value) > c.MaxLabelValueLength:
			bad = &LogsError{Reason: ReasonLogsLabelValueTooLong, Stream: ls,
				Detail: fmt.Sprintf("value of label %s is %d bytes long, over the limit of %d", name(), len(l.Value), c.MaxLabelValueLength),
				Rule:   "agent.receive.logs.max_label_value_length"}
		}
		prev, first = l.Name, false
	})
	return ls, bad
}

// checkEntry repairs e in place or says why it is refused.
func (li *LogsIntake) checkEntry(stream labels.Labels, e *logs.Entry) *LogsError {
	c := &li.cfg
	invalid := false
	if !utf8.ValidString(e.Line) {
		e.Line = strings.ToValidUTF8(e.Line, "\uFFFD")
		invalid = true
	}
	if c.MaxLineSize > 0 && len(e.Line) > c.MaxLineSize {
		if !c.TruncateLongLines {
			return &LogsError{Reason: ReasonLogsLineTooLong, Stream: stream,
				Detail: fmt.Sprintf("a line of %d bytes is over the limit of %d", len(e.Line), c.MaxLineSize),
				Rule:   "agent.receive.logs.max_line_size"}
		}
		cut := c.MaxLineSize
		for cut > 0 && !utf8.RuneStart(e.Line[cut]) {
			cut--
		}
		e.Line = e.Line[:cut]
		li.m.truncated.Inc()
	}
	if !e.Metadata.IsEmpty() {
		fixed, err := li.checkMetadata(stream, e.Metadata)
		if err != nil {
			return err
		}
		if fixed != nil {
			e.Metadata = *fixed
			invalid = true
		}
	}
	if invalid {
		li.m.invalidUTF8.Inc()
	}
	return nil
}

// checkMetadata returns the metadata repaired when it had invalid UTF-8
// (nil when it was fine).
func (li *LogsIntake) checkMetadata(stream, md labels.Labels) (*labels.Labels, *LogsError) {
	c := &li.cfg
	n, size, emptyName, valid := 0, 0, false, true
	md.Range(func(l labels.Label) {
		n++
		size += len(l.Name) + len(l.Value)
		emptyName = emptyName || l.Name == ""
		valid = valid && utf8.ValidString(l.Name) && utf8.ValidString(l.Value)
	})
	switch {
	case emptyName:
		return nil, &LogsError{Reason: ReasonLogsInvalidMetadata, Stream: stream,
			Detail: "an entry has structured metadata with an empty name", Rule: ReasonLogsInvalidMetadata}
	case c.MaxMetadataEntries > 0 && n > c.MaxMetadataEntries:
		return nil, &LogsError{Reason: ReasonLogsMetadataTooLarge, Stream: stream,
			Detail: fmt.Sprintf("an entry has %d structured metadata pairs, over the limit of %d", n, c.MaxMetadataEntries),
			Rule:   "agent.receive.logs.max_structured_metadata_entries"}
	case c.MaxMetadataSize > 0 && size > c.MaxMetadataSize:
		return nil, &LogsError{Reason: ReasonLogsMetadataTooLarge, Stream: stream,
			Detail: fmt.Sprintf("an entry has %d bytes of structured metadata, over the limit of %d", size, c.MaxMetadataSize),
			Rule:   "agent.receive.logs.max_structured_metadata_size"}
	case valid:
		return nil, nil
	}
	// Rare: rebuilt, as repairing a name may change the order.
	b := labels.NewScratchBuilder(n)
	md.Range(func(l labels.Label) {
		b.Add(strings.ToValidUTF8(l.Name, "\uFFFD"), strings.ToValidUTF8(l.Value, "\uFFFD"))
	})
	b.Sort()
	out := b.Labels()
	return &out, nil
}

// Push hands checked streams to the sink and, once they are stored,
// counts them as received over p. Errors are the sink's, unchanged.
func (li *LogsIntake) Push(ctx context.Context, p Protocol, tenant string, streams []logs.Stream) error {
	if len(streams) == 0 {
		return nil
	}
	// Counted before the sink owns them: the rate limit and the counters
	// take the same bytes (lines and structured metadata).
	entries, size := 0, 0
	for i := range streams {
		entries += len(streams[i].Entries)
		for j := range streams[i].Entries {
			e := &streams[i].Entries[j]
			size += len(e.Line)
			e.Metadata.Range(func(l labels.Label) { size += len(l.Name) + len(l.Value) })
		}
	}
	if err := li.limitLogs(tenantID(tenant), streams, entries, size); err != nil {
		return err
	}
	if err := li.sink.PushStreams(ctx, tenant, streams); err != nil {
		if errors.Is(err, ErrLogsRejected) {
			li.CountRejected(ReasonLogsSinkRejected, entries)
		}
		return err
	}
	li.m.entries.WithLabelValues(string(p)).Add(float64(entries))
	li.m.bytes.WithLabelValues(string(p)).Add(float64(size))
	return nil
}

// BuildMetadata returns pairs as an entry's metadata: sorted by name, a
// name given more than once keeping its last value (in pairs' order, as
// a JSON object or an attribute override does). It sorts pairs in place
// and builds in b; the result owns its strings.
func BuildMetadata(b *labels.ScratchBuilder, pairs []labels.Label) labels.Labels {
	if len(pairs) == 0 {
		return labels.EmptyLabels()
	}
	if len(pairs) > 1 {
		slices.SortStableFunc(pairs, func(x, y labels.Label) int { return strings.Compare(x.Name, y.Name) })
	}
	b.Reset()
	for i, l := range pairs {
		if i+1 < len(pairs) && pairs[i+1].Name == l.Name {
			continue
		}
		b.Add(l.Name, l.Value)
	}
	return b.Labels()
}

// CountEntries returns the number of entries of streams.
func CountEntries(streams []logs.Stream) int {
	n := 0
	for i := range streams {
		n += len(streams[i].Entries)
	}
	return n
}

type logsMetrics struct {
	entries     *prometheus.CounterVec
	bytes       *prometheus.CounterVec
	rejected    *prometheus.CounterVec
	truncated   prometheus.Counter
	invalidUTF8 prometheus.Counter
}

func newLogsMetrics(reg prometheus.Registerer) *logsMetrics {
	f := promauto.With(reg)
	m := &logsMetrics{
		entries: f.NewCounterVec(prometheus.CounterOpts{
			Name: "pharos_agent_received_log_entries_total",
			Help: "Pushed log entries accepted and stored by the log publisher, by protocol (loki_json, loki_protobuf, otlp_http, otlp_grpc).",
		}, []string{"protocol"}),
		bytes: f.NewCounterVec(prometheus.CounterOpts{
			Name: "pharos_agent_received_log_bytes_total",
			Help: "Bytes of pushed log lines and structured metadata accepted and stored, by protocol.",
		}, []string{"protocol"}),
		rejected: f.NewCounterVec(prometheus.CounterOpts{
			Name: "pharos_agent_rejected_log_entries_total",
			Help: "Pushed log entries refused at ingestion, by reason.",
		}, []string{"reason"}),
		truncated: f.NewCounter(prometheus.CounterOpts{
			Name: "pharos_agent_log_lines_truncated_total",
			Help: "Pushed log lines cut to agent.receive.logs.max_line_size (agent.receive.logs.truncate_long_lines).",
		}),
		invalidUTF8: f.NewCounter(prometheus.CounterOpts{
			Name: "pharos_agent_log_lines_invalid_utf8_total",
			Help: "Pushed log entries whose line or structured metadata had invalid UTF-8, replaced by U+FFFD.",
		}),
	}
	for _, r := range LogsReasons {
		m.rejected.WithLabelValues(r)
	}
	return m
}
