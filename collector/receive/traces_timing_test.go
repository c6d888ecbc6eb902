package receive

import (
	"testing"

	"go.opentelemetry.io/collector/pdata/ptrace"
)

// BenchmarkCheckTraces checks 1000 valid spans (10 attributes each, an
// event): the same request every time, as nothing in it is changed.
func BenchmarkCheckTraces(b *testing.B) {
	ti, _ := tracesTestIntake(b, discardTraces, nil)
	td := trSpans("svc", 1000, func(i int, s ptrace.Span) {
		for _, k := range []string{"http.method", "http.route", "http.target", "net.peer.name", "user_agent.original", "a", "b", "c", "d"} {
			s.Attributes().PutStr(k, "some value of a typical length")
		}
		s.Events().AppendEmpty().Attributes().PutStr("exception.message", "boom")
	})
	b.ReportAllocs()
	for b.Loop() {
		if rej := ti.CheckTraces(td); rej.Spans != 0 {
			b.Fatal(rej.Message(1000))
		}
	}
	b.ReportMetric(float64(1000*b.N)/b.Elapsed().Seconds(), "spans/s")
}
