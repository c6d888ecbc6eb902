package logql

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"text/template"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/pharos-obs/pharos/storage/logs"
)

// Range aggregation operators.
const (
	OpCountOverTime    = "count_over_time"
	OpRate             = "rate"
	OpBytesOverTime    = "bytes_over_time"
	OpBytesRate        = "bytes_rate"
	OpAbsentOverTime   = "absent_over_time"
	OpSumOverTime      = "sum_over_time"
	OpAvgOverTime      = "avg_over_time"
	OpMaxOverTime      = "max_over_time"
	OpMinOverTime      = "min_over_time"
	OpFirstOverTime    = "first_over_time"
	OpLastOverTime     = "last_over_time"
	OpStddevOverTime   = "stddev_over_time"
	OpStdvarOverTime   = "stdvar_over_time"
	OpQuantileOverTime = "quantile_over_time"
)

// Vector aggregation operators.
const (
	OpSum     = "sum"
	OpAvg     = "avg"
	OpMin     = "min"
	OpMax     = "max"
	OpCount   = "count"
	OpStddev  = "stddev"
	OpStdvar  = "stdvar"
	OpTopK    = "topk"
	OpBottomK = "bottomk"
)

var rangeOps = map[string]bool{
	OpCountOverTime: true, OpRate: true, OpBytesOverTime: true, OpBytesRate: true, OpAbsentOverTime: true,
	OpSumOverTime: true, OpAvgOverTime: true, OpMaxOverTime: true, OpMinOverTime: true,
	OpFirstOverTime: true, OpLastOverTime: true, OpStddevOverTime: true, OpStdvarOverTime: true,
	OpQuantileOverTime: true,
}

// unwrapOps need `| unwrap`; the others (but rate) must not have it.
var unwrapOps = map[string]bool{
	OpSumOverTime: true, OpAvgOverTime: true, OpMaxOverTime: true, OpMinOverTime: true,
	OpFirstOverTime: true, OpLastOverTime: true, OpStddevOverTime: true, OpStdvarOverTime: true,
	OpQuantileOverTime: true,
}

var vectorOps = map[string]bool{
	OpSum: true, OpAvg: true, OpMin: true, OpMax: true, OpCount: true,
	OpStddev: true, OpStdvar: true, OpTopK: true, OpBottomK: true,
}

// unsupportedFuncs are LogQL functions Pharos knows but does not evaluate.
var unsupportedFuncs = map[string]string{
	"label_replace": "label_replace",
	"vector":        "vector()",
	"sort":          "sort",
	"sort_desc":     "sort_desc",
	"approx_topk":   "approx_topk",
	"rate_counter":  "rate_counter",
	"count_values":  "count_values",
	"group":         "group",
}

// unsupportedStages are pipeline stages Pharos knows but does not evaluate.
var unsupportedStages = map[string]string{
	"pattern":    "pattern parser",
	"unpack":     "unpack parser",
	"decolorize": "decolorize",
	"distinct":   "distinct",
}

// Binary operator precedence, as in PromQL (higher binds tighter).
var binaryPrec = map[string]int{
	"or": 1, "and": 2, "unless": 2,
	"==": 3, "!=": 3, ">": 3, ">=": 3, "<": 3, "<=": 3,
	"+": 4, "-": 4,
	"*": 5, "/": 5, "%": 5,
	"^": 6,
}

func isComparison(op string) bool {
	switch op {
	case "==", "!=", ">", ">=", "<", "<=":
		return true
	}
	return false
}

func isSetOp(op string) bool { return op == "and" || op == "or" || op == "unless" }

// maxParseDepth bounds nesting so that hostile queries cannot exhaust the stack.
const maxParseDepth = 256

// Parse parses a LogQL query. Errors are *ParseError or *UnsupportedError.
func Parse(query string) (Expr, error) {
	toks, err := lex(query)
	if err != nil {
		return nil, err
	}
	p := &queryParser{query: query, toks: toks}
	e, err := p.parseTop()
	if err != nil {
		return nil, err
	}
	return e, nil
}

// ParseSampleExpr parses a metric query; a log query is an error.
func ParseSampleExpr(query string) (SampleExpr, error) {
	e, err := Parse(query)
	if err != nil {
		return nil, err
	}
	se, ok := e.(SampleExpr)
	if !ok {
		return nil, newParseError(query, 0, "a metric query is required, got a log query")
	}
	return se, nil
}

// ParseMatchers parses a stream selector such as {app="x"}, as the series
// and label endpoints take it.
func ParseMatchers(selector string) ([]*labels.Matcher, error) {
	e, err := Parse(selector)
	if err != nil {
		return nil, err
	}
	sel, ok := e.(*LogSelectorExpr)
	if !ok || len(sel.Pipeline) > 0 {
		return nil, newParseError(selector, 0, "only label matchers are supported")
	}
	return sel.Matchers, nil
}

type queryParser struct {
	query string
	toks  []token
	i     int
	depth int
}

// bail carries a parse failure out of the recursive descent.
type bail struct{ err error }

func (p *queryParser) parseTop() (e Expr, err error) {
	defer func() {
		if r := recover(); r != nil {
			b, ok := r.(bail)
			if !ok {
				panic(r)
			}
			e, err = nil, b.err
		}
	}()
	e = p.parseExpr(0)
	if t := p.peek(); t.kind != tokEOF {
		p.failf(t.pos, "syntax error: unexpected %s", t.describe())
	}
	return e, nil
}

func (p *queryParser) peek() token { return p.toks[p.i] }

func (p *queryParser) peekAt(n int) token {
	if p.i+n < len(p.toks) {
		return p.toks[p.i+n]
	}
	return p.toks[len(p.toks)-1]
}

func (p *queryParser) next() token {
	t := p.toks[p.i]
	if t.kind != tokEOF {
		p.i++
	}
	return t
}

func (p *queryParser) failf(pos int, format string, args ...any) {
	panic(bail{newParseError(p.query, pos, fmt.Sprintf(format, args...))})
}

func (p *queryParser) unsupported(feature string) {
	panic(bail{&UnsupportedError{Feature: feature}})
}

func (p *queryParser) expect(k tokKind) token {
	t := p.next()
	if t.kind != k {
		p.failf(t.pos, "syntax error: unexpected %s, expecting %q", t.describe(), k.String())
	}
	return t
}

func (p *queryParser) isIdent(text string) bool {
	t := p.peek()
	return t.kind == tokIdent && t.text == text
}

func (p *queryParser) enter() {
	p.depth++
	if p.depth > maxParseDepth {
		p.failf(p.peek().pos, "query is nested too deeply")
	}
}

func (p *queryParser) leave() { p.depth-- }

// minus consumes a '-' sign and reports whether there was one.
func (p *queryParser) minus() bool {
	if p.peek().kind != tokSub {
		return false
	}
	p.next()
	return true
}

// parseExpr parses binary operations by precedence climbing.
func (p *queryParser) parseExpr(minPrec int) Expr {
	p.enter()
	defer p.leave()
	lhs := p.parseUnary()
	for {
		t := p.peek()
		op, ok := binaryOpOf(t)
		if !ok {
			return lhs
		}
		prec := binaryPrec[op]
		if prec < minPrec {
			return lhs
		}
		p.next()
		be := &BinaryExpr{Op: op}
		if p.isIdent("bool") {
			p.next()
			if !isComparison(op) {
				p.failf(t.pos, "bool modifier can only be used on comparison operators")
			}
			be.ReturnBool = true
		}
		be.Matching = p.parseVectorMatching(op)
		nextMin := prec + 1
		if op == "^" {
			nextMin = prec // right associative
		}
		rhs := p.parseExpr(nextMin)
		be.LHS = p.sampleOperand(lhs, t.pos)
		be.RHS = p.sampleOperand(rhs, t.pos)
		p.checkBinary(be, t.pos)
		lhs = be
	}
}

func binaryOpOf(t token) (string, bool) {
	switch t.kind {
	case tokAdd, tokSub, tokMul, tokDiv, tokMod, tokPow, tokCmpEq, tokNeq, tokGt, tokGte, tokLt, tokLte:
		return t.kind.String(), true
	case tokIdent:
		if isSetOp(t.text) {
			return t.text, true
		}
	}
	return "", false
}

func (p *queryParser) parseVectorMatching(op string) *VectorMatching {
	if !p.isIdent("on") && !p.isIdent("ignoring") {
		if p.isIdent("group_left") || p.isIdent("group_right") {
			p.failf(p.peek().pos, "syntax error: %s requires on or ignoring", p.peek().text)
		}
		return nil
	}
	m := &VectorMatching{On: p.next().text == "on"}
	m.Labels = p.parseLabelList()
	if p.isIdent("group_left") || p.isIdent("group_right") {
		t := p.next()
		if isSetOp(op) {
			p.failf(t.pos, "no grouping allowed for %q operation", op)
		}
		m.Card = CardManyToOne
		if t.text == "group_right" {
			m.Card = CardOneToMany
		}
		if p.peek().kind == tokLParen {
			m.Include = p.parseLabelList()
		} else {
			m.Include = []string{}
		}
		for _, l := range m.Include {
			if slices.Contains(m.Labels, l) && m.On {
				p.failf(t.pos, "label %q must not occur in ON and GROUP clause at once", l)
			}
		}
	}
	return m
}

func (p *queryParser) sampleOperand(e Expr, pos int) SampleExpr {
	se, ok := e.(SampleExpr)
	if !ok {
		p.failf(pos, "binary operations between log queries are not supported; wrap the log query in a range aggregation such as count_over_time")
	}
	return se
}

// isScalar reports whether e evaluates to a scalar (a number or arithmetic
// on numbers).
func isScalar(e SampleExpr) bool {
	switch e := e.(type) {
	case *LiteralExpr:
		return true
	case *BinaryExpr:
		return isScalar(e.LHS) && isScalar(e.RHS)
	}
	return false
}

func (p *queryParser) checkBinary(be *BinaryExpr, pos int) {
	ls, rs := isScalar(be.LHS), isScalar(be.RHS)
	if isSetOp(be.Op) && (ls || rs) {
		p.failf(pos, "set operator %q not allowed in binary scalar expression", be.Op)
	}
	if isComparison(be.Op) && ls && rs && !be.ReturnBool {
		p.failf(pos, "comparisons between scalars must use BOOL modifier")
	}
	if be.Matching != nil && (ls || rs) {
		p.failf(pos, "vector matching only allowed between vectors")
	}
}

func (p *queryParser) parseUnary() Expr {
	t := p.peek()
	if t.kind == tokSub || t.kind == tokAdd {
		n := p.peekAt(1)
		if n.kind != tokNumber {
			p.failf(t.pos, "syntax error: unary %s is only supported before a number", t.kind)
		}
		p.next()
		p.next()
		v := n.num
		if t.kind == tokSub {
			v = -v
		}
		return &LiteralExpr{Value: v}
	}
	return p.parsePrimary()
}

func (p *queryParser) parsePrimary() Expr {
	t := p.peek()
	switch t.kind {
	case tokNumber:
		p.next()
		return &LiteralExpr{Value: t.num}
	case tokLParen:
		p.next()
		e := p.parseExpr(0)
		p.expect(tokRParen)
		return e
	case tokLBrace:
		sel := p.parseSelector()
		sel.Pipeline = p.parsePipeline(false)
		if p.peek().kind == tokLBracket {
			p.failf(p.peek().pos, "syntax error: a range [..] is only allowed inside a range aggregation such as count_over_time")
		}
		return sel
	case tokIdent:
		switch {
		case rangeOps[t.text]:
			return p.parseRangeAggregation()
		case vectorOps[t.text]:
			return p.parseVectorAggregation()
		}
		if f, ok := unsupportedFuncs[t.text]; ok && p.peekAt(1).kind == tokLParen {
			p.unsupported(f)
		}
		p.failf(t.pos, "syntax error: unexpected %s", t.describe())
	}
	p.failf(t.pos, "syntax error: unexpected %s", t.describe())
	return nil
}

// parseSelector parses {a="x", ...}.
func (p *queryParser) parseSelector() *LogSelectorExpr {
	open := p.expect(tokLBrace)
	sel := &LogSelectorExpr{}
	for p.peek().kind != tokRBrace {
		if len(sel.Matchers) > 0 {
			p.expect(tokComma)
			if p.peek().kind == tokRBrace { // trailing comma
				break
			}
		}
		sel.Matchers = append(sel.Matchers, p.parseMatcher())
	}
	p.expect(tokRBrace)
	if len(sel.Matchers) == 0 {
		p.failf(open.pos, "syntax error: a stream selector needs at least one label matcher")
	}
	nonEmpty := false
	for _, m := range sel.Matchers {
		if !m.Matches("") {
			nonEmpty = true
		}
	}
	if !nonEmpty {
		p.failf(open.pos, `queries require at least one regexp or equality matcher that does not have an empty-compatible value. For instance, app=~".*" does not meet this requirement, but app=~".+" will`)
	}
	return sel
}

// parseMatcher parses name op "value" (op: = != =~ !~).
func (p *queryParser) parseMatcher() *labels.Matcher {
	name := p.expect(tokIdent)
	opTok := p.next()
	mt, ok := matchTypeOf(opTok.kind)
	if !ok {
		p.failf(opTok.pos, "syntax error: unexpected %s, expecting =, !=, =~ or !~", opTok.describe())
	}
	val := p.next()
	if val.kind != tokString {
		p.failf(val.pos, "syntax error: unexpected %s, expecting string", val.describe())
	}
	m, err := labels.NewMatcher(mt, name.text, val.text)
	if err != nil {
		p.failf(val.pos, "invalid matcher %s: %v", name.text, err)
	}
	return m
}

// matchTypeOf returns the match type of a label matcher's operator.
func matchTypeOf(k tokKind) (labels.MatchType, bool) {
	switch k {
	case tokEq:
		return labels.MatchEqual, true
	case tokNeq:
		return labels.MatchNotEqual, true
	case tokRe:
		return labels.MatchRegexp, true
	case tokNre:
		return labels.MatchNotRegexp, true
	}
	return 0, false
}

// parsePipeline parses stages until something that is not a stage. In a
// range aggregation (inRange), `| unwrap` may end the pipeline.
func (p *queryParser) parsePipeline(inRange bool) []Stage {
	var stages []Stage
	for {
		t := p.peek()
		switch t.kind {
		case tokPipeEq, tokNeq, tokPipeRe, tokNre:
			stages = append(stages, p.parseLineFilter())
		case tokPipeGt, tokNotGt:
			p.unsupported("pattern line filter (|> and !>)")
		case tokPipe:
			if inRange && p.peekAt(1).kind == tokIdent && p.peekAt(1).text == "unwrap" {
				return stages
			}
			p.next()
			stages = append(stages, p.parseStage())
		default:
			return stages
		}
	}
}

func (p *queryParser) parseLineFilter() Stage {
	t := p.next()
	var op logs.LineFilterOp
	switch t.kind {
	case tokPipeEq:
		op = logs.LineContains
	case tokNeq:
		op = logs.LineNotContains
	case tokPipeRe:
		op = logs.LineMatches
	case tokNre:
		op = logs.LineNotMatches
	}
	st := &LineFilterStage{Op: op}
	for {
		v := p.peek()
		if v.kind == tokIdent && v.text == "ip" && p.peekAt(1).kind == tokLParen {
			p.unsupported("ip() line filter")
		}
		v = p.expect(tokString)
		if op == logs.LineMatches || op == logs.LineNotMatches {
			if _, err := regexp.Compile(v.text); err != nil {
				p.failf(v.pos, "invalid line filter regexp %q: %v", v.text, err)
			}
		}
		st.Values = append(st.Values, v.text)
		// `|= "a" or "b"`: `or` followed by a string continues the filter.
		if p.isIdent("or") && (p.peekAt(1).kind == tokString || p.peekAt(1).kind == tokIdent && p.peekAt(1).text == "ip") {
			p.next()
			continue
		}
		return st
	}
}

// isFilterOp reports whether k can follow a label name in a label filter.
func isFilterOp(k tokKind) bool {
	switch k {
	case tokEq, tokNeq, tokRe, tokNre, tokCmpEq, tokGt, tokGte, tokLt, tokLte:
		return true
	}
	return false
}

func (p *queryParser) parseStage() Stage {
	t := p.peek()
	if t.kind == tokIdent && !isFilterOp(p.peekAt(1).kind) {
		switch t.text {
		case "json":
			p.next()
			st := &JSONStage{Params: p.parseExtractParams(true)}
			return st
		case "logfmt":
			p.next()
			st := &LogfmtStage{}
			for p.peek().kind == tokFlag {
				f := p.next()
				switch f.text {
				case "--strict":
					st.Strict = true
				case "--keep-empty":
					st.KeepEmpty = true
				default:
					p.failf(f.pos, "syntax error: unknown logfmt flag %s", f.text)
				}
			}
			st.Params = p.parseExtractParams(false)
			return st
		case "regexp":
			p.next()
			pat := p.expect(tokString)
			if err := validateRegexpStage(pat.text); err != nil {
				p.failf(pat.pos, "%v", err)
			}
			return &RegexpStage{Pattern: pat.text}
		case "line_format":
			p.next()
			tmpl := p.expect(tokString)
			if _, err := template.New("line").Funcs(templateFuncStubs).Parse(tmpl.text); err != nil {
				p.failf(tmpl.pos, "invalid line template: %v", err)
			}
			return &LineFormatStage{Template: tmpl.text}
		case "label_format":
			p.next()
			return p.parseLabelFormat()
		case "drop":
			p.next()
			return &DropStage{Items: p.parseLabelRefs()}
		case "keep":
			p.next()
			return &KeepStage{Items: p.parseLabelRefs()}
		case "unwrap":
			p.failf(t.pos, "syntax error: unwrap is only allowed at the end of the pipeline of a range aggregation")
		}
		if f, ok := unsupportedStages[t.text]; ok {
			p.unsupported(f)
		}
	}
	if t.kind == tokIdent || t.kind == tokLParen {
		return &LabelFilterStage{Filter: p.parseLabelFilterOr()}
	}
	p.failf(t.pos, "syntax error: unexpected %s after |", t.describe())
	return nil
}

func validateRegexpStage(pat string) error {
	re, err := regexp.Compile(pat)
	if err != nil {
		return fmt.Errorf("invalid regexp %q: %w", pat, err)
	}
	seen := map[string]bool{}
	for _, n := range re.SubexpNames() {
		if n == "" {
			continue
		}
		if !isLabelName(n) {
			return fmt.Errorf("invalid extracted label name %q", n)
		}
		if seen[n] {
			return fmt.Errorf("duplicate extracted label name %q", n)
		}
		seen[n] = true
	}
	if len(seen) == 0 {
		return fmt.Errorf("regexp %q needs at least one named capture (?P<name>...)", pat)
	}
	return nil
}

// parseExtractParams parses `a="path", b` after json or logfmt. Any
// identifier right after the parser's name is a parameter: a label filter
// would need a | first.
func (p *queryParser) parseExtractParams(jsonPaths bool) []ExtractParam {
	var ps []ExtractParam
	for p.peek().kind == tokIdent {
		name := p.next()
		param := ExtractParam{Label: name.text, Path: name.text}
		if p.peek().kind == tokEq {
			p.next()
			param.Path = p.expect(tokString).text
		}
		if jsonPaths {
			if _, err := parseJSONPath(param.Path); err != nil {
				p.failf(name.pos, "cannot parse expression [%s]: %v", param.Path, err)
			}
		} else if param.Path == "" {
			p.failf(name.pos, "cannot parse expression [%s]: empty key", param.Path)
		}
		ps = append(ps, param)
		if p.peek().kind != tokComma {
			break
		}
		p.next()
		if p.peek().kind != tokIdent {
			p.failf(p.peek().pos, "syntax error: unexpected %s, expecting label name", p.peek().describe())
		}
	}
	return ps
}

func (p *queryParser) parseLabelFormat() Stage {
	st := &LabelFormatStage{}
	seen := map[string]bool{}
	for {
		name := p.expect(tokIdent)
		if name.text == errorLabel {
			p.failf(name.pos, "%s cannot be formatted", name.text)
		}
		if seen[name.text] {
			p.failf(name.pos, "multiple label name '%s' not allowed in a single format operation", name.text)
		}
		seen[name.text] = true
		p.expect(tokEq)
		v := p.next()
		switch v.kind {
		case tokIdent:
			st.Items = append(st.Items, LabelFormat{Name: name.text, Value: v.text, Rename: true})
		case tokString:
			if _, err := template.New("label").Funcs(templateFuncStubs).Parse(v.text); err != nil {
				p.failf(v.pos, "invalid template for label '%s': %v", name.text, err)
			}
			st.Items = append(st.Items, LabelFormat{Name: name.text, Value: v.text})
		default:
			p.failf(v.pos, "syntax error: unexpected %s, expecting label name or template string", v.describe())
		}
		if p.peek().kind != tokComma {
			return st
		}
		p.next()
	}
}

func (p *queryParser) parseLabelRefs() []LabelRef {
	var items []LabelRef
	for {
		t := p.peek()
		if t.kind != tokIdent {
			p.failf(t.pos, "syntax error: unexpected %s, expecting label name", t.describe())
		}
		if isFilterOp(p.peekAt(1).kind) {
			m := p.parseMatcher()
			items = append(items, LabelRef{Name: m.Name, Matcher: m})
		} else {
			p.next()
			items = append(items, LabelRef{Name: t.text})
		}
		if p.peek().kind != tokComma {
			return items
		}
		p.next()
	}
}

// parseLabelFilterOr parses label filters joined by or, which binds looser
// than and (written `and`, `,` or by juxtaposition).
func (p *queryParser) parseLabelFilterOr() LabelFilter {
	p.enter()
	defer p.leave()
	l := p.parseLabelFilterAnd()
	for p.isKeyword("or") {
		p.next()
		r := p.parseLabelFilterAnd()
		l = &BinaryLabelFilter{Left: l, Right: r}
	}
	return l
}

// isKeyword reports whether the next token is the keyword kw rather than a
// label of that name (which a filter operator would follow).
func (p *queryParser) isKeyword(kw string) bool {
	return p.isIdent(kw) && !isFilterOp(p.peekAt(1).kind)
}

func (p *queryParser) parseLabelFilterAnd() LabelFilter {
	l := p.parseLabelFilterPrimary()
	for {
		switch {
		case p.isKeyword("and") || p.peek().kind == tokComma:
			p.next()
		case p.peek().kind == tokIdent && !p.isKeyword("or") && !p.isKeyword("and") && isFilterOp(p.peekAt(1).kind):
			// juxtaposition: | a="x" b="y"
		case p.peek().kind == tokLParen:
		default:
			return l
		}
		r := p.parseLabelFilterPrimary()
		l = &BinaryLabelFilter{And: true, Left: l, Right: r}
	}
}

func (p *queryParser) parseLabelFilterPrimary() LabelFilter {
	t := p.peek()
	if t.kind == tokLParen {
		p.enter()
		defer p.leave()
		p.next()
		f := p.parseLabelFilterOr()
		p.expect(tokRParen)
		return f
	}
	if t.kind != tokIdent {
		p.failf(t.pos, "syntax error: unexpected %s, expecting label filter", t.describe())
	}
	if t.text == "ip" && p.peekAt(1).kind == tokLParen {
		p.unsupported("ip() label filter")
	}
	name := p.next()
	opTok := p.next()
	if !isFilterOp(opTok.kind) {
		p.failf(opTok.pos, "syntax error: unexpected %s, expecting a comparison operator", opTok.describe())
	}
	if p.isIdent("ip") && p.peekAt(1).kind == tokLParen {
		p.unsupported("ip() label filter")
	}
	// Sign for numbers and durations.
	neg := false
	if k := p.peek().kind; k == tokSub || k == tokAdd {
		neg = p.next().kind == tokSub
		if k := p.peek().kind; k != tokNumber && k != tokDuration {
			p.failf(p.peek().pos, "syntax error: unexpected %s after sign", p.peek().describe())
		}
	}
	v := p.next()
	var cmp CmpOp
	switch opTok.kind {
	case tokEq, tokCmpEq:
		cmp = CmpEq
	case tokNeq:
		cmp = CmpNeq
	case tokGt:
		cmp = CmpGt
	case tokGte:
		cmp = CmpGte
	case tokLt:
		cmp = CmpLt
	case tokLte:
		cmp = CmpLte
	}
	switch v.kind {
	case tokString:
		k := opTok.kind
		if k == tokCmpEq { // == compares strings as = does
			k = tokEq
		}
		mt, ok := matchTypeOf(k)
		if !ok {
			p.failf(opTok.pos, "syntax error: operator %s needs a number, duration or byte size, got a string", opTok.text)
		}
		m, err := labels.NewMatcher(mt, name.text, v.text)
		if err != nil {
			p.failf(v.pos, "invalid label filter %s: %v", name.text, err)
		}
		return &StringLabelFilter{Matcher: m}
	case tokNumber, tokDuration, tokBytes:
		if opTok.kind == tokRe || opTok.kind == tokNre {
			p.failf(opTok.pos, "syntax error: operator %s needs a string", opTok.text)
		}
		switch v.kind {
		case tokNumber:
			f := v.num
			if neg {
				f = -f
			}
			return &NumericLabelFilter{Name: name.text, Op: cmp, Value: f}
		case tokDuration:
			d := v.dur
			if neg {
				d = -d
			}
			return &DurationLabelFilter{Name: name.text, Op: cmp, Value: d}
		default:
			return &BytesLabelFilter{Name: name.text, Op: cmp, Value: v.bytes}
		}
	}
	p.failf(v.pos, "syntax error: unexpected %s, expecting string, number, duration or byte size", v.describe())
	return nil
}

func (p *queryParser) parseLabelList() []string {
	p.expect(tokLParen)
	out := []string{}
	for p.peek().kind != tokRParen {
		if len(out) > 0 {
			p.expect(tokComma)
			if p.peek().kind == tokRParen {
				break
			}
		}
		out = append(out, p.expect(tokIdent).text)
	}
	p.expect(tokRParen)
	return out
}

func (p *queryParser) parseGrouping() *Grouping {
	if !p.isIdent("by") && !p.isIdent("without") {
		return nil
	}
	g := &Grouping{Without: p.next().text == "without"}
	g.Labels = p.parseLabelList()
	return g
}

func (p *queryParser) parseRangeAggregation() Expr {
	opTok := p.next()
	e := &RangeAggregationExpr{Op: opTok.text}
	p.expect(tokLParen)
	if e.Op == OpQuantileOverTime {
		neg := p.minus()
		v := p.expect(tokNumber).num
		if neg {
			v = -v
		}
		e.Param = &v
		p.expect(tokComma)
	}
	e.Range = p.parseLogRange()
	p.expect(tokRParen)
	e.Grouping = p.parseGrouping()

	hasUnwrap := e.Range.Unwrap != nil
	switch {
	case unwrapOps[e.Op] && !hasUnwrap:
		p.failf(opTok.pos, "invalid aggregation %s without unwrap", e.Op)
	case !unwrapOps[e.Op] && e.Op != OpRate && e.Op != OpAbsentOverTime && hasUnwrap:
		p.failf(opTok.pos, "invalid aggregation %s with unwrap", e.Op)
	}
	if e.Grouping != nil {
		switch e.Op {
		case OpAvgOverTime, OpStddevOverTime, OpStdvarOverTime, OpQuantileOverTime,
			OpMaxOverTime, OpMinOverTime, OpFirstOverTime, OpLastOverTime:
		default:
			p.failf(opTok.pos, "grouping not allowed for %s aggregation", e.Op)
		}
	}
	return e
}

// parseLogRange parses the argument of a range aggregation in any of the
// forms Loki accepts: {..} | p [5m], ({..} | p)[5m], {..}[5m] | p.
func (p *queryParser) parseLogRange() *LogRangeExpr {
	r := &LogRangeExpr{}
	var sel *LogSelectorExpr
	parens := false
	if p.peek().kind == tokLParen {
		p.next()
		parens = true
	}
	sel = p.parseSelector()
	sel.Pipeline = p.parsePipeline(true)
	if p.peek().kind == tokPipe { // | unwrap
		r.Unwrap = p.parseUnwrap()
	}
	if parens {
		p.expect(tokRParen)
	}
	r.Range = p.parseRangeLiteral()
	if !parens && len(sel.Pipeline) == 0 && r.Unwrap == nil {
		// {..}[5m] | pipeline
		sel.Pipeline = p.parsePipeline(true)
		if p.peek().kind == tokPipe {
			r.Unwrap = p.parseUnwrap()
		}
	}
	if p.isIdent("offset") {
		p.next()
		neg := p.minus()
		r.Offset = p.expect(tokDuration).dur
		if neg {
			r.Offset = -r.Offset
		}
	}
	if p.peek().kind == tokAt {
		p.unsupported("@ modifier")
	}
	r.Selector = sel
	return r
}

func (p *queryParser) parseRangeLiteral() time.Duration {
	open := p.expect(tokLBracket)
	d := p.next()
	if d.kind != tokDuration {
		p.failf(d.pos, "syntax error: unexpected %s, expecting a duration such as 5m", d.describe())
	}
	if p.peek().kind == tokColon {
		p.unsupported("subqueries")
	}
	p.expect(tokRBracket)
	if d.dur <= 0 {
		p.failf(open.pos, "range must be positive, got %s", d.text)
	}
	return d.dur
}

func (p *queryParser) parseUnwrap() *Unwrap {
	p.expect(tokPipe)
	p.expect(tokIdent) // unwrap
	u := &Unwrap{}
	name := p.expect(tokIdent)
	if p.peek().kind == tokLParen {
		switch name.text {
		case "duration", "duration_seconds", "bytes":
		default:
			p.failf(name.pos, "syntax error: unknown unwrap conversion %s", name.text)
		}
		p.next()
		u.Conv = name.text
		u.Label = p.expect(tokIdent).text
		p.expect(tokRParen)
	} else {
		u.Label = name.text
	}
	for p.peek().kind == tokPipe {
		p.next()
		u.PostFilters = append(u.PostFilters, p.parseLabelFilterOr())
	}
	return u
}

func (p *queryParser) parseVectorAggregation() Expr {
	opTok := p.next()
	e := &VectorAggregationExpr{Op: opTok.text}
	e.Grouping = p.parseGrouping()
	p.expect(tokLParen)
	if e.Op == OpTopK || e.Op == OpBottomK {
		n := p.expect(tokNumber)
		k, err := strconv.Atoi(n.text)
		if err != nil {
			p.failf(n.pos, "invalid parameter for %s: %s is not an integer", e.Op, n.text)
		}
		e.Param = k
		p.expect(tokComma)
	}
	inner := p.parseExpr(0)
	p.expect(tokRParen)
	if g := p.parseGrouping(); g != nil {
		if e.Grouping != nil {
			p.failf(opTok.pos, "syntax error: %s has two by/without clauses", e.Op)
		}
		e.Grouping = g
	}
	se, ok := inner.(SampleExpr)
	if !ok {
		p.failf(opTok.pos, "%s needs a metric query, got a log query; wrap it in a range aggregation such as count_over_time", e.Op)
	}
	if isScalar(se) {
		p.failf(opTok.pos, "%s needs a vector, got a scalar", e.Op)
	}
	e.Expr = se
	return e
}
