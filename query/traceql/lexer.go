package traceql

import (
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

type tokenKind uint8

const (
	tEOF tokenKind = iota
	tLBrace
	tRBrace
	tLParen
	tRParen
	tComma
	tAnd  // &&
	tOr   // ||
	tPipe // |
	tEq   // =
	tNeq  // !=
	tRe   // =~
	tNre  // !~ (also the structural "not sibling" between spansets)
	tGt   // > (also the structural "child" between spansets)
	tGte  // >=
	tLt   // < (also the structural "parent" between spansets)
	tLte  // <=
	tNot  // !
	// tStructural is a structural operator that cannot be a comparison:
	// >> << ~ !> !>> !< !<< &> &>> &< &<< &~.
	tStructural
	tArith    // + - * / % ^
	tString   // text is the unquoted value
	tNumber   // text is the normalized number
	tDuration // text is the normalized duration
	tIdent    // a bare identifier, or a scoped intrinsic such as span:name
	tAttr     // an attribute: scope ("" for .x) and name
)

// token is one lexeme. pos and end delimit it in the query.
type token struct {
	kind     tokenKind
	pos, end int
	// text is the value of literals, the name of identifiers and
	// attributes, and the operator of the rest.
	text string
	// scope is the scope of an attribute: "span", "resource", "" for .x, or
	// an unsupported one (parent, event, link, instrumentation).
	scope string
}

// attributeScopes are the identifiers that start a scoped attribute.
var attributeScopes = map[string]bool{
	"span": true, "resource": true, "parent": true, "event": true, "link": true, "instrumentation": true,
}

// intrinsicScopes are the identifiers that start a scoped intrinsic
// (span:name, trace:duration).
var intrinsicScopes = map[string]bool{
	"span": true, "trace": true, "event": true, "link": true, "instrumentation": true,
}

// lexer turns a query into tokens on demand.
type lexer struct {
	q   string
	pos int
}

// isAttributeRune is Tempo's rule for the characters of an unquoted
// attribute name: anything but space and the operators' characters (so
// span.http.method and .k8s/pod-name are single names), plus quotes here.
func isAttributeRune(r rune) bool {
	if unicode.IsSpace(r) {
		return false
	}
	switch r {
	case '{', '}', '(', ')', '=', '~', '!', '<', '>', '&', '|', '^', ',', '"', '`', utf8.RuneError:
		return false
	}
	return true
}

func isIdentStart(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

func isIdentByte(c byte) bool { return isIdentStart(c) || (c >= '0' && c <= '9') }

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// next returns the next token.
func (l *lexer) next() (token, error) {
	for l.pos < len(l.q) {
		switch l.q[l.pos] {
		case ' ', '\t', '\n', '\r':
			l.pos++
			continue
		}
		break
	}
	start := l.pos
	if start >= len(l.q) {
		return token{kind: tEOF, pos: start, end: start}, nil
	}
	op := func(kind tokenKind, n int) (token, error) {
		l.pos += n
		return token{kind: kind, pos: start, end: l.pos, text: l.q[start:l.pos]}, nil
	}
	rest := l.q[start:]
	c := rest[0]
	switch c {
	case '{':
		return op(tLBrace, 1)
	case '}':
		return op(tRBrace, 1)
	case '(':
		return op(tLParen, 1)
	case ')':
		return op(tRParen, 1)
	case ',':
		return op(tComma, 1)
	case '&':
		switch {
		case strings.HasPrefix(rest, "&&"):
			return op(tAnd, 2)
		case strings.HasPrefix(rest, "&>>"), strings.HasPrefix(rest, "&<<"):
			return op(tStructural, 3)
		case strings.HasPrefix(rest, "&>"), strings.HasPrefix(rest, "&<"), strings.HasPrefix(rest, "&~"):
			return op(tStructural, 2)
		}
		return token{}, newParseError(l.q, start, "syntax error: unexpected &, expected &&")
	case '|':
		if strings.HasPrefix(rest, "||") {
			return op(tOr, 2)
		}
		return op(tPipe, 1)
	case '=':
		if strings.HasPrefix(rest, "=~") {
			return op(tRe, 2)
		}
		if strings.HasPrefix(rest, "==") {
			return token{}, newParseError(l.q, start, "syntax error: unexpected ==, TraceQL compares with =")
		}
		return op(tEq, 1)
	case '!':
		switch {
		case strings.HasPrefix(rest, "!="):
			return op(tNeq, 2)
		case strings.HasPrefix(rest, "!~"):
			return op(tNre, 2)
		case strings.HasPrefix(rest, "!>>"), strings.HasPrefix(rest, "!<<"):
			return op(tStructural, 3)
		case strings.HasPrefix(rest, "!>"), strings.HasPrefix(rest, "!<"):
			return op(tStructural, 2)
		}
		return op(tNot, 1)
	case '>':
		switch {
		case strings.HasPrefix(rest, ">>"):
			return op(tStructural, 2)
		case strings.HasPrefix(rest, ">="):
			return op(tGte, 2)
		}
		return op(tGt, 1)
	case '<':
		switch {
		case strings.HasPrefix(rest, "<<"):
			return op(tStructural, 2)
		case strings.HasPrefix(rest, "<="):
			return op(tLte, 2)
		}
		return op(tLt, 1)
	case '~':
		return op(tStructural, 1)
	case '+', '-', '*', '/', '%', '^':
		return op(tArith, 1)
	case '"', '`':
		s, err := l.string()
		if err != nil {
			return token{}, err
		}
		return token{kind: tString, pos: start, end: l.pos, text: s}, nil
	case '.':
		l.pos++
		name, err := l.attributeName(start)
		if err != nil {
			return token{}, err
		}
		return token{kind: tAttr, pos: start, end: l.pos, text: name}, nil
	}
	if isDigit(c) {
		return l.number()
	}
	if isIdentStart(c) {
		l.pos++
		for l.pos < len(l.q) && isIdentByte(l.q[l.pos]) {
			l.pos++
		}
		ident := l.q[start:l.pos]
		if l.pos < len(l.q) {
			switch l.q[l.pos] {
			case '.':
				if attributeScopes[ident] {
					l.pos++
					name, err := l.attributeName(start)
					if err != nil {
						return token{}, err
					}
					return token{kind: tAttr, pos: start, end: l.pos, text: name, scope: ident}, nil
				}
			case ':':
				if intrinsicScopes[ident] && l.pos+1 < len(l.q) && isIdentStart(l.q[l.pos+1]) {
					l.pos += 2
					for l.pos < len(l.q) && isIdentByte(l.q[l.pos]) {
						l.pos++
					}
					ident = l.q[start:l.pos]
				}
			}
		}
		return token{kind: tIdent, pos: start, end: l.pos, text: ident}, nil
	}
	r, _ := utf8.DecodeRuneInString(rest)
	return token{}, newParseError(l.q, start, "syntax error: unexpected character "+strconv.QuoteRune(r))
}

// attributeName reads the name after a scope's dot: a quoted string or a
// run of attribute runes.
func (l *lexer) attributeName(start int) (string, error) {
	if l.pos < len(l.q) && (l.q[l.pos] == '"' || l.q[l.pos] == '`') {
		name, err := l.string()
		if err != nil {
			return "", err
		}
		if name == "" {
			return "", newParseError(l.q, start, "syntax error: empty attribute name")
		}
		return name, nil
	}
	from := l.pos
	for l.pos < len(l.q) {
		r, size := utf8.DecodeRuneInString(l.q[l.pos:])
		if !isAttributeRune(r) {
			break
		}
		l.pos += size
	}
	if l.pos == from {
		return "", newParseError(l.q, start, "syntax error: expected an attribute name after "+strconv.Quote(l.q[start:l.pos]))
	}
	return l.q[from:l.pos], nil
}

// string reads a double-quoted string with Go's escapes or a back-quoted
// raw string.
func (l *lexer) string() (string, error) {
	start := l.pos
	quote := l.q[start]
	i := start + 1
	for i < len(l.q) && l.q[i] != quote {
		if l.q[i] == '\\' && quote == '"' {
			i++
		}
		i++
	}
	if i >= len(l.q) {
		return "", newParseError(l.q, start, "syntax error: unterminated string")
	}
	l.pos = i + 1
	lit := l.q[start:l.pos]
	if quote == '`' {
		return lit[1 : len(lit)-1], nil
	}
	if !strings.ContainsRune(lit, '\\') {
		return lit[1 : len(lit)-1], nil
	}
	s, err := strconv.Unquote(lit)
	if err != nil {
		return "", newParseError(l.q, start, "syntax error: invalid string "+lit)
	}
	return s, nil
}

// number reads an integer, a decimal, or a duration such as 100ms or 1h30m.
func (l *lexer) number() (token, error) {
	start := l.pos
	for l.pos < len(l.q) && (isDigit(l.q[l.pos]) || l.q[l.pos] == '.') {
		l.pos++
	}
	isUnit := func(i int) bool {
		if i >= len(l.q) {
			return false
		}
		if c := l.q[i]; (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') {
			return true
		}
		r, _ := utf8.DecodeRuneInString(l.q[i:])
		return r == 'µ' || r == 'μ'
	}
	if isUnit(l.pos) {
		for l.pos < len(l.q) && (isDigit(l.q[l.pos]) || l.q[l.pos] == '.' || isUnit(l.pos)) {
			_, size := utf8.DecodeRuneInString(l.q[l.pos:])
			l.pos += size
		}
		lit := l.q[start:l.pos]
		d, err := time.ParseDuration(lit)
		if err != nil {
			return token{}, newParseError(l.q, start, "syntax error: invalid duration "+strconv.Quote(lit))
		}
		return token{kind: tDuration, pos: start, end: l.pos, text: d.String()}, nil
	}
	lit := l.q[start:l.pos]
	if l.pos < len(l.q) && l.q[l.pos] == '_' {
		return token{}, newParseError(l.q, start, "syntax error: invalid number "+strconv.Quote(lit+"_"))
	}
	text, ok := normalizeNumber(lit)
	if !ok {
		return token{}, newParseError(l.q, start, "syntax error: invalid number "+strconv.Quote(lit))
	}
	return token{kind: tNumber, pos: start, end: l.pos, text: text}, nil
}

// normalizeNumber returns the canonical text of a decimal number: an
// integer without leading zeros, or the shortest decimal of a float.
func normalizeNumber(lit string) (string, bool) {
	if n, err := strconv.ParseInt(lit, 10, 64); err == nil {
		return strconv.FormatInt(n, 10), true
	}
	f, err := strconv.ParseFloat(lit, 64)
	if err != nil || strings.ContainsAny(lit, "eExXpP_") {
		return "", false
	}
	if f == float64(int64(f)) && f < 1<<53 && f > -(1<<53) {
		return strconv.FormatInt(int64(f), 10), true
	}
	return strconv.FormatFloat(f, 'f', -1, 64), true
}
