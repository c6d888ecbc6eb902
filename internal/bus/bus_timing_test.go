package bus

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

func benchConn(b *testing.B) *Conn {
	b.Helper()
	srv := startServer(b)
	cfg := testConfig()
	cfg.Stream.MaxBytes = 4 << 30 // room for every iteration
	c := connect(b, cfg, srv, nil)
	require.NoError(b, c.EnsureStreams(context.Background(), SignalMetrics))
	return c
}

// BenchmarkPublish measures one publisher waiting for each PubAck from the
// embedded server (in process, every write fsynced), with 10 KB payloads.
func BenchmarkPublish(b *testing.B) {
	c := benchConn(b)
	ctx := context.Background()
	data := make([]byte, 10<<10)
	m := &OutMsg{Signal: SignalMetrics, Tenant: "bench", Encoding: "prw2+zstd", Data: data}
	var id []byte
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		id = strconv.AppendInt(append(id[:0], "bench:"...), int64(i), 10)
		m.ID = string(id)
		m.Partition = i % 4
		if err := c.Publish(ctx, m); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkPublishParallel measures concurrent publishers, the agent's
// pattern: throughput comes from many PubAcks in flight.
func BenchmarkPublishParallel(b *testing.B) {
	c := benchConn(b)
	data := make([]byte, 10<<10)
	var seq atomic.Int64
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		m := &OutMsg{Signal: SignalMetrics, Tenant: "bench", Encoding: "prw2+zstd", Data: data}
		for pb.Next() {
			n := seq.Add(1)
			m.ID = "bench:" + strconv.FormatInt(n, 10)
			m.Partition = int(n % 4)
			if err := c.Publish(ctx, m); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
