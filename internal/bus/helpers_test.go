package bus

import (
	"context"
	"log/slog"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

// testLogger writes warnings and errors to stderr, which go test shows only
// for failing or verbose runs. It does not log through t: nats-server may
// log from its own goroutines while a test is finishing.
func testLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// testConfig is the default config with a small footprint: each stream
// reserves MaxBytes on the server, and test machines have little disk.
func testConfig() Config {
	cfg := DefaultConfig()
	cfg.Partitions = 4
	cfg.Stream.MaxBytes = 64 << 20
	cfg.PublishTimeout = 5 * time.Second
	return cfg
}

func startServer(t testing.TB) *EmbeddedServer {
	t.Helper()
	return startServerAt(t, "127.0.0.1:0", t.TempDir())
}

func startServerAt(t testing.TB, addr, dir string) *EmbeddedServer {
	t.Helper()
	srv, err := StartEmbedded(EmbeddedConfig{ListenAddress: addr}, dir, testLogger())
	require.NoError(t, err)
	t.Cleanup(srv.Shutdown)
	return srv
}

// connect connects in process when url is empty, else over TCP; the Conn is
// closed at cleanup, before the server shuts down (cleanups run in reverse).
func connect(t testing.TB, cfg Config, srv *EmbeddedServer, reg prometheus.Registerer) *Conn {
	t.Helper()
	c, err := Connect(cfg, srv, "test", testLogger(), reg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, c.Close()) })
	return c
}

// consumer runs ConsumePartition in the background, forwarding every
// Delivery to a channel; the test settles them. It stops at cleanup and
// waits for the loop to return.
type consumer struct {
	ch     chan *Delivery
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

func startConsumer(t *testing.T, c *Conn, s Signal, partition int, durable string) *consumer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cs := &consumer{ch: make(chan *Delivery, 1024), cancel: cancel, done: make(chan error, 1)}
	go func() {
		cs.done <- c.ConsumePartition(ctx, s, partition, durable, func(ctx context.Context, batch []*Delivery) {
			for _, d := range batch {
				select {
				case cs.ch <- d:
				case <-ctx.Done():
					return
				}
			}
		})
	}()
	t.Cleanup(func() { cs.stop(t) })
	return cs
}

// stop cancels the loop and checks that it returns nil promptly.
func (cs *consumer) stop(t *testing.T) {
	cs.once.Do(func() {
		cs.cancel()
		select {
		case err := <-cs.done:
			require.NoError(t, err)
		case <-time.After(10 * time.Second):
			t.Fatal("ConsumePartition did not return after cancel")
		}
	})
}

// next waits for the next delivery.
func (cs *consumer) next(t *testing.T) *Delivery {
	t.Helper()
	select {
	case d := <-cs.ch:
		return d
	case <-time.After(10 * time.Second):
		t.Fatal("no delivery within 10s")
		return nil
	}
}

// freePort returns a loopback port nothing listens on.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	require.NoError(t, l.Close())
	return port
}
