package spool

import (
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"
)

const benchRecord = 100 << 10 // a large metrics batch, compressed

func benchSpool(b *testing.B) *Spool {
	b.Helper()
	s, err := Open(Config{MaxBytes: 1 << 30, SegmentBytes: 16 << 20}, b.TempDir(), nil, slog.New(slog.DiscardHandler), nil)
	require.NoError(b, err)
	b.Cleanup(func() { _ = s.Close() })
	return s
}

// BenchmarkAppendReadConfirm is the spool's worst case: every record is
// synced on its own and confirmed on its own (two fsyncs per record).
func BenchmarkAppendReadConfirm(b *testing.B) {
	s := benchSpool(b)
	data := make([]byte, benchRecord)
	var buf []byte
	b.SetBytes(benchRecord)
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Append(data, 5000); err != nil {
			b.Fatal(err)
		}
		rec, err := s.Read(buf[:0])
		if err != nil {
			b.Fatal(err)
		}
		buf = rec.Data
		if err := s.Confirm(rec.Seq); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGroupCommit writes 16 records per fsync and confirms them at
// once, as the publisher does while NATS is down and while it replays.
func BenchmarkGroupCommit(b *testing.B) {
	const group = 16
	s := benchSpool(b)
	data := make([]byte, benchRecord)
	var buf []byte
	b.SetBytes(benchRecord * group)
	b.ReportAllocs()
	for b.Loop() {
		for range group {
			if err := s.Write(data, 5000); err != nil {
				b.Fatal(err)
			}
		}
		if err := s.Sync(); err != nil {
			b.Fatal(err)
		}
		var last uint64
		for range group {
			rec, err := s.Read(buf[:0])
			if err != nil {
				b.Fatal(err)
			}
			buf, last = rec.Data, rec.Seq
		}
		if err := s.Confirm(last); err != nil {
			b.Fatal(err)
		}
	}
}
