package publish

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pharos-obs/pharos/internal/bus"
	"github.com/pharos-obs/pharos/internal/bus/codec"
)

func testBatch() *batch {
	return &batch{
		msg: bus.OutMsg{
			Signal: bus.SignalMetrics, Partition: 7, Tenant: bus.DefaultTenant,
			Encoding: codec.EncodingPRW2Snappy, ID: "agent-1-abc-42", Data: []byte("\x01\x02encoded batch"),
		},
		samples: 5000,
		flushed: time.Unix(1700000000, 123456789),
	}
}

func TestRecordRoundTrip(t *testing.T) {
	bt := testBatch()
	b := appendRecord(nil, bt)
	var r spooled
	require.NoError(t, parseRecord(b, &r))
	require.Equal(t, bt.msg, r.msg)
	require.Equal(t, bt.samples, r.samples)
	require.Equal(t, bt.flushed.UnixNano(), r.flushed)

	// Parsing twice gives the same, and a record with other (and empty)
	// fields overwrites every field of a reused value.
	require.NoError(t, parseRecord(b, &r))
	require.Equal(t, bt.msg, r.msg)
	other := &batch{msg: bus.OutMsg{Signal: bus.SignalLogs, Tenant: "team-a", Encoding: "custom"}, samples: 0, flushed: time.Unix(0, -5)}
	require.NoError(t, parseRecord(appendRecord(nil, other), &r))
	require.Equal(t, other.msg.Signal, r.msg.Signal)
	require.Zero(t, r.msg.Partition)
	require.Equal(t, "team-a", r.msg.Tenant)
	require.Equal(t, "custom", r.msg.Encoding)
	require.Empty(t, r.msg.ID)
	require.Empty(t, r.msg.Data)
	require.Zero(t, r.samples)
	require.Equal(t, int64(-5), r.flushed)

	// Appending reuses the buffer.
	buf := appendRecord(make([]byte, 0, 256), bt)
	require.Equal(t, b, buf)
}

func TestParseRecordCopiesOnlyTheID(t *testing.T) {
	b := appendRecord(nil, testBatch())
	var r spooled
	allocs := testing.AllocsPerRun(100, func() { _ = parseRecord(b, &r) })
	require.LessOrEqual(t, allocs, 1.0, "only the message ID is copied")
}

func TestParseRecordRejects(t *testing.T) {
	good := appendRecord(nil, testBatch())
	for name, b := range map[string][]byte{
		"empty":          nil,
		"version":        append([]byte{9}, good[1:]...),
		"truncated":      good[:10],
		"unknown signal": appendRecord(nil, &batch{msg: bus.OutMsg{Signal: "profiles"}}),
		"huge string":    {recordVersion, 0xff, 0xff, 0xff, 0xff, 0x0f},
	} {
		var r spooled
		require.ErrorIs(t, parseRecord(b, &r), errBadRecord, name)
	}
}

// FuzzParseRecord feeds arbitrary bytes to the decoder of records read back
// from disk: it must never panic, and what it accepts must encode back to
// a record that decodes to the same values.
func FuzzParseRecord(f *testing.F) {
	f.Add(appendRecord(nil, testBatch()))
	f.Add(appendRecord(nil, &batch{msg: bus.OutMsg{Signal: bus.SignalTraces}}))
	f.Add([]byte{recordVersion})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		var r spooled
		if err := parseRecord(b, &r); err != nil {
			return
		}
		again := appendRecord(nil, &batch{msg: r.msg, samples: r.samples, flushed: time.Unix(0, r.flushed)})
		var r2 spooled
		if err := parseRecord(again, &r2); err != nil {
			t.Fatalf("re-encoded record does not parse: %v", err)
		}
		if r2.msg.Signal != r.msg.Signal || r2.msg.Partition != r.msg.Partition || r2.msg.Tenant != r.msg.Tenant ||
			r2.msg.Encoding != r.msg.Encoding || r2.msg.ID != r.msg.ID || string(r2.msg.Data) != string(r.msg.Data) ||
			r2.samples != r.samples || r2.flushed != r.flushed {
			t.Fatalf("round trip changed the record: %+v != %+v", r2, r)
		}
	})
}

// BenchmarkSpoolRecord encodes a 100 KB batch for the spool and decodes it
// back, reusing the buffers, as the spooler and the replayer do.
func BenchmarkSpoolRecord(b *testing.B) {
	bt := testBatch()
	bt.msg.Data = make([]byte, 100<<10)
	var buf []byte
	var r spooled
	b.SetBytes(int64(len(bt.msg.Data)))
	b.ReportAllocs()
	for b.Loop() {
		buf = appendRecord(buf[:0], bt)
		if err := parseRecord(buf, &r); err != nil {
			b.Fatal(err)
		}
	}
}
