package receive

import (
	"errors"
	"strings"
)

// Signals of pushed data, as the memory gate counts its refusals.
const (
	SignalMetrics = "metrics"
	SignalLogs    = "logs"
	SignalTraces  = "traces"
)

// Admission refusals; both are retryable (429 with Retry-After,
// RESOURCE_EXHAUSTED with RetryInfo).
var (
	// ErrOverloaded: agent.receive.max_inflight_requests are in flight.
	ErrOverloaded = errors.New("too many push requests in flight (agent.receive.max_inflight_requests); retry later")
	// ErrMemoryLimited: the process is over its memory limiter's soft
	// limit (memory.limit_bytes − memory.spike_limit_bytes).
	ErrMemoryLimited = errors.New("the agent is over its memory limit (memory.limit_bytes); retry later")
)

// MemoryGate refuses new data while the process is short of memory
// (internal/memlimit.Limiter fits). Refuse is called once per push,
// before its body is read, from many goroutines at once; it must be cheap
// and count its own refusals.
type MemoryGate interface {
	Refuse(signal string) bool
}

// SetMemoryGate makes Admit and Busy refuse pushes while g says so. Call
// it before the receivers serve.
func (in *Intake) SetMemoryGate(g MemoryGate) { in.gate = g }

// Admit takes an in-flight slot for a push of signal, or says why it
// cannot: ErrMemoryLimited while the memory gate refuses data,
// ErrOverloaded when every slot is taken. A nil error must be paired with
// Release.
func (in *Intake) Admit(signal string) error {
	if in.gate != nil && in.gate.Refuse(signal) {
		return ErrMemoryLimited
	}
	if !in.TryAcquire() {
		return ErrOverloaded
	}
	return nil
}

// Busy is Admit's early hint (a gRPC tap handle, before the message is
// read): the error Admit would return now, without taking a slot.
func (in *Intake) Busy(signal string) error {
	if in.gate != nil && in.gate.Refuse(signal) {
		return ErrMemoryLimited
	}
	if in.Saturated() {
		return ErrOverloaded
	}
	return nil
}

// SignalOfPath tells the signal of an OTLP request from its path or gRPC
// method name (/v1/logs, /opentelemetry.proto.collector.logs.v1.LogsService/Export);
// anything else counts as metrics.
func SignalOfPath(p string) string {
	switch {
	case strings.Contains(p, "logs"), strings.Contains(p, "Logs"):
		return SignalLogs
	case strings.Contains(p, "trace"), strings.Contains(p, "Trace"):
		return SignalTraces
	}
	return SignalMetrics
}
