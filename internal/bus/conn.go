package bus

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

const (
	// apiTimeout bounds one JetStream API request (stream or consumer
	// create, info); loops around it retry.
	apiTimeout = 5 * time.Second
	// drainTimeout bounds Close: pending publishes and acks get this long
	// to reach the server.
	drainTimeout = 10 * time.Second
	// pingInterval detects a dead TCP peer well within an ack wait, instead
	// of the client default of two minutes.
	pingInterval = 20 * time.Second
	// reconnectMin and reconnectMax bound the reconnect backoff. The cap
	// keeps recovery quick after an outage; jitter spreads a fleet of agents.
	reconnectMin = 100 * time.Millisecond
	reconnectMax = 5 * time.Second
	// logEvery limits repeated log lines about the same ongoing problem.
	logEvery = 5 * time.Second
)

// Conn is a client connection to NATS with JetStream. It is safe for
// concurrent use. It reconnects forever; while it is down, Publish fails
// fast and consumers back off and retry.
type Conn struct {
	cfg    Config
	name   string
	nc     *nats.Conn
	js     jetstream.JetStream
	logger *slog.Logger

	metrics   *metrics
	signals   [len(signalIndex)]*signalState
	pubPool   sync.Pool // *pubMsg
	connMu    sync.Mutex
	closed    chan struct{}
	closeOnce sync.Once
	closeErr  error
	asyncLogs *logLimiter
	// lone is set when the connection is in-process to an embedded server
	// that is not clustered: nothing between client and server can be
	// lost, and no other node can take a consumer over (see pullExpiry).
	lone bool
}

// signalIndex fixes each signal's slot in Conn.signals; an array indexed by
// a switch is cheaper than a map lookup on every publish.
var signalIndex = [...]Signal{SignalMetrics, SignalLogs, SignalTraces}

// signalState is everything per signal that the hot paths need, computed
// once at Connect.
type signalState struct {
	signal   Signal
	stream   string
	subjects []string // by partition
	m        signalMetrics
	// ensured is set once this process has made sure the stream and every
	// partition-replica's consumer exist. Before that a publish could land
	// in a stream whose consumer is not created yet, and interest
	// retention deletes a message no consumer is interested in at once
	// (seen: spans published in the first moments after start lost).
	ensured atomic.Bool
}

// Ensured reports whether EnsureStreams has made sure every signal's
// stream and consumers exist: until then publishes are refused.
func (c *Conn) Ensured() bool {
	for _, st := range c.signals {
		if !st.ensured.Load() {
			return false
		}
	}
	return true
}

func (c *Conn) state(s Signal) *signalState {
	switch s {
	case SignalMetrics:
		return c.signals[0]
	case SignalLogs:
		return c.signals[1]
	case SignalTraces:
		return c.signals[2]
	}
	return nil
}

// DefaultConfig returns a Config holding every flag default.
func DefaultConfig() Config {
	var c Config
	c.RegisterFlags(flag.NewFlagSet("", flag.ContinueOnError))
	return c
}

// Connect connects to cfg.URL or, when cfg.URL is empty, to embedded in
// process (no TCP). name identifies the client to the server and in the
// pharos_bus_connected{client} series.
//
// Connect does not wait for the server: if it is unreachable, the returned
// Conn keeps trying in the background, so a process may start before NATS
// does; Connected reports the truth. Metrics are registered on reg (nil: not
// registered); several Conns in one process share them.
func Connect(cfg Config, embedded *EmbeddedServer, name string, logger *slog.Logger, reg prometheus.Registerer) (*Conn, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("connect nats: %w", err)
	}
	if cfg.URL == "" && embedded == nil {
		return nil, errors.New("connect nats: nats.url: must be set when no embedded server runs")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if name == "" {
		name = "pharos"
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("connect nats: %w", err)
	}
	c := &Conn{
		cfg:       cfg,
		name:      name,
		logger:    logger.With("client", name), // the caller names the component
		metrics:   m,
		closed:    make(chan struct{}),
		asyncLogs: newLogLimiter(logEvery),
	}
	for i, s := range signalIndex {
		st := &signalState{signal: s, stream: StreamName(s), subjects: make([]string, cfg.Partitions), m: m.forSignal(s)}
		for p := range st.subjects {
			st.subjects[p] = Subject(s, p)
		}
		c.signals[i] = st
	}
	c.pubPool.New = func() any { return newPubMsg() }

	url := cfg.URL
	opts := []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true),
		nats.CustomReconnectDelay(reconnectDelay),
		nats.PingInterval(pingInterval),
		nats.DrainTimeout(drainTimeout),
		nats.ConnectHandler(c.onConnect),
		nats.DisconnectErrHandler(c.onDisconnect),
		nats.ReconnectHandler(c.onReconnect),
		nats.ClosedHandler(c.onClosed),
		nats.ErrorHandler(c.onAsyncError),
		nats.ReconnectErrHandler(c.onConnectError),
		// nats.go gives up for good after the same authorization error
		// twice; credentials being rotated on both ends must not leave an
		// agent disconnected until restarted.
		nats.IgnoreAuthErrorAbort(),
	}
	if url == "" {
		// The URL only names the server in logs; the bytes go through a
		// pipe, without TLS, with the embedded server's own credential.
		url = embedded.ClientURL()
		c.lone = embedded.clusterAddr == ""
		opts = append(opts, nats.InProcessServer(embedded.srv))
		opts = append(opts, embedded.inProcess...)
	} else {
		sec, err := clientSecurityOptions(cfg.TLS, cfg.ClientAuthConfig)
		if err != nil {
			return nil, fmt.Errorf("connect nats: %w", err)
		}
		opts = append(opts, sec...)
		if cfg.TLS.InsecureSkipVerify {
			c.logger.Warn("nats server certificates are not verified (nats.tls.insecure_skip_verify): the connection can be intercepted")
		}
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect nats %s: %w", redactURLs(url), err)
	}
	js, err := jetstream.New(nc, jetstream.WithDefaultTimeout(apiTimeout))
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("connect nats: jetstream: %w", err)
	}
	c.nc, c.js = nc, js
	c.updateConnected(nc)
	// A successful first attempt is logged by onConnect, which nats.go
	// calls for it too when RetryOnFailedConnect is set.
	if !nc.IsConnected() {
		c.logger.Warn("nats not reachable yet, retrying in the background", "url", redactURLs(url))
	}
	return c, nil
}

// redactURLs hides credentials in a comma-separated server list before it
// is logged: a user name may itself be a token.
func redactURLs(list string) string {
	if !strings.Contains(list, "@") {
		return list
	}
	parts := strings.Split(list, ",")
	for i, p := range parts {
		if at := strings.LastIndex(p, "@"); at >= 0 {
			scheme := ""
			if j := strings.Index(p, "://"); j >= 0 && j < at {
				scheme = p[:j+3]
			}
			parts[i] = scheme + "redacted@" + p[at+1:]
		}
	}
	return strings.Join(parts, ",")
}

// reconnectDelay is exponential backoff with jitter, so a restarted server
// is not hit by every agent at once.
func reconnectDelay(attempts int) time.Duration {
	d := reconnectMax
	if attempts < 16 {
		d = min(reconnectMin<<attempts, reconnectMax)
	}
	return d/2 + rand.N(d/2+1)
}

// updateConnected sets the gauge from the live status. The lock orders the
// read with the write, so an event handler and Connect racing cannot leave
// a stale value behind.
func (c *Conn) updateConnected(nc *nats.Conn) {
	c.connMu.Lock()
	defer c.connMu.Unlock()
	v := 0.0
	if nc.IsConnected() {
		v = 1
	}
	c.metrics.connected.WithLabelValues(c.name).Set(v)
}

func (c *Conn) onConnect(nc *nats.Conn) {
	c.updateConnected(nc)
	c.logger.Info("nats connected", "url", nc.ConnectedUrlRedacted())
}

func (c *Conn) onDisconnect(nc *nats.Conn, err error) {
	c.updateConnected(nc)
	if nc.IsClosed() {
		return // Close, not an outage
	}
	c.logger.Warn("nats disconnected, reconnecting", "err", err)
}

func (c *Conn) onReconnect(nc *nats.Conn) {
	c.metrics.reconnects.Inc()
	c.updateConnected(nc)
	c.logger.Info("nats reconnected", "url", nc.ConnectedUrlRedacted())
}

func (c *Conn) onClosed(nc *nats.Conn) {
	c.connMu.Lock()
	c.metrics.connected.DeleteLabelValues(c.name)
	c.connMu.Unlock()
	close(c.closed)
}

// onConnectError logs a failed connection attempt (refused, TLS
// handshake, authorization), one line per interval while it lasts.
func (c *Conn) onConnectError(_ *nats.Conn, err error) {
	if ok, suppressed := c.asyncLogs.allow(); ok {
		c.logger.Warn("nats connect failed, retrying", "err", err, "suppressed", suppressed)
	}
}

func (c *Conn) onAsyncError(_ *nats.Conn, sub *nats.Subscription, err error) {
	// Slow-consumer errors can repeat per message; one line per interval.
	if ok, suppressed := c.asyncLogs.allow(); ok {
		attrs := []any{"err", err, "suppressed", suppressed}
		if sub != nil {
			attrs = append(attrs, "subject", sub.Subject)
		}
		c.logger.Warn("nats async error", attrs...)
	}
}

// Connected reports whether the connection is up right now.
func (c *Conn) Connected() bool { return c.nc.IsConnected() }

// Partitions returns the number of partitions per signal.
func (c *Conn) Partitions() int { return c.cfg.Partitions }

// MaxPayload returns the largest message the server accepts, or 0 while
// not connected. Publishers size their batches below it.
func (c *Conn) MaxPayload() int64 { return c.nc.MaxPayload() }

// Close drains the connection, so publishes and acks already handed to it
// reach the server, then closes it. Stop consumers (cancel their contexts)
// first. Close waits at most about the drain timeout; later calls return
// the first call's result.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		err := c.nc.Drain()
		switch {
		case err == nil:
		case errors.Is(err, nats.ErrConnectionReconnecting), errors.Is(err, nats.ErrConnectionClosed):
			// Nothing can be flushed while down; Drain closed it already.
		default:
			c.closeErr = fmt.Errorf("drain nats connection: %w", err)
			c.nc.Close()
		}
		t := time.NewTimer(drainTimeout + 5*time.Second)
		defer t.Stop()
		select {
		case <-c.closed:
		case <-t.C:
			c.nc.Close()
			c.closeErr = errors.Join(c.closeErr, errors.New("close nats connection: timed out waiting for drain"))
		}
	})
	return c.closeErr
}

// EnsureStreams creates, or updates to the configured settings, the stream
// of each signal (all signals when none are given). It is idempotent and
// safe when several processes call it at once. While JetStream is not
// available yet (server starting, no connection, cluster without a leader)
// it retries until ctx is done; configuration errors return at once.
//
// Streams are file-backed with interest retention and Discard: New: a
// message stays until every partition consumer interested in it has acked
// it (after the aggregator's durable commit), so the stream holds the
// backlog, not a second copy of stored data; and a full stream refuses new
// publishes (agents spool) rather than silently dropping unconsumed data.
// MaxAge still bounds how long an unconsumed message waits.
func (c *Conn) EnsureStreams(ctx context.Context, signals ...Signal) error {
	if len(signals) == 0 {
		signals = Signals
	}
	for _, s := range signals {
		if !s.Valid() {
			return fmt.Errorf("ensure streams: unknown signal %q", s)
		}
	}
	for _, s := range signals {
		if err := c.ensureStream(ctx, c.streamConfig(s)); err != nil {
			return err
		}
		if err := c.ensureConsumers(ctx, s); err != nil {
			return err
		}
		c.state(s).ensured.Store(true)
	}
	return c.ensureStream(ctx, c.deadLetterStreamConfig())
}

// ensureConsumers creates the durable consumer of every partition-replica
// with the stream. Interest retention deletes a message once every
// consumer interested in it has acked it, so all of them must exist before
// the first publish, not only once an aggregator starts: otherwise replica
// 1 would miss what replica 0 acked before it was created.
//
// Like the streams, a consumer whose creation fails for a while (a JetStream
// cluster electing the consumer's leader, a server busy starting) is retried
// until ctx ends.
func (c *Conn) ensureConsumers(ctx context.Context, s Signal) error {
	st := c.state(s)
	logs := newLogLimiter(logEvery)
	for p, subject := range st.subjects {
		for r := range max(c.cfg.Consumer.Replicas, 1) {
			cfg := c.consumerConfig(subject, DurableName(s, p, r))
			bo := newBackoff(100*time.Millisecond, 5*time.Second)
			for {
				err := c.ensureConsumer(ctx, st.stream, cfg)
				if err == nil {
					break
				}
				if ctx.Err() != nil || !isTransient(err) {
					return fmt.Errorf("ensure consumer %s on %s: %w", cfg.Durable, st.stream, err)
				}
				if ok, suppressed := logs.allow(); ok {
					c.logger.Warn("jetstream not available yet, retrying", "stream", st.stream, "consumer", cfg.Durable, "err", err, "suppressed", suppressed)
				}
				if werr := bo.wait(ctx); werr != nil {
					return fmt.Errorf("ensure consumer %s on %s: %w (last error: %w)", cfg.Durable, st.stream, werr, err)
				}
			}
		}
	}
	return nil
}

func (c *Conn) ensureConsumer(ctx context.Context, stream string, cfg jetstream.ConsumerConfig) error {
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	if c.cfg.Consumer.Manage {
		_, err := c.js.CreateOrUpdateConsumer(ctx, stream, cfg)
		return err
	}
	_, err := c.js.CreateConsumer(ctx, stream, cfg)
	if errors.Is(err, jetstream.ErrConsumerExists) {
		return nil // an aggregator's settings win
	}
	return err
}

func (c *Conn) streamConfig(s Signal) jetstream.StreamConfig {
	sc := c.cfg.Stream
	return jetstream.StreamConfig{
		Name:        StreamName(s),
		Description: "Pharos " + string(s) + " ingest log",
		Subjects:    []string{subjectWildcard(s)},
		Retention:   jetstream.InterestPolicy,
		Discard:     jetstream.DiscardNew,
		Storage:     jetstream.FileStorage,
		MaxAge:      sc.MaxAge,
		MaxBytes:    sc.MaxBytes,
		Duplicates:  sc.DuplicateWindow,
		Replicas:    sc.Replicas,
		Metadata:    map[string]string{partitionsMetadataKey: strconv.Itoa(c.cfg.Partitions)},
	}
}

// partitionsMetadataKey names the stream metadata entry holding the
// partition count its messages were published with. Every process must use
// the same count (-nats.partitions): an agent publishing to partitions an
// aggregator does not know leaves their messages unconsumed, and a
// different count moves each series, log stream and trace to another
// partition. The subjects do not show it (the stream takes
// pharos.<signal>.*), so the count is recorded here and checked by every
// process that ensures the stream.
const partitionsMetadataKey = "pharos_partitions"

// ErrPartitionsMismatch is returned by EnsureStreams when a stream was
// made with another partition count than this process's.
var ErrPartitionsMismatch = errors.New("partition count differs from the stream's")

// checkPartitions returns ErrPartitionsMismatch, explained, when the
// existing stream's recorded partition count is not want's. A stream
// without the entry (made before it existed) passes, and gets it.
func checkPartitions(existing, want jetstream.StreamConfig) error {
	got, ok := existing.Metadata[partitionsMetadataKey]
	if !ok || got == want.Metadata[partitionsMetadataKey] {
		return nil
	}
	return fmt.Errorf("nats.partitions: %w: this process has %s, stream %s was created with %s; "+
		"use -nats.partitions=%s on every process, or drain and delete the streams to change it",
		ErrPartitionsMismatch, want.Metadata[partitionsMetadataKey], existing.Name, got, got)
}

func (c *Conn) ensureStream(ctx context.Context, cfg jetstream.StreamConfig) error {
	bo := newBackoff(100*time.Millisecond, 5*time.Second)
	logs := newLogLimiter(logEvery)
	for {
		err := c.createOrUpdateStream(ctx, cfg)
		if err == nil {
			c.logger.Debug("stream ready", "stream", cfg.Name)
			return nil
		}
		if ctx.Err() != nil || !isTransient(err) {
			return fmt.Errorf("ensure stream %s: %w%s", cfg.Name, err, streamErrorHint(err))
		}
		if ok, suppressed := logs.allow(); ok {
			c.logger.Warn("jetstream not available yet, retrying", "stream", cfg.Name, "err", err, "suppressed", suppressed)
		}
		if werr := bo.wait(ctx); werr != nil {
			return fmt.Errorf("ensure stream %s: %w (last error: %w)", cfg.Name, werr, err)
		}
	}
}

// createOrUpdateStream creates first because that is the common case and
// the server treats an identical create as a no-op; "name in use" means the
// settings differ (or a racing process won), so update.
func (c *Conn) createOrUpdateStream(ctx context.Context, cfg jetstream.StreamConfig) error {
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	_, err := c.js.CreateStream(ctx, cfg)
	if !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		return err
	}
	if cfg.Metadata[partitionsMetadataKey] != "" {
		st, err := c.js.Stream(ctx, cfg.Name)
		if err != nil {
			return err
		}
		if err := checkPartitions(st.CachedInfo().Config, cfg); err != nil {
			return err
		}
	}
	_, err = c.js.UpdateStream(ctx, cfg)
	return err
}

// JetStream API error codes the bus tells apart.
const (
	errCodeAccountResourcesExceeded jetstream.ErrorCode = 10002
	errCodeInsufficientResources    jetstream.ErrorCode = 10023
	errCodeStorageResourcesExceeded jetstream.ErrorCode = 10047
	errCodeStreamStoreFailed        jetstream.ErrorCode = 10077
)

// streamErrorHint explains the one configuration error that a default
// install can hit: each stream reserves max_bytes on the server up front.
func streamErrorHint(err error) string {
	if apiErr, ok := errors.AsType[*jetstream.APIError](err); ok && apiErr.ErrorCode == errCodeStorageResourcesExceeded {
		return " (each stream reserves nats.stream.max_bytes of JetStream storage; lower it or free disk space)"
	}
	return ""
}

// isTransient reports errors that go away by themselves: no connection,
// JetStream not (yet) answering, or a cluster without a leader.
func isTransient(err error) bool {
	switch {
	case errors.Is(err, nats.ErrNoResponders),
		errors.Is(err, nats.ErrTimeout),
		errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, nats.ErrDisconnected),
		errors.Is(err, nats.ErrConnectionReconnecting),
		errors.Is(err, nats.ErrNoServers),
		errors.Is(err, nats.ErrInvalidConnection),
		errors.Is(err, io.EOF),
		errors.Is(err, jetstream.ErrJetStreamNotEnabled),
		errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount),
		errors.Is(err, jetstream.ErrNoStreamResponse),
		errors.Is(err, jetstream.ErrConsumerLeadershipChanged):
		return true
	}
	if apiErr, ok := errors.AsType[*jetstream.APIError](err); ok && apiErr.Code == 503 {
		return true // "temporarily unavailable", no leader, not ready
	}
	return false
}

// backoff is capped exponential backoff with jitter for retry loops. It is
// owned by one goroutine.
type backoff struct {
	min, max, cur time.Duration
}

func newBackoff(minDelay, maxDelay time.Duration) *backoff {
	return &backoff{min: minDelay, max: maxDelay, cur: minDelay}
}

func (b *backoff) reset() { b.cur = b.min }

// wait sleeps for the next delay or until ctx is done.
func (b *backoff) wait(ctx context.Context) error {
	d := b.cur/2 + rand.N(b.cur/2+1)
	b.cur = min(b.cur*2, b.max)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// logLimiter lets one log line through per interval and counts the rest,
// so an outage yields a few lines rather than one per retry.
type logLimiter struct {
	every      time.Duration
	mu         sync.Mutex
	last       time.Time
	suppressed int
}

func newLogLimiter(every time.Duration) *logLimiter { return &logLimiter{every: every} }

// allow reports whether to log now, and how many lines were held back
// since the last one.
func (l *logLimiter) allow() (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if !l.last.IsZero() && now.Sub(l.last) < l.every {
		l.suppressed++
		return false, 0
	}
	n := l.suppressed
	l.last, l.suppressed = now, 0
	return true, n
}
