package logql

import (
	"errors"
	"fmt"
	"strings"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/pharos-obs/pharos/query/limits"
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

// UnsupportedError is valid LogQL that Pharos does not evaluate. An HTTP API
// answers it with 400, like a syntax error, but the message says what is
// missing so that users do not hunt for a typo.
type UnsupportedError struct {
	// Feature names what is unsupported, such as "pattern parser".
	Feature string
}

func (e *UnsupportedError) Error() string { return "unsupported LogQL feature: " + e.Feature }

// PipelineError is returned by a metric query when a sample carries an
// __error__ label that no stage filtered out, as Loki does: counting lines
// that failed to parse would silently give wrong numbers. HTTP answers 400.
type PipelineError struct {
	// Series is the label set of the first failing sample.
	Series labels.Labels
}

func (e *PipelineError) Error() string {
	return fmt.Sprintf("pipeline error: '%s' for series: '%s'.\nUse a label filter to intercept this error.\n(e.g `| __error__=\"\"` or `| __error__!=\"%s\"`)\nTo skip all errors you can use `| drop __error__, __error_details__`",
		e.Series.Get(errorLabel), e.Series.String(), e.Series.Get(errorLabel))
}

// LimitError is a query that asks for more than the engine allows (entries,
// series, steps). HTTP answers 400.
type LimitError struct {
	Msg string
}

func (e *LimitError) Error() string { return e.Msg }

// ErrInstantLogQuery is returned for a log query evaluated as an instant
// query, with Loki's wording; HTTP answers 400.
var ErrInstantLogQuery = errors.New("log queries are not supported as an instant query type, please change your query to a range query type")

// IsUserError reports whether err is the query's fault (bad syntax, an
// unsupported feature, an unfiltered pipeline error, a limit) rather than
// the store's: HTTP APIs answer those with 400 and rule evaluators should
// not retry them.
func IsUserError(err error) bool {
	var (
		pe *ParseError
		ue *UnsupportedError
		pl *PipelineError
		le *LimitError
	)
	return errors.As(err, &pe) || errors.As(err, &ue) || errors.As(err, &pl) || errors.As(err, &le) || errors.Is(err, ErrInstantLogQuery) || limits.As(err) != nil
}
