package cluster

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// dskit's memberlist KV init service reports a failed KV to a
		// FailureWatcher whose channel nobody reads once it is stopping, so
		// the listener's send blocks forever (dskit, not this package). The
		// tests that kill a member's gossip node make the KV fail on purpose.
		goleak.IgnoreTopFunction("github.com/grafana/dskit/services.(*FailureWatcher).WatchService.func1"),
		// dskit's transport hands each packet to memberlist over an
		// unbuffered channel that memberlist stops reading at shutdown; a
		// packet read a moment before then blocks its goroutine forever
		// (tcp_transport.go, handleConnection). Slower packet handling (TLS,
		// the gossip-key guard's second handshake, -race) makes it likelier.
		goleak.IgnoreTopFunction("github.com/grafana/dskit/kv/memberlist.(*TCPTransport).handleConnection"),
	)
}
