package rules

import (
	"context"
	"time"

	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/promql/parser/posrange"
	promrules "github.com/prometheus/prometheus/rules"

	"github.com/pharos-obs/pharos/query/logql"
	"github.com/pharos-obs/pharos/storage/logs"
)

// Log rules are rule files in Prometheus's format whose expressions are
// LogQL metric queries. They go through the same machinery as PromQL
// rules (rulefmt's validation, a Prometheus rules manager, ownership,
// for-state restore, notifications, the rules API); only the language of
// the expressions differs. The Prometheus packages take a parser.Parser
// and hand expressions around as parser.Expr, and evaluate them by
// passing Expr.String() to the QueryFunc, so a parser whose ParseExpr
// validates LogQL and returns the text in a parser.Expr is all they need.

// logParser is the parser.Parser of log rule files: ParseExpr accepts a
// LogQL metric query (a log query cannot be a rule: it returns no
// numbers) and returns it as a logExpr. The other methods parse metric
// names and selectors, not rule expressions, and stay PromQL's: rulefmt
// and the rules manager only call ParseExpr.
type logParser struct {
	parser.Parser
}

func newLogParser() parser.Parser { return logParser{Parser: newParser()} }

// ParseExpr implements parser.Parser. Its errors are LogQL's
// (*logql.ParseError, *logql.UnsupportedError naming the feature), which
// rulefmt places at the line and column of the expression.
func (logParser) ParseExpr(input string) (parser.Expr, error) {
	if _, err := logql.ParseSampleExpr(input); err != nil {
		return nil, err
	}
	return &logExpr{query: input}, nil
}

// logExpr is a LogQL expression where the rules package wants a PromQL
// one. The rules package evaluates String() with the QueryFunc, prints it
// in the API and in notifications, and walks the expression (with
// parser.Inspect, which panics on a node type it does not know) only for
// its dependency analysis, which log rule managers turn off
// (noRuleDependencies).
type logExpr struct {
	query string
}

// String returns the expression as written in the rule file.
func (e *logExpr) String() string { return e.query }

// Pretty returns the expression as written: LogQL has no pretty printer
// here.
func (e *logExpr) Pretty(int) string { return e.query }

// PositionRange spans the whole expression.
func (e *logExpr) PositionRange() posrange.PositionRange {
	return posrange.PositionRange{Start: 0, End: posrange.Pos(len(e.query))}
}

// Type is vector: what a rule's query returns (logql.Engine.InstantVector
// makes a scalar one sample, as Prometheus does).
func (e *logExpr) Type() parser.ValueType { return parser.ValueTypeVector }

// PromQLExpr implements parser.Expr.
func (e *logExpr) PromQLExpr() {}

// noRuleDependencies is the RuleDependencyController of log rule managers:
// Prometheus's finds which rules of a group read the series that others
// write by walking their PromQL, and cannot walk LogQL. Log rules read
// logs, never series, so none depends on another; leaving the rules'
// dependencies unset evaluates them one after the other, as Prometheus
// does without concurrent rule evaluation.
type noRuleDependencies struct{}

// AnalyseRules implements rules.RuleDependencyController.
func (noRuleDependencies) AnalyseRules([]promrules.Rule) {}

// logQueryFunc evaluates log rules: each expression is a LogQL metric
// query, evaluated at ts over q for tenant.
func logQueryFunc(engine *logql.Engine, q logs.Querier, tenant string) promrules.QueryFunc {
	return func(ctx context.Context, query string, ts time.Time) (promql.Vector, error) {
		return engine.InstantVector(ctx, q, tenant, query, ts)
	}
}
