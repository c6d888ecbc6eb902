package receive

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pharos-obs/pharos/collector/receive/receivetest"
)

// gateInput is the memory gate's answer in a test; it records what it
// was asked.
type gateInput struct {
	refuse bool
	asked  []string
}

func (g *gateInput) Refuse(signal string) bool {
	g.asked = append(g.asked, signal)
	return g.refuse
}

func TestAdmit(t *testing.T) {
	for _, c := range []struct {
		name     string
		gate     *gateInput // nil: no gate
		inflight int        // slots taken before
		want     error
	}{
		{name: "no gate, free slot"},
		{name: "no gate, full", inflight: 2, want: ErrOverloaded},
		{name: "gate open", gate: &gateInput{}},
		{name: "gate open, full", gate: &gateInput{}, inflight: 2, want: ErrOverloaded},
		{name: "gate refuses", gate: &gateInput{refuse: true}, want: ErrMemoryLimited},
		{name: "gate refuses, full", gate: &gateInput{refuse: true}, inflight: 2, want: ErrMemoryLimited},
	} {
		t.Run(c.name, func(t *testing.T) {
			in, _ := newIntake(t, &receivetest.Recorder{}, func(cfg *Config, _ *Limits) { cfg.MaxInflightRequests = 2 })
			if c.gate != nil {
				in.SetMemoryGate(c.gate)
			}
			for range c.inflight {
				require.True(t, in.TryAcquire())
			}
			require.ErrorIs(t, in.Busy(SignalLogs), c.want)
			err := in.Admit(SignalLogs)
			require.ErrorIs(t, err, c.want)
			if err == nil {
				require.Equal(t, int64(c.inflight+1), in.inflight.Load(), "Admit took a slot")
				in.Release()
			}
			require.Equal(t, int64(c.inflight), in.inflight.Load(), "a refusal takes no slot")
			if c.gate != nil {
				require.Equal(t, []string{SignalLogs, SignalLogs}, c.gate.asked)
			}
		})
	}
}

func TestSignalOfPath(t *testing.T) {
	for p, want := range map[string]string{
		"/v1/metrics": SignalMetrics,
		"/v1/logs":    SignalLogs,
		"/v1/traces":  SignalTraces,
		"/opentelemetry.proto.collector.metrics.v1.MetricsService/Export": SignalMetrics,
		"/opentelemetry.proto.collector.logs.v1.LogsService/Export":       SignalLogs,
		"/opentelemetry.proto.collector.trace.v1.TraceService/Export":     SignalTraces,
		"/api/v1/write": SignalMetrics,
	} {
		require.Equal(t, want, SignalOfPath(p), p)
	}
}
