package bus

import (
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Hooks for the external tests of package bus_test, which exist because
// internal/testutil (their poll helper) imports bus.

// NATSServer returns the nats-server behind e, for tests that inspect
// cluster state (stream and consumer leaders).
func NATSServer(e *EmbeddedServer) *server.Server { return e.srv }

// ConnectedServerName returns the name of the server c is connected to,
// or "" while it is not connected.
func ConnectedServerName(c *Conn) string { return c.nc.ConnectedServerName() }

// LastError returns the error of c's last failed connection attempt (TLS
// handshake, authorization) while it is retrying.
func LastError(c *Conn) error { return c.nc.LastError() }

// InProcessOptions returns the credential of e's in-process client.
func InProcessOptions(e *EmbeddedServer) []nats.Option { return e.inProcess }

// UsesTLS reports whether c's current connection is TLS.
func UsesTLS(c *Conn) bool {
	_, err := c.nc.TLSConnectionState()
	return err == nil
}
