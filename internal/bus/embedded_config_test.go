package bus

import (
	"flag"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/stretchr/testify/require"

	"github.com/pharos-obs/pharos/internal/auth"
)

func TestEmbeddedConfigClusterFlags(t *testing.T) {
	var cfg EmbeddedConfig
	f := flag.NewFlagSet("test", flag.ContinueOnError)
	cfg.RegisterFlags(f)
	require.NoError(t, f.Parse([]string{
		"-nats.embedded.server-name=nats-1",
		"-nats.embedded.cluster-name=prod",
		"-nats.embedded.cluster-listen-address=0.0.0.0:6222",
		"-nats.embedded.routes=nats-route://n1:6222,n2:6222, n3:6222",
		"-nats.embedded.sync-interval=1s",
	}))
	require.Equal(t, EmbeddedConfig{
		ListenAddress:        "127.0.0.1:4222",
		ServerName:           "nats-1",
		ClusterName:          "prod",
		ClusterListenAddress: "0.0.0.0:6222",
		Routes:               []string{"nats-route://n1:6222", "n2:6222", " n3:6222"},
		SyncInterval:         "1s",
		TLS:                  auth.TLSConfig{MinVersion: "TLS12"},
	}, cfg)
	require.NoError(t, cfg.Validate())
}

func TestEmbeddedConfigValidate(t *testing.T) {
	cluster := func(c *EmbeddedConfig) {
		c.ServerName = "n1"
		c.ClusterListenAddress = "127.0.0.1:6222"
		c.Routes = []string{"127.0.0.1:6222", "nats-route://127.0.0.1:6223", "nats://[::1]:6224"}
	}
	for _, tc := range []struct {
		name   string
		mutate func(*EmbeddedConfig)
		want   []string // substrings of the error; nil = valid
	}{
		{"defaults", func(*EmbeddedConfig) {}, nil},
		{"zero value of the new fields", func(c *EmbeddedConfig) { *c = EmbeddedConfig{ListenAddress: "127.0.0.1:0"} }, nil},
		{"single node with a name", func(c *EmbeddedConfig) { c.ServerName = "solo" }, nil},
		{"sync duration", func(c *EmbeddedConfig) { c.SyncInterval = "2m" }, nil},
		{"sync always any case", func(c *EmbeddedConfig) { c.SyncInterval = "Always" }, nil},
		{"sync garbage", func(c *EmbeddedConfig) { c.SyncInterval = "sometimes" }, []string{`nats.embedded.sync_interval: must be "always" or a positive duration, got "sometimes"`}},
		{"sync zero", func(c *EmbeddedConfig) { c.SyncInterval = "0s" }, []string{"nats.embedded.sync_interval:"}},
		{"sync negative", func(c *EmbeddedConfig) { c.SyncInterval = "-1s" }, []string{"nats.embedded.sync_interval:"}},
		{"server name with space", func(c *EmbeddedConfig) { c.ServerName = "node 1" }, []string{"nats.embedded.server_name: must not contain whitespace"}},
		{"cluster name with tab", func(c *EmbeddedConfig) { c.ClusterName = "a\tb" }, []string{"nats.embedded.cluster_name: must not contain whitespace"}},
		{"cluster", cluster, nil},
		{"cluster on any port", func(c *EmbeddedConfig) { cluster(c); c.ClusterListenAddress = ":0" }, nil},
		{"cluster without name", func(c *EmbeddedConfig) { cluster(c); c.ServerName = "" }, []string{"nats.embedded.server_name: required when nats.embedded.cluster_listen_address is set"}},
		{"cluster without cluster name", func(c *EmbeddedConfig) { cluster(c); c.ClusterName = "" }, []string{"nats.embedded.cluster_name: required"}},
		{"cluster without routes", func(c *EmbeddedConfig) { cluster(c); c.Routes = nil }, []string{"nats.embedded.routes: required"}},
		{"cluster listen address no port", func(c *EmbeddedConfig) { cluster(c); c.ClusterListenAddress = "n1" }, []string{"nats.embedded.cluster_listen_address: must be host:port"}},
		{"cluster listen address bad port", func(c *EmbeddedConfig) { cluster(c); c.ClusterListenAddress = "n1:70000" }, []string{"nats.embedded.cluster_listen_address: port must be"}},
		{"routes without cluster", func(c *EmbeddedConfig) { c.Routes = []string{"n2:6222"} }, []string{"nats.embedded.routes: set without nats.embedded.cluster_listen_address"}},
		{"route empty", func(c *EmbeddedConfig) { cluster(c); c.Routes = append(c.Routes, " ") }, []string{"nats.embedded.routes[3]: empty route"}},
		{"route scheme", func(c *EmbeddedConfig) { cluster(c); c.Routes[1] = "http://n2:6222" }, []string{`nats.embedded.routes[1]: route "http://n2:6222": unsupported scheme "http"`}},
		{"route no port", func(c *EmbeddedConfig) { cluster(c); c.Routes[0] = "nats-route://n2" }, []string{"nats.embedded.routes[0]:", "port must be between 1 and 65535"}},
		{"route port zero", func(c *EmbeddedConfig) { cluster(c); c.Routes[0] = "n2:0" }, []string{"nats.embedded.routes[0]:", "port must be between 1 and 65535"}},
		{"route no host", func(c *EmbeddedConfig) { cluster(c); c.Routes[2] = ":6222" }, []string{"nats.embedded.routes[2]:", "missing host"}},
		{"route unparsable hides credentials", func(c *EmbeddedConfig) { cluster(c); c.Routes[0] = "nats-route://u:secret@n 2:6222" }, []string{"nats.embedded.routes[0]: invalid route", "redacted@"}},
		{"several at once", func(c *EmbeddedConfig) {
			c.ListenAddress = "nope"
			c.ClusterListenAddress = "127.0.0.1:6222"
			c.Routes = []string{"n2:6222", "n3"}
			c.SyncInterval = "x"
		}, []string{"nats.embedded.listen_address:", "nats.embedded.server_name: required", "nats.embedded.routes[1]:", "nats.embedded.sync_interval:"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig().Embedded
			tc.mutate(&cfg)
			err := cfg.Validate()
			if tc.want == nil {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			for _, w := range tc.want {
				require.ErrorContains(t, err, w)
			}
			require.NotContains(t, err.Error(), "secret")

			// The root config reports the same, and StartEmbedded refuses it.
			full := DefaultConfig()
			full.Embedded = cfg
			require.ErrorContains(t, full.Validate(), tc.want[0])
			_, err = StartEmbedded(cfg, t.TempDir(), testLogger())
			require.ErrorContains(t, err, tc.want[0])
		})
	}
}

func TestServerOptions(t *testing.T) {
	t.Run("single node", func(t *testing.T) {
		opts, err := serverOptions(EmbeddedConfig{ListenAddress: "127.0.0.1:0"}, "/store")
		require.NoError(t, err)
		require.Equal(t, "pharos-embedded", opts.ServerName)
		require.Equal(t, server.RANDOM_PORT, opts.Port)
		require.True(t, opts.SyncAlways)
		require.Zero(t, opts.Cluster.Port, "no route listener")
		require.Empty(t, opts.Routes)
		require.True(t, opts.JetStream)
		require.Equal(t, "/store", opts.StoreDir)
	})
	t.Run("cluster", func(t *testing.T) {
		cfg := DefaultConfig().Embedded
		cfg.ServerName = "n2"
		cfg.ClusterListenAddress = "0.0.0.0:0"
		cfg.Routes = []string{"127.0.0.1:6222", " nats-route://n3:6223"}
		cfg.SyncInterval = "30s"
		opts, err := serverOptions(cfg, "/store")
		require.NoError(t, err)
		require.Equal(t, "n2", opts.ServerName)
		require.Equal(t, 4222, opts.Port)
		require.Equal(t, server.ClusterOpts{Name: "pharos", Host: "0.0.0.0", Port: server.RANDOM_PORT}, opts.Cluster)
		require.Len(t, opts.Routes, 2)
		require.Equal(t, "nats-route://127.0.0.1:6222", opts.Routes[0].String())
		require.Equal(t, "nats-route://n3:6223", opts.Routes[1].String())
		require.False(t, opts.SyncAlways)
		require.Equal(t, 30*time.Second, opts.SyncInterval)
	})
}

// A single node's JetStream is ready as soon as it starts, it has no
// cluster address, and it reports unready once shut down.
func TestEmbeddedSingleNodeReadiness(t *testing.T) {
	srv, err := StartEmbedded(EmbeddedConfig{ListenAddress: "127.0.0.1:0"}, t.TempDir(), testLogger())
	require.NoError(t, err)
	require.True(t, srv.JetStreamReady())
	require.Empty(t, srv.ClusterAddr())
	srv.Shutdown()
	require.False(t, srv.JetStreamReady())
}
