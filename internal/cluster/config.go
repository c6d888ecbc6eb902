package cluster

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	dstls "github.com/grafana/dskit/crypto/tls"
	"github.com/grafana/dskit/flagext"
	"github.com/grafana/dskit/kv/codec"
	"github.com/grafana/dskit/kv/consul"
	"github.com/grafana/dskit/kv/etcd"
	"github.com/grafana/dskit/kv/memberlist"
	"github.com/grafana/dskit/ring"

	"github.com/pharos-obs/pharos/internal/auth"
)

// Ring stores accepted by -ring.store.
const (
	// StoreMemberlist gossips the ring between the processes themselves:
	// no coordinator to run (the default).
	StoreMemberlist = "memberlist"
	// StoreConsul keeps the ring in Consul.
	StoreConsul = "consul"
	// StoreEtcd keeps the ring in etcd.
	StoreEtcd = "etcd"
)

// stores are the -ring.store values. dskit's "inmemory" is left out: its
// store runs a goroutine that nothing can stop.
var stores = []string{StoreMemberlist, StoreConsul, StoreEtcd}

// Config is the cluster membership configuration: how this process gossips
// (memberlist) and how it takes part in the aggregator ring.
type Config struct {
	Memberlist MemberlistConfig `yaml:"memberlist"`
	Ring       RingConfig       `yaml:"ring"`
}

// MemberlistConfig configures gossip, used when the ring store is
// memberlist.
type MemberlistConfig struct {
	Join               flagext.StringSliceCSVMulti `yaml:"join"`
	BindAddress        string                      `yaml:"bind_address"`
	AdvertiseAddress   string                      `yaml:"advertise_address"`
	NodeName           string                      `yaml:"node_name"`
	RandomizeNodeName  bool                        `yaml:"randomize_node_name"`
	ClusterLabel       string                      `yaml:"cluster_label"`
	GossipInterval     time.Duration               `yaml:"gossip_interval"`
	PushPullInterval   time.Duration               `yaml:"push_pull_interval"`
	RejoinInterval     time.Duration               `yaml:"rejoin_interval"`
	LeftMembersTimeout time.Duration               `yaml:"left_members_timeout"`
	LeaveTimeout       time.Duration               `yaml:"leave_timeout"`
	// EncryptionKeyFile holds the shared gossip secret: gossip is encrypted
	// and both ends of every connection proved to hold it (gossipkey.go).
	EncryptionKeyFile string              `yaml:"encryption_key_file"`
	TLS               MemberlistTLSConfig `yaml:"tls"`
}

// MemberlistTLSConfig is the TLS of the gossip transport, mapped onto
// dskit's (memberlist.TCPTransportConfig.TLSEnabled and TLS). Every member
// both listens and dials, so each one needs a certificate; gossip uses TLS
// when CertFile is set.
//
// dskit's listener does not ask dialling members for a certificate, so
// TLS encrypts the gossip and lets a member check whom it dials, but does
// not stop a host that reaches the gossip port from sending to it: keep
// that port on a private network (or behind a network policy), or use
// MemberlistConfig.EncryptionKeyFile instead, which checks both ends.
type MemberlistTLSConfig struct {
	CertFile   string `yaml:"cert_file"`
	KeyFile    string `yaml:"key_file"`
	CAFile     string `yaml:"ca_file"`
	ServerName string `yaml:"server_name"`
	// InsecureSkipVerify accepts any member certificate: encryption only.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

// Enabled reports whether gossip uses TLS.
func (c MemberlistTLSConfig) Enabled() bool { return c.CertFile != "" }

// RegisterFlags registers the options under -memberlist.tls.
func (c *MemberlistTLSConfig) RegisterFlags(f *flag.FlagSet) {
	f.StringVar(&c.CertFile, "memberlist.tls.cert-file", "", "PEM certificate of this member for gossip over TLS, presented when others dial it; TLS is on when set, and must then be on in every member.")
	f.StringVar(&c.KeyFile, "memberlist.tls.key-file", "", "PEM key of -memberlist.tls.cert-file.")
	f.StringVar(&c.CAFile, "memberlist.tls.ca-file", "", "PEM CA bundle the certificates of the members this one dials are verified against (default: the system roots).")
	f.StringVar(&c.ServerName, "memberlist.tls.server-name", "", "Name expected in the other members' certificates (default: the IP dialled, so certificates need IP SANs; set a shared name when pod IPs are not known in advance).")
	f.BoolVar(&c.InsecureSkipVerify, "memberlist.tls.insecure-skip-verify", false, "Do not verify the other members' certificates (tests only: encryption without knowing whom you talk to).")
}

// Validate reports every invalid field.
func (c MemberlistTLSConfig) Validate() error {
	var errs []error
	if !c.Enabled() {
		if c.KeyFile != "" || c.CAFile != "" || c.ServerName != "" || c.InsecureSkipVerify {
			errs = append(errs, errors.New("memberlist.tls.cert_file: required when another memberlist.tls option is set (every member serves TLS)"))
		}
		return errors.Join(errs...)
	}
	if c.KeyFile == "" {
		errs = append(errs, errors.New("memberlist.tls.key_file: required with cert_file"))
	} else if _, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile); err != nil {
		errs = append(errs, fmt.Errorf("memberlist.tls.cert_file: %w", err))
	}
	if c.CAFile != "" {
		if _, err := auth.LoadCAPool(c.CAFile); err != nil {
			errs = append(errs, fmt.Errorf("memberlist.tls.ca_file: %w", err))
		}
	}
	return errors.Join(errs...)
}

// dskit returns the TLS configuration as dskit's transport takes it. dskit
// reads the certificate and key again for every connection it dials, but
// loads the listener's once: rotating them needs a restart.
func (c MemberlistTLSConfig) dskit() dstls.ClientConfig {
	return dstls.ClientConfig{
		CertPath:           c.CertFile,
		KeyPath:            c.KeyFile,
		CAPath:             c.CAFile,
		ServerName:         c.ServerName,
		InsecureSkipVerify: c.InsecureSkipVerify,
		MinVersion:         "VersionTLS12",
	}
}

// RingConfig configures the aggregator ring and this process's entry in it.
type RingConfig struct {
	Store  string        `yaml:"store"`
	Prefix string        `yaml:"prefix"`
	Consul consul.Config `yaml:"consul"`
	Etcd   etcd.Config   `yaml:"etcd"`

	HeartbeatPeriod            time.Duration `yaml:"heartbeat_period"`
	HeartbeatTimeout           time.Duration `yaml:"heartbeat_timeout"`
	AutoForgetUnhealthyPeriods int           `yaml:"auto_forget_unhealthy_periods"`
	LeaveOnShutdown            bool          `yaml:"leave_on_shutdown"`

	InstanceID        string `yaml:"instance_id"`
	InstanceAddr      string `yaml:"instance_addr"`
	ReplicationFactor int    `yaml:"replication_factor"`
}

// RegisterFlags registers the options under -memberlist and -ring.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	c.Memberlist.RegisterFlags(f)
	c.Ring.RegisterFlags(f)
}

// RegisterFlags registers the options under -memberlist.
func (c *MemberlistConfig) RegisterFlags(f *flag.FlagSet) {
	f.Var(&c.Join, "memberlist.join", "Other members to join: host:port, a DNS name (all its addresses are joined) or dns+name:port / dnssrv+_service._proto.name for DNS discovery. Repeat the flag or separate with commas. The port defaults to 7946. Empty: start a new cluster.")
	f.StringVar(&c.BindAddress, "memberlist.bind-address", "127.0.0.1:7946", "IP:port to listen on for gossip (TCP). An empty IP or 0.0.0.0 listens on every interface; port 0 picks a free port.")
	f.StringVar(&c.AdvertiseAddress, "memberlist.advertise-address", "", "IP[:port] other members reach this one at, when it differs from the bind address (NAT, Kubernetes pod IP). The port defaults to the bind port. Empty: the bind address, or a private IP when bound to every interface.")
	f.StringVar(&c.NodeName, "memberlist.node-name", "", "Name of this node in the gossip cluster. Empty: the ring instance ID.")
	f.BoolVar(&c.RandomizeNodeName, "memberlist.randomize-node-name", true, "Add a random suffix to the node name, so a restarted process is not mistaken for its dead predecessor.")
	f.StringVar(&c.ClusterLabel, "memberlist.cluster-label", "", "Label carried by every gossip message; members drop messages with another label, which keeps two clusters on one network apart.")
	f.DurationVar(&c.GossipInterval, "memberlist.gossip-interval", 200*time.Millisecond, "How often to gossip updates to a few random members. Smaller spreads changes faster at more network cost.")
	f.DurationVar(&c.PushPullInterval, "memberlist.push-pull-interval", 30*time.Second, "How often to exchange the full state with one random member, which repairs anything gossip missed. 0 disables.")
	f.DurationVar(&c.RejoinInterval, "memberlist.rejoin-interval", 0, "How often to join -memberlist.join again, which heals a split cluster when the join list is a fixed set of seeds. 0 disables.")
	f.DurationVar(&c.LeftMembersTimeout, "memberlist.left-members-timeout", 5*time.Minute, "How long ring members that left stay in the gossiped ring as tombstones; queriers see them as recently left for this long.")
	f.StringVar(&c.EncryptionKeyFile, "memberlist.encryption-key-file", "", "File holding the cluster's shared gossip key: base64 of 16, 24 or 32 random bytes, e.g. from 'head -c32 /dev/urandom | base64' or 'consul keygen'. Gossip is then encrypted, and accepted only from members holding the same key and -memberlist.cluster-label. Set it on every member; it replaces -memberlist.tls.*.")
	c.TLS.RegisterFlags(f)
	f.DurationVar(&c.LeaveTimeout, "memberlist.leave-timeout", 2*time.Second, "On shutdown, the longest wait for each of the two steps of leaving the gossip cluster: sending this node's last ring updates, then announcing that it leaves. Both normally take milliseconds.")
}

// RegisterFlags registers the options under -ring.
func (c *RingConfig) RegisterFlags(f *flag.FlagSet) {
	hostname, _ := os.Hostname()
	f.StringVar(&c.Store, "ring.store", StoreMemberlist, "Where the ring is kept: "+strings.Join(stores, ", ")+".")
	f.StringVar(&c.Prefix, "ring.prefix", "pharos/", "Key prefix of the ring in the store; clusters sharing a Consul or etcd need different prefixes.")
	c.Consul.RegisterFlags(f, "ring.")
	c.Etcd.RegisterFlagsWithPrefix(f, "ring.")
	f.DurationVar(&c.HeartbeatPeriod, "ring.heartbeat-period", 5*time.Second, "How often an aggregator renews its ring entry.")
	f.DurationVar(&c.HeartbeatTimeout, "ring.heartbeat-timeout", 30*time.Second, "An aggregator whose last heartbeat is older than this is unhealthy and its partitions move to the others. Heartbeats are stored with one-second resolution, so this must exceed -ring.heartbeat-period by at least 2s.")
	f.IntVar(&c.AutoForgetUnhealthyPeriods, "ring.auto-forget-unhealthy-periods", 10, "Remove an aggregator from the ring once it has been unhealthy for this many heartbeat timeouts (it died without leaving). 0 keeps it until removed by hand.")
	f.BoolVar(&c.LeaveOnShutdown, "ring.leave-on-shutdown", true, "Leave the ring on a clean shutdown, so partitions move at once. false keeps the entry, so an aggregator restarted within -ring.heartbeat-timeout with the same instance ID gets its partitions back without any move.")
	f.StringVar(&c.InstanceID, "ring.instance-id", hostname, "This aggregator's unique, stable ID in the ring (default: the hostname, which is stable for a Kubernetes StatefulSet pod).")
	f.StringVar(&c.InstanceAddr, "ring.instance-addr", "", "host:port at which queriers reach this aggregator's internal read API over HTTP (default: -http.listen-address, when it names a host).")
	f.IntVar(&c.ReplicationFactor, "ring.replication-factor", 1, "How many aggregators consume each partition, each into its own storage (2 for high availability); queries de-duplicate.")
}

// Validate reports every invalid field.
func (c *Config) Validate() error {
	return errors.Join(c.Memberlist.Validate(), c.Ring.Validate())
}

// Validate reports every invalid field.
func (c *MemberlistConfig) Validate() error {
	var errs []error
	_, bindPort, bindErr := splitIPPort(c.BindAddress, false)
	if bindErr != nil {
		errs = append(errs, fmt.Errorf("memberlist.bind_address: %w", bindErr))
	}
	if c.AdvertiseAddress != "" {
		host, port, err := splitIPPort(c.AdvertiseAddress, true)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("memberlist.advertise_address: %w", err))
		case host == "":
			errs = append(errs, errors.New("memberlist.advertise_address: needs an IP"))
		case port < 0 && bindPort == 0 && bindErr == nil:
			errs = append(errs, errors.New("memberlist.advertise_address: needs a port when memberlist.bind_address picks a free one (port 0)"))
		}
	}
	for i, j := range c.Join {
		if strings.TrimSpace(j) == "" || strings.ContainsAny(j, " \t") {
			errs = append(errs, fmt.Errorf("memberlist.join[%d]: %q is not an address", i, j))
		}
	}
	if c.GossipInterval <= 0 {
		errs = append(errs, fmt.Errorf("memberlist.gossip_interval: must be positive, got %s", c.GossipInterval))
	}
	if c.PushPullInterval < 0 {
		errs = append(errs, fmt.Errorf("memberlist.push_pull_interval: must not be negative, got %s", c.PushPullInterval))
	}
	if c.RejoinInterval < 0 {
		errs = append(errs, fmt.Errorf("memberlist.rejoin_interval: must not be negative, got %s", c.RejoinInterval))
	}
	if c.LeftMembersTimeout <= 0 {
		errs = append(errs, fmt.Errorf("memberlist.left_members_timeout: must be positive, got %s", c.LeftMembersTimeout))
	}
	if c.LeaveTimeout <= 0 {
		errs = append(errs, fmt.Errorf("memberlist.leave_timeout: must be positive, got %s", c.LeaveTimeout))
	}
	if c.EncryptionKeyFile != "" {
		// The key brings its own TLS: certificates on top would not be used.
		if c.TLS != (MemberlistTLSConfig{}) {
			errs = append(errs, errors.New("memberlist.encryption_key_file: cannot be combined with memberlist.tls options (the key provides the gossip TLS); set one or the other"))
		}
		if _, err := readGossipKey(c.EncryptionKeyFile); err != nil {
			errs = append(errs, fmt.Errorf("memberlist.encryption_key_file: %w", err))
		}
	} else {
		errs = append(errs, c.TLS.Validate())
	}
	return errors.Join(errs...)
}

// minHeartbeatSlack is how much longer than the heartbeat period the
// timeout must be: heartbeats are stored in whole seconds, so a fresh one
// can already look a second old, and gossip adds its own delay.
const minHeartbeatSlack = 2 * time.Second

// Validate reports every invalid field.
func (c *RingConfig) Validate() error {
	var errs []error
	if !slices.Contains(stores, c.Store) {
		errs = append(errs, fmt.Errorf("ring.store: must be one of %s, got %q", strings.Join(stores, ", "), c.Store))
	}
	if c.Store == StoreConsul && c.Consul.Host == "" {
		errs = append(errs, errors.New("ring.consul.host: required when ring.store is consul"))
	}
	if c.Store == StoreEtcd && len(c.Etcd.Endpoints) == 0 {
		errs = append(errs, errors.New("ring.etcd.endpoints: required when ring.store is etcd"))
	}
	if c.HeartbeatPeriod <= 0 {
		errs = append(errs, fmt.Errorf("ring.heartbeat_period: must be positive, got %s", c.HeartbeatPeriod))
	}
	if c.HeartbeatTimeout < c.HeartbeatPeriod+minHeartbeatSlack {
		errs = append(errs, fmt.Errorf("ring.heartbeat_timeout: must be at least ring.heartbeat_period + %s (heartbeats have one-second resolution), got %s", minHeartbeatSlack, c.HeartbeatTimeout))
	}
	if c.AutoForgetUnhealthyPeriods < 0 {
		errs = append(errs, fmt.Errorf("ring.auto_forget_unhealthy_periods: must not be negative, got %d", c.AutoForgetUnhealthyPeriods))
	}
	if c.InstanceID == "" {
		errs = append(errs, errors.New("ring.instance_id: required (the hostname could not be read)"))
	}
	if c.InstanceAddr != "" {
		if _, _, err := net.SplitHostPort(c.InstanceAddr); err != nil {
			errs = append(errs, fmt.Errorf("ring.instance_addr: %w", err))
		}
	}
	if c.ReplicationFactor < 1 {
		errs = append(errs, fmt.Errorf("ring.replication_factor: must be at least 1, got %d", c.ReplicationFactor))
	}
	return errors.Join(errs...)
}

// splitIPPort parses "ip:port"; with optionalPort, a bare IP is accepted and
// the port is -1. The IP may be empty (every interface).
func splitIPPort(addr string, optionalPort bool) (string, int, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		if !optionalPort || net.ParseIP(strings.Trim(addr, "[]")) == nil {
			return "", 0, fmt.Errorf("%q is not IP:port", addr)
		}
		return strings.Trim(addr, "[]"), -1, nil
	}
	if host != "" && net.ParseIP(host) == nil {
		return "", 0, fmt.Errorf("%q: %q is not an IP address (memberlist binds and advertises IPs, not names)", addr, host)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("%q: port must be 0-65535", addr)
	}
	return host, port, nil
}

// nodeName is the gossip node name: the configured one, else the instance
// ID, which is unique in the ring and so in the gossip cluster too.
func (c *Config) nodeName() string {
	if c.Memberlist.NodeName != "" {
		return c.Memberlist.NodeName
	}
	return c.Ring.InstanceID
}

// memberlistKVConfig turns the configuration into dskit's. dskit's own flag
// defaults are taken first (they also set unexported retry settings), then
// overridden by ours.
func (c *Config) memberlistKVConfig() memberlist.KVConfig {
	var kc memberlist.KVConfig
	kc.RegisterFlags(flag.NewFlagSet("dskit-memberlist-defaults", flag.ContinueOnError))

	host, port, _ := splitIPPort(c.Memberlist.BindAddress, false) // validated
	if host == "" {
		host = "0.0.0.0"
	}
	kc.TCPTransport.BindAddrs = flagext.StringSlice{host}
	kc.TCPTransport.BindPort = port
	if c.Memberlist.AdvertiseAddress != "" {
		advHost, advPort, _ := splitIPPort(c.Memberlist.AdvertiseAddress, true) // validated
		if advPort < 0 {
			advPort = port
		}
		kc.AdvertiseAddr, kc.AdvertisePort = advHost, advPort
	}
	kc.JoinMembers = slices.Clone(c.Memberlist.Join)
	kc.NodeName = c.nodeName()
	kc.RandomizeNodeName = c.Memberlist.RandomizeNodeName
	kc.ClusterLabel = c.Memberlist.ClusterLabel
	kc.GossipInterval = c.Memberlist.GossipInterval
	kc.PushPullInterval = c.Memberlist.PushPullInterval
	kc.RejoinInterval = c.Memberlist.RejoinInterval
	kc.LeftIngestersTimeout = c.Memberlist.LeftMembersTimeout
	kc.LeaveTimeout = c.Memberlist.LeaveTimeout
	// A clean stop waits this long at most for its last ring updates (the
	// member leaving) to be gossiped: bounded, so SIGTERM still ends in time.
	kc.BroadcastTimeoutForLocalUpdatesOnShutdown = c.Memberlist.LeaveTimeout
	// With EncryptionKeyFile, gossipGuard.listen rewrites the transport's
	// bind, advertise and TLS settings when the KV starts.
	if c.Memberlist.TLS.Enabled() {
		kc.TCPTransport.TLSEnabled = true
		kc.TCPTransport.TLS = c.Memberlist.TLS.dskit()
	}
	kc.MetricsNamespace = "pharos"
	kc.Codecs = []codec.Codec{ring.GetCodec()}
	return kc
}
