package logql

import (
	"bytes"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"text/template"
	"time"
	"unicode/utf8"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/pharos-obs/pharos/storage/logs"
)

// stage is a compiled pipeline stage. It returns the (possibly rewritten)
// line and whether to keep the entry. Stages hold per-query scratch state
// and are not safe for concurrent use.
type stage interface {
	process(ts int64, line string, lb *labelsBuilder) (string, bool)
}

// pipeline runs compiled stages over entries.
type pipeline struct {
	stages []stage
	lb     *labelsBuilder
}

// splitPushdown moves the line filters that see the original line (all of
// them before the first line_format: parsers, label filters, drop and keep
// never change the line) into the store's selection, where they can use
// its indexes. The rest stays in the pipeline.
func splitPushdown(stages []Stage) (pushed []logs.LineFilter, rest []Stage) {
	formatted := false
	for _, s := range stages {
		if _, ok := s.(*LineFormatStage); ok {
			formatted = true
		}
		if lf, ok := s.(*LineFilterStage); ok && !formatted {
			pushed = append(pushed, logs.LineFilter{Op: lf.Op, Values: lf.Values})
			continue
		}
		rest = append(rest, s)
	}
	return pushed, rest
}

// filters reports whether stages may drop entries, which decides whether a
// log query's limit can go down to the store.
func filters(stages []Stage) bool {
	for _, s := range stages {
		switch s.(type) {
		case *LineFilterStage, *LabelFilterStage:
			return true
		}
	}
	return false
}

func compilePipeline(stages []Stage) (*pipeline, error) {
	p := &pipeline{lb: newLabelsBuilder()}
	for _, s := range stages {
		cs, err := compileStage(s)
		if err != nil {
			return nil, err
		}
		p.stages = append(p.stages, cs)
	}
	return p, nil
}

// process runs the pipeline over one entry of a stream whose labels are
// base; on success the entry's labels are in p.lb.
func (p *pipeline) process(base []catLabel, meta labels.Labels, ts int64, line string) (string, bool) {
	p.lb.reset(base, meta)
	ok := true
	for _, s := range p.stages {
		if line, ok = s.process(ts, line, p.lb); !ok {
			return "", false
		}
	}
	return line, true
}

func compileStage(s Stage) (stage, error) {
	switch s := s.(type) {
	case *LineFilterStage:
		return compileLineFilter(logs.LineFilter{Op: s.Op, Values: s.Values})
	case *JSONStage:
		if len(s.Params) == 0 {
			return &jsonStage{}, nil
		}
		st := &jsonParamsStage{}
		for _, p := range s.Params {
			path, err := parseJSONPath(p.Path)
			if err != nil {
				return nil, fmt.Errorf("cannot parse expression [%s]: %w", p.Path, err)
			}
			st.labels = append(st.labels, p.Label)
			st.paths = append(st.paths, path)
		}
		return st, nil
	case *LogfmtStage:
		return &logfmtStage{strict: s.Strict, keepEmpty: s.KeepEmpty, params: s.Params}, nil
	case *RegexpStage:
		re, err := regexp.Compile(s.Pattern)
		if err != nil {
			return nil, err
		}
		return &regexpStage{re: re, names: re.SubexpNames()}, nil
	case *LabelFilterStage:
		return &labelFilterStage{pred: compileLabelFilter(s.Filter)}, nil
	case *LineFormatStage:
		st := &lineFormatStage{}
		t, err := template.New("line").Option("missingkey=zero").Funcs(st.funcs()).Parse(s.Template)
		if err != nil {
			return nil, fmt.Errorf("invalid line template: %w", err)
		}
		st.tmpl = t
		return st, nil
	case *LabelFormatStage:
		st := &labelFormatStage{items: s.Items}
		st.tmpls = make([]*template.Template, len(s.Items))
		for i, it := range s.Items {
			if it.Rename {
				continue
			}
			t, err := template.New("label").Option("missingkey=zero").Funcs(st.funcs()).Parse(it.Value)
			if err != nil {
				return nil, fmt.Errorf("invalid template for label '%s': %w", it.Name, err)
			}
			st.tmpls[i] = t
		}
		return st, nil
	case *DropStage:
		return &dropStage{items: s.Items}, nil
	case *KeepStage:
		return &keepStage{items: s.Items}, nil
	}
	return nil, fmt.Errorf("unknown stage %T", s)
}

// lineFilter implements a line filter in the engine; the store implements
// the same semantics for filters pushed down (logs.LineFilter).
type lineFilter struct {
	op     logs.LineFilterOp
	values []string
	res    []*regexp.Regexp
}

func compileLineFilter(f logs.LineFilter) (*lineFilter, error) {
	lf := &lineFilter{op: f.Op, values: f.Values}
	if f.Op == logs.LineMatches || f.Op == logs.LineNotMatches {
		for _, v := range f.Values {
			re, err := regexp.Compile(v)
			if err != nil {
				return nil, err
			}
			lf.res = append(lf.res, re)
		}
	}
	return lf, nil
}

// MatchLine reports whether line passes the filter f: the reference
// semantics of logs.LineFilter, for stores and tests.
func MatchLine(f logs.LineFilter, line string) (bool, error) {
	lf, err := compileLineFilter(f)
	if err != nil {
		return false, err
	}
	return lf.match(line), nil
}

func (f *lineFilter) match(line string) bool {
	any := false
	switch f.op {
	case logs.LineContains, logs.LineNotContains:
		for _, v := range f.values {
			if strings.Contains(line, v) {
				any = true
				break
			}
		}
	default:
		for _, re := range f.res {
			if re.MatchString(line) {
				any = true
				break
			}
		}
	}
	if f.op == logs.LineNotContains || f.op == logs.LineNotMatches {
		return !any
	}
	return any
}

func (f *lineFilter) process(_ int64, line string, _ *labelsBuilder) (string, bool) {
	return line, f.match(line)
}

type jsonStage struct{ j jsonFlattener }

func (s *jsonStage) process(_ int64, line string, lb *labelsBuilder) (string, bool) {
	if err := s.j.flatten(line, lb); err != nil {
		lb.setErr(ErrJSON, err)
	}
	return line, true
}

type jsonParamsStage struct {
	labels []string
	paths  [][]jsonPathElem
}

func (s *jsonParamsStage) process(_ int64, line string, lb *labelsBuilder) (string, bool) {
	if line == "" {
		return line, true
	}
	if c := line[0]; c != '{' && c != '[' && c != '"' {
		lb.setErr(ErrJSON, errJSONObject)
		return line, true
	}
	for i, path := range s.paths {
		v, found, err := jsonExtract(line, path)
		if err != nil {
			lb.setErr(ErrJSON, err)
			continue
		}
		if found {
			lb.setParsed(s.labels[i], v)
		}
	}
	return line, true
}

type logfmtStage struct {
	strict, keepEmpty bool
	params            []ExtractParam
	dec               logfmtDecoder
	names             map[string]string
}

func (s *logfmtStage) name(key string) string {
	if n, ok := s.names[key]; ok {
		return n
	}
	n := sanitizeLabelKey(strings.TrimSpace(key))
	if n == key {
		n = strings.Clone(key) // key points into the line
	}
	if s.names == nil {
		s.names = make(map[string]string)
	}
	if len(s.names) < maxInternedNames {
		s.names[strings.Clone(key)] = n
	}
	return n
}

func (s *logfmtStage) process(_ int64, line string, lb *labelsBuilder) (string, bool) {
	s.dec.reset(line)
	for !s.dec.eol() {
		if !s.dec.scanKeyval() {
			if s.strict {
				break
			}
			continue
		}
		val := s.dec.value
		if strings.ContainsRune(val, utf8.RuneError) || !utf8.ValidString(val) {
			val = ""
		}
		if len(s.params) > 0 {
			for _, p := range s.params {
				if p.Path == s.dec.key {
					lb.setParsed(p.Label, val)
				}
			}
			continue
		}
		name := s.name(s.dec.key)
		if name == "" || (!s.keepEmpty && val == "") {
			continue
		}
		lb.setParsed(name, val)
	}
	if s.strict && s.dec.err != nil {
		lb.setErr(ErrLogfmt, s.dec.err)
	}
	return line, true
}

type regexpStage struct {
	re    *regexp.Regexp
	names []string
}

func (s *regexpStage) process(_ int64, line string, lb *labelsBuilder) (string, bool) {
	m := s.re.FindStringSubmatchIndex(line)
	for i, name := range s.names {
		if name == "" || m == nil || m[2*i] < 0 {
			continue
		}
		lb.setParsed(name, line[m[2*i]:m[2*i+1]])
	}
	return line, true
}

type labelFilterStage struct{ pred labelPred }

func (s *labelFilterStage) process(_ int64, line string, lb *labelsBuilder) (string, bool) {
	return line, s.pred.eval(lb)
}

// labelPred is a compiled label filter.
type labelPred interface {
	eval(lb *labelsBuilder) bool
}

func compileLabelFilter(f LabelFilter) labelPred {
	switch f := f.(type) {
	case *StringLabelFilter:
		return stringPred{f.Matcher}
	case *NumericLabelFilter:
		return valuePred[float64]{f.Name, f.Op, f.Value, parseFloat}
	case *DurationLabelFilter:
		return valuePred[time.Duration]{f.Name, f.Op, f.Value, time.ParseDuration}
	case *BytesLabelFilter:
		return valuePred[uint64]{f.Name, f.Op, f.Value, parseBytes}
	case *BinaryLabelFilter:
		return binaryPred{and: f.And, l: compileLabelFilter(f.Left), r: compileLabelFilter(f.Right)}
	}
	panic(fmt.Sprintf("logql: unknown label filter %T", f))
}

type stringPred struct{ m *labels.Matcher }

// eval compares a missing label as "", as Loki does (so `| __error__=""`
// keeps entries without errors).
func (p stringPred) eval(lb *labelsBuilder) bool {
	v, _ := lb.get(p.m.Name)
	return p.m.Matches(v)
}

// filterValue is what numeric, duration and byte-size label filters compare.
type filterValue interface {
	float64 | time.Duration | uint64
}

// valuePred compares a label's value, parsed as a T, with a constant.
type valuePred[T filterValue] struct {
	name  string
	op    CmpOp
	value T
	parse func(string) (T, error)
}

// eval drops entries without the label; a value that does not parse keeps
// the entry and marks it with LabelFilterErr, as in Loki.
func (p valuePred[T]) eval(lb *labelsBuilder) bool {
	v, ok := lb.get(p.name)
	if !ok {
		return false
	}
	x, err := p.parse(v)
	if err != nil {
		lb.setErr(ErrLabelFilter, err)
		return true
	}
	return compare(x, p.value, p.op)
}

func parseFloat(s string) (float64, error) { return strconv.ParseFloat(s, 64) }

type binaryPred struct {
	and  bool
	l, r labelPred
}

func (p binaryPred) eval(lb *labelsBuilder) bool {
	if p.and {
		return p.l.eval(lb) && p.r.eval(lb)
	}
	return p.l.eval(lb) || p.r.eval(lb)
}

func compare[T filterValue](a, b T, op CmpOp) bool {
	switch op {
	case CmpEq:
		return a == b
	case CmpNeq:
		return a != b
	case CmpGt:
		return a > b
	case CmpGte:
		return a >= b
	case CmpLt:
		return a < b
	case CmpLte:
		return a <= b
	}
	return false
}

// templateState gives templates the current line and timestamp through
// __line__ and __timestamp__.
type templateState struct {
	line string
	ts   int64
	data map[string]string
}

func (s *templateState) funcs() template.FuncMap {
	m := make(template.FuncMap, len(templateFuncs)+2)
	for k, v := range templateFuncs {
		m[k] = v
	}
	m["__line__"] = func() string { return s.line }
	m["__timestamp__"] = func() time.Time { return time.Unix(0, s.ts) }
	return m
}

// fill sets s.data to the entry's labels, reusing the map.
func (s *templateState) fill(lb *labelsBuilder) map[string]string {
	if s.data == nil {
		s.data = make(map[string]string, len(lb.lbls)+2)
	}
	clear(s.data)
	for _, l := range lb.lbls {
		s.data[l.name] = l.value
	}
	if lb.err != "" {
		s.data[errorLabel] = lb.err
	}
	if lb.errDetails != "" {
		s.data[errorDetailsLabel] = lb.errDetails
	}
	return s.data
}

type lineFormatStage struct {
	templateState
	tmpl *template.Template
	buf  bytes.Buffer
}

func (s *lineFormatStage) process(ts int64, line string, lb *labelsBuilder) (string, bool) {
	s.line, s.ts = line, ts
	s.buf.Reset()
	if err := s.tmpl.Execute(&s.buf, s.fill(lb)); err != nil {
		lb.setErr(ErrTemplateFormat, err)
		return line, true
	}
	return s.buf.String(), true
}

type labelFormatStage struct {
	templateState
	items []LabelFormat
	tmpls []*template.Template
	buf   bytes.Buffer
}

func (s *labelFormatStage) process(ts int64, line string, lb *labelsBuilder) (string, bool) {
	s.line, s.ts = line, ts
	var data map[string]string
	for i, it := range s.items {
		if it.Rename {
			if it.Name == it.Value {
				continue
			}
			if v, ok := lb.get(it.Value); ok {
				lb.set(catParsed, it.Name, v)
				lb.del(it.Value)
			}
			continue
		}
		// Loki evaluates every template of a stage on the labels as they
		// were when the first template ran.
		if data == nil {
			data = s.fill(lb)
		}
		s.buf.Reset()
		if err := s.tmpls[i].Execute(&s.buf, data); err != nil {
			lb.setErr(ErrTemplateFormat, err)
			continue
		}
		lb.set(catParsed, it.Name, s.buf.String())
	}
	return line, true
}

type dropStage struct{ items []LabelRef }

func (s *dropStage) process(_ int64, line string, lb *labelsBuilder) (string, bool) {
	for _, it := range s.items {
		if it.Matcher == nil {
			lb.del(it.Name)
			continue
		}
		if v, ok := lb.get(it.Name); ok && it.Matcher.Matches(v) {
			lb.del(it.Name)
		}
	}
	return line, true
}

type keepStage struct{ items []LabelRef }

// process keeps the listed labels; the error labels stay, as in Loki, so
// that keep cannot hide a parse error from a metric query.
func (s *keepStage) process(_ int64, line string, lb *labelsBuilder) (string, bool) {
	out := lb.lbls[:0]
	for _, l := range lb.lbls {
		if s.keeps(l) {
			out = append(out, l)
		}
	}
	lb.lbls = out
	return line, true
}

func (s *keepStage) keeps(l catLabel) bool {
	for _, it := range s.items {
		if it.Name != l.name {
			continue
		}
		if it.Matcher == nil || it.Matcher.Matches(l.value) {
			return true
		}
	}
	return false
}
