package bus

import "github.com/nats-io/nats-server/v2/server"

// Hooks for the external tests of package bus_test, which exist because
// internal/testutil (their poll helper) imports bus.

// NATSServer returns the nats-server behind e, for tests that inspect
// cluster state (stream and consumer leaders).
func NATSServer(e *EmbeddedServer) *server.Server { return e.srv }

// ConnectedServerName returns the name of the server c is connected to,
// or "" while it is not connected.
func ConnectedServerName(c *Conn) string { return c.nc.ConnectedServerName() }
