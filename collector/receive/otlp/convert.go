package otlp

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/otlptranslator"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/storage/remote/otlptranslator/prometheusremotewrite"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/pharos-obs/pharos/collector/receive"
	"github.com/pharos-obs/pharos/internal/overrides"
)

// targetInfo is the family name the translator gives resource metadata.
const targetInfo = "target_info"

// quantileLabel is the label of a summary's quantile series.
const quantileLabel = "quantile"

// lookbackDelta spaces target_info samples (half of it) over a request's
// time range; Prometheus's default query lookback.
const lookbackDelta = 5 * time.Minute

// maxTargetInfoSpan bounds the time range the translator fills with
// target_info samples (one per lookbackDelta/2 between a resource's
// earliest and latest data point). Without it, one data point at time 0
// and one now make a tiny request produce ten million target_info
// samples. Wider resources get no target_info in that request.
const maxTargetInfoSpan = 24 * time.Hour

// maxReportedErrors bounds the rejections a response lists.
const maxReportedErrors = 10

func translatorSettings(cfg Config) prometheusremotewrite.Settings {
	strategy := otlptranslator.TranslationStrategyOption(cfg.TranslationStrategy)
	return prometheusremotewrite.Settings{
		AddMetricSuffixes: strategy.ShouldAddSuffixes(),
		AllowUTF8:         !strategy.ShouldEscape(),
		PromoteResourceAttributes: prometheusremotewrite.NewPromoteResourceAttributes(config.OTLPConfig{
			PromoteResourceAttributes: cfg.PromoteResourceAttributes,
		}),
		KeepIdentifyingResourceAttributes: cfg.KeepIdentifyingResourceAttributes,
		ConvertHistogramsToNHCB:           cfg.ConvertHistogramsToNHCB,
		PromoteScopeMetadata:              cfg.PromoteScopeMetadata,
		LookbackDelta:                     lookbackDelta,
	}
}

// outcome is what a request did, for its response and metrics.
type outcome struct {
	dataPoints         int // in the request
	rejectedDataPoints int
	floats, histograms int // samples written
	exemplars          int
	errs               []string // the first rejections, each naming series and rule
	nErrs              int
}

// allRejected: nothing of the request's data points was written, while
// something was refused; OTLP wants an error status then, not a partial
// success.
func (o *outcome) allRejected() bool {
	return o.rejectedDataPoints > 0 && o.rejectedDataPoints >= o.dataPoints
}

func (o *outcome) add(msg string) {
	o.nErrs++
	if len(o.errs) < maxReportedErrors {
		o.errs = append(o.errs, msg)
	}
}

// message joins the first rejections for an error_message or status.
func (o *outcome) message() string {
	if o.nErrs == 0 {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d of %d data points rejected: ", o.rejectedDataPoints, o.dataPoints)
	b.WriteString(strings.Join(o.errs, "; "))
	if o.nErrs > len(o.errs) {
		fmt.Fprintf(&b, "; … and %d more", o.nErrs-len(o.errs))
	}
	return b.String()
}

// dpKey identifies the OTLP data point an append belongs to: the
// translator appends all series of one data point (a histogram's
// _bucket, _sum and _count, a summary's quantiles) one after the other,
// with the same family, timestamp and attributes.
type dpKey struct {
	family uint64
	t      int64
	attrs  uint64
}

// recorder sits between the translator and the Intake's validating
// appender. The translator stops converting a metric at the first append
// error, so the recorder swallows rule rejections (recording them) to let
// the rest of the request through, and keeps the first infrastructure
// error, which fails the whole request. It also groups appends into OTLP
// data points to report rejected_data_points as the spec counts them.
type recorder struct {
	next  storage.AppenderV2
	fatal error
	out   outcome

	cur         dpKey
	inGroup     bool
	curRejected bool
	accepted    int // data points whose series were all accepted
	rejected    int // data points with a series refused by the validator
	hashBuf     []byte
}

// Append implements storage.AppenderV2; see recorder.
func (r *recorder) Append(ref storage.SeriesRef, ls labels.Labels, st, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, opts storage.AppendV2Options) (storage.SeriesRef, error) {
	if r.fatal != nil {
		return 0, r.fatal
	}
	isTarget := opts.MetricFamilyName == targetInfo
	if !isTarget {
		r.track(opts.MetricFamilyName, t, ls)
	}
	newRef, err := r.next.Append(ref, ls, st, t, v, h, fh, opts)
	var rejected *receive.Error
	switch {
	case err == nil:
		r.written(h, fh)
		r.out.exemplars += len(opts.Exemplars)
	case errors.As(err, &rejected):
		r.out.add(rejected.Error())
		if !isTarget {
			r.curRejected = true
		}
		return 0, nil
	case errors.Is(err, (*storage.AppendPartialError)(nil)):
		r.written(h, fh)
		var p *storage.AppendPartialError
		errors.As(err, &p)
		r.out.exemplars += max(0, len(opts.Exemplars)-len(p.ExemplarErrors))
	default:
		r.fatal = err
		return 0, err
	}
	return newRef, nil
}

func (r *recorder) written(h *histogram.Histogram, fh *histogram.FloatHistogram) {
	if h != nil || fh != nil {
		r.out.histograms++
	} else {
		r.out.floats++
	}
}

// track closes the current data point when this append starts another.
func (r *recorder) track(family string, t int64, ls labels.Labels) {
	var attrs uint64
	attrs, r.hashBuf = ls.HashWithoutLabels(r.hashBuf, labels.BucketLabel, quantileLabel)
	k := dpKey{family: xxhash.Sum64String(family), t: t, attrs: attrs}
	if r.inGroup && k == r.cur {
		return
	}
	r.closeGroup()
	r.cur, r.inGroup, r.curRejected = k, true, false
}

func (r *recorder) closeGroup() {
	switch {
	case !r.inGroup:
	case r.curRejected:
		r.rejected++
	default:
		r.accepted++
	}
	r.inGroup = false
}

// Commit implements storage.AppenderV2.
func (r *recorder) Commit() error { return r.next.Commit() }

// Rollback implements storage.AppenderV2.
func (r *recorder) Rollback() error { return r.next.Rollback() }

// errUnavailable marks a request that was not stored for a reason that
// is not the sender's (the batcher is stopping): retry later.
var errUnavailable = errors.New("not stored, retry later")

// consume translates md and appends it in one transaction. It returns an
// error wrapping errUnavailable when nothing was stored and the sender
// should retry; rejections are in the outcome.
func (m *Metrics) consume(ctx context.Context, md pmetric.Metrics, proto receive.Protocol) (outcome, error) {
	rec := &recorder{next: m.in.AppenderV2(ctx)}
	settings := m.settings
	var span time.Duration
	rec.out.dataPoints, span = scan(md)
	if span > maxTargetInfoSpan {
		settings.DisableTargetInfo = true
		rec.out.add(fmt.Sprintf("target_info not written: the data points of a resource span %s, more than %s", span, maxTargetInfoSpan))
	}
	conv, _ := m.converters.Get().(*prometheusremotewrite.PrometheusConverter)
	if conv == nil {
		conv = prometheusremotewrite.NewPrometheusConverter(nil)
	}
	conv.Reset(rec)
	annots, convErr := conv.FromMetrics(ctx, md, settings)
	conv.Reset(nil)
	m.converters.Put(conv)
	rec.closeGroup()

	if rec.fatal != nil {
		_ = rec.Rollback()
		return outcome{}, fmt.Errorf("%w: %v", errUnavailable, rec.fatal)
	}
	if ctx.Err() != nil {
		_ = rec.Rollback()
		return outcome{}, fmt.Errorf("%w: %v", errUnavailable, ctx.Err())
	}
	if err := rec.Commit(); err != nil {
		if errors.Is(err, overrides.ErrLimited) {
			return outcome{}, err
		}
		return outcome{}, fmt.Errorf("%w: commit: %v", errUnavailable, err)
	}
	out := rec.out
	if convErr != nil {
		// The translator refused whole metrics (e.g. delta temporality,
		// which Prometheus does not store); each error names its metric.
		for _, err := range unjoin(convErr) {
			out.add("translate: " + err.Error())
		}
	}
	if out.nErrs > 0 {
		out.rejectedDataPoints = max(0, out.dataPoints-rec.accepted)
		// The validator counted its refusals; the data points it did not
		// refuse and that were not written, the translator refused.
		if translated := out.rejectedDataPoints - rec.rejected; translated > 0 {
			m.in.CountRejected(receive.ReasonTranslation, translated)
		}
	}
	m.in.CountAccepted(proto, out.floats, out.histograms, out.exemplars)
	if len(annots) > 0 {
		ws, _ := annots.AsStrings("", 5, 0)
		m.logger.Debug("OTLP translation warnings", "protocol", proto, "warnings", ws)
	}
	return out, nil
}

// scan counts md's data points and finds the widest time range of one
// resource's data points, as the translator measures it for target_info.
func scan(md pmetric.Metrics) (points int, widest time.Duration) {
	rms := md.ResourceMetrics()
	for i := range rms.Len() {
		lo, hi := uint64(math.MaxUint64), uint64(0)
		see := func(ts pcommon.Timestamp) {
			lo, hi = min(lo, uint64(ts)), max(hi, uint64(ts))
			points++
		}
		sms := rms.At(i).ScopeMetrics()
		for j := range sms.Len() {
			ms := sms.At(j).Metrics()
			for k := range ms.Len() {
				m := ms.At(k)
				switch m.Type() {
				case pmetric.MetricTypeGauge:
					for _, p := range m.Gauge().DataPoints().All() {
						see(p.Timestamp())
					}
				case pmetric.MetricTypeSum:
					for _, p := range m.Sum().DataPoints().All() {
						see(p.Timestamp())
					}
				case pmetric.MetricTypeHistogram:
					for _, p := range m.Histogram().DataPoints().All() {
						see(p.Timestamp())
					}
				case pmetric.MetricTypeExponentialHistogram:
					for _, p := range m.ExponentialHistogram().DataPoints().All() {
						see(p.Timestamp())
					}
				case pmetric.MetricTypeSummary:
					for _, p := range m.Summary().DataPoints().All() {
						see(p.Timestamp())
					}
				}
			}
		}
		if hi > lo {
			widest = max(widest, time.Duration(min(hi-lo, math.MaxInt64)))
		}
	}
	return points, widest
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}
