package cluster

import (
	"flag"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

func defaultConfig(t *testing.T) Config {
	t.Helper()
	var cfg Config
	f := flag.NewFlagSet("test", flag.ContinueOnError)
	cfg.RegisterFlags(f)
	require.NoError(t, f.Parse(nil))
	return cfg
}

func TestConfigDefaults(t *testing.T) {
	cfg := defaultConfig(t)
	require.NoError(t, cfg.Validate())
	require.Equal(t, "127.0.0.1:7946", cfg.Memberlist.BindAddress)
	require.Equal(t, StoreMemberlist, cfg.Ring.Store)
	require.Equal(t, 1, cfg.Ring.ReplicationFactor)
	require.NotEmpty(t, cfg.Ring.InstanceID, "defaults to the hostname")
	require.True(t, cfg.Ring.LeaveOnShutdown)
}

func TestConfigFlags(t *testing.T) {
	var cfg Config
	f := flag.NewFlagSet("test", flag.ContinueOnError)
	cfg.RegisterFlags(f)
	require.NoError(t, f.Parse([]string{
		"-memberlist.join=a:7946,dns+aggregators.pharos.svc:7946",
		"-memberlist.join=dnssrv+_gossip._tcp.aggregators.pharos.svc",
		"-memberlist.bind-address=0.0.0.0:7947",
		"-memberlist.advertise-address=10.1.2.3",
		"-ring.store=consul",
		"-ring.consul.hostname=consul:8500",
		"-ring.heartbeat-period=2s",
		"-ring.heartbeat-timeout=20s",
		"-ring.auto-forget-unhealthy-periods=0",
		"-ring.instance-id=aggregator-1",
		"-ring.instance-addr=aggregator-1.aggregators:9400",
		"-ring.replication-factor=2",
	}))
	require.NoError(t, cfg.Validate())
	require.Equal(t, []string{"a:7946", "dns+aggregators.pharos.svc:7946", "dnssrv+_gossip._tcp.aggregators.pharos.svc"}, []string(cfg.Memberlist.Join))
	require.Equal(t, "consul:8500", cfg.Ring.Consul.Host)

	kc := cfg.memberlistKVConfig()
	require.Equal(t, []string{"0.0.0.0"}, []string(kc.TCPTransport.BindAddrs))
	require.Equal(t, 7947, kc.TCPTransport.BindPort)
	require.Equal(t, "10.1.2.3", kc.AdvertiseAddr)
	require.Equal(t, 7947, kc.AdvertisePort, "the advertised port defaults to the bind port")
	require.Equal(t, "aggregator-1", kc.NodeName, "the node name defaults to the instance ID")
}

func TestConfigYAML(t *testing.T) {
	cfg := defaultConfig(t)
	require.NoError(t, yaml.Unmarshal([]byte(`
memberlist:
  join: [aggregator-0.aggregators:7946, aggregator-1.aggregators:7946]
  bind_address: 0.0.0.0:7946
ring:
  heartbeat_timeout: 1m
  instance_addr: 10.0.0.5:9400
  replication_factor: 2
`), &cfg))
	require.NoError(t, cfg.Validate())
	require.Len(t, cfg.Memberlist.Join, 2)
	require.Equal(t, time.Minute, cfg.Ring.HeartbeatTimeout)
	require.Equal(t, 2, cfg.Ring.ReplicationFactor)
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*Config)
		want   []string // substrings of the error; empty = valid
	}{
		{"defaults", func(*Config) {}, nil},
		{"ephemeral port", func(c *Config) { c.Memberlist.BindAddress = "127.0.0.1:0" }, nil},
		{"every interface", func(c *Config) { c.Memberlist.BindAddress = ":7946" }, nil},
		{"ipv6", func(c *Config) { c.Memberlist.BindAddress = "[::1]:7946" }, nil},
		{"bind without port", func(c *Config) { c.Memberlist.BindAddress = "127.0.0.1" }, []string{"memberlist.bind_address:"}},
		{"bind to a name", func(c *Config) { c.Memberlist.BindAddress = "localhost:7946" }, []string{"memberlist.bind_address:", "not an IP"}},
		{"bind port too big", func(c *Config) { c.Memberlist.BindAddress = "127.0.0.1:70000" }, []string{"memberlist.bind_address:", "port"}},
		{"advertise a name", func(c *Config) { c.Memberlist.AdvertiseAddress = "pod.example:7946" }, []string{"memberlist.advertise_address:"}},
		{"advertise without port on port 0", func(c *Config) {
			c.Memberlist.BindAddress = "127.0.0.1:0"
			c.Memberlist.AdvertiseAddress = "10.0.0.1"
		}, []string{"memberlist.advertise_address: needs a port"}},
		{"advertise with port on port 0", func(c *Config) {
			c.Memberlist.BindAddress = "127.0.0.1:0"
			c.Memberlist.AdvertiseAddress = "10.0.0.1:7946"
		}, nil},
		{"blank join", func(c *Config) { c.Memberlist.Join = []string{"a:1", " "} }, []string{"memberlist.join[1]:"}},
		{"gossip interval", func(c *Config) { c.Memberlist.GossipInterval = 0 }, []string{"memberlist.gossip_interval:"}},
		{"push pull", func(c *Config) { c.Memberlist.PushPullInterval = -time.Second }, []string{"memberlist.push_pull_interval:"}},
		{"left timeout", func(c *Config) { c.Memberlist.LeftMembersTimeout = 0 }, []string{"memberlist.left_members_timeout:"}},
		{"leave timeout", func(c *Config) { c.Memberlist.LeaveTimeout = 0 }, []string{"memberlist.leave_timeout:"}},
		{"store", func(c *Config) { c.Ring.Store = "zookeeper" }, []string{"ring.store:", "zookeeper"}},
		{"inmemory is not offered", func(c *Config) { c.Ring.Store = "inmemory" }, []string{"ring.store:"}},
		{"consul needs a host", func(c *Config) {
			c.Ring.Store = StoreConsul
			c.Ring.Consul.Host = ""
		}, []string{"ring.consul.host:"}},
		{"etcd needs endpoints", func(c *Config) { c.Ring.Store = StoreEtcd }, []string{"ring.etcd.endpoints:"}},
		{"heartbeat period", func(c *Config) { c.Ring.HeartbeatPeriod = 0 }, []string{"ring.heartbeat_period:"}},
		{"heartbeat timeout too close", func(c *Config) {
			c.Ring.HeartbeatPeriod = time.Second
			c.Ring.HeartbeatTimeout = 2 * time.Second
		}, []string{"ring.heartbeat_timeout:", "one-second resolution"}},
		{"forget periods", func(c *Config) { c.Ring.AutoForgetUnhealthyPeriods = -1 }, []string{"ring.auto_forget_unhealthy_periods:"}},
		{"instance id", func(c *Config) { c.Ring.InstanceID = "" }, []string{"ring.instance_id:"}},
		{"instance addr", func(c *Config) { c.Ring.InstanceAddr = "no-port" }, []string{"ring.instance_addr:"}},
		{"replication factor", func(c *Config) { c.Ring.ReplicationFactor = 0 }, []string{"ring.replication_factor:"}},
		{"every error at once", func(c *Config) {
			c.Memberlist.BindAddress = "x"
			c.Ring.Store = "x"
			c.Ring.ReplicationFactor = 0
		}, []string{"memberlist.bind_address:", "ring.store:", "ring.replication_factor:"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := defaultConfig(t)
			tc.modify(&cfg)
			err := cfg.Validate()
			if len(tc.want) == 0 {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			for _, w := range tc.want {
				require.ErrorContains(t, err, w)
			}
		})
	}
}

func TestNewMemberValidates(t *testing.T) {
	cfg := defaultConfig(t)
	cfg.Ring.ReplicationFactor = 0
	_, err := NewMember(cfg, 0, nil, nil, discardLogger(), nil)
	require.Error(t, err)
	for _, w := range []string{"ring.replication_factor:", "ring.instance_addr: required", "partitions:", "needs a KV"} {
		require.ErrorContains(t, err, w)
	}
}
