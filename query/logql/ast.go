package logql

import (
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/pharos-obs/pharos/storage/logs"
)

// Expr is a parsed LogQL query: a *LogSelectorExpr (log query) or a
// SampleExpr (metric query). String returns the canonical form, which
// Parse reads back to the same expression.
type Expr interface {
	String() string
	isExpr()
}

// SampleExpr is a metric query expression.
type SampleExpr interface {
	Expr
	isSampleExpr()
}

// LogSelectorExpr is a stream selector and its pipeline.
type LogSelectorExpr struct {
	Matchers []*labels.Matcher
	Pipeline []Stage
}

// Stage is one step of a log pipeline.
type Stage interface {
	String() string
	isStage()
}

// LineFilterStage keeps lines that contain (or match) any of Values, or
// drops them for the negative operators.
type LineFilterStage struct {
	Op     logs.LineFilterOp
	Values []string
}

// ExtractParam names one label a `| json` or `| logfmt` with parameters
// extracts: Label from the value at Path (a JSON path like a.b[0], or a
// logfmt key).
type ExtractParam struct {
	Label string
	Path  string
}

// JSONStage is `| json`, flattening every field, or `| json a="x.y"`.
type JSONStage struct {
	Params []ExtractParam
}

// LogfmtStage is `| logfmt [--strict] [--keep-empty] [params]`.
type LogfmtStage struct {
	Strict, KeepEmpty bool
	Params            []ExtractParam
}

// RegexpStage is `| regexp "(?P<name>re)"`.
type RegexpStage struct {
	Pattern string
}

// LabelFilterStage is `| <label filter expression>`.
type LabelFilterStage struct {
	Filter LabelFilter
}

// LineFormatStage is `| line_format "template"`.
type LineFormatStage struct {
	Template string
}

// LabelFormat is one item of label_format: Name=Value renames label Value
// when Rename is set, otherwise sets Name to the template Value.
type LabelFormat struct {
	Name   string
	Value  string
	Rename bool
}

// LabelFormatStage is `| label_format a=b, c="{{.x}}"`.
type LabelFormatStage struct {
	Items []LabelFormat
}

// LabelRef is an item of drop and keep: a bare label name, or a matcher
// that applies only when the label's value matches.
type LabelRef struct {
	Name    string
	Matcher *labels.Matcher
}

// DropStage is `| drop a, b="x"`.
type DropStage struct {
	Items []LabelRef
}

// KeepStage is `| keep a, b="x"`.
type KeepStage struct {
	Items []LabelRef
}

// LabelFilter is a label filter expression.
type LabelFilter interface {
	String() string
	isLabelFilter()
}

// CmpOp is a comparison operator of numeric, duration and bytes filters.
type CmpOp int

// The comparison operators.
const (
	CmpEq CmpOp = iota
	CmpNeq
	CmpGt
	CmpGte
	CmpLt
	CmpLte
)

func (o CmpOp) String() string {
	return [...]string{"==", "!=", ">", ">=", "<", "<="}[o]
}

// StringLabelFilter is a label matcher; a missing label compares as "".
type StringLabelFilter struct {
	Matcher *labels.Matcher
}

// NumericLabelFilter compares a label parsed as a float.
type NumericLabelFilter struct {
	Name  string
	Op    CmpOp
	Value float64
}

// DurationLabelFilter compares a label parsed as a Go duration.
type DurationLabelFilter struct {
	Name  string
	Op    CmpOp
	Value time.Duration
}

// BytesLabelFilter compares a label parsed as a byte size (1KB, 2MiB).
type BytesLabelFilter struct {
	Name  string
	Op    CmpOp
	Value uint64
}

// BinaryLabelFilter combines two filters with and (also `,` and
// juxtaposition) or or.
type BinaryLabelFilter struct {
	And         bool
	Left, Right LabelFilter
}

// Grouping is a by (...) or without (...) clause.
type Grouping struct {
	Without bool
	Labels  []string
}

// Unwrap turns a label into the sample value of an unwrapped range
// aggregation. Conv is "", "duration", "duration_seconds" or "bytes".
type Unwrap struct {
	Label       string
	Conv        string
	PostFilters []LabelFilter
}

// LogRangeExpr is a log selector over a range window: {..} | ... [5m].
type LogRangeExpr struct {
	Selector *LogSelectorExpr
	Range    time.Duration
	Offset   time.Duration
	Unwrap   *Unwrap
}

// RangeAggregationExpr is count_over_time, rate, ... over a LogRangeExpr.
type RangeAggregationExpr struct {
	Op string
	// Param is quantile_over_time's φ.
	Param    *float64
	Range    *LogRangeExpr
	Grouping *Grouping
}

// VectorAggregationExpr is sum, avg, topk, ... over a sample expression.
type VectorAggregationExpr struct {
	Op string
	// Param is topk and bottomk's k.
	Param    int
	Grouping *Grouping
	Expr     SampleExpr
}

// VectorCard is the cardinality of a vector matching.
type VectorCard int

// The cardinalities of a binary operation between vectors.
const (
	CardOneToOne VectorCard = iota
	CardManyToOne
	CardOneToMany
)

// VectorMatching is on/ignoring and group_left/group_right.
type VectorMatching struct {
	On      bool
	Labels  []string
	Card    VectorCard
	Include []string
}

// BinaryExpr is an arithmetic, comparison or set operation.
type BinaryExpr struct {
	Op         string
	LHS, RHS   SampleExpr
	ReturnBool bool
	// Matching is set only when the query gives on/ignoring or group_x.
	Matching *VectorMatching
}

// LiteralExpr is a number.
type LiteralExpr struct {
	Value float64
}

func (*LogSelectorExpr) isExpr()       {}
func (*RangeAggregationExpr) isExpr()  {}
func (*VectorAggregationExpr) isExpr() {}
func (*BinaryExpr) isExpr()            {}
func (*LiteralExpr) isExpr()           {}

func (*RangeAggregationExpr) isSampleExpr()  {}
func (*VectorAggregationExpr) isSampleExpr() {}
func (*BinaryExpr) isSampleExpr()            {}
func (*LiteralExpr) isSampleExpr()           {}

func (*LineFilterStage) isStage()  {}
func (*JSONStage) isStage()        {}
func (*LogfmtStage) isStage()      {}
func (*RegexpStage) isStage()      {}
func (*LabelFilterStage) isStage() {}
func (*LineFormatStage) isStage()  {}
func (*LabelFormatStage) isStage() {}
func (*DropStage) isStage()        {}
func (*KeepStage) isStage()        {}

func (*StringLabelFilter) isLabelFilter()   {}
func (*NumericLabelFilter) isLabelFilter()  {}
func (*DurationLabelFilter) isLabelFilter() {}
func (*BytesLabelFilter) isLabelFilter()    {}
func (*BinaryLabelFilter) isLabelFilter()   {}

func (e *LogSelectorExpr) String() string {
	var b strings.Builder
	b.WriteString(selectorString(e.Matchers))
	for _, s := range e.Pipeline {
		b.WriteByte(' ')
		b.WriteString(s.String())
	}
	return b.String()
}

func selectorString(ms []*labels.Matcher) string {
	var b strings.Builder
	b.WriteByte('{')
	for i, m := range ms {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(matcherString(m))
	}
	b.WriteByte('}')
	return b.String()
}

// matcherString quotes like Go so that the lexer's strconv.Unquote reads it
// back; labels.Matcher.String would too, but may quote the name.
func matcherString(m *labels.Matcher) string {
	return m.Name + m.Type.String() + strconv.Quote(m.Value)
}

func (s *LineFilterStage) String() string {
	var b strings.Builder
	b.WriteString(s.Op.String())
	for i, v := range s.Values {
		if i > 0 {
			b.WriteString(" or")
		}
		b.WriteByte(' ')
		b.WriteString(strconv.Quote(v))
	}
	return b.String()
}

func paramsString(ps []ExtractParam) string {
	var b strings.Builder
	for i, p := range ps {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte(' ')
		b.WriteString(p.Label)
		b.WriteByte('=')
		b.WriteString(strconv.Quote(p.Path))
	}
	return b.String()
}

func (s *JSONStage) String() string { return "| json" + paramsString(s.Params) }

func (s *LogfmtStage) String() string {
	out := "| logfmt"
	if s.Strict {
		out += " --strict"
	}
	if s.KeepEmpty {
		out += " --keep-empty"
	}
	return out + paramsString(s.Params)
}

func (s *RegexpStage) String() string { return "| regexp " + strconv.Quote(s.Pattern) }

func (s *LabelFilterStage) String() string { return "| " + s.Filter.String() }

func (s *LineFormatStage) String() string { return "| line_format " + strconv.Quote(s.Template) }

func (s *LabelFormatStage) String() string {
	var b strings.Builder
	b.WriteString("| label_format ")
	for i, it := range s.Items {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(it.Name)
		b.WriteByte('=')
		if it.Rename {
			b.WriteString(it.Value)
		} else {
			b.WriteString(strconv.Quote(it.Value))
		}
	}
	return b.String()
}

func labelRefsString(kw string, items []LabelRef) string {
	var b strings.Builder
	b.WriteString("| ")
	b.WriteString(kw)
	b.WriteByte(' ')
	for i, it := range items {
		if i > 0 {
			b.WriteString(", ")
		}
		if it.Matcher != nil {
			b.WriteString(matcherString(it.Matcher))
		} else {
			b.WriteString(it.Name)
		}
	}
	return b.String()
}

func (s *DropStage) String() string { return labelRefsString("drop", s.Items) }

func (s *KeepStage) String() string { return labelRefsString("keep", s.Items) }

func (f *StringLabelFilter) String() string { return matcherString(f.Matcher) }

func (f *NumericLabelFilter) String() string {
	return f.Name + f.Op.String() + formatFloat(f.Value)
}

func (f *DurationLabelFilter) String() string {
	return f.Name + f.Op.String() + formatDuration(f.Value)
}

func (f *BytesLabelFilter) String() string {
	return f.Name + f.Op.String() + formatBytes(f.Value)
}

// formatBytes writes a byte size in the largest unit that divides it, so
// that 1KiB prints as written.
func formatBytes(v uint64) string {
	if v > 0 {
		units := []string{"EiB", "PiB", "TiB", "GiB", "MiB", "KiB"}
		for i, u := range units {
			if size := uint64(1) << (10 * (len(units) - i)); v%size == 0 {
				return strconv.FormatUint(v/size, 10) + u
			}
		}
		units = []string{"EB", "PB", "TB", "GB", "MB", "KB"}
		size := uint64(1e18)
		for _, u := range units {
			if v%size == 0 {
				return strconv.FormatUint(v/size, 10) + u
			}
			size /= 1000
		}
	}
	return strconv.FormatUint(v, 10) + "B"
}

func (f *BinaryLabelFilter) String() string {
	op := " or "
	if f.And {
		op = " and "
	}
	return labelFilterOperand(f.Left, f.And, false) + op + labelFilterOperand(f.Right, f.And, true)
}

// labelFilterOperand parenthesizes a nested binary filter where reading it
// back would otherwise group differently (and binds tighter than or; both
// associate to the left).
func labelFilterOperand(f LabelFilter, parentAnd, right bool) string {
	if b, ok := f.(*BinaryLabelFilter); ok && (parentAnd && !b.And || right) {
		return "(" + b.String() + ")"
	}
	return f.String()
}

func formatFloat(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

func (g *Grouping) String() string {
	kw := "by"
	if g.Without {
		kw = "without"
	}
	return kw + " (" + strings.Join(g.Labels, ", ") + ")"
}

func (u *Unwrap) String() string {
	var b strings.Builder
	b.WriteString("| unwrap ")
	if u.Conv != "" {
		b.WriteString(u.Conv + "(" + u.Label + ")")
	} else {
		b.WriteString(u.Label)
	}
	for _, f := range u.PostFilters {
		b.WriteString(" | ")
		b.WriteString(f.String())
	}
	return b.String()
}

func (r *LogRangeExpr) String() string {
	var b strings.Builder
	b.WriteString(r.Selector.String())
	if r.Unwrap != nil {
		b.WriteByte(' ')
		b.WriteString(r.Unwrap.String())
	}
	b.WriteString(" [")
	b.WriteString(formatDuration(r.Range))
	b.WriteByte(']')
	if r.Offset != 0 {
		b.WriteString(" offset ")
		b.WriteString(formatDuration(r.Offset))
	}
	return b.String()
}

func (e *RangeAggregationExpr) String() string {
	var b strings.Builder
	b.WriteString(e.Op)
	b.WriteByte('(')
	if e.Param != nil {
		b.WriteString(formatFloat(*e.Param))
		b.WriteString(", ")
	}
	b.WriteString(e.Range.String())
	b.WriteByte(')')
	if e.Grouping != nil {
		b.WriteByte(' ')
		b.WriteString(e.Grouping.String())
	}
	return b.String()
}

func (e *VectorAggregationExpr) String() string {
	var b strings.Builder
	b.WriteString(e.Op)
	if e.Grouping != nil {
		b.WriteByte(' ')
		b.WriteString(e.Grouping.String())
		b.WriteByte(' ')
	}
	b.WriteByte('(')
	if e.Op == OpTopK || e.Op == OpBottomK {
		b.WriteString(strconv.Itoa(e.Param))
		b.WriteString(", ")
	}
	b.WriteString(e.Expr.String())
	b.WriteByte(')')
	return b.String()
}

func (e *BinaryExpr) String() string {
	var b strings.Builder
	b.WriteString(binaryOperand(e.LHS))
	b.WriteByte(' ')
	b.WriteString(e.Op)
	if e.ReturnBool {
		b.WriteString(" bool")
	}
	if m := e.Matching; m != nil {
		if m.On {
			b.WriteString(" on (")
		} else {
			b.WriteString(" ignoring (")
		}
		b.WriteString(strings.Join(m.Labels, ", "))
		b.WriteByte(')')
		switch m.Card {
		case CardManyToOne:
			b.WriteString(" group_left (" + strings.Join(m.Include, ", ") + ")")
		case CardOneToMany:
			b.WriteString(" group_right (" + strings.Join(m.Include, ", ") + ")")
		}
	}
	b.WriteByte(' ')
	b.WriteString(binaryOperand(e.RHS))
	return b.String()
}

// binaryOperand parenthesizes nested binary operations so that the printed
// form never depends on precedence rules.
func binaryOperand(e SampleExpr) string {
	if _, ok := e.(*BinaryExpr); ok {
		return "(" + e.String() + ")"
	}
	return e.String()
}

func (e *LiteralExpr) String() string { return formatFloat(e.Value) }

// Selectors returns the log selectors of e in query order, for callers that
// need the streams a query reads (label look-ups, index stats).
func Selectors(e Expr) []*LogSelectorExpr {
	switch e := e.(type) {
	case *LogSelectorExpr:
		return []*LogSelectorExpr{e}
	case *RangeAggregationExpr:
		return []*LogSelectorExpr{e.Range.Selector}
	case *VectorAggregationExpr:
		return Selectors(e.Expr)
	case *BinaryExpr:
		return append(Selectors(e.LHS), Selectors(e.RHS)...)
	}
	return nil
}
