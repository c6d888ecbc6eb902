package receive

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"

	"github.com/pharos-obs/pharos/internal/overrides"
)

// ErrRejected is wrapped by every *Error: a sample refused by an ingestion
// rule. It is the sender's fault and must not be retried.
var ErrRejected = errors.New("rejected at ingestion")

// Reasons a sample is rejected, as used in *Error.Reason and in the
// reason label of pharos_agent_rejected_samples_total.
const (
	ReasonMissingMetricName  = "missing_metric_name"
	ReasonInvalidLabelName   = "invalid_label_name"
	ReasonInvalidLabelValue  = "invalid_label_value"
	ReasonDuplicateLabelName = "duplicate_label_name"
	ReasonUnsortedLabels     = "unsorted_labels"
	ReasonMaxLabelNames      = "max_label_names_per_series"
	ReasonLabelNameTooLong   = "label_name_too_long"
	ReasonLabelValueTooLong  = "label_value_too_long"
	ReasonSampleTooOld       = "sample_too_old"
	ReasonSampleTooNew       = "sample_too_far_in_future"
	ReasonInvalidNativeHisto = "invalid_native_histogram"
	// ReasonRequestTooLarge: the request expanded to more series data
	// than one request may hold (see appender.held).
	ReasonRequestTooLarge       = "request_too_large"
	ReasonInvalidSeries         = "invalid_series"   // protocol-level: e.g. a bad symbol reference
	ReasonTranslation           = "otlp_translation" // OTLP data points the translator refused
	ReasonExemplarsUnsupported  = "exemplars_unsupported"
	ReasonExemplarInvalidLabels = "exemplar_invalid_labels"
	ReasonExemplarLabelsTooLong = "exemplar_labels_too_long"
	ReasonExemplarOutOfBounds   = "exemplar_out_of_bounds"
	// ReasonExemplarSeriesRejected: every sample of the exemplar's series
	// was refused, so the exemplar had nothing to ride on.
	ReasonExemplarSeriesRejected = "exemplar_series_rejected"
)

// SampleReasons lists the reasons a sample is rejected (pre-created series
// of pharos_agent_rejected_samples_total).
var SampleReasons = []string{
	ReasonMissingMetricName, ReasonInvalidLabelName, ReasonInvalidLabelValue,
	ReasonDuplicateLabelName, ReasonUnsortedLabels, ReasonMaxLabelNames,
	ReasonLabelNameTooLong, ReasonLabelValueTooLong, ReasonSampleTooOld,
	ReasonSampleTooNew, ReasonInvalidNativeHisto, ReasonRequestTooLarge, ReasonInvalidSeries, ReasonTranslation,
	ReasonTenantMaxSeries,
}

// ExemplarReasons lists the reasons an exemplar is dropped
// (pharos_agent_rejected_exemplars_total).
var ExemplarReasons = []string{
	ReasonExemplarsUnsupported, ReasonExemplarInvalidLabels,
	ReasonExemplarLabelsTooLong, ReasonExemplarOutOfBounds, ReasonExemplarSeriesRejected,
}

// Error is a sample refused by an ingestion rule. Its message names the
// series (labels, truncated) and the rule, for the sender to act on.
type Error struct {
	// Reason is the machine name of the rule (one of the Reason… constants).
	Reason string
	// Series is the refused series.
	Series labels.Labels
	// Detail says what is wrong, e.g. "31 label names exceed the limit of 30".
	Detail string
	// Rule names the configuration option behind the rule, or the rule.
	Rule string
}

// Error formats as `series {…}: detail (rule)`.
func (e *Error) Error() string {
	return "series " + FormatSeries(e.Series) + ": " + e.Detail + " (" + e.Rule + ")"
}

// Unwrap makes errors.Is(err, ErrRejected) hold.
func (e *Error) Unwrap() error { return ErrRejected }

// NewError returns a rejection of series ls for a protocol-level rule
// (one the receivers check themselves, not the Validator).
func NewError(reason string, ls labels.Labels, detail string) *Error {
	return &Error{Reason: reason, Series: ls, Detail: detail, Rule: reason}
}

// Bounds of FormatSeries: enough to recognise a series, bounded however
// large the labels (a rejected request's message lists many of them).
const (
	maxFormattedSeries = 240
	maxFormattedValue  = 64
)

// FormatSeries renders a label set for an error message: the metric name
// first, values truncated, the whole cut at a few hundred bytes with "…".
func FormatSeries(ls labels.Labels) string {
	var b strings.Builder
	b.WriteByte('{')
	n := 0
	write := func(l labels.Label) bool {
		if b.Len() > maxFormattedSeries {
			b.WriteString(", …")
			return false
		}
		if n > 0 {
			b.WriteString(", ")
		}
		n++
		b.WriteString(quoteName(truncate(l.Name, maxFormattedValue)))
		b.WriteByte('=')
		b.WriteString(strconv.Quote(truncate(l.Value, maxFormattedValue)))
		return true
	}
	name := ls.Get(labels.MetricName)
	more := true
	if name != "" {
		more = write(labels.Label{Name: labels.MetricName, Value: name})
	}
	ls.Range(func(l labels.Label) {
		if !more || l.Name == labels.MetricName {
			return
		}
		more = write(l)
	})
	b.WriteByte('}')
	return b.String()
}

func quoteName(s string) string {
	if model.LegacyValidation.IsValidLabelName(s) {
		return s
	}
	return strconv.Quote(s)
}

// truncate cuts s to at most n bytes on a rune boundary, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// appender is the Validator's transaction: it checks every sample against
// the limits before handing it to the next appender, counts what it
// refuses and returns an *Error for it. It is not goroutine-safe (no
// AppenderV2 is).
type appender struct {
	in     *Intake
	next   storage.AppenderV2
	exNext storage.ExemplarAppenderV2 // nil when next has no AppendExemplars

	minT, maxT int64 // accepted sample timestamps (ms), inclusive

	// okRef is the reference next returned for the last series that passed
	// the label checks, and okLabels its label set as appended; callers
	// pass the reference back for the following samples of that series,
	// which then skip the checks.
	okRef    storage.SeriesRef
	okLabels labels.Labels
	exBuf    []exemplar.Exemplar

	// held estimates the memory the transaction pins in the next appender
	// (the batcher keeps every label set, sample and exemplar until
	// Commit). A request may hold no more than it may decompress to
	// (agent.receive.max_decompressed_bytes): remote write 2.0 symbols and
	// OTLP histogram buckets multiply label sets, and a small body must
	// not pin gigabytes.
	held, budget int

	// tenant is the transaction's tenant, lim its label and series
	// limits, and appended the samples and histograms appended, which
	// Commit takes from the tenant's ingestion rate.
	tenant   string
	lim      labelLimits
	appended int
}

// sampleCost approximates what the batcher holds per sample besides the
// label set (its sample record and bookkeeping).
const sampleCost = 128

func (a *appender) reset(in *Intake, next storage.AppenderV2, now time.Time, id string) {
	a.in, a.next = in, next
	a.tenant, a.lim, a.appended = id, in.limitsFor(id), 0
	a.exNext, _ = next.(storage.ExemplarAppenderV2)
	a.minT, a.maxT = math.MinInt64, math.MaxInt64
	if d := in.limits.MaxSampleAge; d > 0 {
		a.minT = now.Add(-d).UnixMilli()
	}
	if d := in.limits.MaxFutureSkew; d > 0 {
		a.maxT = now.Add(d).UnixMilli()
	}
	a.okRef, a.okLabels = 0, labels.EmptyLabels()
	a.held, a.budget = 0, in.cfg.MaxDecompressedBytes
}

// Append implements storage.AppenderV2. A refused sample returns an *Error
// and leaves the transaction as it was; invalid exemplars are dropped and
// reported as a storage.AppendPartialError while the sample is appended.
func (a *appender) Append(ref storage.SeriesRef, ls labels.Labels, st, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, opts storage.AppendV2Options) (storage.SeriesRef, error) {
	newSeries := ref == 0 || ref != a.okRef
	cost := sampleCost + histogramCost(h, fh)
	if newSeries {
		cost += int(ls.ByteSize())
	}
	for i := range opts.Exemplars {
		cost += int(opts.Exemplars[i].Labels.ByteSize()) + 32
	}
	if a.held+cost > a.budget {
		return 0, a.reject(&Error{Reason: ReasonRequestTooLarge, Series: ls,
			Detail: fmt.Sprintf("the request expands to more than %d bytes of series data", a.budget),
			Rule:   "agent.receive.max_decompressed_bytes"})
	}
	if newSeries {
		clean, err := a.checkSeries(ls)
		if err != nil {
			return 0, a.reject(err)
		}
		if clean.ByteSize() != ls.ByteSize() {
			// Empty labels were dropped: the caller's reference (if any)
			// named the label set as sent.
			ls, ref = clean, 0
		}
		if a.lim.maxSeries > 0 && !a.in.tl.series.Admit(a.tenant, ls.Hash(), a.lim.maxSeries) {
			return 0, a.reject(&Error{Reason: ReasonTenantMaxSeries, Series: ls,
				Detail: fmt.Sprintf("the tenant %q has %d active series, its limit; new series are refused until some have been idle for %s",
					a.tenant, a.lim.maxSeries, a.in.tl.o.Config().ActiveWindow),
				Rule: a.lim.rule(overrides.LimitMaxSeries, "limits.max_series")})
		}
	} else {
		ls = a.okLabels
	}
	if err := a.checkTime(ls, t); err != nil {
		return 0, a.reject(err)
	}
	if h != nil {
		// Like Prometheus: reserved schemas above the maximum are senders
		// ahead of us; reduce them rather than refuse them.
		if histogram.IsExponentialSchemaReserved(h.Schema) && h.Schema > histogram.ExponentialSchemaMax {
			if err := h.ReduceResolution(histogram.ExponentialSchemaMax); err != nil {
				return 0, a.reject(a.histogramError(ls, err))
			}
		}
		if err := h.Validate(); err != nil {
			return 0, a.reject(a.histogramError(ls, err))
		}
	}
	if fh != nil {
		if histogram.IsExponentialSchemaReserved(fh.Schema) && fh.Schema > histogram.ExponentialSchemaMax {
			if err := fh.ReduceResolution(histogram.ExponentialSchemaMax); err != nil {
				return 0, a.reject(a.histogramError(ls, err))
			}
		}
		if err := fh.Validate(); err != nil {
			return 0, a.reject(a.histogramError(ls, err))
		}
	}
	var partial *storage.AppendPartialError
	if len(opts.Exemplars) > 0 {
		opts.Exemplars, partial = a.filterExemplars(opts.Exemplars)
	}
	r, err := a.next.Append(ref, ls, st, t, v, h, fh, opts)
	partial, err = partial.Handle(err)
	if err != nil {
		return r, err
	}
	a.okRef, a.okLabels = r, ls
	a.held += cost
	a.appended++
	return r, partial.ToError()
}

func histogramCost(h *histogram.Histogram, fh *histogram.FloatHistogram) int {
	switch {
	case h != nil:
		return 96 + 8*(len(h.PositiveBuckets)+len(h.NegativeBuckets)+len(h.PositiveSpans)+len(h.NegativeSpans)+len(h.CustomValues))
	case fh != nil:
		return 96 + 8*(len(fh.PositiveBuckets)+len(fh.NegativeBuckets)+len(fh.PositiveSpans)+len(fh.NegativeSpans)+len(fh.CustomValues))
	}
	return 0
}

// AppendExemplars implements storage.ExemplarAppenderV2: valid exemplars go
// to the next appender when it takes them separately, and are counted as
// dropped (exemplars_unsupported) when it does not.
func (a *appender) AppendExemplars(ref storage.SeriesRef, ls labels.Labels, es []exemplar.Exemplar) (storage.SeriesRef, error) {
	valid, partial := a.filterExemplars(es)
	if len(valid) == 0 {
		return ref, partial.ToError()
	}
	if a.exNext == nil {
		a.in.m.rejectExemplars(ReasonExemplarsUnsupported, len(valid))
		// Report them by their index in es, as the interface asks.
		if partial == nil {
			partial = &storage.AppendPartialError{}
		}
		for i := range es {
			if !hasIndex(partial, i) {
				partial.ExemplarErrors = append(partial.ExemplarErrors, storage.ExemplarError{Index: i, Err: errExemplarsUnsupported})
			}
		}
		return ref, partial.ToError()
	}
	if ref != 0 && ref == a.okRef {
		ls = a.okLabels // as appended (without empty labels)
	}
	r, err := a.exNext.AppendExemplars(ref, ls, valid)
	partial, err = partial.Handle(err)
	if err != nil {
		return r, err
	}
	return r, partial.ToError()
}

func hasIndex(p *storage.AppendPartialError, i int) bool {
	for _, e := range p.ExemplarErrors {
		if e.Index == i {
			return true
		}
	}
	return false
}

var errExemplarsUnsupported = errors.New("exemplars appended separately from samples are not supported by the agent's batcher")

// Commit implements storage.AppenderV2. A transaction over its tenant's
// ingestion rate is rolled back and returns the *overrides.LimitError.
func (a *appender) Commit() error {
	if err := a.in.allowRate(a.tenant, overrides.SignalMetrics, a.appended); err != nil {
		a.in.tl.discards.Add(a.tenant, overrides.SignalMetrics, overrides.LimitIngestionRate, a.appended)
		_ = a.next.Rollback()
		a.release()
		return err
	}
	err := a.next.Commit()
	a.release()
	return err
}

// Rollback implements storage.AppenderV2.
func (a *appender) Rollback() error {
	err := a.next.Rollback()
	a.release()
	return err
}

func (a *appender) release() {
	in := a.in
	clear(a.exBuf)
	a.exBuf = a.exBuf[:0]
	a.next, a.exNext, a.in = nil, nil, nil
	a.okLabels = labels.EmptyLabels()
	in.appenders.Put(a)
}

func (a *appender) reject(err *Error) error {
	a.in.m.rejectSamples(err.Reason, 1)
	a.in.countLimited(a.tenant, overrides.SignalMetrics, err.Reason, 1)
	return err
}

func (a *appender) histogramError(ls labels.Labels, err error) *Error {
	return &Error{Reason: ReasonInvalidNativeHisto, Series: ls, Detail: "invalid native histogram: " + err.Error(), Rule: ReasonInvalidNativeHisto}
}

// checkSeries applies the label rules and returns the label set to
// append: ls without its empty-valued labels, which Prometheus treats as
// absent (kept, {a=""} and {} would be two series, partitioned apart).
// Labels arrive sorted from every receiver, which lets one pass find
// duplicates.
func (a *appender) checkSeries(ls labels.Labels) (labels.Labels, *Error) {
	lim := &a.lim
	if n := ls.Len(); lim.names > 0 && n > lim.names {
		return ls, &Error{Reason: ReasonMaxLabelNames, Series: ls,
			Detail: fmt.Sprintf("%d label names exceed the limit of %d", n, lim.names),
			Rule:   lim.rule(overrides.LimitMaxLabelNamesPerSeries, "agent.limits.max_label_names_per_series")}
	}
	var (
		bad     *Error
		prev    string
		hasName bool
		empty   bool
		i       int
	)
	ls.Range(func(l labels.Label) {
		if bad != nil {
			return
		}
		first := i == 0
		i++
		p := prev
		prev = l.Name
		switch {
		case l.Name == "" || !utf8.ValidString(l.Name):
			bad = &Error{Reason: ReasonInvalidLabelName, Series: ls,
				Detail: fmt.Sprintf("label name %s is not a non-empty UTF-8 string", strconv.Quote(truncate(l.Name, maxFormattedValue))),
				Rule:   ReasonInvalidLabelName}
		case !first && l.Name == p:
			bad = &Error{Reason: ReasonDuplicateLabelName, Series: ls,
				Detail: fmt.Sprintf("label name %s appears more than once", strconv.Quote(truncate(l.Name, maxFormattedValue))),
				Rule:   ReasonDuplicateLabelName}
		case !first && l.Name < p:
			bad = &Error{Reason: ReasonUnsortedLabels, Series: ls,
				Detail: fmt.Sprintf("label names are not sorted (%s after %s)", strconv.Quote(truncate(l.Name, maxFormattedValue)), strconv.Quote(truncate(p, maxFormattedValue))),
				Rule:   ReasonUnsortedLabels}
		case lim.nameLen > 0 && len(l.Name) > lim.nameLen:
			bad = &Error{Reason: ReasonLabelNameTooLong, Series: ls,
				Detail: fmt.Sprintf("label name %s is %d bytes long, over the limit of %d", strconv.Quote(truncate(l.Name, maxFormattedValue)), len(l.Name), lim.nameLen),
				Rule:   lim.rule(overrides.LimitMaxLabelNameLength, "agent.limits.max_label_name_length")}
		case !utf8.ValidString(l.Value):
			bad = &Error{Reason: ReasonInvalidLabelValue, Series: ls,
				Detail: fmt.Sprintf("value of label %s is not valid UTF-8", strconv.Quote(truncate(l.Name, maxFormattedValue))),
				Rule:   ReasonInvalidLabelValue}
		case lim.valueLen > 0 && len(l.Value) > lim.valueLen:
			bad = &Error{Reason: ReasonLabelValueTooLong, Series: ls,
				Detail: fmt.Sprintf("value of label %s is %d bytes long, over the limit of %d", strconv.Quote(truncate(l.Name, maxFormattedValue)), len(l.Value), lim.valueLen),
				Rule:   lim.rule(overrides.LimitMaxLabelValueLength, "agent.limits.max_label_value_length")}
		case l.Name == labels.MetricName:
			hasName = l.Value != ""
		case l.Value == "":
			empty = true
		}
	})
	if bad != nil {
		return ls, bad
	}
	if !hasName {
		return ls, &Error{Reason: ReasonMissingMetricName, Series: ls,
			Detail: "the series has no metric name (" + labels.MetricName + " label)",
			Rule:   ReasonMissingMetricName}
	}
	if empty {
		return ls.WithoutEmpty(), nil
	}
	return ls, nil
}

func (a *appender) checkTime(ls labels.Labels, t int64) *Error {
	switch {
	case t < a.minT:
		return &Error{Reason: ReasonSampleTooOld, Series: ls,
			Detail: fmt.Sprintf("sample timestamp %s is older than the limit of %s", formatMillis(t), a.in.limits.MaxSampleAge),
			Rule:   "agent.limits.max_sample_age"}
	case t > a.maxT:
		return &Error{Reason: ReasonSampleTooNew, Series: ls,
			Detail: fmt.Sprintf("sample timestamp %s is more than %s in the future", formatMillis(t), a.in.limits.MaxFutureSkew),
			Rule:   "agent.limits.max_future_skew"}
	}
	return nil
}

func formatMillis(t int64) string {
	return time.UnixMilli(t).UTC().Format(time.RFC3339Nano)
}

// filterExemplars returns the exemplars that pass the rules, reporting
// the index of each one dropped. The caller's slice is not modified: a
// copy is made only when something is dropped.
func (a *appender) filterExemplars(es []exemplar.Exemplar) ([]exemplar.Exemplar, *storage.AppendPartialError) {
	var partial *storage.AppendPartialError
	kept := es
	for i := range es {
		reason, err := a.checkExemplar(&es[i])
		if err == nil {
			if partial != nil {
				kept = append(kept, es[i])
			}
			continue
		}
		if partial == nil {
			partial = &storage.AppendPartialError{}
			a.exBuf = append(a.exBuf[:0], es[:i]...)
			kept = a.exBuf
		}
		a.in.m.rejectExemplars(reason, 1)
		partial.ExemplarErrors = append(partial.ExemplarErrors, storage.ExemplarError{Index: i, Err: err})
	}
	if partial != nil {
		a.exBuf = kept
	}
	return kept, partial
}

func (a *appender) checkExemplar(e *exemplar.Exemplar) (string, error) {
	if e.Ts < a.minT || e.Ts > a.maxT {
		return ReasonExemplarOutOfBounds, fmt.Errorf("%w: exemplar timestamp %s is outside the accepted window", storage.ErrOutOfBounds, formatMillis(e.Ts))
	}
	runes := 0
	var bad bool
	e.Labels.Range(func(l labels.Label) {
		if l.Name == "" || !utf8.ValidString(l.Name) || !utf8.ValidString(l.Value) {
			bad = true
		}
		runes += utf8.RuneCountInString(l.Name) + utf8.RuneCountInString(l.Value)
	})
	if bad {
		return ReasonExemplarInvalidLabels, errors.New("exemplar labels are not valid UTF-8")
	}
	if runes > exemplar.ExemplarMaxLabelSetLength {
		return ReasonExemplarLabelsTooLong, storage.ErrExemplarLabelLength
	}
	return "", nil
}
