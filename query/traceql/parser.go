// Package traceql parses the subset of TraceQL that Pharos searches by into
// the normal form of traces.SearchParams.Any: a disjunction of groups of
// conditions that one span must all meet.
//
// Supported: spanset filters `{ ... }` with && and || and parentheses
// inside; `{} || {}` between spansets; `{...} | {...}` (a spanset filter
// as a pipeline stage, the same as && inside one spanset); comparisons
// = != =~ !~ > >= < <= of the intrinsics name, status, kind, duration,
// rootName, rootServiceName, traceDuration (and their scoped forms
// span:name, trace:duration, ...) and of attributes resource.x, span.x and
// .x (names may hold dots, or be quoted: span."x y") with strings,
// numbers, durations, booleans and status and kind keywords; `{}` matches
// every trace.
//
// Everything else that is valid TraceQL — aggregates and other pipeline
// stages, structural operators, && between spansets, select(), query
// hints, arithmetic, negation, nil, the event., link., parent. and
// instrumentation. scopes — fails with an *UnsupportedError naming the
// feature; syntax and type errors fail with a *ParseError.
package traceql

import (
	"fmt"
	"regexp"
	"strconv"

	"github.com/pharos-obs/pharos/storage/traces"
)

// MaxGroups bounds the normal form: a query whose disjunction of groups
// would be longer is refused, since every group is a search of its own.
const MaxGroups = 64

// maxProduct bounds the groups a conjunction multiplies out to before they
// are simplified, so that a crafted query cannot make parsing slow.
const maxProduct = 1024

// maxDepth bounds the nesting of parentheses and braces.
const maxDepth = 64

// Parse parses query into normal form: the trace matches when one of its
// spans meets every condition of one of the groups. A query matching every
// trace ({}, { true }) returns nil. Errors are *ParseError or
// *UnsupportedError.
func Parse(query string) ([][]traces.Condition, error) {
	p := parser{q: query, lex: lexer{q: query}}
	if err := p.advance(); err != nil {
		return nil, err
	}
	d, err := p.query()
	if err != nil {
		return nil, err
	}
	if len(d) == 1 && len(d[0]) == 0 {
		return nil, nil
	}
	return d, nil
}

// dnf is a disjunction of conjunctions; {{}} is true.
type dnf [][]traces.Condition

type parser struct {
	q     string
	lex   lexer
	tok   token // the current token
	depth int
}

// advance moves to the next token.
func (p *parser) advance() error {
	t, err := p.lex.next()
	if err != nil {
		return err
	}
	p.tok = t
	return nil
}

// peekNext returns the token after the current one without moving.
func (p *parser) peekNext() (token, error) {
	l := p.lex
	return l.next()
}

func (p *parser) errorf(pos int, format string, args ...any) error {
	return newParseError(p.q, pos, fmt.Sprintf(format, args...))
}

func unsupported(t token, feature string) error {
	return &UnsupportedError{Pos: t.pos, Feature: feature}
}

// describe names a token in an error.
func describe(t token) string {
	switch t.kind {
	case tEOF:
		return "end of query"
	case tString:
		return "string " + strconv.Quote(t.text)
	case tAttr:
		return "attribute " + FieldString(t.scope, t.text)
	}
	return strconv.Quote(t.text)
}

func (p *parser) unexpected(expected string) error {
	return p.errorf(p.tok.pos, "syntax error: unexpected %s, expected %s", describe(p.tok), expected)
}

func (p *parser) expect(kind tokenKind, what string) error {
	if p.tok.kind != kind {
		return p.unexpected(what)
	}
	return p.advance()
}

func (p *parser) enter() error {
	p.depth++
	if p.depth > maxDepth {
		return p.errorf(p.tok.pos, "expression nested more than %d deep", maxDepth)
	}
	return nil
}

func (p *parser) leave() { p.depth-- }

// query := spansetOr ( '|' stage )* EOF
func (p *parser) query() (dnf, error) {
	if p.tok.kind == tEOF {
		return nil, p.errorf(0, "empty query")
	}
	d, err := p.spansetOr()
	if err != nil {
		return nil, err
	}
	for {
		switch {
		case p.tok.kind == tEOF:
			return d, nil
		case p.tok.kind == tPipe:
			pos := p.tok.pos
			if err := p.advance(); err != nil {
				return nil, err
			}
			stage, err := p.pipelineStage()
			if err != nil {
				return nil, err
			}
			if d, err = and(d, stage, pos); err != nil {
				return nil, err
			}
		case p.tok.kind == tIdent && p.tok.text == "with":
			return nil, unsupported(p.tok, "query hints (with ...)")
		default:
			return nil, p.unexpected("||, | or end of query")
		}
	}
}

// pipelineStage is a spanset filter (supported: it narrows the spans, the
// same as && inside the spanset) or a function (unsupported).
func (p *parser) pipelineStage() (dnf, error) {
	t := p.tok
	switch t.kind {
	case tLBrace, tLParen:
		return p.spansetOr()
	case tIdent:
		if f := functionFeature(t.text); f != "" {
			return nil, unsupported(t, f)
		}
	}
	return nil, p.unexpected("a spanset filter { ... } after |")
}

// functionFeature names a pipeline function, "" when name is none.
func functionFeature(name string) string {
	switch {
	case aggregates[name]:
		return "aggregate " + name + "() in a pipeline"
	case metricsFunctions[name]:
		return "TraceQL metrics (" + name + "())"
	case name == "select":
		return "select()"
	case name == "by":
		return "by() grouping"
	case name == "coalesce":
		return "coalesce()"
	}
	return ""
}

// spansetOr := spansetAnd ( '||' spansetAnd )*
func (p *parser) spansetOr() (dnf, error) {
	d, err := p.spansetAnd()
	if err != nil {
		return nil, err
	}
	for p.tok.kind == tOr {
		pos := p.tok.pos
		if err := p.advance(); err != nil {
			return nil, err
		}
		r, err := p.spansetAnd()
		if err != nil {
			return nil, err
		}
		if d, err = or(d, r, pos); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// spansetAnd is a spanset; && and the structural operators between
// spansets relate different spans of a trace, which the normal form cannot
// say.
func (p *parser) spansetAnd() (dnf, error) {
	d, err := p.spansetPrimary()
	if err != nil {
		return nil, err
	}
	switch p.tok.kind {
	case tAnd:
		return nil, unsupported(p.tok, "spanset operator && (conditions on different spans of a trace)")
	case tStructural, tGt, tLt, tNre:
		return nil, unsupported(p.tok, "structural operator "+p.tok.text)
	}
	return d, nil
}

// spansetPrimary := '{' fieldOr? '}' | '(' spansetOr ')'
func (p *parser) spansetPrimary() (dnf, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer p.leave()
	switch p.tok.kind {
	case tLBrace:
		if err := p.advance(); err != nil {
			return nil, err
		}
		if p.tok.kind == tRBrace {
			return dnf{{}}, p.advance()
		}
		d, err := p.fieldOr()
		if err != nil {
			return nil, err
		}
		return d, p.expect(tRBrace, "&&, || or }")
	case tLParen:
		if err := p.advance(); err != nil {
			return nil, err
		}
		d, err := p.spansetOr()
		if err != nil {
			return nil, err
		}
		return d, p.expect(tRParen, "|| or )")
	case tIdent:
		if f := functionFeature(p.tok.text); f != "" {
			return nil, unsupported(p.tok, f)
		}
	}
	return nil, p.unexpected("{")
}

// fieldOr := fieldAnd ( '||' fieldAnd )*
func (p *parser) fieldOr() (dnf, error) {
	d, err := p.fieldAnd()
	if err != nil {
		return nil, err
	}
	for p.tok.kind == tOr {
		pos := p.tok.pos
		if err := p.advance(); err != nil {
			return nil, err
		}
		r, err := p.fieldAnd()
		if err != nil {
			return nil, err
		}
		if d, err = or(d, r, pos); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// fieldAnd := fieldUnary ( '&&' fieldUnary )*
func (p *parser) fieldAnd() (dnf, error) {
	d, err := p.fieldUnary()
	if err != nil {
		return nil, err
	}
	for p.tok.kind == tAnd {
		pos := p.tok.pos
		if err := p.advance(); err != nil {
			return nil, err
		}
		r, err := p.fieldUnary()
		if err != nil {
			return nil, err
		}
		if d, err = and(d, r, pos); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// fieldUnary := '(' fieldOr ')' | comparison
func (p *parser) fieldUnary() (dnf, error) {
	switch p.tok.kind {
	case tNot:
		return nil, unsupported(p.tok, "negation with ! (use != or !~)")
	case tLParen:
		if err := p.enter(); err != nil {
			return nil, err
		}
		defer p.leave()
		if err := p.advance(); err != nil {
			return nil, err
		}
		d, err := p.fieldOr()
		if err != nil {
			return nil, err
		}
		if err := p.expect(tRParen, "&&, || or )"); err != nil {
			return nil, err
		}
		if isComparison(p.tok.kind) || p.tok.kind == tArith {
			return nil, unsupported(p.tok, "a parenthesised expression as an operand")
		}
		return d, nil
	}
	return p.comparison()
}

func isComparison(k tokenKind) bool {
	switch k {
	case tEq, tNeq, tRe, tNre, tGt, tGte, tLt, tLte:
		return true
	}
	return false
}

// valueKind is the type of a static value.
type valueKind uint8

const (
	vString valueKind = iota
	vNumber
	vDuration
	vBool
	vStatus
	vKind
	vNil
)

var valueKindNames = [...]string{"a string", "a number", "a duration", "a boolean", "a status", "a kind", "nil"}

// operand is either side of a comparison: a field or a static value.
type operand struct {
	tok   token
	field bool
	// Fields: the condition's scope and name, and the type.
	scope, name string
	typ         fieldType
	// Statics: the kind and normalized text.
	kind valueKind
	text string
}

// comparison := operand ( op operand )?
func (p *parser) comparison() (dnf, error) {
	lhs, err := p.operand()
	if err != nil {
		return nil, err
	}
	if p.tok.kind == tArith {
		return nil, unsupported(p.tok, "arithmetic ("+p.tok.text+")")
	}
	if !isComparison(p.tok.kind) {
		switch p.tok.kind {
		case tAnd, tOr, tRParen, tRBrace:
		default:
			return nil, p.unexpected("a comparison operator")
		}
		if !lhs.field && lhs.kind == vBool && lhs.text == "true" {
			return dnf{{}}, nil
		}
		return nil, unsupported(lhs.tok, "a field or value without a comparison ("+describe(lhs.tok)+")")
	}
	op := p.tok
	if err := p.advance(); err != nil {
		return nil, err
	}
	rhs, err := p.operand()
	if err != nil {
		return nil, err
	}
	if p.tok.kind == tArith {
		return nil, unsupported(p.tok, "arithmetic ("+p.tok.text+")")
	}
	c, err := p.condition(lhs, op, rhs)
	if err != nil {
		return nil, err
	}
	return dnf{{c}}, nil
}

// operand reads a field or a static value.
func (p *parser) operand() (operand, error) {
	t := p.tok
	o := operand{tok: t}
	switch t.kind {
	case tAttr:
		switch t.scope {
		case "span", "resource", "":
		default:
			return o, unsupported(t, t.scope+". attributes")
		}
		o.field, o.scope, o.name, o.typ = true, t.scope, t.text, typeAttribute
	case tIdent:
		if in, ok := intrinsics[t.text]; ok {
			o.field, o.scope, o.name, o.typ = true, ScopeIntrinsic, in.name, in.typ
			break
		}
		switch {
		case t.text == "true" || t.text == "false":
			o.kind, o.text = vBool, t.text
		case t.text == "nil":
			o.kind = vNil
		case statusValues[t.text]:
			o.kind, o.text = vStatus, t.text
		case kindValues[t.text]:
			o.kind, o.text = vKind, t.text
		case unsupportedIntrinsics[t.text]:
			return o, unsupported(t, "intrinsic "+t.text)
		case functionFeature(t.text) != "":
			return o, unsupported(t, functionFeature(t.text))
		default:
			hint := ""
			if p.lex.pos < len(p.q) && p.q[p.lex.pos] == '.' {
				hint = " (attributes need a scope: ." + t.text + "..., span." + t.text + "... or resource." + t.text + "...)"
			}
			return o, p.errorf(t.pos, "unknown identifier %q%s", t.text, hint)
		}
	case tString:
		o.kind, o.text = vString, t.text
	case tNumber:
		o.kind, o.text = vNumber, t.text
	case tDuration:
		o.kind, o.text = vDuration, t.text
	case tArith:
		next, err := p.peekNext()
		if err != nil {
			return o, err
		}
		if t.text != "-" || next.pos != t.end || (next.kind != tNumber && next.kind != tDuration) {
			return o, unsupported(t, "arithmetic ("+t.text+")")
		}
		if err := p.advance(); err != nil {
			return o, err
		}
		o.kind, o.text = vNumber, "-"+next.text
		if next.kind == tDuration {
			o.kind = vDuration
		}
		if next.text == "0" || next.text == "0s" {
			o.text = next.text
		}
		o.tok.end = next.end
	default:
		return o, p.unexpected("a field or a value")
	}
	return o, p.advance()
}

// flipped is the operator with its operands swapped.
var flipped = map[string]string{"=": "=", "!=": "!=", ">": "<", ">=": "<=", "<": ">", "<=": ">="}

// condition type-checks a comparison and puts the field on the left.
func (p *parser) condition(lhs operand, op token, rhs operand) (traces.Condition, error) {
	var c traces.Condition
	switch {
	case lhs.field && rhs.field:
		return c, unsupported(lhs.tok, "comparing two fields ("+describe(lhs.tok)+" "+op.text+" "+describe(rhs.tok)+")")
	case !lhs.field && !rhs.field:
		return c, unsupported(lhs.tok, "comparing two values")
	case !lhs.field:
		f, ok := flipped[op.text]
		if !ok {
			return c, p.errorf(op.pos, "%s takes the field on the left and the regular expression on the right", op.text)
		}
		lhs, rhs = rhs, lhs
		op.text = f
	}
	if rhs.kind == vNil {
		return c, unsupported(rhs.tok, "comparison with nil (attribute existence)")
	}
	field := FieldString(lhs.scope, lhs.name)
	mismatch := func(want string) error {
		return p.errorf(rhs.tok.pos, "type mismatch: %s takes %s, got %s %s", field, want, valueKindNames[rhs.kind], describeValue(rhs))
	}
	regex := op.text == "=~" || op.text == "!~"
	ordering := op.text != "=" && op.text != "!=" && !regex
	if regex {
		if rhs.kind != vString {
			return c, p.errorf(rhs.tok.pos, "type mismatch: %s takes a regular expression as a string, got %s %s", op.text, valueKindNames[rhs.kind], describeValue(rhs))
		}
		if _, err := regexp.Compile(rhs.text); err != nil {
			return c, p.errorf(rhs.tok.pos, "invalid regular expression %q: %v", rhs.text, err)
		}
	}
	switch lhs.typ {
	case typeString:
		if rhs.kind != vString {
			return c, mismatch("a string")
		}
	case typeStatus:
		if rhs.kind != vStatus {
			return c, mismatch("error, ok or unset")
		}
		if regex || ordering {
			return c, p.errorf(op.pos, "%s compares with = or != only, got %s", field, op.text)
		}
	case typeKind:
		if rhs.kind != vKind {
			return c, mismatch("server, client, producer, consumer, internal or unspecified")
		}
		if regex || ordering {
			return c, p.errorf(op.pos, "%s compares with = or != only, got %s", field, op.text)
		}
	case typeDuration:
		if rhs.kind != vDuration {
			return c, mismatch("a duration such as 100ms")
		}
	case typeAttribute:
		switch rhs.kind {
		case vStatus, vKind:
			return c, mismatch("a string, a number, a duration or a boolean")
		case vBool:
			if ordering {
				return c, p.errorf(op.pos, "%s cannot order booleans", op.text)
			}
		}
	}
	return traces.Condition{Scope: lhs.scope, Name: lhs.name, Op: op.text, Value: rhs.text}, nil
}

func describeValue(o operand) string {
	if o.kind == vString {
		return strconv.Quote(o.text)
	}
	return o.text
}
