package traceql

import (
	"errors"
	"fmt"
	"strings"
)

// ParseError is a syntax or type error in a query. An HTTP API answers it
// with 400.
type ParseError struct {
	// Pos is the byte offset of the error in the query.
	Pos int
	// Line and Col are Pos as 1-based line and column, for people.
	Line, Col int
	Msg       string
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("parse error at line %d, col %d: %s", e.Line, e.Col, e.Msg)
}

func newParseError(query string, pos int, msg string) *ParseError {
	pos = min(max(pos, 0), len(query))
	line := 1 + strings.Count(query[:pos], "\n")
	col := pos - strings.LastIndexByte(query[:pos], '\n')
	return &ParseError{Pos: pos, Line: line, Col: col, Msg: msg}
}

// UnsupportedError is valid TraceQL that Pharos does not evaluate. An HTTP
// API answers it with 400, like a syntax error, but the message names what
// is missing so that users do not hunt for a typo.
type UnsupportedError struct {
	// Pos is the byte offset in the query where the feature starts.
	Pos int
	// Feature names what is unsupported, such as "structural operator >>".
	Feature string
}

func (e *UnsupportedError) Error() string { return "unsupported TraceQL feature: " + e.Feature }

// IsUserError reports whether err is the query's fault (bad syntax, an
// unsupported feature, a normal form too large) rather than the store's:
// HTTP APIs answer those with 400.
func IsUserError(err error) bool {
	var (
		pe *ParseError
		ue *UnsupportedError
	)
	return errors.As(err, &pe) || errors.As(err, &ue)
}
