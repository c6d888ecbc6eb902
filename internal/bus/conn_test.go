package bus

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

func TestEmbeddedConnectAndEnsureStreams(t *testing.T) {
	srv := startServer(t)
	require.Regexp(t, `^nats://127\.0\.0\.1:\d+$`, srv.ClientURL())
	require.NotEqual(t, "nats://127.0.0.1:4222", srv.ClientURL(), "port 0 must pick a free port")

	tcpCfg := testConfig()
	tcpCfg.URL = srv.ClientURL()
	for _, tc := range []struct {
		name     string
		cfg      Config
		embedded *EmbeddedServer
	}{
		{"in-process", testConfig(), srv},
		{"tcp", tcpCfg, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := connect(t, tc.cfg, tc.embedded, prometheus.NewRegistry())
			require.True(t, c.Connected())
			require.Equal(t, 4, c.Partitions())
			require.Positive(t, c.MaxPayload())

			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			// Twice, and from both connections (the in-process subtest ran
			// first): creating an existing stream must succeed.
			require.NoError(t, c.EnsureStreams(ctx))
			require.NoError(t, c.EnsureStreams(ctx, SignalMetrics, SignalLogs, SignalTraces))

			for _, s := range Signals {
				info := streamInfo(t, c, s)
				require.Equal(t, StreamName(s), info.Config.Name)
				require.Equal(t, []string{"pharos." + string(s) + ".*"}, info.Config.Subjects)
				require.Equal(t, jetstream.FileStorage, info.Config.Storage)
				require.Equal(t, jetstream.InterestPolicy, info.Config.Retention)
				require.Equal(t, jetstream.DiscardNew, info.Config.Discard)
				require.Equal(t, 10*time.Minute, info.Config.Duplicates)
				require.Equal(t, 24*time.Hour, info.Config.MaxAge)
				require.Equal(t, int64(64<<20), info.Config.MaxBytes)
				require.Equal(t, 1, info.Config.Replicas)
			}
		})
	}

	t.Run("update", func(t *testing.T) {
		cfg := testConfig()
		cfg.Stream.MaxAge = time.Hour
		cfg.Stream.DuplicateWindow = 2 * time.Minute
		cfg.Stream.MaxBytes = 32 << 20
		c := connect(t, cfg, srv, nil)
		require.NoError(t, c.EnsureStreams(context.Background(), SignalLogs))
		info := streamInfo(t, c, SignalLogs)
		require.Equal(t, time.Hour, info.Config.MaxAge)
		require.Equal(t, 2*time.Minute, info.Config.Duplicates)
		require.Equal(t, int64(32<<20), info.Config.MaxBytes)
	})

	t.Run("partition count", func(t *testing.T) {
		c := connect(t, testConfig(), srv, nil)
		require.NoError(t, c.EnsureStreams(context.Background(), SignalTraces))
		require.Equal(t, "4", streamInfo(t, c, SignalTraces).Config.Metadata[partitionsMetadataKey])

		// Another count is a configuration error naming the field and
		// both counts, at once (not retried), and changes nothing.
		other := testConfig()
		other.Partitions = 16
		c16 := connect(t, other, srv, nil)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err := c16.EnsureStreams(ctx, SignalTraces)
		require.ErrorIs(t, err, ErrPartitionsMismatch)
		require.ErrorContains(t, err, "nats.partitions")
		require.ErrorContains(t, err, "this process has 16, stream PHAROS_TRACES was created with 4")
		require.NoError(t, ctx.Err(), "not retried until the deadline")
		require.Equal(t, "4", streamInfo(t, c, SignalTraces).Config.Metadata[partitionsMetadataKey])

		// A stream made before the count was recorded takes it.
		sc := c.streamConfig(SignalLogs)
		sc.Metadata = nil
		_, err = c.js.UpdateStream(context.Background(), sc)
		require.NoError(t, err)
		require.NotContains(t, streamInfo(t, c, SignalLogs).Config.Metadata, partitionsMetadataKey)
		require.NoError(t, c16.EnsureStreams(context.Background(), SignalLogs))
		require.Equal(t, "16", streamInfo(t, c, SignalLogs).Config.Metadata[partitionsMetadataKey])
		require.ErrorIs(t, c.EnsureStreams(context.Background(), SignalLogs), ErrPartitionsMismatch)

		// Back to the count the other subtests use.
		_, err = c.js.UpdateStream(context.Background(), c.streamConfig(SignalLogs))
		require.NoError(t, err)
	})

	t.Run("concurrent", func(t *testing.T) {
		c1 := connect(t, testConfig(), srv, nil)
		c2 := connect(t, testConfig(), srv, nil)
		errs := make(chan error, 2)
		for _, c := range []*Conn{c1, c2} {
			go func() { errs <- c.EnsureStreams(context.Background()) }()
		}
		require.NoError(t, <-errs)
		require.NoError(t, <-errs)
	})

	t.Run("unknown signal", func(t *testing.T) {
		c := connect(t, testConfig(), srv, nil)
		require.ErrorContains(t, c.EnsureStreams(context.Background(), "profiles"), `unknown signal "profiles"`)
	})
}

func streamInfo(t *testing.T, c *Conn, s Signal) *jetstream.StreamInfo {
	t.Helper()
	st, err := c.js.Stream(context.Background(), StreamName(s))
	require.NoError(t, err)
	info, err := st.Info(context.Background())
	require.NoError(t, err)
	return info
}

func TestConnectRequiresServer(t *testing.T) {
	_, err := Connect(testConfig(), nil, "test", testLogger(), nil)
	require.ErrorContains(t, err, "nats.url")

	bad := testConfig()
	bad.Partitions = 0
	_, err = Connect(bad, nil, "test", testLogger(), nil)
	require.ErrorContains(t, err, "nats.partitions")
}

func TestStartEmbeddedPortInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()

	start := time.Now()
	_, err = StartEmbedded(EmbeddedConfig{ListenAddress: l.Addr().String()}, t.TempDir(), testLogger())
	require.Error(t, err)
	require.Less(t, time.Since(start), 5*time.Second, "a fatal start-up error must not wait for the ready timeout")

	_, err = StartEmbedded(EmbeddedConfig{ListenAddress: "127.0.0.1:0"}, "", testLogger())
	require.ErrorContains(t, err, "store directory")
}

// A process may start before NATS: Connect returns a disconnected Conn that
// connects once a server appears.
func TestConnectBeforeServerStarts(t *testing.T) {
	port := freePort(t)
	cfg := testConfig()
	cfg.URL = fmt.Sprintf("nats://127.0.0.1:%d", port)
	reg := prometheus.NewRegistry()
	c := connect(t, cfg, nil, reg)
	require.False(t, c.Connected())

	connected := func() float64 {
		m, err := reg.Gather()
		require.NoError(t, err)
		for _, mf := range m {
			if mf.GetName() == "pharos_bus_connected" {
				return mf.GetMetric()[0].GetGauge().GetValue()
			}
		}
		return -1
	}
	require.Equal(t, 0.0, connected())

	err := c.Publish(context.Background(), &OutMsg{Signal: SignalMetrics, Data: []byte("x")})
	require.ErrorIs(t, err, ErrNotConnected)

	startServerAt(t, fmt.Sprintf("127.0.0.1:%d", port), t.TempDir())
	require.Eventually(t, c.Connected, 15*time.Second, 20*time.Millisecond)
	require.Eventually(t, func() bool { return connected() == 1 }, 5*time.Second, 10*time.Millisecond)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, c.EnsureStreams(ctx, SignalMetrics))
	require.NoError(t, c.Publish(ctx, &OutMsg{Signal: SignalMetrics, Data: []byte("x")}))
}

// EnsureStreams waits for JetStream rather than failing while the server is
// not up yet.
func TestEnsureStreamsWaitsForServer(t *testing.T) {
	port := freePort(t)
	cfg := testConfig()
	cfg.URL = fmt.Sprintf("nats://127.0.0.1:%d", port)
	c := connect(t, cfg, nil, nil)

	done := make(chan error, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	go func() { done <- c.EnsureStreams(ctx, SignalTraces) }()

	startServerAt(t, fmt.Sprintf("127.0.0.1:%d", port), t.TempDir())
	require.NoError(t, <-done)

	// And gives up when ctx ends.
	port2 := freePort(t)
	cfg.URL = fmt.Sprintf("nats://127.0.0.1:%d", port2)
	c2 := connect(t, cfg, nil, nil)
	short, cancel2 := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel2()
	require.ErrorIs(t, c2.EnsureStreams(short, SignalTraces), context.DeadlineExceeded)
}

// Two Conns in one process (agent and aggregator of the all-in-one target)
// share one registry.
func TestMetricsSharedBetweenConns(t *testing.T) {
	srv := startServer(t)
	reg := prometheus.NewRegistry()
	c1 := connect(t, testConfig(), srv, reg)
	c2, err := Connect(testConfig(), srv, "second", testLogger(), reg)
	require.NoError(t, err)
	defer func() { require.NoError(t, c2.Close()) }()
	require.NoError(t, c1.EnsureStreams(context.Background(), SignalLogs))
	// Each Conn publishes only once it has ensured the streams itself.
	require.ErrorIs(t, c2.Publish(context.Background(), &OutMsg{Signal: SignalLogs, Partition: 2, Data: []byte("de")}), ErrNotConnected)
	require.NoError(t, c2.EnsureStreams(context.Background(), SignalLogs))

	ctx := context.Background()
	require.NoError(t, c1.Publish(ctx, &OutMsg{Signal: SignalLogs, Partition: 1, Data: []byte("abc")}))
	require.NoError(t, c2.Publish(ctx, &OutMsg{Signal: SignalLogs, Partition: 2, Data: []byte("de")}))
	require.Equal(t, 2.0, testutil.ToFloat64(c1.metrics.publishedMessages.WithLabelValues("logs")))
	require.Equal(t, 5.0, testutil.ToFloat64(c2.metrics.publishedBytes.WithLabelValues("logs")))
	require.Equal(t, 2, testutil.CollectAndCount(c1.metrics.connected, "pharos_bus_connected"))

	// A registry that already holds an incompatible collector of the same
	// name is a real error.
	bad := prometheus.NewRegistry()
	bad.MustRegister(prometheus.NewGauge(prometheus.GaugeOpts{Name: "pharos_bus_connected", Help: "x"}))
	_, err = Connect(testConfig(), srv, "x", testLogger(), bad)
	require.ErrorContains(t, err, "register bus metrics")
}

func TestCloseTwice(t *testing.T) {
	srv := startServer(t)
	c, err := Connect(testConfig(), srv, "test", testLogger(), nil)
	require.NoError(t, err)
	require.NoError(t, c.Close())
	require.NoError(t, c.Close())
	require.False(t, c.Connected())
}

func TestRedactURLs(t *testing.T) {
	for in, want := range map[string]string{
		"nats://a:4222":                       "nats://a:4222",
		"nats://user:secret@a:4222":           "nats://redacted@a:4222",
		"nats://tok@a:4222,nats://u:p@b:4222": "nats://redacted@a:4222,nats://redacted@b:4222",
		"u:p@c:4222":                          "redacted@c:4222",
	} {
		require.Equal(t, want, redactURLs(in), in)
	}
}
