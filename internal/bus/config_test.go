package bus

import (
	"flag"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pharos-obs/pharos/internal/auth"
)

func TestRegisterFlagsDefaults(t *testing.T) {
	cfg := DefaultConfig()
	require.NoError(t, cfg.Validate())
	require.Equal(t, Config{
		URL:            "",
		Embedded:       EmbeddedConfig{ListenAddress: "127.0.0.1:4222", ClusterName: "pharos", SyncInterval: "always", TLS: auth.TLSConfig{MinVersion: "TLS12"}},
		Partitions:     16,
		Stream:         StreamConfig{Replicas: 1, MaxAge: 24 * time.Hour, MaxBytes: 8 << 30, DuplicateWindow: 10 * time.Minute},
		Consumer:       ConsumerConfig{AckWait: 30 * time.Second, MaxAckPending: 1024, FetchBatch: 64, PinnedTTL: 30 * time.Second},
		PublishTimeout: 10 * time.Second,
	}, cfg)
}

func TestRegisterFlagsNames(t *testing.T) {
	var cfg Config
	f := flag.NewFlagSet("test", flag.ContinueOnError)
	cfg.RegisterFlags(f)
	require.NoError(t, f.Parse([]string{
		"-nats.url=nats://a:4222,nats://b:4222",
		"-nats.embedded.listen-address=:5222",
		"-nats.partitions=32",
		"-nats.stream.replicas=3",
		"-nats.stream.max-age=48h",
		"-nats.stream.max-bytes=1073741824",
		"-nats.stream.duplicate-window=5m",
		"-nats.consumer.ack-wait=1m",
		"-nats.consumer.max-ack-pending=2048",
		"-nats.consumer.fetch-batch=128",
		"-nats.publish-timeout=3s",
		"-nats.tls.server-name=nats.internal",
		"-nats.embedded.tls.min-version=TLS13",
	}))
	require.Equal(t, Config{
		URL:            "nats://a:4222,nats://b:4222",
		Embedded:       EmbeddedConfig{ListenAddress: ":5222", ClusterName: "pharos", SyncInterval: "always", TLS: auth.TLSConfig{MinVersion: "TLS13"}},
		Partitions:     32,
		Stream:         StreamConfig{Replicas: 3, MaxAge: 48 * time.Hour, MaxBytes: 1 << 30, DuplicateWindow: 5 * time.Minute},
		Consumer:       ConsumerConfig{AckWait: time.Minute, MaxAckPending: 2048, FetchBatch: 128, PinnedTTL: 30 * time.Second},
		PublishTimeout: 3 * time.Second,
		TLS:            ClientTLSConfig{ServerName: "nats.internal"},
	}, cfg)
	require.NoError(t, cfg.Validate())
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(*Config)
		want   []string // substrings of the error; nil = valid
	}{
		{"defaults", func(*Config) {}, nil},
		{"url list", func(c *Config) { c.URL = "nats://a:4222, b:4223,tls://c" }, nil},
		{"url bad scheme", func(c *Config) { c.URL = "http://a:4222" }, []string{"nats.url:", `unsupported scheme "http"`}},
		{"url empty entry", func(c *Config) { c.URL = "nats://a:4222," }, []string{"nats.url:", "empty URL"}},
		{"url bad port", func(c *Config) { c.URL = "nats://a:99999" }, []string{"nats.url:"}},
		{"url unparsable", func(c *Config) { c.URL = "nats://u:secret@a b:4222" }, []string{"nats.url: invalid URL"}},
		{"listen address no port", func(c *Config) { c.Embedded.ListenAddress = "localhost" }, []string{"nats.embedded.listen_address:"}},
		{"listen address bad port", func(c *Config) { c.Embedded.ListenAddress = "127.0.0.1:http" }, []string{"nats.embedded.listen_address:"}},
		{"listen address any host", func(c *Config) { c.Embedded.ListenAddress = ":0" }, nil},
		{"partitions zero", func(c *Config) { c.Partitions = 0 }, []string{"nats.partitions: must be between 1 and 1024, got 0"}},
		{"partitions too many", func(c *Config) { c.Partitions = 1025 }, []string{"nats.partitions:"}},
		{"replicas zero", func(c *Config) { c.Stream.Replicas = 0 }, []string{"nats.stream.replicas:"}},
		{"replicas six", func(c *Config) { c.Stream.Replicas = 6 }, []string{"nats.stream.replicas:"}},
		{"max age zero", func(c *Config) { c.Stream.MaxAge = 0 }, []string{"nats.stream.max_age:"}},
		{"max bytes tiny", func(c *Config) { c.Stream.MaxBytes = 1000 }, []string{"nats.stream.max_bytes:"}},
		{"max bytes unlimited", func(c *Config) { c.Stream.MaxBytes = -1 }, []string{"nats.stream.max_bytes:"}},
		{"dup window zero", func(c *Config) { c.Stream.DuplicateWindow = 0 }, []string{"nats.stream.duplicate_window:"}},
		{"dup window above max age", func(c *Config) { c.Stream.MaxAge = time.Minute }, []string{"nats.stream.duplicate_window: must not exceed"}},
		{"ack wait zero", func(c *Config) { c.Consumer.AckWait = 0 }, []string{"nats.consumer.ack_wait:"}},
		{"max ack pending zero", func(c *Config) { c.Consumer.MaxAckPending = 0 }, []string{"nats.consumer.max_ack_pending:"}},
		{"max ack pending below batch", func(c *Config) { c.Consumer.MaxAckPending = 10 }, []string{"nats.consumer.max_ack_pending: must be at least"}},
		{"fetch batch zero", func(c *Config) { c.Consumer.FetchBatch = 0 }, []string{"nats.consumer.fetch_batch:"}},
		{"publish timeout zero", func(c *Config) { c.PublishTimeout = 0 }, []string{"nats.publish_timeout:"}},
		{"several at once", func(c *Config) {
			c.Partitions = 0
			c.Stream.Replicas = 0
			c.Consumer.FetchBatch = -1
		}, []string{"nats.partitions:", "nats.stream.replicas:", "nats.consumer.fetch_batch:"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
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
		})
	}
}
