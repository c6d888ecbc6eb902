package promapi

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http/httptest"
	"testing"
	"unicode/utf8"

	jsoniter "github.com/json-iterator/go"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/util/jsonutil"
	"github.com/stretchr/testify/require"

	"github.com/pharos-obs/pharos/internal/jsonappend"
)

// The reference encoder below walks values the way Prometheus's JSON codec
// (web/api/v1/json_codec.go) does, with the same primitives (jsoniter and util/jsonutil).
// Comparing against it byte for byte is what shows our hand-written encoder is a drop-in.

var refJSON = jsoniter.ConfigCompatibleWithStandardLibrary

func refLabels(ls labels.Labels, s *jsoniter.Stream) {
	s.WriteObjectStart()
	i := 0
	ls.Range(func(l labels.Label) {
		if i > 0 {
			s.WriteMore()
		}
		i++
		s.WriteString(l.Name)
		s.WriteRaw(":")
		s.WriteString(l.Value)
	})
	s.WriteObjectEnd()
}

func refSample(smp promql.Sample, s *jsoniter.Stream) {
	s.WriteObjectStart()
	s.WriteObjectField("metric")
	refLabels(smp.Metric, s)
	s.WriteMore()
	if smp.H == nil {
		s.WriteObjectField("value")
	} else {
		s.WriteObjectField("histogram")
	}
	s.WriteArrayStart()
	jsonutil.MarshalTimestamp(smp.T, s)
	s.WriteMore()
	if smp.H == nil {
		jsonutil.MarshalFloat(smp.F, s)
	} else {
		jsonutil.MarshalHistogram(smp.H, s)
	}
	s.WriteArrayEnd()
	s.WriteObjectEnd()
}

func refSeries(ser promql.Series, s *jsoniter.Stream) {
	s.WriteObjectStart()
	s.WriteObjectField("metric")
	refLabels(ser.Metric, s)
	for i, p := range ser.Floats {
		s.WriteMore()
		if i == 0 {
			s.WriteObjectField("values")
			s.WriteArrayStart()
		}
		s.WriteArrayStart()
		jsonutil.MarshalTimestamp(p.T, s)
		s.WriteMore()
		jsonutil.MarshalFloat(p.F, s)
		s.WriteArrayEnd()
	}
	if len(ser.Floats) > 0 {
		s.WriteArrayEnd()
	}
	for i, p := range ser.Histograms {
		s.WriteMore()
		if i == 0 {
			s.WriteObjectField("histograms")
			s.WriteArrayStart()
		}
		s.WriteArrayStart()
		jsonutil.MarshalTimestamp(p.T, s)
		s.WriteMore()
		jsonutil.MarshalHistogram(p.H, s)
		s.WriteArrayEnd()
	}
	if len(ser.Histograms) > 0 {
		s.WriteArrayEnd()
	}
	s.WriteObjectEnd()
}

func refVector(v promql.Vector) string {
	s := refJSON.BorrowStream(nil)
	defer refJSON.ReturnStream(s)
	s.WriteArrayStart()
	for i, smp := range v {
		if i > 0 {
			s.WriteMore()
		}
		refSample(smp, s)
	}
	s.WriteArrayEnd()
	return string(s.Buffer())
}

func refMatrix(m promql.Matrix) string {
	s := refJSON.BorrowStream(nil)
	defer refJSON.ReturnStream(s)
	s.WriteArrayStart()
	for i, ser := range m {
		if i > 0 {
			s.WriteMore()
		}
		refSeries(ser, s)
	}
	s.WriteArrayEnd()
	return string(s.Buffer())
}

// encodeData runs appendData into a buffer, the way a response is written.
func encodeData(t testing.TB, data any) string {
	t.Helper()
	rec := httptest.NewRecorder()
	e := getEncoder(rec, nil)
	defer putEncoder(e)
	(&API{}).appendData(e, data)
	e.flush(true)
	require.NoError(t, e.err)
	return rec.Body.String()
}

var (
	specialFloats = []float64{0, math.Copysign(0, -1), 1, -1, 42, -1234567, 1 << 52, 1<<53 - 1, 1 << 53, -(1<<53 - 1), 1 << 60, 1e15, 1e16, 0.1, 1e-7, -1e-7, 1e-6, 123456789.123, 1e20, 1e21, -1e21, 1e300, math.MaxFloat64, math.SmallestNonzeroFloat64, math.Inf(1), math.Inf(-1), math.NaN()}
	specialTimes  = []int64{0, 1, 10, 100, 999, 1000, 1001, 1010, 1100, -1, -1000, -1001, t0, t0 + 781, t0 + 80, math.MaxInt64, math.MinInt64 + 1}
	specialLabels = []labels.Labels{
		labels.EmptyLabels(),
		labels.FromStrings("__name__", "up"),
		labels.FromStrings("__name__", "up", "job", "api", "instance", "10.0.0.1:9100"),
		labels.FromStrings("a", `quote" backslash\ <html> & amp`, "b", "tab\tnewline\nreturn\rbell\afeed\fback\b\x00\x1f", "c", "ünïcødé ☃ \u2028\u2029 𝄞"),
		labels.FromStrings("service.name", "checkout", "k8s.pod/name", "p-1"),
	}
)

func testFloatHistograms() []*histogram.FloatHistogram {
	return []*histogram.FloatHistogram{
		testHistogram(0).ToFloat(nil),
		{ // Negative and positive buckets, a zero bucket, schema 1.
			Schema: 1, ZeroThreshold: 0.01, ZeroCount: 2, Count: 30, Sum: -2.5,
			PositiveSpans:   []histogram.Span{{Offset: -2, Length: 3}, {Offset: 2, Length: 1}},
			PositiveBuckets: []float64{1, 0, 3, 4},
			NegativeSpans:   []histogram.Span{{Offset: 0, Length: 2}},
			NegativeBuckets: []float64{5, 15},
		},
		{ // Custom buckets (NHCB): bounds are inclusive upper, exclusive lower.
			Schema: histogram.CustomBucketsSchema, Count: 6, Sum: 7.5,
			PositiveSpans:   []histogram.Span{{Offset: 0, Length: 3}},
			PositiveBuckets: []float64{1, 2, 3},
			CustomValues:    []float64{0.1, 1},
		},
		{Count: 0, Sum: 0}, // Empty: no "buckets".
		{Count: math.Inf(1), Sum: math.NaN(), ZeroCount: math.Inf(1), ZeroThreshold: 1e-128},
	}
}

func TestEncodeVectorMatchesPrometheus(t *testing.T) {
	var v promql.Vector
	for i, ls := range specialLabels {
		for j, f := range specialFloats {
			v = append(v, promql.Sample{Metric: ls, T: specialTimes[(i+j)%len(specialTimes)], F: f})
		}
	}
	for i, h := range testFloatHistograms() {
		v = append(v, promql.Sample{Metric: specialLabels[i%len(specialLabels)], T: specialTimes[i], H: h})
	}
	for i := 0; i <= len(v); i++ { // Every prefix, including the empty vector.
		want := `{"resultType":"vector","result":` + refVector(v[:i]) + `}`
		require.Equal(t, want, encodeData(t, &queryData{value: v[:i]}))
	}
}

func TestEncodeMatrixMatchesPrometheus(t *testing.T) {
	var m promql.Matrix
	for i, ls := range specialLabels {
		s := promql.Series{Metric: ls}
		for j, f := range specialFloats {
			s.Floats = append(s.Floats, promql.FPoint{T: specialTimes[(i+j)%len(specialTimes)], F: f})
		}
		if i%2 == 1 {
			for j, h := range testFloatHistograms() {
				s.Histograms = append(s.Histograms, promql.HPoint{T: specialTimes[j], H: h})
			}
		}
		if i == 3 {
			s.Floats = nil // Histograms only.
		}
		m = append(m, s)
	}
	m = append(m, promql.Series{Metric: labels.FromStrings("empty", "series")})
	for i := 0; i <= len(m); i++ {
		want := `{"resultType":"matrix","result":` + refMatrix(m[:i]) + `}`
		require.Equal(t, want, encodeData(t, &queryData{value: m[:i]}))
	}
}

// TestEncodeLargeMatrixStreams checks that a matrix bigger than the flush threshold is
// written in chunks and still reassembles to the reference bytes.
func TestEncodeLargeMatrixStreams(t *testing.T) {
	m := benchMatrix(50, 500)
	got := encodeData(t, &queryData{value: m})
	require.Greater(t, len(got), 4*flushThreshold)
	require.Equal(t, `{"resultType":"matrix","result":`+refMatrix(m)+`}`, got)
}

func TestEncodeScalarAndString(t *testing.T) {
	for _, tt := range []struct {
		v    parser.Value
		want string
	}{
		{promql.Scalar{T: t0 + 781, V: 1.5}, `[1700000000.781,"1.5"]`},
		{promql.Scalar{T: t0, V: 1e-7}, `[1700000000,"0.0000001"]`}, // Scalars use 'f' notation, as in Prometheus.
		{promql.Scalar{T: -1500, V: math.NaN()}, `[-1.500,"NaN"]`},
		{promql.String{T: t0, V: "a <b>\n"}, `[1700000000,"a \u003cb\u003e\n"]`},
	} {
		got := encodeData(t, &queryData{value: tt.v})
		require.Equal(t, `{"resultType":"`+string(tt.v.Type())+`","result":`+tt.want+`}`, got)

		// Prometheus writes these with encoding/json and a float timestamp (1.5 rather than
		// 1.500): the bytes may differ, the decoded values may not.
		ref, err := tt.v.(json.Marshaler).MarshalJSON()
		require.NoError(t, err)
		var wantDecoded, gotDecoded []any
		require.NoError(t, json.Unmarshal(ref, &wantDecoded))
		require.NoError(t, json.Unmarshal([]byte(tt.want), &gotDecoded))
		require.Equal(t, wantDecoded, gotDecoded)
	}
}

func TestEncodeStringsMatchEncodingJSON(t *testing.T) {
	strs := []string{"", "plain", `quote" backslash\`, "<html> & amp", "ctl \x00\x01\b\f\t\n\r\x1f\x7f", "ünïcødé ☃ 𝄞", "\u2028\u2029", "bad \xff\xfe utf8 \xc3", "\xed\xa0\x80 surrogate"}
	for _, s := range strs {
		want, err := refJSON.Marshal(s)
		require.NoError(t, err)
		require.Equal(t, string(want), string(appendString(nil, s)), "%q", s)
		require.True(t, json.Valid(jsonappend.String(nil, s, labelEscape)), "%q", s)
		if utf8.ValidString(s) {
			st := refJSON.BorrowStream(nil)
			st.WriteString(s)
			require.Equal(t, string(st.Buffer()), string(jsonappend.String(nil, s, labelEscape)), "%q", s)
			refJSON.ReturnStream(st)
		}
	}
	want, err := refJSON.Marshal(strs)
	require.NoError(t, err)
	require.Equal(t, string(want), encodeData(t, strs))
	require.Equal(t, "[]", encodeData(t, []string{}))
}

func TestEncodeOtherDataMatchesPrometheus(t *testing.T) {
	// Series labels, exemplars, metadata and build info: Prometheus encodes these through
	// struct tags and its labels encoder; we compare decoded values for structs whose field
	// order Go's encoders define, and bytes for the rest.
	series := []labels.Labels{specialLabels[1], specialLabels[3]}
	s := refJSON.BorrowStream(nil)
	s.WriteArrayStart()
	for i, ls := range series {
		if i > 0 {
			s.WriteMore()
		}
		refLabels(ls, s)
	}
	s.WriteArrayEnd()
	require.Equal(t, string(s.Buffer()), encodeData(t, series))
	refJSON.ReturnStream(s)

	ex := []exemplar.QueryResult{{
		SeriesLabels: specialLabels[2],
		Exemplars: []exemplar.Exemplar{
			{Labels: labels.FromStrings("trace_id", "abc"), Value: 1.5, Ts: t0 + 1, HasTs: true},
			{Labels: labels.EmptyLabels(), Value: math.Inf(-1), Ts: t0 + 10},
		},
	}}
	require.Equal(t, `[{"seriesLabels":{"__name__":"up","instance":"10.0.0.1:9100","job":"api"},"exemplars":[`+
		`{"labels":{"trace_id":"abc"},"value":"1.5","timestamp":1700000000.001},`+
		`{"labels":{},"value":"-Inf","timestamp":1700000000.010}]}]`, encodeData(t, ex))

	md := map[string][]metadata.Metadata{
		"b_total": {{Type: model.MetricTypeCounter, Help: "B <things>.", Unit: ""}},
		"a":       {{Type: model.MetricTypeGauge, Help: "A.", Unit: "bytes"}, {Type: model.MetricTypeUnknown}},
	}
	want, err := refJSON.Marshal(md)
	require.NoError(t, err)
	require.Equal(t, string(want), encodeData(t, md))

	bi := BuildInfo{Version: "v1", Revision: "r", Branch: "b", BuildUser: "u<", BuildDate: "d", GoVersion: "g"}
	type promVersion struct { // Prometheus's PrometheusVersion struct.
		Version   string `json:"version"`
		Revision  string `json:"revision"`
		Branch    string `json:"branch"`
		BuildUser string `json:"buildUser"`
		BuildDate string `json:"buildDate"`
		GoVersion string `json:"goVersion"`
	}
	want, err = refJSON.Marshal(promVersion(bi))
	require.NoError(t, err)
	require.Equal(t, string(want), encodeData(t, bi))
}

func TestAppendTimestamp(t *testing.T) {
	for ts, want := range map[int64]string{
		0:                 "0",
		1:                 "0.001",
		12:                "0.012",
		123:               "0.123",
		1000:              "1",
		1500:              "1.500",
		-1:                "-0.001",
		-1500:             "-1.500",
		1435781451781:     "1435781451.781",
		math.MaxInt64:     "9223372036854775.807",
		math.MinInt64:     "-9223372036854775.808",
		math.MinInt64 + 1: "-9223372036854775.807",
	} {
		require.Equal(t, want, string(appendTimestamp(nil, ts)), ts)
	}
}

func TestErrorEnvelope(t *testing.T) {
	rec := httptest.NewRecorder()
	code := writeError(rec, &apiError{ErrorBadData, errStr(`bad "input" <here>`)}, nil)
	require.Equal(t, 400, code)
	require.Equal(t, 400, rec.Code)
	require.Equal(t, "application/json", rec.Header().Get("Content-Type"))
	type promResponse struct { // Prometheus's Response struct, as its error path fills it.
		Status    string `json:"status"`
		Data      any    `json:"data,omitempty"`
		ErrorType string `json:"errorType,omitempty"`
		Error     string `json:"error,omitempty"`
	}
	want, err := refJSON.Marshal(promResponse{Status: "error", ErrorType: "bad_data", Error: `bad "input" <here>`})
	require.NoError(t, err)
	require.Equal(t, string(want), rec.Body.String())
}

type errStr string

func (e errStr) Error() string { return string(e) }

func TestErrorTypeStatusCodes(t *testing.T) {
	for typ, code := range map[ErrorType]int{
		ErrorBadData: 400, ErrorExec: 422, ErrorCostLimit: 422, ErrorCanceled: 499, ErrorTimeout: 503,
		ErrorUnavailable: 503, ErrorInternal: 500, ErrorNotFound: 404, ErrorType("other"): 500,
	} {
		require.Equal(t, code, typ.StatusCode(), typ)
	}
}

func TestClassify(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want ErrorType
	}{
		{promql.ErrQueryCanceled("x"), ErrorCanceled},
		{promql.ErrQueryTimeout("x"), ErrorTimeout},
		{promql.ErrStorage{Err: errStr("disk")}, ErrorInternal},
		{promql.ErrTooManySeries("x"), ErrorCostLimit},
		{promql.ErrTooManySamplesRead("x"), ErrorCostLimit},
		{promql.ErrTooManySamples("x"), ErrorExec},
		{ErrUnavailable, ErrorUnavailable},
		{fmt.Errorf("select: %w", ErrUnavailable), ErrorUnavailable},
		{fmt.Errorf("select: %w", context.Canceled), ErrorCanceled},
		{fmt.Errorf("select: %w", context.DeadlineExceeded), ErrorTimeout},
		{errStr("anything else"), ErrorExec},
	} {
		require.Equal(t, tt.want, classify(tt.err).typ, "%v", tt.err)
	}
	require.Nil(t, classify(nil))
	require.Equal(t, ErrorBadData, constructionError(errStr("1:1: parse error")).typ)
	require.Equal(t, ErrorBadData, constructionError(promql.ErrLimitAboveCeiling{Limit: "max_series"}).typ)
	require.Equal(t, ErrorTimeout, constructionError(promql.ErrQueryTimeout("queue")).typ)
	require.Equal(t, ErrorCanceled, constructionError(promql.ErrQueryCanceled("queue")).typ)
}

// refSampleValue is how Prometheus writes a sample value.
func refSampleValue(f float64) string {
	s := refJSON.BorrowStream(nil)
	defer refJSON.ReturnStream(s)
	jsonutil.MarshalFloat(f, s)
	return string(s.Buffer())
}

// TestAppendSampleValueMatchesPrometheus checks the fast paths against strconv over values
// of every shape: integers, few and many decimals, both sides of every threshold.
func TestAppendSampleValueMatchesPrometheus(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	check := func(f float64) {
		require.Equal(t, refSampleValue(f), string(appendSampleValue(nil, f)), "%v (%#x)", f, math.Float64bits(f))
	}
	for _, f := range specialFloats {
		check(f)
		check(math.Nextafter(f, math.Inf(1)))
		check(math.Nextafter(f, math.Inf(-1)))
	}
	for _, f := range []float64{1e-6, 1e-6 + 1e-12, 9.99999e-7, 0.000001, 0.000005, 1e9, 1e9 - 1e-6, 999999999.999999, 123.4567891,
		0.1 + 0.2, 1.37 * 100, 0.3, 2.675, 1.005, 45.5, 0.52, 12345.67, -0.000001, -999999999.5, 1<<53 + 2} {
		check(f)
		check(-f)
	}
	for range 200_000 {
		var f float64
		switch rng.IntN(5) {
		case 0: // Few decimals, the common case.
			f = float64(rng.Int64N(2e12)-1e12) / math.Pow10(rng.IntN(9))
		case 1: // Around the fast path's magnitude bound.
			f = (rng.Float64()*2 - 1) * math.Pow10(rng.IntN(20)-8)
		case 2: // Any bits.
			f = math.Float64frombits(rng.Uint64())
		case 3: // Products, like rate() results.
			f = float64(rng.IntN(1e6)) * 1.37 / float64(rng.IntN(100)+1)
		default: // Integers.
			f = float64(rng.Int64N(1<<54) - 1<<53)
		}
		check(f)
	}
}

func FuzzAppendSampleValue(f *testing.F) {
	for _, v := range specialFloats {
		f.Add(v)
	}
	f.Add(137.37)
	f.Add(0.000001)
	f.Fuzz(func(t *testing.T, v float64) {
		require.Equal(t, refSampleValue(v), string(appendSampleValue(nil, v)), "%v (%#x)", v, math.Float64bits(v))
	})
}
