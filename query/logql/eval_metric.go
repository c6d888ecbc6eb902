package logql

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/pharos-obs/pharos/query/limits"
	"github.com/pharos-obs/pharos/storage/logs"
)

// stepVal is a metric expression's value: a scalar, or one vector per step.
type stepVal struct {
	scalar bool
	f      float64
	vecs   []promql.Vector
}

func (ev *evaluator) numSteps() int {
	if ev.step == 0 {
		return 1
	}
	return int((ev.end-ev.start)/ev.step) + 1
}

func (ev *evaluator) stepTime(i int) int64 { return ev.start + int64(i)*ev.step }

// toMs converts Unix ns to the milliseconds Prometheus values carry.
func toMs(ns int64) int64 { return ns / int64(time.Millisecond) }

func (ev *evaluator) evalMetric(e SampleExpr) (parser.Value, error) {
	// A range aggregation at the top returns its series as they are, so it
	// can fail as soon as it has too many instead of after reading them all.
	_, ev.capSeries = e.(*RangeAggregationExpr)
	v, err := ev.eval(e, nil)
	if err != nil {
		return nil, err
	}
	n := ev.numSteps()
	if v.scalar {
		if ev.p.Instant() {
			return promql.Scalar{T: toMs(ev.start), V: v.f}, nil
		}
		pts := make([]promql.FPoint, n)
		for i := range pts {
			pts[i] = promql.FPoint{T: toMs(ev.stepTime(i)), F: v.f}
		}
		return promql.Matrix{{Metric: labels.EmptyLabels(), Floats: pts}}, nil
	}
	if ev.p.Instant() {
		vec := v.vecs[0]
		if len(vec) > ev.opts.MaxSeries {
			return nil, ev.tooManySeries()
		}
		slices.SortFunc(vec, func(a, b promql.Sample) int { return labels.Compare(a.Metric, b.Metric) })
		return vec, nil
	}
	index := map[uint64]int{}
	var m promql.Matrix
	for _, vec := range v.vecs {
		for _, s := range vec {
			h := s.Metric.Hash()
			i, ok := index[h]
			if !ok {
				i = len(m)
				index[h] = i
				m = append(m, promql.Series{Metric: s.Metric})
				if len(m) > ev.opts.MaxSeries {
					return nil, ev.tooManySeries()
				}
			}
			m[i].Floats = append(m[i].Floats, promql.FPoint{T: s.T, F: s.F})
		}
	}
	sort.Sort(m)
	return m, nil
}

func (ev *evaluator) tooManySeries() error {
	return &limits.Error{
		Limit: limits.Series, Flag: FlagMaxSeries, Value: strconv.Itoa(ev.opts.MaxSeries),
		Msg: fmt.Sprintf("maximum number of series (%d) reached for a single query; consider reducing query cardinality by adding more specific stream selectors, reducing the time range, or aggregating results with functions like sum(), count() or topk()", ev.opts.MaxSeries),
	}
}

// eval evaluates e at every step. push, when set, is the grouping of an
// enclosing sum that a linear range aggregation may apply while
// extracting samples, so that it never holds one series per stream.
func (ev *evaluator) eval(e SampleExpr, push *Grouping) (stepVal, error) {
	if err := ev.ctx.Err(); err != nil {
		return stepVal{}, err
	}
	switch e := e.(type) {
	case *LiteralExpr:
		return stepVal{scalar: true, f: e.Value}, nil
	case *RangeAggregationExpr:
		return ev.evalRange(e, push)
	case *VectorAggregationExpr:
		return ev.evalVectorAgg(e)
	case *BinaryExpr:
		return ev.evalBinary(e)
	}
	return stepVal{}, fmt.Errorf("logql: unknown sample expression %T", e)
}

// linearOps are range aggregations whose sum over series equals the
// aggregation of the merged series.
var linearOps = map[string]bool{
	OpCountOverTime: true, OpRate: true, OpBytesOverTime: true, OpBytesRate: true, OpSumOverTime: true,
}

// sampleSeries is one range-aggregation series' samples. ids identify
// each sample's entry (a hash of its stream, line and metadata), so that an
// entry stored or handed over twice counts once.
type sampleSeries struct {
	ts  []int64
	vs  []float64
	ids []uint64
}

func (s *sampleSeries) Len() int { return len(s.ts) }
func (s *sampleSeries) Less(i, j int) bool {
	return s.ts[i] < s.ts[j] || s.ts[i] == s.ts[j] && s.ids[i] < s.ids[j]
}
func (s *sampleSeries) Swap(i, j int) {
	s.ts[i], s.ts[j] = s.ts[j], s.ts[i]
	s.vs[i], s.vs[j] = s.vs[j], s.vs[i]
	s.ids[i], s.ids[j] = s.ids[j], s.ids[i]
}

// finish orders the samples by time (ties by entry id, so that the order
// does not depend on the order entries were read in) and drops the
// samples of duplicate entries: equal in time and entry id.
func (s *sampleSeries) finish() {
	if !sort.IsSorted(s) {
		sort.Sort(s)
	}
	k := 0
	for i := range s.ts {
		if k > 0 && s.ts[i] == s.ts[k-1] && s.ids[i] == s.ids[k-1] {
			continue
		}
		s.ts[k], s.vs[k], s.ids[k] = s.ts[i], s.vs[i], s.ids[i]
		k++
	}
	s.ts, s.vs, s.ids = s.ts[:k], s.vs[:k], s.ids[:k]
}

func unwrapConv(conv string) func(string) (float64, error) {
	switch conv {
	case "duration", "duration_seconds":
		return durationSeconds
	case "bytes":
		return func(s string) (float64, error) {
			b, err := parseBytes(s)
			return float64(b), err
		}
	}
	return func(s string) (float64, error) { return strconv.ParseFloat(s, 64) }
}

// extractor turns entries into samples of a range aggregation.
type extractor struct {
	op       string
	pl       *pipeline
	unwrap   *Unwrap
	conv     func(string) (float64, error)
	post     []labelPred
	grouping *Grouping
	drop     string

	index  *labelIndex
	series []*sampleSeries
	// maxSeries, when not 0, fails the extraction past that many series.
	maxSeries int
	tooMany   func() error
	err       error

	// The stream being read: its labels, their hash, and the series of
	// its entries without metadata in the simple case (-1: not known yet).
	base       []catLabel
	streamHash uint64
	fixed      int
	simple     bool
	digest     *xxhash.Digest
}

// startStream prepares for entries of the stream ls.
func (x *extractor) startStream(ls labels.Labels) {
	x.base = streamLabels(ls)
	x.streamHash = ls.Hash()
	x.fixed = -1
}

func (x *extractor) add(streams []logs.Stream) bool {
	for _, s := range streams {
		x.startStream(s.Labels)
		for i := range s.Entries {
			if !x.addEntry(&s.Entries[i]) {
				return false
			}
		}
	}
	return true
}

// entryID hashes what makes an entry of the current stream unique besides
// its timestamp.
func (x *extractor) entryID(e *logs.Entry) uint64 {
	d := x.digest
	d.Reset()
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], x.streamHash)
	_, _ = d.Write(b[:])
	_, _ = d.WriteString(e.Line)
	e.Metadata.Range(func(l labels.Label) {
		_, _ = d.Write([]byte{0xff})
		_, _ = d.WriteString(l.Name)
		_, _ = d.Write([]byte{0xfe})
		_, _ = d.WriteString(l.Value)
	})
	return d.Sum64()
}

// addEntry adds e, of the stream of the last startStream, and reports
// whether to go on. It keeps no reference to e's strings.
func (x *extractor) addEntry(e *logs.Entry) bool {
	lb := x.pl.lb
	id := x.entryID(e)
	if x.simple && x.fixed >= 0 && e.Metadata.IsEmpty() {
		x.append(x.fixed, e.Timestamp, x.lineValue(e.Line), id)
		return true
	}
	line, ok := x.pl.process(x.base, e.Metadata, e.Timestamp, e.Line)
	if !ok {
		return true
	}
	v := x.lineValue(line)
	if x.unwrap != nil {
		str, _ := lb.get(x.unwrap.Label)
		if str == "" {
			return true // a line without the label has no sample
		}
		f, err := x.conv(str)
		if err != nil {
			lb.setErr(ErrSampleExtraction, err)
		}
		v = f
		for _, p := range x.post {
			if !p.eval(lb) {
				return true
			}
		}
	}
	if lb.err != "" {
		x.err = &PipelineError{Series: cloneLabels(toLabels(lb.resolve(nil, ""), allCats))}
		return false
	}
	cl := lb.resolve(x.grouping, x.drop)
	i, isNew := x.index.lookup(lb.hashLabels(cl, allCats), cl, allCats)
	if isNew {
		// Parsed values may point into the entry's line.
		x.index.labels[i] = cloneLabels(x.index.labels[i])
	}
	if i == len(x.series) {
		x.series = append(x.series, &sampleSeries{})
		if x.maxSeries > 0 && len(x.series) > x.maxSeries {
			x.err = x.tooMany()
			return false
		}
	}
	if x.simple && e.Metadata.IsEmpty() {
		x.fixed = i
	}
	x.append(i, e.Timestamp, v, id)
	return true
}

// cloneLabels copies ls's strings, so that it outlives the memory they
// pointed into.
func cloneLabels(ls labels.Labels) labels.Labels {
	sb := labels.NewScratchBuilder(ls.Len())
	ls.Range(func(l labels.Label) { sb.Add(strings.Clone(l.Name), strings.Clone(l.Value)) })
	return sb.Labels()
}

func (x *extractor) lineValue(line string) float64 {
	switch x.op {
	case OpBytesOverTime, OpBytesRate:
		return float64(len(line))
	}
	return 1
}

func (x *extractor) append(i int, ts int64, v float64, id uint64) {
	s := x.series[i]
	s.ts = append(s.ts, ts)
	s.vs = append(s.vs, v)
	s.ids = append(s.ids, id)
}

func (ev *evaluator) evalRange(e *RangeAggregationExpr, push *Grouping) (stepVal, error) {
	r := e.Range
	pushed, rest := splitPushdown(r.Selector.Pipeline)
	pl, err := compilePipeline(rest)
	if err != nil {
		return stepVal{}, err
	}
	x := &extractor{op: e.Op, pl: pl, unwrap: r.Unwrap, grouping: e.Grouping, index: newLabelIndex(), tooMany: ev.tooManySeries,
		simple: len(pl.stages) == 0 && r.Unwrap == nil, digest: xxhash.New()}
	if ev.capSeries && e.Op != OpAbsentOverTime {
		x.maxSeries = ev.opts.MaxSeries
	}
	if x.grouping == nil && linearOps[e.Op] {
		x.grouping = push
	}
	if r.Unwrap != nil {
		x.conv = unwrapConv(r.Unwrap.Conv)
		for _, f := range r.Unwrap.PostFilters {
			x.post = append(x.post, compileLabelFilter(f))
		}
		// The unwrapped label becomes the value; Loki drops it from the
		// series unless a by clause keeps only other labels anyway.
		if x.grouping == nil || x.grouping.Without {
			x.drop = r.Unwrap.Label
		}
	}
	rng, off := int64(r.Range), int64(r.Offset)
	sp := logs.SelectParams{
		Tenant:      ev.tenant,
		Matchers:    r.Selector.Matchers,
		Start:       ev.start - off - rng + 1,
		End:         ev.end - off + 1,
		LineFilters: pushed,
		Direction:   logs.Forward,
	}
	if err := ev.extract(sp, x); err != nil {
		return stepVal{}, err
	}
	if x.err != nil {
		return stepVal{}, x.err
	}
	for _, s := range x.series {
		s.finish()
		ev.stats.PostFilterLines += int64(len(s.ts))
	}

	n := ev.numSteps()
	vecs := make([]promql.Vector, n)
	var param float64
	if e.Param != nil {
		param = *e.Param
	}
	rangeSecs := r.Range.Seconds()
	var scratch []float64
	for j, s := range x.series {
		metric := x.index.labels[j]
		lo, hi := 0, 0
		for i := 0; i < n; i++ {
			t := ev.stepTime(i)
			winHi := t - off
			winLo := winHi - rng
			for hi < len(s.ts) && s.ts[hi] <= winHi {
				hi++
			}
			for lo < hi && s.ts[lo] <= winLo {
				lo++
			}
			if lo == hi {
				continue
			}
			var v float64
			v, scratch = aggregateWindow(e.Op, s.vs[lo:hi], param, rangeSecs, r.Unwrap != nil, scratch)
			vecs[i] = append(vecs[i], promql.Sample{T: toMs(t), F: v, Metric: metric})
		}
	}
	if e.Op == OpAbsentOverTime {
		lbls := absentLabels(r.Selector.Matchers)
		for i := range vecs {
			if len(vecs[i]) > 0 {
				vecs[i] = nil
				continue
			}
			vecs[i] = promql.Vector{{T: toMs(ev.stepTime(i)), F: 1, Metric: lbls}}
		}
	}
	return stepVal{vecs: vecs}, nil
}

// errStopExtract stops a stream whose extractor failed; x.err says why.
var errStopExtract = errors.New("extraction stopped")

// extract feeds the entries sp selects to x: streamed in one pass when the
// querier is a logs.Streamer, which reads each entry once, else paged
// through in order. Both give the same samples, as extractor.addEntry does
// not depend on the order of entries and sampleSeries.finish removes the
// duplicates that streaming, unlike Select, may hand over.
func (ev *evaluator) extract(sp logs.SelectParams, x *extractor) error {
	st, ok := ev.q.(logs.Streamer)
	if !ok {
		return ev.scan(sp, x.add)
	}
	var cur labels.Labels
	started := false
	err := st.SelectStream(ev.ctx, sp, func(ls labels.Labels, e *logs.Entry) error {
		ev.stats.LinesProcessed++
		ev.stats.BytesProcessed += int64(len(e.Line))
		if err := ev.checkBytes(); err != nil {
			return err
		}
		if !started || !labels.Equal(ls, cur) {
			x.startStream(ls)
			cur, started = ls, true
		}
		if !x.addEntry(e) {
			return errStopExtract
		}
		return nil
	})
	if errors.Is(err, errStopExtract) && x.err != nil {
		return nil
	}
	if err != nil {
		return fmt.Errorf("select logs: %w", err)
	}
	return nil
}

// absentLabels are the labels absent_over_time reports: those the selector
// fixes with a single equality matcher, as in Loki and Prometheus.
func absentLabels(ms []*labels.Matcher) labels.Labels {
	b := labels.NewBuilder(labels.EmptyLabels())
	var drop []string
	seen := map[string]bool{}
	for _, m := range ms {
		if m.Type == labels.MatchEqual && !seen[m.Name] {
			b.Set(m.Name, m.Value)
		} else {
			drop = append(drop, m.Name)
		}
		seen[m.Name] = true
	}
	b.Del(drop...)
	return b.Labels()
}

// aggregateWindow computes a range aggregation over the values of one
// window (never empty).
func aggregateWindow(op string, vs []float64, param, rangeSecs float64, unwrapped bool, scratch []float64) (float64, []float64) {
	switch op {
	case OpCountOverTime, OpAbsentOverTime:
		return float64(len(vs)), scratch
	case OpRate:
		if unwrapped {
			return kahanSum(vs) / rangeSecs, scratch
		}
		return float64(len(vs)) / rangeSecs, scratch
	case OpBytesOverTime, OpSumOverTime:
		return kahanSum(vs), scratch
	case OpBytesRate:
		return kahanSum(vs) / rangeSecs, scratch
	case OpAvgOverTime:
		return kahanSum(vs) / float64(len(vs)), scratch
	case OpMaxOverTime:
		m := vs[0]
		for _, v := range vs[1:] {
			if v > m || math.IsNaN(m) {
				m = v
			}
		}
		return m, scratch
	case OpMinOverTime:
		m := vs[0]
		for _, v := range vs[1:] {
			if v < m || math.IsNaN(m) {
				m = v
			}
		}
		return m, scratch
	case OpFirstOverTime:
		return vs[0], scratch
	case OpLastOverTime:
		return vs[len(vs)-1], scratch
	case OpStdvarOverTime:
		return variance(vs), scratch
	case OpStddevOverTime:
		return math.Sqrt(variance(vs)), scratch
	case OpQuantileOverTime:
		scratch = append(scratch[:0], vs...)
		return quantile(param, scratch), scratch
	}
	return math.NaN(), scratch
}

// kahanSum adds with Kahan-Babuška compensation, as Prometheus's *_over_time
// functions do.
func kahanSum(vs []float64) float64 {
	var sum, c float64
	for _, v := range vs {
		t := sum + v
		switch {
		case math.IsInf(t, 0):
			c = 0
		case math.Abs(sum) >= math.Abs(v):
			c += (sum - t) + v
		default:
			c += (v - t) + sum
		}
		sum = t
	}
	if math.IsInf(sum, 0) {
		return sum
	}
	return sum + c
}

// variance is the population variance (Welford).
func variance(vs []float64) float64 {
	var mean, m2 float64
	for i, v := range vs {
		d := v - mean
		mean += d / float64(i+1)
		m2 += d * (v - mean)
	}
	return m2 / float64(len(vs))
}

// quantile is Prometheus's φ-quantile with linear interpolation; it sorts vs.
func quantile(q float64, vs []float64) float64 {
	switch {
	case len(vs) == 0 || math.IsNaN(q):
		return math.NaN()
	case q < 0:
		return math.Inf(-1)
	case q > 1:
		return math.Inf(1)
	}
	sort.Float64s(vs)
	n := float64(len(vs))
	rank := q * (n - 1)
	lower := math.Max(0, math.Floor(rank))
	upper := math.Min(n-1, lower+1)
	w := rank - math.Floor(rank)
	return vs[int(lower)]*(1-w) + vs[int(upper)]*w
}

func (ev *evaluator) evalVectorAgg(e *VectorAggregationExpr) (stepVal, error) {
	var push *Grouping
	if ra, ok := e.Expr.(*RangeAggregationExpr); ok && e.Op == OpSum && ra.Grouping == nil && linearOps[ra.Op] {
		push = e.Grouping
		if push == nil {
			push = &Grouping{}
		}
	}
	in, err := ev.eval(e.Expr, push)
	if err != nil {
		return stepVal{}, err
	}
	out := make([]promql.Vector, len(in.vecs))
	for i, vec := range in.vecs {
		out[i] = aggregateVector(e, vec)
	}
	return stepVal{vecs: out}, nil
}

type aggGroup struct {
	labels     labels.Labels
	t          int64
	sum, c     float64 // Kahan sum and compensation
	count      int
	mean, m2   float64 // Welford
	min, max   float64
	candidates promql.Vector // topk, bottomk
}

func aggregateVector(e *VectorAggregationExpr, vec promql.Vector) promql.Vector {
	if len(vec) == 0 {
		return nil
	}
	groups := map[uint64]*aggGroup{}
	var order []*aggGroup
	var buf []byte
	for _, s := range vec {
		var h uint64
		switch {
		case e.Grouping == nil:
		case e.Grouping.Without:
			h, buf = s.Metric.HashWithoutLabels(buf, e.Grouping.Labels...)
		default:
			h, buf = s.Metric.HashForLabels(buf, e.Grouping.Labels...)
		}
		g, ok := groups[h]
		if !ok {
			g = &aggGroup{t: s.T, min: s.F, max: s.F}
			switch {
			case e.Grouping == nil:
				g.labels = labels.EmptyLabels()
			default:
				g.labels = s.Metric.MatchLabels(!e.Grouping.Without, e.Grouping.Labels...)
			}
			groups[h] = g
			order = append(order, g)
		}
		g.count++
		t := g.sum + s.F
		if math.Abs(g.sum) >= math.Abs(s.F) {
			g.c += (g.sum - t) + s.F
		} else {
			g.c += (s.F - t) + g.sum
		}
		g.sum = t
		d := s.F - g.mean
		g.mean += d / float64(g.count)
		g.m2 += d * (s.F - g.mean)
		if s.F > g.max || math.IsNaN(g.max) {
			g.max = s.F
		}
		if s.F < g.min || math.IsNaN(g.min) {
			g.min = s.F
		}
		if e.Op == OpTopK || e.Op == OpBottomK {
			g.candidates = append(g.candidates, s)
		}
	}
	var out promql.Vector
	for _, g := range order {
		var v float64
		switch e.Op {
		case OpSum:
			v = g.sum + g.c
			if math.IsInf(g.sum, 0) {
				v = g.sum
			}
		case OpAvg:
			v = g.mean
		case OpCount:
			v = float64(g.count)
		case OpMin:
			v = g.min
		case OpMax:
			v = g.max
		case OpStdvar:
			v = g.m2 / float64(g.count)
		case OpStddev:
			v = math.Sqrt(g.m2 / float64(g.count))
		case OpTopK, OpBottomK:
			out = append(out, selectK(g.candidates, e.Param, e.Op == OpTopK)...)
			continue
		}
		out = append(out, promql.Sample{T: g.t, F: v, Metric: g.labels})
	}
	return out
}

// selectK returns the k largest (top) or smallest samples; NaN ranks last.
func selectK(vec promql.Vector, k int, top bool) promql.Vector {
	if k <= 0 {
		return nil
	}
	sorted := slices.Clone(vec)
	slices.SortStableFunc(sorted, func(a, b promql.Sample) int {
		an, bn := math.IsNaN(a.F), math.IsNaN(b.F)
		switch {
		case an && bn:
			return 0
		case an:
			return 1
		case bn:
			return -1
		case a.F == b.F:
			return 0
		case (a.F > b.F) == top:
			return -1
		}
		return 1
	})
	return sorted[:min(k, len(sorted))]
}
