package receivetest

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"

	"github.com/pharos-obs/pharos/storage/logs"
)

// Push is one PushStreams call a LogsRecorder took, deep-copied.
type Push struct {
	Tenant  string
	Streams []logs.Stream
}

// LogsRecorder is a receive.LogsSink that keeps a deep copy of every push
// (the streams' memory is the caller's again once PushStreams returns).
// It is safe for concurrent use.
type LogsRecorder struct {
	mu     sync.Mutex
	pushes []Push
	// Err, when set, is returned by every push, which then keeps nothing.
	Err error
	// Before, when set, runs at the start of every push (outside the
	// lock); a non-nil error is returned. Tests block in it to hold
	// requests in flight.
	Before func(ctx context.Context) error
}

// PushStreams implements receive.LogsSink.
func (r *LogsRecorder) PushStreams(ctx context.Context, tenant string, streams []logs.Stream) error {
	if r.Before != nil {
		if err := r.Before(ctx); err != nil {
			return err
		}
	}
	if r.Err != nil {
		return r.Err
	}
	c := CloneStreams(streams)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pushes = append(r.pushes, Push{Tenant: tenant, Streams: c})
	return nil
}

// Pushes returns the pushes kept so far.
func (r *LogsRecorder) Pushes() []Push {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.pushes)
}

// CloneStreams deep-copies streams, strings included.
func CloneStreams(in []logs.Stream) []logs.Stream {
	out := make([]logs.Stream, len(in))
	for i, s := range in {
		out[i].Labels = cloneLabels(s.Labels)
		out[i].Entries = make([]logs.Entry, len(s.Entries))
		for j, e := range s.Entries {
			out[i].Entries[j] = logs.Entry{Timestamp: e.Timestamp, Line: strings.Clone(e.Line), Metadata: cloneLabels(e.Metadata)}
		}
	}
	return out
}

func cloneLabels(ls labels.Labels) labels.Labels {
	b := labels.NewScratchBuilder(ls.Len())
	ls.Range(func(l labels.Label) { b.Add(strings.Clone(l.Name), strings.Clone(l.Value)) })
	return b.Labels()
}

// RequireStreams checks that got has want's streams and entries, in order,
// comparing label sets by their text.
func RequireStreams(t testing.TB, want, got []logs.Stream) {
	t.Helper()
	require.Len(t, got, len(want))
	for i := range want {
		require.Equal(t, want[i].Labels.String(), got[i].Labels.String(), "stream %d", i)
		require.Len(t, got[i].Entries, len(want[i].Entries), "stream %d", i)
		for j, e := range want[i].Entries {
			g := got[i].Entries[j]
			require.Equal(t, e.Timestamp, g.Timestamp, "stream %d entry %d", i, j)
			require.Equal(t, e.Line, g.Line, "stream %d entry %d", i, j)
			require.Equal(t, e.Metadata.String(), g.Metadata.String(), "stream %d entry %d", i, j)
		}
	}
}
