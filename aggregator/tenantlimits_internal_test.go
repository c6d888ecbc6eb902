package aggregator

import (
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"

	"github.com/pharos-obs/pharos/internal/bus"
	"github.com/pharos-obs/pharos/internal/overrides"
	"github.com/pharos-obs/pharos/storage/logs"
)

func TestLimitStreams(t *testing.T) {
	var c overrides.Config
	fs := flag.NewFlagSet("t", flag.PanicOnError)
	c.RegisterFlags(fs)
	c.OverridesFile = filepath.Join(t.TempDir(), "overrides.yaml")
	require.NoError(t, os.WriteFile(c.OverridesFile, []byte("overrides:\n  small:\n    max_streams: 2\n"), 0o600))
	o, err := overrides.New(c, overrides.Limits{})
	require.NoError(t, err)
	reg := prometheus.NewRegistry()
	a := &Aggregator{partitions: 1, owned: []PartitionReplica{{Partition: 0}}}
	a.WithTenantLimits(o, overrides.NewDiscards(reg, "aggregator"))

	streams := func(ids ...string) []logs.Stream {
		out := make([]logs.Stream, len(ids))
		for i, id := range ids {
			out[i] = logs.Stream{Labels: labels.FromStrings("app", id), Entries: make([]logs.Entry, 3)}
		}
		return out
	}
	kept := a.tl.limitStreams("small", streams("a", "b", "c", "a"))
	require.Len(t, kept, 3, "a, b and a again; c is over the limit")
	for _, s := range kept {
		require.NotEqual(t, "c", s.Labels.Get("app"))
	}
	require.Len(t, a.tl.limitStreams(bus.DefaultTenant, streams("a", "b", "c", "d")), 4, "the default tenant has no limit")
	require.Len(t, a.tl.limitStreams("", streams("x", "y", "z")), 3)
	require.Equal(t, 3.0, testutil.ToFloat64(a.tl.discards.Counter("small", overrides.SignalLogs, overrides.LimitMaxStreams)))
}
