package bus

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSubjectAndStreamName(t *testing.T) {
	for _, tc := range []struct {
		signal    Signal
		partition int
		subject   string
		stream    string
	}{
		{SignalMetrics, 0, "pharos.metrics.0", "PHAROS_METRICS"},
		{SignalMetrics, 3, "pharos.metrics.3", "PHAROS_METRICS"},
		{SignalLogs, 15, "pharos.logs.15", "PHAROS_LOGS"},
		{SignalTraces, 1023, "pharos.traces.1023", "PHAROS_TRACES"},
	} {
		t.Run(tc.subject, func(t *testing.T) {
			require.Equal(t, tc.subject, Subject(tc.signal, tc.partition))
			require.Equal(t, tc.stream, StreamName(tc.signal))
			require.True(t, tc.signal.Valid())
		})
	}
	require.Equal(t, "pharos.logs.*", subjectWildcard(SignalLogs))
	require.False(t, Signal("profiles").Valid())
	require.Len(t, Signals, 3)
}
