package promrw

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/storage"

	"github.com/pharos-obs/pharos/collector/receive"
	"github.com/pharos-obs/pharos/internal/overrides"
)

// stats are what a request wrote, for the remote write 2.0 response
// headers and the receive metrics.
type stats struct {
	samples, histograms, exemplars int
}

// maxReportedErrors bounds the rejections a response lists: the message
// stays readable and small whatever the request.
const maxReportedErrors = 10

// rejections collects what a request refused.
type rejections struct {
	first []string
	n     int // rejected series-level problems (samples and whole series)
}

func (r *rejections) add(err error) {
	r.n++
	if len(r.first) < maxReportedErrors {
		r.first = append(r.first, err.Error())
	}
}

// message is the body of a 400 answer: how much was refused, then the
// first errors, each naming the series and the rule.
func (r *rejections) message(st stats) string {
	var b strings.Builder
	fmt.Fprintf(&b, "rejected %d series or samples; written %d samples, %d histograms, %d exemplars:\n", r.n, st.samples, st.histograms, st.exemplars)
	for _, e := range r.first {
		b.WriteString(e)
		b.WriteByte('\n')
	}
	if r.n > len(r.first) {
		fmt.Fprintf(&b, "… and %d more\n", r.n-len(r.first))
	}
	return b.String()
}

// writer is the per-request state of appending a decoded request; it is
// pooled with the request.
type writer struct {
	req    request
	sb     labels.ScratchBuilder
	exSB   labels.ScratchBuilder
	exs    []exemplar.Exemplar
	intern map[string]string
	rej    rejections
	st     stats
	// expanded counts the label bytes the request's series expand to;
	// see seriesLabels.
	expanded int
}

func (w *writer) reset() {
	w.req.reset()
	clear(w.exs)
	w.exs = w.exs[:0]
	clear(w.intern)
	w.rej = rejections{first: w.rej.first[:0]}
	w.st = stats{}
	w.expanded = 0
}

// str returns s as a string of its own: metadata is kept by the batcher
// beyond the request, while s may alias the request body.
func (w *writer) str(s string) string {
	if s == "" {
		return ""
	}
	if v, ok := w.intern[s]; ok {
		return v
	}
	v := strings.Clone(s)
	w.intern[v] = v
	return v
}

// errFatal marks append errors that are not the request's fault (the
// batcher is stopping): the transaction is rolled back and the sender
// retries.
type errFatal struct{ err error }

// Error returns the cause's message.
func (e errFatal) Error() string { return e.err.Error() }

// Unwrap returns the cause.
func (e errFatal) Unwrap() error { return e.err }

// write appends every series of the decoded request in one transaction.
// Series and samples refused by the rules are skipped and collected in
// w.rej; what passes is committed. An error other than a rejection
// rolls everything back and is returned.
func (h *Handler) write(ctx context.Context, w *writer) error {
	app := h.in.AppenderV2(ctx)
	r := &w.req
	for i := range r.series {
		if err := h.writeSeries(app, w, &r.series[i]); err != nil {
			_ = app.Rollback()
			w.st = stats{}
			return err
		}
	}
	if err := app.Commit(); err != nil {
		w.st = stats{}
		if errors.Is(err, overrides.ErrLimited) {
			return err
		}
		return errFatal{fmt.Errorf("commit: %w", err)}
	}
	return nil
}

func (h *Handler) writeSeries(app storage.AppenderV2, w *writer, s *series) error {
	r := &w.req
	n := int(s.sHi-s.sLo) + int(s.hHi-s.hLo)
	ls, err := w.seriesLabels(s, h.in.Config().MaxDecompressedBytes)
	if err != nil {
		h.in.CountRejected(err.Reason, n)
		w.rej.add(err)
		return nil
	}
	if r.v2 && n == 0 {
		// The 2.0 spec requires a sample or histogram in every series.
		w.rej.add(receive.NewError(receive.ReasonInvalidSeries, ls, "the series has no samples or histograms"))
		return nil
	}
	md, err := w.seriesMetadata(h, s, ls)
	if err != nil {
		h.in.CountRejected(err.Reason, n)
		w.rej.add(err)
		return nil
	}
	opts := storage.AppendV2Options{Metadata: md}
	pending := w.seriesExemplars(h, s)

	var ref storage.SeriesRef
	opts.Exemplars = pending
	for _, smp := range r.samples[s.sLo:s.sHi] {
		newRef, err := app.Append(ref, ls, smp.st, smp.t, smp.v, nil, nil, opts)
		if err := w.outcome(newRef, err, &ref, &opts, &w.st.samples); err != nil {
			return err
		}
	}
	for i := s.hLo; i < s.hHi; i++ {
		var newRef storage.SeriesRef
		var err error
		if r.v2 {
			hp := &r.histsV2[i]
			if hp.IsFloatHistogram() {
				newRef, err = app.Append(ref, ls, hp.StartTimestamp, hp.Timestamp, 0, nil, hp.ToFloatHistogram(), opts)
			} else {
				newRef, err = app.Append(ref, ls, hp.StartTimestamp, hp.Timestamp, 0, hp.ToIntHistogram(), nil, opts)
			}
		} else {
			hp := &r.histsV1[i]
			if hp.IsFloatHistogram() {
				newRef, err = app.Append(ref, ls, 0, hp.Timestamp, 0, nil, hp.ToFloatHistogram(), opts)
			} else {
				newRef, err = app.Append(ref, ls, 0, hp.Timestamp, 0, hp.ToIntHistogram(), nil, opts)
			}
		}
		if err := w.outcome(newRef, err, &ref, &opts, &w.st.histograms); err != nil {
			return err
		}
	}
	if len(opts.Exemplars) > 0 {
		// Every sample of the series was refused, and its exemplars with it.
		h.in.CountRejectedExemplars(receive.ReasonExemplarSeriesRejected, len(opts.Exemplars))
	}
	return nil
}

// outcome handles one Append's result: a written sample is counted (with
// the exemplars that rode on it, which later samples then go without), a
// rejection is collected, anything else is fatal to the request.
func (w *writer) outcome(newRef storage.SeriesRef, err error, ref *storage.SeriesRef, opts *storage.AppendV2Options, count *int) error {
	if err != nil {
		// Declared here, not above: errors.As makes them escape, and the
		// success path must not allocate.
		var rejected *receive.Error
		if errors.As(err, &rejected) {
			w.rej.add(rejected)
			return nil
		}
		var partial *storage.AppendPartialError
		if !errors.As(err, &partial) {
			return errFatal{err}
		}
		w.st.exemplars -= min(len(partial.ExemplarErrors), len(opts.Exemplars))
	}
	*count++
	w.st.exemplars += len(opts.Exemplars)
	*ref = newRef
	opts.Exemplars = nil
	return nil
}

// seriesLabels builds the series' label set, sorted (senders must sort,
// sorting costs little when they did). The result owns its memory.
//
// A 2.0 series of a few bytes may reference kilobytes of symbols, so the
// label bytes the request expands to are counted before they are built:
// past budget (what the request may decompress to) the rest of the
// request is refused without allocating it. The Intake's appender holds
// the same line for what it keeps; this spares building what it would
// refuse.
func (w *writer) seriesLabels(s *series, budget int) (labels.Labels, *receive.Error) {
	r := &w.req
	size := 0
	if !r.v2 {
		for _, l := range r.labels[s.lo:s.hi] {
			size += len(l.Name) + len(l.Value)
		}
	} else {
		refs := r.refs[s.lo:s.hi]
		for _, ref := range refs {
			if int(ref) < len(r.symbols) {
				size += len(r.symbols[ref])
			}
		}
	}
	if w.expanded += size; w.expanded > budget {
		return labels.EmptyLabels(), &receive.Error{Reason: receive.ReasonRequestTooLarge, Series: labels.EmptyLabels(),
			Detail: fmt.Sprintf("the request expands to more than %d bytes of labels", budget),
			Rule:   "agent.receive.max_decompressed_bytes"}
	}
	w.sb.Reset()
	sorted := true
	if !r.v2 {
		prev := ""
		for i, l := range r.labels[s.lo:s.hi] {
			if i > 0 && l.Name < prev {
				sorted = false
			}
			prev = l.Name
			w.sb.Add(l.Name, l.Value)
		}
	} else {
		refs := r.refs[s.lo:s.hi]
		if len(refs)%2 != 0 {
			return labels.EmptyLabels(), receive.NewError(receive.ReasonInvalidSeries, labels.EmptyLabels(),
				fmt.Sprintf("odd number (%d) of label references", len(refs)))
		}
		for j := 0; j < len(refs); j += 2 {
			nr, vr := refs[j], refs[j+1]
			if int(nr) >= len(r.symbols) || int(vr) >= len(r.symbols) {
				return labels.EmptyLabels(), receive.NewError(receive.ReasonInvalidSeries, labels.EmptyLabels(),
					fmt.Sprintf("label reference %d or %d is out of the symbols table (%d symbols)", nr, vr, len(r.symbols)))
			}
			if j > 0 && r.symbols[nr] < r.symbols[refs[j-2]] {
				sorted = false
			}
			w.sb.Add(r.symbols[nr], r.symbols[vr])
		}
	}
	if !sorted {
		w.sb.Sort()
	}
	return w.sb.Labels(), nil
}

// seriesMetadata resolves the series' metadata: its own in 2.0 (whose
// references must be in the symbols table, like its labels'), the
// family's (from this request or an earlier one) in 1.0.
func (w *writer) seriesMetadata(h *Handler, s *series, ls labels.Labels) (metadata.Metadata, *receive.Error) {
	r := &w.req
	if r.v2 {
		m := s.meta
		if !m.set {
			return metadata.Metadata{}, nil
		}
		if int(m.helpRef) >= len(r.symbols) || int(m.unitRef) >= len(r.symbols) {
			return metadata.Metadata{}, receive.NewError(receive.ReasonInvalidSeries, ls,
				fmt.Sprintf("metadata reference %d or %d is out of the symbols table (%d symbols)", m.helpRef, m.unitRef, len(r.symbols)))
		}
		return metadata.Metadata{Type: m.typ, Help: w.str(r.symbols[m.helpRef]), Unit: w.str(r.symbols[m.unitRef])}, nil
	}
	if h.meta.empty() {
		return metadata.Metadata{}, nil
	}
	md, _ := h.meta.lookup(ls.Get(labels.MetricName))
	return md, nil
}

// seriesExemplars builds the series' exemplars, sorted by time as the
// appender requires. Exemplars with bad label references are dropped and
// counted; they never fail their series.
func (w *writer) seriesExemplars(h *Handler, s *series) []exemplar.Exemplar {
	r := &w.req
	w.exs = w.exs[:0]
	for _, e := range r.exemplars[s.eLo:s.eHi] {
		w.exSB.Reset()
		ok := true
		if !r.v2 {
			for _, l := range r.exLabels[e.lo:e.hi] {
				w.exSB.Add(l.Name, l.Value)
			}
		} else {
			refs := r.exRefs[e.lo:e.hi]
			ok = len(refs)%2 == 0
			for j := 0; ok && j < len(refs); j += 2 {
				if int(refs[j]) >= len(r.symbols) || int(refs[j+1]) >= len(r.symbols) {
					ok = false
					break
				}
				w.exSB.Add(r.symbols[refs[j]], r.symbols[refs[j+1]])
			}
		}
		if !ok {
			h.in.CountRejectedExemplars(receive.ReasonExemplarInvalidLabels, 1)
			continue
		}
		w.exSB.Sort()
		w.exs = append(w.exs, exemplar.Exemplar{Labels: w.exSB.Labels(), Value: e.v, Ts: e.t, HasTs: true})
	}
	if !slices.IsSortedFunc(w.exs, exemplar.Compare) {
		slices.SortFunc(w.exs, exemplar.Compare)
	}
	return w.exs
}

// Bounds of the remote write 1.0 metadata cache. Prometheus sends 1.0
// metadata in requests of their own, so the families are remembered for
// the samples that follow; the bound keeps a sender that invents family
// names from growing it.
const (
	maxMetadataFamilies = 10_000
	maxMetadataHelp     = 4096
	maxMetadataUnit     = 256
)

// cut shortens s to at most n bytes, on a rune boundary.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// metaCache maps metric family names to the latest remote write 1.0
// metadata. Reads are lock-free (a copy-on-write map): every series of
// every 1.0 request looks its family up; updates are rare.
type metaCache struct {
	mu sync.Mutex
	m  atomic.Pointer[map[string]metadata.Metadata]
}

// update records families (whose strings may alias a request body).
func (c *metaCache) update(fams []familyMeta) {
	if len(fams) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	cur := c.load()
	var next map[string]metadata.Metadata
	for _, f := range fams {
		if f.family == "" {
			continue
		}
		md := metadata.Metadata{Type: f.meta.typ, Help: f.meta.help, Unit: f.meta.unit}
		if old, ok := cur[f.family]; ok && old == md {
			continue
		}
		if next == nil {
			next = make(map[string]metadata.Metadata, len(cur)+len(fams))
			for k, v := range cur {
				next[k] = v
			}
		}
		if _, ok := next[f.family]; !ok && len(next) >= maxMetadataFamilies {
			continue
		}
		// Cut, so that 10,000 families cannot pin more than ~40 MiB.
		next[strings.Clone(f.family)] = metadata.Metadata{
			Type: md.Type, Help: strings.Clone(cut(md.Help, maxMetadataHelp)), Unit: strings.Clone(cut(md.Unit, maxMetadataUnit)),
		}
	}
	if next != nil {
		c.m.Store(&next)
	}
}

func (c *metaCache) empty() bool { return len(c.load()) == 0 }

func (c *metaCache) load() map[string]metadata.Metadata {
	if p := c.m.Load(); p != nil {
		return *p
	}
	return nil
}

// familySuffixes are the series-name suffixes of a family's series, with
// the family types they belong to.
var familySuffixes = []struct {
	suffix string
	types  []string
}{
	{"_bucket", []string{"histogram", "gaugehistogram"}},
	{"_count", []string{"histogram", "gaugehistogram", "summary"}},
	{"_sum", []string{"histogram", "gaugehistogram", "summary"}},
	{"_created", []string{"counter", "histogram", "gaugehistogram", "summary"}},
	{"_total", []string{"counter"}},
	{"_info", []string{"info"}},
	{"_gcount", []string{"gaugehistogram"}},
	{"_gsum", []string{"gaugehistogram"}},
}

// lookup finds the metadata of the family a series name belongs to: the
// name itself, or the name without a suffix its family's type explains.
func (c *metaCache) lookup(name string) (metadata.Metadata, bool) {
	m := c.load()
	if len(m) == 0 || name == "" {
		return metadata.Metadata{}, false
	}
	if md, ok := m[name]; ok {
		return md, true
	}
	for _, fs := range familySuffixes {
		base, ok := strings.CutSuffix(name, fs.suffix)
		if !ok {
			continue
		}
		if md, ok := m[base]; ok && slices.Contains(fs.types, string(md.Type)) {
			return md, true
		}
	}
	return metadata.Metadata{}, false
}
