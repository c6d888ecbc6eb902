package logql

import (
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/common/model"
)

// tokKind is a lexical token's kind.
type tokKind int

const (
	tokEOF tokKind = iota
	tokIdent
	tokString
	tokNumber
	tokDuration
	tokBytes
	tokFlag // --strict, --keep-empty

	tokLBrace
	tokRBrace
	tokLParen
	tokRParen
	tokLBracket
	tokRBracket
	tokComma
	tokColon
	tokAt

	tokEq     // =
	tokNeq    // !=
	tokRe     // =~
	tokNre    // !~
	tokPipeEq // |=
	tokPipeRe // |~
	tokPipeGt // |> (pattern line filter)
	tokNotGt  // !> (negated pattern line filter)
	tokPipe   // |
	tokCmpEq  // ==
	tokGt
	tokGte
	tokLt
	tokLte
	tokAdd
	tokSub
	tokMul
	tokDiv
	tokMod
	tokPow
)

var tokNames = map[tokKind]string{
	tokEOF: "end of input", tokIdent: "identifier", tokString: "string", tokNumber: "number",
	tokDuration: "duration", tokBytes: "bytes", tokFlag: "flag",
	tokLBrace: "{", tokRBrace: "}", tokLParen: "(", tokRParen: ")", tokLBracket: "[", tokRBracket: "]",
	tokComma: ",", tokColon: ":", tokAt: "@",
	tokEq: "=", tokNeq: "!=", tokRe: "=~", tokNre: "!~", tokPipeEq: "|=", tokPipeRe: "|~",
	tokPipeGt: "|>", tokNotGt: "!>", tokPipe: "|", tokCmpEq: "==", tokGt: ">", tokGte: ">=",
	tokLt: "<", tokLte: "<=", tokAdd: "+", tokSub: "-", tokMul: "*", tokDiv: "/", tokMod: "%", tokPow: "^",
}

func (k tokKind) String() string { return tokNames[k] }

// token is one lexical token. For strings, text is the unquoted value; for
// numbers, durations and bytes the literal as written.
type token struct {
	kind tokKind
	pos  int
	text string
	// Decoded values of literals.
	num   float64
	dur   time.Duration
	bytes uint64
}

func (t token) describe() string {
	switch t.kind {
	case tokEOF:
		return "end of input"
	case tokString:
		return "string " + strconv.Quote(t.text)
	case tokIdent, tokNumber, tokDuration, tokBytes, tokFlag:
		return t.kind.String() + " " + t.text
	}
	return strconv.Quote(t.kind.String())
}

// lex splits the whole query up front: queries are short, and the parser
// needs two tokens of look-ahead in places (label filters after `or`).
func lex(in string) ([]token, error) {
	var toks []token
	i := 0
	for {
		// Skip white space and # comments.
		for i < len(in) {
			c := in[i]
			if c == ' ' || c == '\t' || c == '\n' || c == '\r' {
				i++
				continue
			}
			if c == '#' {
				for i < len(in) && in[i] != '\n' {
					i++
				}
				continue
			}
			break
		}
		if i >= len(in) {
			toks = append(toks, token{kind: tokEOF, pos: i})
			return toks, nil
		}
		start := i
		c := in[i]
		two := ""
		if i+1 < len(in) {
			two = in[i : i+2]
		}
		switch {
		case c == '"' || c == '`':
			s, n, err := lexString(in[i:])
			if err != nil {
				return nil, newParseError(in, i, err.Error())
			}
			toks = append(toks, token{kind: tokString, pos: start, text: s})
			i += n
		case isIdentStart(c):
			for i < len(in) && isIdentChar(in[i]) {
				i++
			}
			toks = append(toks, token{kind: tokIdent, pos: start, text: in[start:i]})
		case isDigit(c) || (c == '.' && i+1 < len(in) && isDigit(in[i+1])):
			tok, n, err := lexNumeric(in[i:])
			if err != nil {
				return nil, newParseError(in, i, err.Error())
			}
			tok.pos = start
			toks = append(toks, tok)
			i += n
		case two == "--" && i+2 < len(in) && isIdentStart(in[i+2]):
			j := i + 2
			for j < len(in) && (isIdentChar(in[j]) || in[j] == '-') {
				j++
			}
			toks = append(toks, token{kind: tokFlag, pos: start, text: in[i:j]})
			i = j
		default:
			kind, n := lexPunct(c, two)
			if n == 0 {
				r, _ := utf8.DecodeRuneInString(in[i:])
				return nil, newParseError(in, i, "syntax error: unexpected character "+strconv.QuoteRune(r))
			}
			toks = append(toks, token{kind: kind, pos: start, text: in[i : i+n]})
			i += n
		}
	}
}

func lexPunct(c byte, two string) (tokKind, int) {
	switch two {
	case "!=":
		return tokNeq, 2
	case "=~":
		return tokRe, 2
	case "!~":
		return tokNre, 2
	case "|=":
		return tokPipeEq, 2
	case "|~":
		return tokPipeRe, 2
	case "|>":
		return tokPipeGt, 2
	case "!>":
		return tokNotGt, 2
	case "==":
		return tokCmpEq, 2
	case ">=":
		return tokGte, 2
	case "<=":
		return tokLte, 2
	}
	switch c {
	case '{':
		return tokLBrace, 1
	case '}':
		return tokRBrace, 1
	case '(':
		return tokLParen, 1
	case ')':
		return tokRParen, 1
	case '[':
		return tokLBracket, 1
	case ']':
		return tokRBracket, 1
	case ',':
		return tokComma, 1
	case ':':
		return tokColon, 1
	case '@':
		return tokAt, 1
	case '=':
		return tokEq, 1
	case '|':
		return tokPipe, 1
	case '>':
		return tokGt, 1
	case '<':
		return tokLt, 1
	case '+':
		return tokAdd, 1
	case '-':
		return tokSub, 1
	case '*':
		return tokMul, 1
	case '/':
		return tokDiv, 1
	case '%':
		return tokMod, 1
	case '^':
		return tokPow, 1
	}
	return 0, 0
}

type lexErr string

func (e lexErr) Error() string { return string(e) }

// lexString reads a double-quoted string (Go escapes) or a raw backtick
// string at the start of s, returning its value and length.
func lexString(s string) (string, int, error) {
	q := s[0]
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			if q == '"' {
				i++
			}
		case '\n':
			if q == '"' {
				return "", 0, lexErr("syntax error: newline in string")
			}
		case q:
			v, err := strconv.Unquote(s[:i+1])
			if err != nil {
				return "", 0, lexErr("syntax error: invalid string " + s[:i+1])
			}
			return v, i + 1, nil
		}
	}
	return "", 0, lexErr("syntax error: unterminated string")
}

// lexNumeric reads a number, a duration (5m, 1h30m, 250ms) or a byte size
// (1KB, 2MiB) at the start of s: Loki's lexer tells them apart by suffix.
func lexNumeric(s string) (token, int, error) {
	n := 0
	for n < len(s) {
		c := s[n]
		if isIdentChar(c) || c == '.' {
			n++
			continue
		}
		// Signed exponent of a float: 1e+06, 2.5E-3.
		if (c == '+' || c == '-') && n > 0 && (s[n-1] == 'e' || s[n-1] == 'E') && isPlainMantissa(s[:n-1]) {
			n++
			continue
		}
		// µs in durations.
		if r, size := utf8.DecodeRuneInString(s[n:]); r == 'µ' || r == 'μ' {
			n += size
			continue
		}
		break
	}
	text := s[:n]
	if f, err := strconv.ParseFloat(text, 64); err == nil && !strings.ContainsAny(text, "xXpP_") {
		return token{kind: tokNumber, text: text, num: f}, n, nil
	} else if err != nil && isFloatSyntax(text) {
		return token{}, 0, lexErr("syntax error: number out of range " + text)
	}
	if d, ok := parseDurationLiteral(text); ok {
		return token{kind: tokDuration, text: text, dur: d}, n, nil
	}
	if b, err := parseBytes(text); err == nil {
		return token{kind: tokBytes, text: text, bytes: b}, n, nil
	}
	return token{}, 0, lexErr("syntax error: invalid number, duration or byte size " + strconv.Quote(text))
}

func isPlainMantissa(s string) bool {
	if s == "" {
		return false
	}
	dot := false
	for i := 0; i < len(s); i++ {
		switch {
		case isDigit(s[i]):
		case s[i] == '.' && !dot:
			dot = true
		default:
			return false
		}
	}
	return true
}

// isFloatSyntax tells a float that overflowed from text that is not a float.
func isFloatSyntax(s string) bool {
	_, err := strconv.ParseFloat(s, 64)
	ne, ok := err.(*strconv.NumError) //nolint:errorlint // ParseFloat returns *NumError directly.
	return ok && ne.Err == strconv.ErrRange
}

// parseDurationLiteral accepts Prometheus durations (1d, 1w, 1y, 1h30m) and Go
// ones (1.5s, 100us), as Loki does.
func parseDurationLiteral(s string) (time.Duration, bool) {
	if d, err := model.ParseDuration(s); err == nil {
		return time.Duration(d), true
	}
	if d, err := time.ParseDuration(s); err == nil {
		return d, true
	}
	return 0, false
}

func isIdentStart(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

func isIdentChar(c byte) bool { return isIdentStart(c) || isDigit(c) }

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// isLabelName reports whether s is a valid (legacy) Prometheus label name.
func isLabelName(s string) bool {
	if s == "" || !isIdentStart(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !isIdentChar(s[i]) {
			return false
		}
	}
	return true
}

// formatDuration writes a duration so that parseDurationLiteral reads it back
// unchanged: Prometheus style (5m, 1d) for whole milliseconds, Go style below.
func formatDuration(d time.Duration) string {
	out := d.String()
	if d > 0 && d%time.Millisecond == 0 {
		if m := model.Duration(d).String(); len(m) < len(out) {
			out = m
		}
	}
	return out
}

// parseBytes parses a human byte size like go-humanize's ParseBytes, which
// Loki uses: 42, 42B, 1.5KB (1000), 1KiB (1024), "10 mb"; case-insensitive.
func parseBytes(s string) (uint64, error) {
	s = strings.TrimSpace(s)
	i := 0
	for i < len(s) && (isDigit(s[i]) || s[i] == '.' || s[i] == ',') {
		i++
	}
	num := strings.ReplaceAll(s[:i], ",", "")
	if num == "" {
		return 0, lexErr("invalid byte size " + strconv.Quote(s))
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, lexErr("invalid byte size " + strconv.Quote(s))
	}
	unit := strings.ToLower(strings.TrimSpace(s[i:]))
	mult, ok := byteUnits[unit]
	if !ok {
		return 0, lexErr("unknown byte unit " + strconv.Quote(s[i:]))
	}
	v := f * mult
	if v >= 1<<64 {
		return 0, lexErr("byte size too large " + strconv.Quote(s))
	}
	return uint64(v), nil
}

var byteUnits = func() map[string]float64 {
	m := map[string]float64{"": 1, "b": 1}
	si, iec := 1000.0, 1024.0
	for _, p := range []string{"k", "m", "g", "t", "p", "e"} {
		m[p] = si
		m[p+"b"] = si
		m[p+"i"] = iec
		m[p+"ib"] = iec
		si *= 1000
		iec *= 1024
	}
	return m
}()
