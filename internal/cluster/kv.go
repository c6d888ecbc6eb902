package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/dns"
	"github.com/grafana/dskit/kv"
	"github.com/grafana/dskit/kv/memberlist"
	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pharos-obs/pharos/internal/kitlog"
)

// ringKey is the key of the aggregator ring in the store, below
// -ring.prefix.
const ringKey = "aggregator-ring"

// ringName names the ring in dskit's logs and metrics.
const ringName = "aggregator"

// KV is the store the ring lives in, shared by the Member and the Watcher of
// one process: with memberlist, it is this process's gossip node, so it
// must exist once per process. It is a dskit service; the Member and
// Watcher built on it wait for it to run, and it must stop after them (a
// Member leaves the ring through it).
type KV struct {
	services.Service

	cfg    Config
	logger log.Logger
	reg    prometheus.Registerer // dskit's metrics, under pharos_
	mlCfg  *memberlist.KVConfig
	mlInit *memberlist.KVInitService // nil unless the store is memberlist
	guard  *gossipGuard              // owns the gossip port with -memberlist.encryption-key-file

	client     kv.Client // set before the service is Running
	gossipAddr string
}

// NewKV prepares the ring store of cfg; nothing listens or connects until
// the service starts. It registers dskit's store, memberlist and DNS
// metrics on reg (prefixed pharos_), so a registry takes one KV.
func NewKV(cfg Config, logger *slog.Logger, reg prometheus.Registerer) (*KV, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	k := &KV{
		cfg:    cfg,
		logger: kitlog.New(logger),
		reg:    prometheus.WrapRegistererWithPrefix("pharos_", reg),
	}
	if cfg.Ring.Store == StoreMemberlist {
		mlCfg := cfg.memberlistKVConfig()
		k.mlCfg = &mlCfg
		if cfg.Memberlist.EncryptionKeyFile != "" {
			guard, err := newGossipGuard(cfg.Memberlist, logger, reg)
			if err != nil {
				return nil, err
			}
			k.guard = guard
		}
		// dns+ and dnssrv+ join entries are resolved by this provider; plain
		// names by memberlist itself.
		provider := dns.NewProvider(dns.GolangResolverType, 0, k.logger, prometheus.WrapRegistererWithPrefix("pharos_memberlist_", reg))
		// The memberlist KV registers its metrics with namespace pharos.
		k.mlInit = memberlist.NewKVInitService(k.mlCfg, k.logger, provider, reg)
	}
	k.Service = services.NewBasicService(k.starting, k.running, k.stopping).WithName("cluster-kv")
	return k, nil
}

func (k *KV) starting(ctx context.Context) error {
	cfg := kv.Config{
		Store:  k.cfg.Ring.Store,
		Prefix: k.cfg.Ring.Prefix,
		StoreConfig: kv.StoreConfig{
			Consul: k.cfg.Ring.Consul,
			Etcd:   k.cfg.Ring.Etcd,
		},
	}
	if k.mlInit != nil {
		addr, err := k.startMemberlist(ctx)
		if err != nil {
			return err
		}
		k.gossipAddr = addr
		cfg.MemberlistKV = k.mlInit.GetMemberlistKV
	}
	client, err := kv.NewClient(cfg, ring.GetCodec(), k.reg, k.logger)
	if err != nil {
		k.stopMemberlist()
		return fmt.Errorf("ring store %s: %w", k.cfg.Ring.Store, err)
	}
	k.client = client
	return nil
}

// startMemberlist starts the gossip node, joins the cluster (a fast join
// while starting; dskit keeps retrying in the background) and returns the
// address it listens on. With a gossip key, the guard takes the gossip
// port first: dskit's KV, created from k.mlCfg below, then listens on
// loopback behind it.
func (k *KV) startMemberlist(ctx context.Context) (string, error) {
	if k.guard != nil {
		if err := k.guard.listen(k.cfg.Memberlist, k.mlCfg, k.logger); err != nil {
			k.guard.close()
			return "", fmt.Errorf("start memberlist: %w", err)
		}
	}
	if err := services.StartAndAwaitRunning(ctx, k.mlInit); err != nil {
		k.stopMemberlist()
		return "", fmt.Errorf("start memberlist: %w", err)
	}
	mkv, err := k.mlInit.GetMemberlistKV()
	if err == nil {
		err = mkv.AwaitRunning(ctx)
	}
	if err != nil {
		k.stopMemberlist()
		return "", fmt.Errorf("start memberlist on %s: %w", k.cfg.Memberlist.BindAddress, err)
	}
	if k.guard != nil {
		return k.guard.addr, nil
	}
	host := k.mlCfg.TCPTransport.BindAddrs[0]
	return net.JoinHostPort(host, strconv.Itoa(mkv.GetListeningPort())), nil
}

func (k *KV) stopMemberlist() {
	if k.mlInit == nil {
		return
	}
	if k.guard != nil {
		k.guard.drain()
	}
	// KVInitService stops the memberlist KV it started, which leaves the
	// gossip cluster.
	_ = services.StopAndAwaitTerminated(context.Background(), k.mlInit)
	// The guard closes last: while leaving, this member still probes
	// others and their acks come in through it.
	if k.guard != nil {
		k.guard.close()
	}
}

func (k *KV) running(ctx context.Context) error {
	if k.mlInit == nil {
		<-ctx.Done()
		return nil
	}
	failed := make(chan error, 1)
	unregister := k.mlInit.AddListener(services.NewListener(nil, nil, nil, nil, func(_ services.State, err error) {
		failed <- err
	}))
	defer unregister()
	select {
	case <-ctx.Done():
		return nil
	case err := <-failed:
		return fmt.Errorf("memberlist: %w", err)
	}
}

func (k *KV) stopping(error) error {
	k.stopMemberlist()
	return nil
}

// GossipAddress returns the IP:port this process listens on for gossip,
// with the real port when -memberlist.bind-address asked for port 0. It is
// empty unless the store is memberlist and the KV has started.
func (k *KV) GossipAddress() string {
	if s := k.State(); s != services.Running && s != services.Stopping {
		return ""
	}
	return k.gossipAddr
}

// MemberlistHandler serves dskit's memberlist status page (members, KV
// contents, recent messages), or nil when the store is not memberlist.
func (k *KV) MemberlistHandler() http.Handler {
	if k.mlInit == nil {
		return nil
	}
	return k.mlInit
}

// errKVNotRunning is returned to Members and Watchers whose KV failed or
// stopped before them.
var errKVNotRunning = errors.New("cluster KV is not running")

// storeClient waits for the KV to run and returns its client. A stopping KV
// still serves, so that a Member stopping with it can leave the ring.
func (k *KV) storeClient(ctx context.Context) (kv.Client, error) {
	switch k.State() {
	case services.Running, services.Stopping:
		return k.client, nil
	case services.New, services.Starting:
		if err := k.AwaitRunning(ctx); err != nil {
			if k.State() == services.Stopping {
				return k.client, nil
			}
			return nil, fmt.Errorf("%w: %w", errKVNotRunning, err)
		}
		return k.client, nil
	default:
		return nil, errKVNotRunning
	}
}

// lazyClient is a kv.Client that waits for the KV to run, so Members and
// Watchers (and dskit's lifecycler inside a Member) can be built before the
// KV has started. Its methods implement kv.Client.
type lazyClient struct{ k *KV }

var _ kv.Client = lazyClient{}

func (c lazyClient) List(ctx context.Context, prefix string) ([]string, error) {
	cl, err := c.k.storeClient(ctx)
	if err != nil {
		return nil, err
	}
	return cl.List(ctx, prefix)
}

func (c lazyClient) Get(ctx context.Context, key string) (any, error) {
	cl, err := c.k.storeClient(ctx)
	if err != nil {
		return nil, err
	}
	return cl.Get(ctx, key)
}

func (c lazyClient) Delete(ctx context.Context, key string) error {
	cl, err := c.k.storeClient(ctx)
	if err != nil {
		return err
	}
	return cl.Delete(ctx, key)
}

func (c lazyClient) CAS(ctx context.Context, key string, f func(in any) (out any, retry bool, err error)) error {
	cl, err := c.k.storeClient(ctx)
	if err != nil {
		return err
	}
	return cl.CAS(ctx, key, f)
}

func (c lazyClient) WatchKey(ctx context.Context, key string, f func(any) bool) {
	if cl, err := c.k.storeClient(ctx); err == nil {
		cl.WatchKey(ctx, key, f)
	}
}

func (c lazyClient) WatchPrefix(ctx context.Context, prefix string, f func(string, any) bool) {
	if cl, err := c.k.storeClient(ctx); err == nil {
		cl.WatchPrefix(ctx, prefix, f)
	}
}
