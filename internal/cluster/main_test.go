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
	)
}
