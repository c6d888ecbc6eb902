package vtraces

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/pharos-obs/pharos/storage/traces"
)

// benchServices are the services of the benchmark traces, with the span
// names each uses.
var benchServices = []struct {
	name  string
	ops   []string
	kind  ptrace.SpanKind
	attrs func(pcommon.Map, int)
}{
	{"frontend", []string{"GET /", "GET /cart", "POST /checkout", "GET /product/{id}"}, ptrace.SpanKindServer, func(m pcommon.Map, i int) {
		m.PutStr("http.method", []string{"GET", "POST"}[i%2])
		m.PutStr("http.route", "/product/{id}")
		m.PutInt("http.status_code", int64([]int{200, 200, 200, 201, 404, 500}[i%6]))
		m.PutStr("http.user_agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36")
	}},
	{"cart", []string{"GetCart", "AddItem"}, ptrace.SpanKindServer, func(m pcommon.Map, i int) {
		m.PutStr("rpc.system", "grpc")
		m.PutStr("rpc.service", "oteldemo.CartService")
		m.PutInt("app.cart.items", int64(i%7))
	}},
	{"redis", []string{"HGET", "HSET", "EXPIRE"}, ptrace.SpanKindClient, func(m pcommon.Map, i int) {
		m.PutStr("db.system", "redis")
		m.PutStr("net.peer.name", "redis-cart")
		m.PutInt("net.peer.port", 6379)
	}},
	{"checkout", []string{"PlaceOrder", "prepareOrderItemsAndShippingQuoteFromCart"}, ptrace.SpanKindInternal, func(m pcommon.Map, i int) {
		m.PutStr("app.user.id", fmt.Sprintf("user-%d", i%1000))
		m.PutDouble("app.order.amount", float64(i%10000)/100)
		m.PutBool("app.order.express", i%3 == 0)
	}},
	{"postgres", []string{"SELECT orders", "INSERT orders"}, ptrace.SpanKindClient, func(m pcommon.Map, i int) {
		m.PutStr("db.system", "postgresql")
		m.PutStr("db.statement", "SELECT id, total FROM orders WHERE user_id = $1")
		m.PutInt("db.rows", int64(i%50))
	}},
}

// benchTraces returns nTraces traces of perTrace spans each, the traces
// starting 10ms apart from base, with realistic names and attributes;
// every 50th trace has an error.
func benchTraces(nTraces, perTrace int, base time.Time) ptrace.Traces {
	td := ptrace.NewTraces()
	scopes := make([]ptrace.SpanSlice, len(benchServices))
	for i, svc := range benchServices {
		rs := td.ResourceSpans().AppendEmpty()
		ra := rs.Resource().Attributes()
		ra.PutStr("service.name", svc.name)
		ra.PutStr("service.version", "1.12.0")
		ra.PutStr("host.name", "node-"+svc.name+"-7f9c")
		ra.PutStr("k8s.pod.name", svc.name+"-5d8f7c9b4-x2k9p")
		ra.PutStr("deployment.environment", "production")
		ss := rs.ScopeSpans().AppendEmpty()
		ss.Scope().SetName("go.opentelemetry.io/contrib/instrumentation")
		ss.Scope().SetVersion("0.49.0")
		scopes[i] = ss.Spans()
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for t := range nTraces {
		var tid pcommon.TraceID
		for i := range tid {
			tid[i] = byte(rng.Uint32())
		}
		start := base.Add(time.Duration(t) * 10 * time.Millisecond)
		var parent pcommon.SpanID
		for k := range perTrace {
			si := k % len(benchServices)
			svc := benchServices[si]
			sp := scopes[si].AppendEmpty()
			sp.SetTraceID(tid)
			var sid pcommon.SpanID
			for i := range sid {
				sid[i] = byte(rng.Uint32())
			}
			sp.SetSpanID(sid)
			if k > 0 {
				sp.SetParentSpanID(parent)
			} else {
				parent = sid
			}
			sp.SetName(svc.ops[(t+k)%len(svc.ops)])
			sp.SetKind(svc.kind)
			st := start.Add(time.Duration(k) * time.Millisecond)
			sp.SetStartTimestamp(pcommon.NewTimestampFromTime(st))
			sp.SetEndTimestamp(pcommon.NewTimestampFromTime(st.Add(time.Duration(rng.IntN(1000)) * time.Millisecond)))
			if t%50 == 0 && k == perTrace-1 {
				sp.Status().SetCode(ptrace.StatusCodeError)
				sp.Status().SetMessage("context deadline exceeded")
			}
			svc.attrs(sp.Attributes(), t*perTrace+k)
		}
	}
	return td
}

// BenchmarkAppend appends batches of 1000 spans (100 traces of 10).
func BenchmarkAppend(b *testing.B) {
	s, _ := openTestStore(b)
	td := benchTraces(100, 10, baseTime())
	size := (&ptrace.ProtoMarshaler{}).TracesSize(td)
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := s.Append("tenant", td); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(1000*float64(b.N)/b.Elapsed().Seconds(), "spans/s")
}

// BenchmarkAppendStored appends batches of 1000 spans as the aggregator
// does, waiting for them to be durable every hundredth batch, and closes the
// store at the end, so that the engine's work (cutting parts, flushing,
// merging) is all inside. It reports the process's CPU time per span from
// getrusage: that work runs on the engine's own goroutines, which a
// wall-clock ns/op would miss on an idle core.
func BenchmarkAppendStored(b *testing.B) {
	cfg := DefaultConfig()
	cfg.Path = filepath.Join(b.TempDir(), "traces")
	s, err := Open(cfg, testLogger(), nil)
	require.NoError(b, err)
	td := benchTraces(100, 10, baseTime())
	b.ReportAllocs()
	cpu0 := processCPU(b)
	b.ResetTimer()
	n := 0
	for b.Loop() {
		if err := s.Append("tenant", td); err != nil {
			b.Fatal(err)
		}
		if n++; n%100 == 0 {
			require.NoError(b, s.WaitDurable(context.Background()))
		}
	}
	require.NoError(b, s.Close())
	b.StopTimer()
	b.ReportMetric(float64((processCPU(b)-cpu0).Microseconds())/float64(1000*b.N), "cpu-µs/span")
}

// processCPU returns the user and system CPU time of the process so far.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	require.NoError(b, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchSpans is how many spans the read benchmarks store.
const benchSpans = 1_000_000

// openBenchStore stores benchSpans spans (traces of 10, 10ms apart,
// ending now), in files as after a restart, and returns the store and
// the trace IDs.
func openBenchStore(b *testing.B) (*Store, []traces.TraceID) {
	b.Helper()
	cfg := DefaultConfig()
	cfg.Path = filepath.Join(b.TempDir(), "traces")
	s, err := Open(cfg, testLogger(), nil)
	require.NoError(b, err)
	const perTrace, batch = 10, 1000
	nTraces := benchSpans / perTrace
	base := time.Now().Add(-time.Duration(nTraces) * 10 * time.Millisecond)
	var ids []traces.TraceID
	for i := 0; i < nTraces; i += batch {
		td := benchTraces(batch, perTrace, base.Add(time.Duration(i)*10*time.Millisecond))
		// Distinct trace IDs per batch: the generator's are seeded alike.
		rss := td.ResourceSpans()
		for r := range rss.Len() {
			spans := rss.At(r).ScopeSpans().At(0).Spans()
			for k := range spans.Len() {
				tid := spans.At(k).TraceID()
				tid[0], tid[1], tid[2] = byte(i>>16), byte(i>>8), byte(i)
				spans.At(k).SetTraceID(tid)
				if r == 0 && k%(perTrace/len(benchServices)) == 0 {
					ids = append(ids, traces.TraceID(tid))
				}
			}
		}
		require.NoError(b, s.Append("", td))
	}
	require.NoError(b, s.Close())
	s, err = Open(cfg, testLogger(), nil)
	require.NoError(b, err)
	b.Cleanup(func() { require.NoError(b, s.Close()) })
	return s, ids
}

// reportLatency reports the 50th and 99th percentiles of lat.
func reportLatency(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}

// BenchmarkTraceByID fetches random traces of 10 spans among
// benchSpans stored, over the whole retention.
func BenchmarkTraceByID(b *testing.B) {
	s, ids := openBenchStore(b)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(3, 4))
	got, err := s.Trace(ctx, "", ids[0], time.Time{}, time.Time{})
	require.NoError(b, err)
	require.Equal(b, 10, got.SpanCount())
	var lat []time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		t0 := time.Now()
		td, err := s.Trace(ctx, "", ids[rng.IntN(len(ids))], time.Time{}, time.Time{})
		if err != nil || td.SpanCount() != 10 {
			b.Fatal(err, td.SpanCount())
		}
		lat = append(lat, time.Since(t0))
	}
	reportLatency(b, lat)
}

// BenchmarkSearch runs searches over the last hour of benchSpans stored.
func BenchmarkSearch(b *testing.B) {
	s, _ := openBenchStore(b)
	ctx := context.Background()
	for _, bc := range []struct {
		name string
		p    traces.SearchParams
	}{
		{"all", traces.SearchParams{}},
		{"status=error", traces.SearchParams{Any: all(in("status", "=", "error"))}},
		{"service&&status_code>=500", traces.SearchParams{Any: all(res("service.name", "=", "frontend"), span("http.status_code", ">=", "500"))}},
		{"name=~", traces.SearchParams{Any: all(in("name", "=~", "GET /cart|HSET"))}},
		{"duration>990ms", traces.SearchParams{Any: all(in("duration", ">", "990ms"))}},
		{"rootName", traces.SearchParams{Any: all(in("rootName", "=", "POST /checkout"))}},
		{"traceDuration>1s", traces.SearchParams{Any: all(in("traceDuration", ">", "1s"))}},
		{"none", traces.SearchParams{Any: all(span("app.user.id", "=", "nobody"))}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			bc.p.Start = time.Now().Add(-time.Hour)
			hits, err := s.Search(ctx, bc.p)
			require.NoError(b, err)
			if bc.name != "none" {
				require.Len(b, hits, defaultSearchLimit)
			}
			var lat []time.Duration
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				t0 := time.Now()
				if _, err := s.Search(ctx, bc.p); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t0))
			}
			reportLatency(b, lat)
		})
	}
}
