package vlogs

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/stretchr/testify/require"

	"github.com/pharos-obs/pharos/query/logql"
	"github.com/pharos-obs/pharos/storage/logs"
)

// benchStreams returns nStreams streams of perStream entries with
// realistic, varied lines; needleEvery > 0 puts "needle" in every
// needleEvery-th line.
func benchStreams(nStreams, perStream, needleEvery int) ([]logs.Stream, int) {
	streams := make([]logs.Stream, nStreams)
	lineBytes := 0
	for i := range streams {
		streams[i].Labels = labels.FromStrings("app", "bench", "namespace", "prod", "pod", fmt.Sprintf("bench-%d", i))
		for j := range perStream {
			line := fmt.Sprintf("level=info ts=2026-01-02T15:04:05.%06dZ caller=handler.go:%d msg=\"request served\" method=GET path=/api/v1/items/%d status=200 duration=%dms", j, 100+j%50, j%1000, j%97)
			if needleEvery > 0 && (i*perStream+j)%needleEvery == 0 {
				line += " needle"
			}
			lineBytes += len(line)
			streams[i].Entries = append(streams[i].Entries, logs.Entry{Line: line, Metadata: labels.FromStrings("trace_id", fmt.Sprintf("%016x", j))})
		}
	}
	return streams, lineBytes
}

func setTimestamps(streams []logs.Stream, base int64) {
	for i := range streams {
		for j := range streams[i].Entries {
			streams[i].Entries[j].Timestamp = base + int64(j*len(streams)+i)
		}
	}
}

// BenchmarkAppend appends batches of 1000 entries (10 streams of 100).
func BenchmarkAppend(b *testing.B) {
	s, _ := openTestStore(b)
	streams, lineBytes := benchStreams(10, 100, 0)
	base := baseTime()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		setTimestamps(streams, base+int64(i)*1000)
		if err := s.Append("tenant", streams); err != nil {
			b.Fatal(err)
		}
	}
	secs := b.Elapsed().Seconds()
	b.ReportMetric(float64(lineBytes)*float64(b.N)/1e6/secs, "MB/s")
	b.ReportMetric(1000*float64(b.N)/secs, "entries/s")
}

// BenchmarkSelectSubstring selects the 1% of 100,000 entries in 10 streams
// whose line contains a substring.
func BenchmarkSelectSubstring(b *testing.B) {
	s, _ := openTestStore(b)
	streams, _ := benchStreams(10, 10000, 100)
	base := baseTime()
	setTimestamps(streams, base)
	require.NoError(b, s.Append("", streams))
	searchable(s)
	p := logs.SelectParams{
		Matchers:    []*labels.Matcher{mustMatcher(b, labels.MatchEqual, "app", "bench")},
		LineFilters: []logs.LineFilter{{Op: logs.LineContains, Values: []string{"needle"}}},
		Start:       base, End: base + 1e6,
	}
	got, err := s.Select(context.Background(), p)
	require.NoError(b, err)
	n := 0
	for _, st := range got {
		n += len(st.Entries)
	}
	require.Equal(b, 1000, n)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := s.Select(context.Background(), p); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWaitDurable appends 100 entries to known streams and waits for
// them to be on disk (the forced flush, without the batch interval).
func BenchmarkWaitDurable(b *testing.B) {
	s, _ := openTestStore(b, func(c *Config) { c.DurableBatchInterval = 0 })
	streams, _ := benchStreams(10, 10, 0)
	base := baseTime()
	setTimestamps(streams, base)
	require.NoError(b, s.Append("", streams))
	require.NoError(b, s.WaitDurable(context.Background())) // the streams are new once
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		setTimestamps(streams, base+int64(i+1)*100)
		if err := s.Append("", streams); err != nil {
			b.Fatal(err)
		}
		if err := s.WaitDurable(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCountOverTimeLarge evaluates sum(count_over_time(...[24h])) over
// every entry of a real store, 10 streams at 100k and 400k entries: the
// ns/entry metric stays flat when the engine reads each entry once.
func BenchmarkCountOverTimeLarge(b *testing.B) {
	for _, n := range []int{100_000, 400_000} {
		b.Run(fmt.Sprintf("entries=%d", n), func(b *testing.B) {
			s, _ := openTestStore(b)
			streams, _ := benchStreams(10, n/10, 0)
			// Spread over 23 hours, as a day of logs is.
			gap := int64(23*time.Hour) / int64(n)
			base := baseTime() - int64(23*time.Hour)
			for i := range streams {
				for j := range streams[i].Entries {
					streams[i].Entries[j].Timestamp = base + int64(j*len(streams)+i)*gap
				}
			}
			require.NoError(b, s.Append("tenant", streams))
			searchable(s)
			e := logql.NewEngine(logql.EngineOpts{})
			end := time.Unix(0, base+int64(n)*gap)
			q := `sum(count_over_time({app="bench"}[24h]))`
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				res, err := e.Query(context.Background(), s, "tenant", logql.Params{Query: q, Start: end, End: end})
				if err != nil {
					b.Fatal(err)
				}
				v := res.Data.(promql.Vector)
				if len(v) != 1 || v[0].F != float64(n) {
					b.Fatalf("got %v, want %d", v, n)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/entry")
		})
	}
}
