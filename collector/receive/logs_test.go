package receive

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"

	"github.com/pharos-obs/pharos/collector/receive/receivetest"
	"github.com/pharos-obs/pharos/storage/logs"
)

func logsDefaults() LogsConfig {
	fs := flag.NewFlagSet("test", flag.PanicOnError)
	var c LogsConfig
	c.RegisterFlags(fs)
	return c
}

func newLogsIntake(t *testing.T, sink LogsSink, adjust func(*LogsConfig)) (*LogsIntake, *prometheus.Registry) {
	t.Helper()
	in, reg := newIntake(t, receivetest.Discard{}, nil)
	c := logsDefaults()
	if adjust != nil {
		adjust(&c)
	}
	li, err := NewLogsIntake(c, in, sink, slog.New(slog.DiscardHandler), reg)
	require.NoError(t, err)
	return li, reg
}

func TestLogsConfigValidate(t *testing.T) {
	c := logsDefaults()
	require.NoError(t, c.Validate())
	require.Equal(t, 256<<10, c.MaxLineSize)
	require.Equal(t, 15, c.MaxLabelNamesPerStream)

	c.MaxLineSize = 0
	require.NoError(t, c.Validate(), "0 disables a limit")
	c.TruncateLongLines = true
	c.MaxLabelValueLength = -1
	c.MaxMetadataSize = -2
	err := c.Validate()
	require.ErrorContains(t, err, "agent.receive.logs.truncate_long_lines: needs agent.receive.logs.max_line_size above 0")
	require.ErrorContains(t, err, "agent.receive.logs.max_label_value_length: must not be negative")
	require.ErrorContains(t, err, "agent.receive.logs.max_structured_metadata_size: must not be negative")
	require.NotContains(t, err.Error(), "max_label_name_length")

	in, _ := newIntake(t, receivetest.Discard{}, nil)
	_, err = NewLogsIntake(c, in, nil, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	require.Error(t, err)
}

func entries(lines ...string) []logs.Entry {
	out := make([]logs.Entry, len(lines))
	for i, l := range lines {
		out[i] = logs.Entry{Timestamp: int64(i), Line: l, Metadata: labels.EmptyLabels()}
	}
	return out
}

func TestCheckStreams(t *testing.T) {
	okLabels := labels.FromStrings("app", "a")
	unsortedLabels := func() labels.Labels {
		b := labels.NewScratchBuilder(2)
		b.Add("b", "1")
		b.Add("a", "2")
		return b.Labels()
	}()
	for _, c := range []struct {
		name   string
		adjust func(*LogsConfig)
		in     []logs.Stream
		kept   []logs.Stream
		msgs   []string
		reason string
		n      int // rejected entries
	}{
		{
			name: "valid, empty labels dropped, empty streams dropped",
			in: []logs.Stream{
				{Labels: labels.FromStrings("app", "a", "empty", ""), Entries: entries("x", "y")},
				{Labels: labels.FromStrings("app", "b")},
			},
			kept: []logs.Stream{{Labels: okLabels, Entries: entries("x", "y")}},
		},
		{
			name:   "no labels",
			in:     []logs.Stream{{Labels: labels.FromStrings("empty", ""), Entries: entries("x")}, {Labels: okLabels, Entries: entries("y")}},
			kept:   []logs.Stream{{Labels: okLabels, Entries: entries("y")}},
			msgs:   []string{"1 of 2 log entries rejected: stream {}: the stream has no labels (missing_labels)"},
			reason: ReasonLogsMissingLabels, n: 1,
		},
		{
			name:   "invalid name",
			in:     []logs.Stream{{Labels: labels.FromStrings("app-name", "a"), Entries: entries("x", "y")}},
			msgs:   []string{`stream {"app-name"="a"}: label name "app-name" is not a valid label name`},
			reason: ReasonLogsInvalidLabels, n: 2,
		},
		{
			name:   "unsorted",
			in:     []logs.Stream{{Labels: unsortedLabels, Entries: entries("x")}},
			msgs:   []string{`label names are not sorted ("a" after "b")`},
			reason: ReasonLogsInvalidLabels, n: 1,
		},
		{
			name:   "too many labels",
			adjust: func(c *LogsConfig) { c.MaxLabelNamesPerStream = 1 },
			in:     []logs.Stream{{Labels: labels.FromStrings("a", "1", "b", "2"), Entries: entries("x")}},
			msgs:   []string{"2 labels exceed the limit of 1 (agent.receive.logs.max_label_names_per_stream)"},
			reason: ReasonLogsMaxLabelNames, n: 1,
		},
		{
			name:   "name too long",
			adjust: func(c *LogsConfig) { c.MaxLabelNameLength = 3 },
			in:     []logs.Stream{{Labels: labels.FromStrings("abcd", "1"), Entries: entries("x")}},
			msgs:   []string{`label name "abcd" is 4 bytes long, over the limit of 3 (agent.receive.logs.max_label_name_length)`},
			reason: ReasonLogsLabelNameTooLong, n: 1,
		},
		{
			name:   "line too long",
			adjust: func(c *LogsConfig) { c.MaxLineSize = 3 },
			in:     []logs.Stream{{Labels: okLabels, Entries: entries("abc", "abcd", "x")}},
			kept:   []logs.Stream{{Labels: okLabels, Entries: []logs.Entry{entries("abc")[0], {Timestamp: 2, Line: "x", Metadata: labels.EmptyLabels()}}}},
			msgs:   []string{`1 of 3 log entries rejected: stream {app="a"}: a line of 4 bytes is over the limit of 3 (agent.receive.logs.max_line_size)`},
			reason: ReasonLogsLineTooLong, n: 1,
		},
		{
			name:   "too much metadata",
			adjust: func(c *LogsConfig) { c.MaxMetadataEntries, c.MaxMetadataSize = 2, 10 },
			in: []logs.Stream{{Labels: okLabels, Entries: []logs.Entry{
				{Line: "many", Metadata: labels.FromStrings("a", "1", "b", "2", "c", "3")},
				{Line: "large", Metadata: labels.FromStrings("a", "123456789012")},
				{Line: "fine", Metadata: labels.FromStrings("a", "1", "b", "2")},
			}}},
			kept: []logs.Stream{{Labels: okLabels, Entries: []logs.Entry{{Line: "fine", Metadata: labels.FromStrings("a", "1", "b", "2")}}}},
			msgs: []string{
				"an entry has 3 structured metadata pairs, over the limit of 2 (agent.receive.logs.max_structured_metadata_entries)",
				"an entry has 13 bytes of structured metadata, over the limit of 10 (agent.receive.logs.max_structured_metadata_size)",
			},
			reason: ReasonLogsMetadataTooLarge, n: 2,
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			li, _ := newLogsIntake(t, nil, c.adjust)
			total := 0
			for _, s := range c.in {
				total += len(s.Entries)
			}
			kept, rej := li.CheckStreams("", c.in)
			require.Len(t, kept, len(c.kept))
			for i := range c.kept {
				require.Equal(t, c.kept[i].Labels, kept[i].Labels)
				require.Equal(t, fmt.Sprint(c.kept[i].Entries), fmt.Sprint(kept[i].Entries))
			}
			require.Equal(t, c.n, rej.Entries)
			for _, m := range c.msgs {
				require.Contains(t, rej.Message(total), m)
			}
			if c.reason != "" {
				require.InDelta(t, float64(c.n), testutil.ToFloat64(li.m.rejected.WithLabelValues(c.reason)), 0)
			}
		})
	}
}

func TestCheckStreamsRepairs(t *testing.T) {
	li, _ := newLogsIntake(t, nil, func(c *LogsConfig) {
		c.MaxLineSize = 8
		c.TruncateLongLines = true
	})
	badMeta := labels.New(labels.Label{Name: "k\xff", Value: "v\xfe"}, labels.Label{Name: "ok", Value: "fine"})
	in := []logs.Stream{{Labels: labels.FromStrings("app", "a"), Entries: []logs.Entry{
		{Line: "short"},
		{Line: "far too long"},
		{Line: "1234567é"}, // the é is cut whole
		{Line: "a\xffb"},
		{Line: "meta", Metadata: badMeta},
	}}}
	kept, rej := li.CheckStreams("", in)
	require.Zero(t, rej.Errors)
	got := kept[0].Entries
	require.Equal(t, []string{"short", "far too ", "1234567", "a\uFFFDb", "meta"}, []string{got[0].Line, got[1].Line, got[2].Line, got[3].Line, got[4].Line})
	require.Equal(t, labels.FromStrings("k\uFFFD", "v\uFFFD", "ok", "fine"), got[4].Metadata)
	require.InDelta(t, 2, testutil.ToFloat64(li.m.truncated), 0)
	require.InDelta(t, 2, testutil.ToFloat64(li.m.invalidUTF8), 0)

	// Rejection messages are capped.
	li, _ = newLogsIntake(t, nil, func(c *LogsConfig) { c.MaxLineSize = 1 })
	var many []logs.Stream
	for i := range 15 {
		many = append(many, logs.Stream{Labels: labels.FromStrings("i", fmt.Sprint(i)), Entries: entries("xx")})
	}
	_, rej = li.CheckStreams("", many)
	require.Equal(t, 15, rej.Errors)
	require.True(t, strings.HasSuffix(rej.Message(15), "; and 5 more"), rej.Message(15))
}

func TestBuildMetadata(t *testing.T) {
	b := labels.NewScratchBuilder(4)
	require.True(t, BuildMetadata(&b, nil).IsEmpty())
	pairs := []labels.Label{{Name: "b", Value: "1"}, {Name: "a", Value: "first"}, {Name: "c", Value: "x"}, {Name: "a", Value: "last"}}
	require.Equal(t, labels.FromStrings("a", "last", "b", "1", "c", "x"), BuildMetadata(&b, pairs))
}

func TestLogsPush(t *testing.T) {
	rec := &receivetest.LogsRecorder{}
	li, reg := newLogsIntake(t, rec, nil)
	streams := []logs.Stream{{Labels: labels.FromStrings("app", "a"), Entries: []logs.Entry{
		{Line: "abc", Metadata: labels.FromStrings("k", "vv")}, {Line: "de", Metadata: labels.EmptyLabels()},
	}}}
	require.NoError(t, li.Push(context.Background(), ProtocolLokiJSON, "t", streams))
	require.NoError(t, li.Push(context.Background(), ProtocolLokiJSON, "t", nil), "nothing to push")
	require.Len(t, rec.Pushes(), 1)
	require.InDelta(t, 2, receivetest.Metric(t, reg, "pharos_agent_received_log_entries_total", "protocol", "loki_json"), 0)
	require.InDelta(t, 3+2+1+2, receivetest.Metric(t, reg, "pharos_agent_received_log_bytes_total", "protocol", "loki_json"), 0)

	rec.Err = fmt.Errorf("too large: %w", ErrLogsRejected)
	err := li.Push(context.Background(), ProtocolLokiJSON, "t", streams)
	require.ErrorIs(t, err, ErrLogsRejected)
	require.InDelta(t, 2, receivetest.Metric(t, reg, "pharos_agent_rejected_log_entries_total", "reason", ReasonLogsSinkRejected), 0)

	rec.Err = errors.New("bus down")
	err = li.Push(context.Background(), ProtocolLokiJSON, "t", streams)
	require.EqualError(t, err, "bus down")
	require.InDelta(t, 2, receivetest.Metric(t, reg, "pharos_agent_received_log_entries_total", "protocol", "loki_json"), 0)
}
