package bus

import (
	"errors"
	"flag"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/grafana/dskit/flagext"

	"github.com/pharos-obs/pharos/internal/auth"
)

// Limits on configuration values. They keep a typo from turning into a
// stream that fills a disk or a consumer that can never make progress.
const (
	maxPartitions    = 1024
	maxReplicas      = 5
	minStreamBytes   = 1 << 20 // one default NATS max payload: a smaller stream cannot hold a batch
	maxStreamBytes   = 1 << 50 // 1 PiB
	maxFetchBatch    = 10000
	maxAckPendingCap = 1_000_000
)

// Config owns every NATS option of a Pharos process. Its flags are fixed
// contracts where DESIGN.md names them (-nats.url,
// -nats.embedded.listen-address).
type Config struct {
	// URL is the NATS server (or a comma-separated list of cluster
	// members). Empty means the process's embedded server.
	URL string `yaml:"url"`
	// Embedded configures the in-process server of the all-in-one target.
	Embedded EmbeddedConfig `yaml:"embedded"`
	// Partitions is how many subjects each signal is spread over. It bounds
	// how many aggregators can share the ingest work, and must be the same
	// in every process of a cluster.
	Partitions int `yaml:"partitions"`
	// Stream configures the JetStream streams.
	Stream StreamConfig `yaml:"stream"`
	// Consumer configures the durable pull consumers of aggregators.
	Consumer ConsumerConfig `yaml:"consumer"`
	// PublishTimeout bounds one publish, from send to PubAck.
	PublishTimeout time.Duration `yaml:"publish_timeout"`
	// TLS and the client authentication apply to connections to URL; the
	// all-in-one's in-process connection uses neither.
	TLS              ClientTLSConfig `yaml:"tls"`
	ClientAuthConfig `yaml:",inline"`
}

// EmbeddedConfig configures the NATS server embedded in a Pharos process:
// the single node of the all-in-one target, or one node of a NATS cluster
// when ClusterListenAddress is set.
type EmbeddedConfig struct {
	// ListenAddress is the host:port of the client listener; port 0 picks a
	// free port.
	ListenAddress string `yaml:"listen_address"`
	// ServerName names the node. JetStream derives the node's Raft identity
	// from it, so in a cluster it is required, unique per node and must not
	// change across restarts. Empty means "pharos-embedded" (single node).
	ServerName string `yaml:"server_name"`
	// ClusterName must be the same on every node of a cluster.
	ClusterName string `yaml:"cluster_name"`
	// ClusterListenAddress is the host:port of the route listener that the
	// other nodes connect to; port 0 picks a free port. Empty means no
	// clustering.
	ClusterListenAddress string `yaml:"cluster_listen_address"`
	// Routes are the cluster addresses of the nodes to connect to, as
	// nats-route://host:port or host:port. List every node, this one
	// included (a route to itself is ignored): JetStream needs at least one
	// route, and sizes its first quorum from the list.
	Routes flagext.StringSliceCSV `yaml:"routes"`
	// SyncInterval is "always" (fsync every write before it is acknowledged)
	// or how often JetStream fsyncs; see StartEmbedded.
	SyncInterval string `yaml:"sync_interval"`
	// TLS is the server TLS of the client listener (mTLS with a client
	// CA).
	TLS auth.TLSConfig `yaml:"tls"`
	// ClusterTLS is the mutual TLS of the routes between nodes.
	ClusterTLS RouteTLSConfig `yaml:"cluster_tls"`
	// Auth is the authorization clients need.
	Auth EmbeddedAuthConfig `yaml:"auth"`
}

// StreamConfig configures the PHAROS_<SIGNAL> streams.
type StreamConfig struct {
	// Replicas is the JetStream replication factor (R3 in a cluster).
	Replicas int `yaml:"replicas"`
	// MaxAge is how long messages are kept, acked or not.
	MaxAge time.Duration `yaml:"max_age"`
	// MaxBytes caps each stream; once full, publishes are refused
	// (ErrStreamFull) and agents spool.
	MaxBytes int64 `yaml:"max_bytes"`
	// DuplicateWindow is how long JetStream remembers message IDs, so a
	// publish retried within it is stored once.
	DuplicateWindow time.Duration `yaml:"duplicate_window"`
}

// ConsumerConfig configures the durable pull consumers.
type ConsumerConfig struct {
	// AckWait is how long a delivered message may stay un-acked before
	// JetStream redelivers it.
	AckWait time.Duration `yaml:"ack_wait"`
	// MaxAckPending caps delivered-but-unacked messages per consumer.
	MaxAckPending int `yaml:"max_ack_pending"`
	// FetchBatch is the most messages handed to one BatchHandler call.
	FetchBatch int `yaml:"fetch_batch"`
	// PinnedTTL is how long JetStream keeps a partition-replica pinned to
	// the consumer that last pulled from it: the lease that keeps two
	// aggregators from consuming the same partition-replica at once.
	PinnedTTL time.Duration `yaml:"pinned_ttl"`
	// Replicas is how many durable consumers (partition-replicas) each
	// partition has. It is the ring's replication factor, set by the app
	// (not a flag of its own); 0 means 1.
	Replicas int `yaml:"-"`
	// Exclusive pins each partition consumer to one client at a time
	// (aggregators in a ring, which may briefly disagree on owners). A lone
	// all-in-one has one client per consumer and saves the pin's
	// keep-alive pulls. Set by the app.
	Exclusive bool `yaml:"-"`
	// Manage makes EnsureStreams update existing partition consumers to
	// this configuration; without it, they are only created when missing.
	// Aggregators manage them; agents, which create streams too (interest
	// retention needs the consumers before the first publish), must not
	// undo an aggregator's settings. Set by the app.
	Manage bool `yaml:"-"`
}

// RegisterFlags registers every option under -nats. with its default.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.StringVar(&c.URL, "nats.url", "", "NATS server URL(s), comma-separated. Empty = use the embedded server (target all).")
	c.Embedded.RegisterFlags(f)
	f.IntVar(&c.Partitions, "nats.partitions", 16, "Partitions (subjects) per signal; must match across the cluster. 1..1024.")
	c.Stream.RegisterFlags(f)
	c.Consumer.RegisterFlags(f)
	f.DurationVar(&c.PublishTimeout, "nats.publish-timeout", 10*time.Second, "Maximum time for one publish to be acknowledged by JetStream.")
	c.TLS.RegisterFlags(f)
	c.ClientAuthConfig.RegisterFlags(f)
}

// RegisterFlags registers the embedded server's options under
// -nats.embedded.
func (c *EmbeddedConfig) RegisterFlags(f *flag.FlagSet) {
	f.StringVar(&c.ListenAddress, "nats.embedded.listen-address", "127.0.0.1:4222", "Client listen address (host:port) of the embedded NATS server; port 0 picks a free port.")
	f.StringVar(&c.ServerName, "nats.embedded.server-name", "", `Name of this NATS node. Required in a cluster: unique per node and unchanged across restarts (JetStream's Raft identity). Empty = "pharos-embedded".`)
	f.StringVar(&c.ClusterName, "nats.embedded.cluster-name", "pharos", "NATS cluster name; the same on every node. Used only with -nats.embedded.cluster-listen-address.")
	f.StringVar(&c.ClusterListenAddress, "nats.embedded.cluster-listen-address", "", "Route listen address (host:port) for the other NATS nodes; port 0 picks a free port. Empty = no clustering.")
	f.Var(&c.Routes, "nats.embedded.routes", "Comma-separated cluster addresses (nats-route://host:port or host:port) of the NATS nodes; list every node, this one included (it is ignored). Required with -nats.embedded.cluster-listen-address.")
	c.TLS.RegisterFlagsWithPrefix("nats.embedded.tls", "the embedded NATS server's client listener (in-process clients skip TLS)", f)
	c.ClusterTLS.RegisterFlags(f)
	c.Auth.RegisterFlags(f)
	f.StringVar(&c.SyncInterval, "nats.embedded.sync-interval", "always", `"always" to fsync every JetStream write before acknowledging it, or a duration between fsyncs (faster; an acked write then survives a node's power loss only through its replicas).`)
}

// RegisterFlags registers the stream options under -nats.stream.
func (c *StreamConfig) RegisterFlags(f *flag.FlagSet) {
	f.IntVar(&c.Replicas, "nats.stream.replicas", 1, "JetStream stream replicas (use 3 in a NATS cluster). 1..5.")
	f.DurationVar(&c.MaxAge, "nats.stream.max-age", 24*time.Hour, "Maximum age of messages kept in each stream.")
	f.Int64Var(&c.MaxBytes, "nats.stream.max-bytes", 8<<30, "Maximum size of each stream in bytes; when full, new publishes are refused and agents spool.")
	f.DurationVar(&c.DuplicateWindow, "nats.stream.duplicate-window", 10*time.Minute, "How long JetStream de-duplicates re-published batches by message ID.")
}

// RegisterFlags registers the consumer options under -nats.consumer.
func (c *ConsumerConfig) RegisterFlags(f *flag.FlagSet) {
	f.DurationVar(&c.AckWait, "nats.consumer.ack-wait", 30*time.Second, "Time a delivered message may stay unacknowledged before it is redelivered.")
	f.IntVar(&c.MaxAckPending, "nats.consumer.max-ack-pending", 1024, "Maximum delivered but unacknowledged messages per consumer.")
	f.IntVar(&c.FetchBatch, "nats.consumer.fetch-batch", 64, "Maximum messages fetched and handled as one batch.")
	f.DurationVar(&c.PinnedTTL, "nats.consumer.pinned-ttl", 30*time.Second, "How long a partition-replica stays pinned to the aggregator consuming it after that aggregator stops pulling (dies): JetStream delivers a pinned consumer's messages to one client only, so two aggregators never consume the same partition-replica at once. A clean handover unpins at once. The pin is kept alive by a pull request every third of it, so shorter costs more idle traffic; the ring moves a dead aggregator's partitions after -ring.heartbeat-timeout, so keep it at most that.")
}

// Validate reports every invalid field, each prefixed with its path.
func (c *Config) Validate() error {
	var errs []error
	if c.URL != "" {
		if err := validateURLs(c.URL); err != nil {
			errs = append(errs, fmt.Errorf("nats.url: %w", err))
		}
	}
	if err := c.Embedded.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.Partitions < 1 || c.Partitions > maxPartitions {
		errs = append(errs, fmt.Errorf("nats.partitions: must be between 1 and %d, got %d", maxPartitions, c.Partitions))
	}
	if err := c.Stream.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Consumer.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.PublishTimeout <= 0 {
		errs = append(errs, fmt.Errorf("nats.publish_timeout: must be positive, got %s", c.PublishTimeout))
	}
	errs = append(errs, c.TLS.Validate(), c.ClientAuthConfig.Validate())
	return errors.Join(errs...)
}

// Validate reports every invalid embedded-server option, each prefixed with
// its path. A cluster listener needs a server name, a cluster name and at
// least one route (nats-server refuses clustered JetStream without one);
// routes without a cluster listener would never be dialled.
func (c *EmbeddedConfig) Validate() error {
	var errs []error
	if err := validateListenAddress(c.ListenAddress); err != nil {
		errs = append(errs, fmt.Errorf("nats.embedded.listen_address: %w", err))
	}
	if err := validateNodeName(c.ServerName); err != nil {
		errs = append(errs, fmt.Errorf("nats.embedded.server_name: %w", err))
	}
	if err := validateNodeName(c.ClusterName); err != nil {
		errs = append(errs, fmt.Errorf("nats.embedded.cluster_name: %w", err))
	}
	if _, _, err := parseSyncInterval(c.SyncInterval); err != nil {
		errs = append(errs, fmt.Errorf("nats.embedded.sync_interval: %w", err))
	}
	for i, r := range c.Routes {
		if _, err := parseRoute(r); err != nil {
			errs = append(errs, fmt.Errorf("nats.embedded.routes[%d]: %w", i, err))
		}
	}
	errs = append(errs, c.TLS.Validate("nats.embedded.tls"), c.ClusterTLS.Validate(), c.Auth.Validate())
	if c.ClusterListenAddress == "" {
		if len(c.Routes) > 0 {
			errs = append(errs, errors.New("nats.embedded.routes: set without nats.embedded.cluster_listen_address, which a cluster node needs"))
		}
		if c.ClusterTLS.Enabled() {
			errs = append(errs, errors.New("nats.embedded.cluster_tls.cert_file: set without nats.embedded.cluster_listen_address: there are no routes to secure"))
		}
		return errors.Join(errs...)
	}
	if err := validateListenAddress(c.ClusterListenAddress); err != nil {
		errs = append(errs, fmt.Errorf("nats.embedded.cluster_listen_address: %w", err))
	}
	const need = "required when nats.embedded.cluster_listen_address is set"
	if c.ServerName == "" {
		errs = append(errs, fmt.Errorf("nats.embedded.server_name: %s (unique per node, unchanged across restarts)", need))
	}
	if c.ClusterName == "" {
		errs = append(errs, fmt.Errorf("nats.embedded.cluster_name: %s", need))
	}
	if len(c.Routes) == 0 {
		errs = append(errs, fmt.Errorf("nats.embedded.routes: %s: list the cluster address of every node, this one included", need))
	}
	return errors.Join(errs...)
}

// Validate reports every invalid stream option.
func (c *StreamConfig) Validate() error {
	var errs []error
	if c.Replicas < 1 || c.Replicas > maxReplicas {
		errs = append(errs, fmt.Errorf("nats.stream.replicas: must be between 1 and %d, got %d", maxReplicas, c.Replicas))
	}
	if c.MaxAge <= 0 {
		errs = append(errs, fmt.Errorf("nats.stream.max_age: must be positive, got %s", c.MaxAge))
	}
	if c.MaxBytes < minStreamBytes || c.MaxBytes > maxStreamBytes {
		errs = append(errs, fmt.Errorf("nats.stream.max_bytes: must be between %d and %d, got %d", int64(minStreamBytes), int64(maxStreamBytes), c.MaxBytes))
	}
	switch {
	case c.DuplicateWindow <= 0:
		errs = append(errs, fmt.Errorf("nats.stream.duplicate_window: must be positive, got %s", c.DuplicateWindow))
	case c.MaxAge > 0 && c.DuplicateWindow > c.MaxAge:
		// JetStream refuses such a stream: IDs would outlive their messages.
		errs = append(errs, fmt.Errorf("nats.stream.duplicate_window: must not exceed nats.stream.max_age (%s), got %s", c.MaxAge, c.DuplicateWindow))
	}
	return errors.Join(errs...)
}

// Validate reports every invalid consumer option.
func (c *ConsumerConfig) Validate() error {
	var errs []error
	if c.AckWait <= 0 {
		errs = append(errs, fmt.Errorf("nats.consumer.ack_wait: must be positive, got %s", c.AckWait))
	}
	if c.PinnedTTL < time.Second {
		errs = append(errs, fmt.Errorf("nats.consumer.pinned_ttl: must be at least 1s, got %s", c.PinnedTTL))
	}
	if c.FetchBatch < 1 || c.FetchBatch > maxFetchBatch {
		errs = append(errs, fmt.Errorf("nats.consumer.fetch_batch: must be between 1 and %d, got %d", maxFetchBatch, c.FetchBatch))
	}
	switch {
	case c.MaxAckPending < 1 || c.MaxAckPending > maxAckPendingCap:
		errs = append(errs, fmt.Errorf("nats.consumer.max_ack_pending: must be between 1 and %d, got %d", maxAckPendingCap, c.MaxAckPending))
	case c.FetchBatch >= 1 && c.MaxAckPending < c.FetchBatch:
		// A smaller cap would make every fetch come back short.
		errs = append(errs, fmt.Errorf("nats.consumer.max_ack_pending: must be at least nats.consumer.fetch_batch (%d), got %d", c.FetchBatch, c.MaxAckPending))
	}
	return errors.Join(errs...)
}

// validateURLs checks a comma-separated server list the way nats.go reads
// it, so a bad URL fails at start rather than as endless reconnects.
func validateURLs(list string) error {
	var errs []error
	for raw := range strings.SplitSeq(list, ",") {
		s := strings.TrimSpace(raw)
		raw = redactURLs(raw) // messages must not echo credentials
		if s == "" {
			errs = append(errs, fmt.Errorf("empty URL in %q", redactURLs(list)))
			continue
		}
		if !strings.Contains(s, "://") {
			s = "nats://" + s
		}
		u, err := url.Parse(s)
		if err != nil {
			if ue, ok := errors.AsType[*url.Error](err); ok {
				err = ue.Err // the full error repeats the URL, credentials included
			}
			errs = append(errs, fmt.Errorf("invalid URL %q: %w", raw, err))
			continue
		}
		switch u.Scheme {
		case "nats", "tls", "ws", "wss":
		default:
			errs = append(errs, fmt.Errorf("URL %q: unsupported scheme %q (want nats, tls, ws or wss)", raw, u.Scheme))
			continue
		}
		if u.Hostname() == "" {
			errs = append(errs, fmt.Errorf("URL %q: missing host", raw))
			continue
		}
		if p := u.Port(); p != "" {
			if _, err := parsePort(p); err != nil {
				errs = append(errs, fmt.Errorf("URL %q: %w", raw, err))
			}
		}
	}
	return errors.Join(errs...)
}

func parsePort(s string) (int, error) {
	p, err := strconv.Atoi(s)
	if err != nil || p < 0 || p > 65535 {
		return 0, fmt.Errorf("port must be a number between 0 and 65535, got %q", s)
	}
	return p, nil
}
