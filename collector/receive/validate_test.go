package receive

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"

	"github.com/pharos-obs/pharos/collector/receive/receivetest"
)

func defaults() (Config, Limits) {
	fs := flag.NewFlagSet("test", flag.PanicOnError)
	var c Config
	var l Limits
	c.RegisterFlags(fs)
	l.RegisterFlags(fs)
	return c, l
}

var testNow = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

func newIntake(t testing.TB, next storage.AppendableV2, adjust func(*Config, *Limits)) (*Intake, *prometheus.Registry) {
	t.Helper()
	c, l := defaults()
	if adjust != nil {
		adjust(&c, &l)
	}
	reg := prometheus.NewRegistry()
	in, err := New(c, l, next, slog.New(slog.DiscardHandler), reg)
	require.NoError(t, err)
	in.now = func() time.Time { return testNow }
	return in, reg
}

// unsorted builds a label set as given, without sorting or deduplicating
// (labels.FromStrings would fix what these tests break).
func unsorted(kv ...string) labels.Labels {
	b := labels.NewScratchBuilder(len(kv) / 2)
	for i := 0; i < len(kv); i += 2 {
		b.Add(kv[i], kv[i+1])
	}
	return b.Labels()
}

func TestValidatorRules(t *testing.T) {
	ms := testNow.UnixMilli()
	many := []string{"__name__", "m"}
	for i := range 30 {
		many = append(many, "l"+strings.Repeat("x", i), "v")
	}
	invalidHist := &histogram.Histogram{Count: 1, PositiveSpans: []histogram.Span{{Length: 1}}, PositiveBuckets: []int64{3}}
	cases := []struct {
		name   string
		ls     labels.Labels
		t      int64
		h      *histogram.Histogram
		reason string
		msg    string
	}{
		{"ok", labels.FromStrings("__name__", "ok", "a", "b"), ms, nil, "", ""},
		{"ok at the age limit", labels.FromStrings("__name__", "ok"), ms - time.Hour.Milliseconds(), nil, "", ""},
		{"ok at the skew limit", labels.FromStrings("__name__", "ok"), ms + (10 * time.Minute).Milliseconds(), nil, "", ""},
		{"max label names", unsorted(many...), ms, nil, ReasonMaxLabelNames, "31 label names exceed the limit of 30 (agent.limits.max_label_names_per_series)"},
		{"name length", labels.FromStrings("__name__", "m", strings.Repeat("n", 1025), "v"), ms, nil, ReasonLabelNameTooLong, "is 1025 bytes long, over the limit of 1024 (agent.limits.max_label_name_length)"},
		{"value length", labels.FromStrings("__name__", "m", "n", strings.Repeat("v", 2049)), ms, nil, ReasonLabelValueTooLong, `value of label "n" is 2049 bytes long, over the limit of 2048 (agent.limits.max_label_value_length)`},
		{"too old", labels.FromStrings("__name__", "m"), ms - time.Hour.Milliseconds() - 1, nil, ReasonSampleTooOld, "sample timestamp 2026-05-01T10:59:59.999Z is older than the limit of 1h0m0s (agent.limits.max_sample_age)"},
		{"too new", labels.FromStrings("__name__", "m"), ms + (10 * time.Minute).Milliseconds() + 1, nil, ReasonSampleTooNew, "is more than 10m0s in the future (agent.limits.max_future_skew)"},
		{"no name", labels.FromStrings("a", "b"), ms, nil, ReasonMissingMetricName, "series {a=\"b\"}: the series has no metric name (__name__ label) (missing_metric_name)"},
		{"empty name", labels.FromStrings("__name__", "", "a", "b"), ms, nil, ReasonMissingMetricName, "(missing_metric_name)"},
		{"empty label name", unsorted("", "v", "__name__", "m"), ms, nil, ReasonInvalidLabelName, "(invalid_label_name)"},
		{"invalid label name", unsorted("__name__", "m", "a\xff", "v"), ms, nil, ReasonInvalidLabelName, `label name "a\xff" is not a non-empty UTF-8 string (invalid_label_name)`},
		{"invalid value", labels.FromStrings("__name__", "m", "a", "\xc3\x28"), ms, nil, ReasonInvalidLabelValue, `value of label "a" is not valid UTF-8 (invalid_label_value)`},
		{"invalid metric name", labels.FromStrings("__name__", "m\xff"), ms, nil, ReasonInvalidLabelValue, `value of label "__name__" is not valid UTF-8`},
		{"duplicate", unsorted("__name__", "m", "a", "1", "a", "2"), ms, nil, ReasonDuplicateLabelName, `label name "a" appears more than once (duplicate_label_name)`},
		{"unsorted", unsorted("__name__", "m", "b", "1", "a", "2"), ms, nil, ReasonUnsortedLabels, `label names are not sorted ("a" after "b") (unsorted_labels)`},
		{"utf-8 names are fine", labels.FromStrings("__name__", "http.server.duration", "http.method", "GET"), ms, nil, "", ""},
		{"valid histogram", labels.FromStrings("__name__", "h"), ms, &histogram.Histogram{Count: 3, PositiveSpans: []histogram.Span{{Length: 1}}, PositiveBuckets: []int64{3}}, "", ""},
		{"invalid histogram", labels.FromStrings("__name__", "h"), ms, invalidHist, ReasonInvalidNativeHisto, "(invalid_native_histogram)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec := &receivetest.Recorder{}
			in, reg := newIntake(t, rec, nil)
			app := in.AppenderV2(context.Background())
			_, err := app.Append(0, c.ls, 0, c.t, 1, c.h, nil, storage.AOptions{})
			require.NoError(t, app.Commit())
			if c.reason == "" {
				require.NoError(t, err)
				require.Len(t, rec.Samples(), 1)
				return
			}
			var rej *Error
			require.ErrorAs(t, err, &rej)
			require.ErrorIs(t, err, ErrRejected)
			require.Equal(t, c.reason, rej.Reason)
			require.Contains(t, err.Error(), c.msg)
			require.True(t, strings.HasPrefix(err.Error(), "series {"), err.Error())
			require.Empty(t, rec.Samples())
			require.InDelta(t, 1, testutil.ToFloat64(mustCounter(t, reg, c.reason)), 0)
		})
	}
}

func mustCounter(t *testing.T, reg *prometheus.Registry, reason string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != "pharos_agent_rejected_samples_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() == reason {
				c := prometheus.NewCounter(prometheus.CounterOpts{Name: "x"})
				c.Add(m.GetCounter().GetValue())
				return c
			}
		}
	}
	t.Fatalf("no counter for reason %q", reason)
	return nil
}

func TestValidatorDisabledLimits(t *testing.T) {
	in, _ := newIntake(t, receivetest.Discard{}, func(_ *Config, l *Limits) { *l = Limits{} })
	app := in.AppenderV2(context.Background())
	many := []string{"__name__", strings.Repeat("m", 5000)}
	for i := range 100 {
		many = append(many, "l"+strings.Repeat("x", i), strings.Repeat("v", 5000))
	}
	_, err := app.Append(0, labels.FromStrings(many...), 0, 0, 1, nil, nil, storage.AOptions{})
	require.NoError(t, err, "0 turns every limit off")
	require.NoError(t, app.Rollback())
}

func TestValidatorExemplars(t *testing.T) {
	rec := &receivetest.Recorder{}
	in, reg := newIntake(t, rec, nil)
	ms := testNow.UnixMilli()
	es := []exemplar.Exemplar{
		{Labels: labels.FromStrings("trace_id", "a"), Value: 1, Ts: ms - 10, HasTs: true},
		{Labels: labels.FromStrings("trace_id", strings.Repeat("x", 130)), Value: 1, Ts: ms - 5, HasTs: true},
		{Labels: labels.FromStrings("trace_id", "old"), Value: 1, Ts: ms - 2*time.Hour.Milliseconds(), HasTs: true},
		{Labels: labels.FromStrings("trace_id", "\xff"), Value: 1, Ts: ms, HasTs: true},
		{Labels: labels.FromStrings("trace_id", "b"), Value: 2, Ts: ms, HasTs: true},
	}
	orig := append([]exemplar.Exemplar(nil), es...)
	app := in.AppenderV2(context.Background())
	_, err := app.Append(0, labels.FromStrings("__name__", "m"), 0, ms, 1, nil, nil, storage.AOptions{Exemplars: es})
	var partial *storage.AppendPartialError
	require.ErrorAs(t, err, &partial, "the sample is appended, bad exemplars are reported")
	require.Len(t, partial.ExemplarErrors, 3)
	require.Equal(t, []int{1, 2, 3}, []int{partial.ExemplarErrors[0].Index, partial.ExemplarErrors[1].Index, partial.ExemplarErrors[2].Index})
	require.NoError(t, app.Commit())
	require.Equal(t, orig, es, "the caller's slice is not modified")

	ss := rec.Samples()
	require.Len(t, ss, 1)
	require.Len(t, ss[0].Exemplars, 2)
	require.Equal(t, "a", ss[0].Exemplars[0].Labels.Get("trace_id"))
	require.Equal(t, "b", ss[0].Exemplars[1].Labels.Get("trace_id"))

	gathered, err := reg.Gather()
	require.NoError(t, err)
	var dropped float64
	for _, mf := range gathered {
		if mf.GetName() == "pharos_agent_rejected_exemplars_total" {
			for _, m := range mf.GetMetric() {
				dropped += m.GetCounter().GetValue()
			}
		}
	}
	require.InDelta(t, 3, dropped, 0)
}

// The batcher takes exemplars only inline; AppendExemplars reports them
// dropped (counted) instead of failing.
func TestValidatorAppendExemplarsUnsupported(t *testing.T) {
	rec := &receivetest.Recorder{}
	in, reg := newIntake(t, rec, nil)
	app := in.AppenderV2(context.Background()).(storage.ExemplarAppenderV2)
	ls := labels.FromStrings("__name__", "m")
	ref, err := app.Append(0, ls, 0, testNow.UnixMilli(), 1, nil, nil, storage.AOptions{})
	require.NoError(t, err)
	_, err = app.AppendExemplars(ref, ls, []exemplar.Exemplar{{Labels: labels.FromStrings("t", "1"), Ts: testNow.UnixMilli(), HasTs: true}})
	var partial *storage.AppendPartialError
	require.ErrorAs(t, err, &partial)
	require.Len(t, partial.ExemplarErrors, 1)
	require.NoError(t, app.Commit())
	require.Len(t, rec.Samples(), 1)
	mfs, err := reg.Gather()
	require.NoError(t, err)
	found := false
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			if mf.GetName() == "pharos_agent_rejected_exemplars_total" && m.GetLabel()[0].GetValue() == ReasonExemplarsUnsupported {
				require.InDelta(t, 1, m.GetCounter().GetValue(), 0)
				found = true
			}
		}
	}
	require.True(t, found)
}

// A series that passed its checks is not checked again for the samples
// that follow with its reference.
func TestValidatorRefSkipsLabelChecks(t *testing.T) {
	in, _ := newIntake(t, receivetest.Discard{}, nil)
	app := in.AppenderV2(context.Background())
	ls := labels.FromStrings("__name__", "m")
	ref, err := app.Append(0, ls, 0, testNow.UnixMilli(), 1, nil, nil, storage.AOptions{})
	require.NoError(t, err)
	allocs := testing.AllocsPerRun(100, func() {
		_, err = app.Append(ref, ls, 0, testNow.UnixMilli(), 1, nil, nil, storage.AOptions{})
	})
	require.NoError(t, err)
	require.Zero(t, allocs)
	// Timestamps are still checked.
	_, err = app.Append(ref, ls, 0, 0, 1, nil, nil, storage.AOptions{})
	require.ErrorIs(t, err, ErrRejected)
	require.NoError(t, app.Rollback())
}

func TestFormatSeries(t *testing.T) {
	require.Equal(t, `{__name__="m", a="b", "x.y"="z"}`, FormatSeries(labels.FromStrings("a", "b", "x.y", "z", "__name__", "m")))
	long := FormatSeries(labels.FromStrings("__name__", "m", "a", strings.Repeat("é", 100), "b", strings.Repeat("v", 300), "c", "d", "e", "f", "g", "h"))
	require.Less(t, len(long), 400)
	require.Contains(t, long, "…")
	require.True(t, strings.HasPrefix(long, `{__name__="m", a="ééé`))
	require.Equal(t, "{}", FormatSeries(labels.EmptyLabels()))
}

func TestConfigValidate(t *testing.T) {
	c, l := defaults()
	require.NoError(t, c.Validate())
	require.NoError(t, l.Validate())
	require.Equal(t, 30, l.MaxLabelNamesPerSeries)
	require.Equal(t, time.Hour, l.MaxSampleAge)

	c.MaxRequestBytes = 0
	c.MaxInflightRequests = 0
	c.RetryAfter = -time.Second
	err := c.Validate()
	require.ErrorContains(t, err, "agent.receive.max_request_bytes")
	require.ErrorContains(t, err, "agent.receive.max_inflight_requests")
	require.ErrorContains(t, err, "agent.receive.retry_after")

	l.MaxLabelValueLength = -1
	l.MaxFutureSkew = -time.Second
	err = l.Validate()
	require.ErrorContains(t, err, "agent.limits.max_label_value_length")
	require.ErrorContains(t, err, "agent.limits.max_future_skew")

	_, err = New(c, l, receivetest.Discard{}, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	require.Error(t, err)
}

func TestAdmission(t *testing.T) {
	in, _ := newIntake(t, receivetest.Discard{}, func(c *Config, _ *Limits) { c.MaxInflightRequests = 2; c.RetryAfter = 1500 * time.Millisecond })
	require.True(t, in.TryAcquire())
	require.False(t, in.Saturated())
	require.True(t, in.TryAcquire())
	require.True(t, in.Saturated())
	require.False(t, in.TryAcquire())
	in.Release()
	require.True(t, in.TryAcquire())
	in.Release()
	in.Release()
	require.False(t, in.Saturated())
	require.Equal(t, "2", in.RetryAfterHeader(), "rounded up to whole seconds")
}

var errSentinel = errors.New("sentinel")

// Errors of the next appender (the batcher stopping) pass through as they
// are: they are not rejections.
func TestValidatorPassesNextErrors(t *testing.T) {
	rec := &receivetest.Recorder{CommitErr: errSentinel}
	in, _ := newIntake(t, rec, nil)
	app := in.AppenderV2(context.Background())
	_, err := app.Append(0, labels.FromStrings("__name__", "m"), 0, testNow.UnixMilli(), 1, nil, nil, storage.AOptions{})
	require.NoError(t, err)
	require.ErrorIs(t, app.Commit(), errSentinel)
}

// A transaction may not pin more than max_decompressed_bytes of series
// data in the batcher, whatever the protocol multiplies.
func TestValidatorHoldBudget(t *testing.T) {
	rec := &receivetest.Recorder{}
	in, _ := newIntake(t, rec, func(c *Config, _ *Limits) { c.MaxDecompressedBytes = 64 << 10 })
	app := in.AppenderV2(context.Background())
	big := strings.Repeat("v", 2000)
	var rejected *Error
	n := 0
	for i := range 100 {
		_, err := app.Append(0, labels.FromStrings("__name__", "m", "i", strings.Repeat("x", i), "v", big), 0, testNow.UnixMilli(), 1, nil, nil, storage.AOptions{})
		if err != nil {
			require.ErrorAs(t, err, &rejected)
			break
		}
		n++
	}
	require.NotNil(t, rejected)
	require.Equal(t, ReasonRequestTooLarge, rejected.Reason)
	require.Contains(t, rejected.Error(), "the request expands to more than 65536 bytes of series data (agent.receive.max_decompressed_bytes)")
	require.Greater(t, n, 20)
	require.Less(t, n, 40)
	require.NoError(t, app.Commit())
	require.Len(t, rec.Samples(), n)
}

// Empty-valued labels are absent labels in Prometheus: dropped, so that
// {a=""} and {} are one series (and one partition).
func TestValidatorDropsEmptyLabels(t *testing.T) {
	rec := &receivetest.Recorder{}
	in, _ := newIntake(t, rec, nil)
	app := in.AppenderV2(context.Background())
	sent := labels.FromStrings("__name__", "m", "a", "", "b", "x")
	ref, err := app.Append(0, sent, 0, testNow.UnixMilli(), 1, nil, nil, storage.AOptions{})
	require.NoError(t, err)
	_, err = app.Append(ref, sent, 0, testNow.UnixMilli()+1, 2, nil, nil, storage.AOptions{})
	require.NoError(t, err)
	require.NoError(t, app.Commit())
	want := labels.FromStrings("__name__", "m", "b", "x")
	ss := rec.Samples()
	require.Len(t, ss, 2)
	require.Equal(t, want, ss[0].Labels)
	require.Equal(t, want, ss[1].Labels)
}
