package promapi

import (
	"testing"

	"github.com/prometheus/prometheus/promql/parser"
)

// FuzzParsePromQL parses any query string with the parser the API uses:
// an expression or an error, never a panic. (Whether every expression
// prints back to an equivalent query is Prometheus's to fuzz.)
func FuzzParsePromQL(f *testing.F) {
	for _, q := range []string{
		`up`,
		`rate(http_requests_total{job="api",code=~"5.."}[5m])`,
		`sum by (le) (rate(http_request_duration_seconds_bucket[1m])) > 0.5`,
		`histogram_quantile(0.9, sum by (le) (rate(x[5m]))) offset 1h @ 1700000000`,
		`{__name__="a", b!~"c|d"}[1h:1m]`,
		`-(1 + 2) * 3 ^ 4 % 5`,
		`label_replace(up, "a", "$1", "b", "(.*)")`,
		`sum(`,
	} {
		f.Add(q)
	}
	p := parser.NewParser(parser.Options{})
	f.Fuzz(func(t *testing.T, q string) {
		expr, err := p.ParseExpr(q)
		if err == nil {
			_ = expr.String()
		}
	})
}
