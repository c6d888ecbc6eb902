package bus

import (
	"strconv"
	"strings"
)

// Signal names one kind of telemetry. Each signal has its own stream, so a
// flood of one (say, debug logs) cannot push another out of its limits.
type Signal string

// The signals Pharos carries. Their string values appear in subjects, stream
// names and metric labels, and are fixed.
const (
	SignalMetrics Signal = "metrics"
	SignalLogs    Signal = "logs"
	SignalTraces  Signal = "traces"
)

// Signals lists every signal, in a stable order, for callers that set up all
// streams at once.
var Signals = []Signal{SignalMetrics, SignalLogs, SignalTraces}

// Valid reports whether s is one of the signals Pharos carries.
func (s Signal) Valid() bool {
	switch s {
	case SignalMetrics, SignalLogs, SignalTraces:
		return true
	}
	return false
}

// Message headers. They are a fixed wire contract between agents and
// aggregators (see DESIGN.md).
const (
	// HeaderTenant carries the tenant that owns the batch.
	HeaderTenant = "Pharos-Tenant"
	// HeaderEncoding names the payload's encoding and compression.
	HeaderEncoding = "Pharos-Encoding"
	// HeaderMsgID is JetStream's de-duplication header; agents set it to
	// agent id + batch sequence so a retried publish is stored once.
	HeaderMsgID = "Nats-Msg-Id"
	// DefaultTenant is used when a message names no tenant.
	DefaultTenant = "anonymous"
)

const subjectPrefix = "pharos."

// Subject returns the subject of one partition of a signal, for example
// "pharos.metrics.3". Hot paths use a Conn's precomputed subjects instead.
func Subject(s Signal, partition int) string {
	return subjectPrefix + string(s) + "." + strconv.Itoa(partition)
}

// subjectWildcard returns the subject filter that covers every partition of
// a signal; it is what the signal's stream listens on.
func subjectWildcard(s Signal) string {
	return subjectPrefix + string(s) + ".*"
}

// StreamName returns the JetStream stream that stores a signal, for example
// "PHAROS_METRICS".
func StreamName(s Signal) string {
	return "PHAROS_" + strings.ToUpper(string(s))
}
