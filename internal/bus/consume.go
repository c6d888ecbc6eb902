package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ownerGroup is the priority group every partition consumer is pinned
// through. A consumer with the pinned priority policy hands its messages to
// one client only — the first to pull, until it stops pulling for the
// consumer's PinnedTTL or is unpinned — and answers anyone else's pull
// requests with nothing. The ring decides who should own a partition-
// replica (gossip, eventually consistent); the pin, kept by JetStream
// (Raft-replicated in a cluster), guarantees that even while two
// aggregators disagree only one of them consumes it.
const ownerGroup = "owner"

// pullExpiry is how long one pull request waits. The pin lasts while its
// holder keeps pulling, so requests are renewed well within the pinned TTL;
// an idle partition costs one request per expiry and the server's
// heartbeats (how a lost request or a dead server is noticed; nats.go
// sends them at half the expiry, at most every 30 s), instead of a
// subscription per poll. A message that arrives is handed over at once
// whatever the expiry.
//
// On a lone in-process server (the all-in-one) a request cannot be lost
// in transit nor stranded on a former consumer leader, so requests are
// renewed every ten minutes, leaving the 30 s heartbeats: with three
// signals' partitions, 30 s requests and 15 s heartbeats woke an idle
// all-in-one about fifteen times a second.
func pullExpiry(cfg jetstream.ConsumerConfig, lone bool) time.Duration {
	switch {
	case cfg.PriorityPolicy == jetstream.PriorityPolicyPinned:
		return min(max(cfg.PinnedTTL/3, time.Second), 30*time.Second)
	case lone:
		return 10 * time.Minute
	}
	return 30 * time.Second
}

// collectWait is how long a batch waits for more messages once it has one.
// Messages that are already buffered are taken at once; this only bounds
// the wait for a burst still in flight.
const collectWait = 2 * time.Millisecond

// Delivery is one message handed to a BatchHandler. The handler owns it and
// must settle it with exactly one of Ack, Nak or Term (InProgress may come
// before). A Delivery that is never settled is redelivered after the
// consumer's ack wait.
type Delivery struct {
	// Subject is the subject it was published to.
	Subject string
	// Partition is the partition of Subject.
	Partition int
	// Tenant is the Pharos-Tenant header, DefaultTenant if absent.
	Tenant string
	// Encoding is the Pharos-Encoding header.
	Encoding string
	// MsgID is the Nats-Msg-Id header, the publisher's batch identity.
	MsgID string
	// Data is the payload; the handler may keep it.
	Data []byte
	// StreamSeq is the message's sequence in its stream.
	StreamSeq uint64
	// NumDelivered counts deliveries of this message, 1 the first time.
	NumDelivered uint64

	msg jetstream.Msg
}

// errUnbound is returned when settling a Delivery that was built by hand
// (in a test) rather than received, instead of a nil-pointer panic.
var errUnbound = errors.New("delivery was not received from nats")

// Ack tells JetStream the message is processed. It is a plain ack, not a
// double ack that waits for the server's confirmation: if the ack is lost,
// the message comes again after the ack wait, and downstream storage
// tolerates a redelivered batch (same ID, same samples). That saves a round
// trip per message.
func (d *Delivery) Ack() error {
	if d.msg == nil {
		return errUnbound
	}
	if err := d.msg.Ack(); err != nil {
		return fmt.Errorf("ack %s seq %d: %w", d.Subject, d.StreamSeq, err)
	}
	return nil
}

// Nak asks for redelivery after delay (at once when delay <= 0), for a
// message that failed for a reason that may pass, such as storage being
// temporarily unable to write.
func (d *Delivery) Nak(delay time.Duration) error {
	if d.msg == nil {
		return errUnbound
	}
	var err error
	if delay > 0 {
		err = d.msg.NakWithDelay(delay)
	} else {
		err = d.msg.Nak()
	}
	if err != nil {
		return fmt.Errorf("nak %s seq %d: %w", d.Subject, d.StreamSeq, err)
	}
	return nil
}

// Term tells JetStream never to redeliver the message: it is poison (it
// cannot be decoded, or is refused by validation) and retrying cannot help.
func (d *Delivery) Term() error {
	if d.msg == nil {
		return errUnbound
	}
	if err := d.msg.Term(); err != nil {
		return fmt.Errorf("term %s seq %d: %w", d.Subject, d.StreamSeq, err)
	}
	return nil
}

// InProgress restarts the message's ack wait, for a handler whose durable
// commit takes longer than the ack wait.
func (d *Delivery) InProgress() error {
	if d.msg == nil {
		return errUnbound
	}
	if err := d.msg.InProgress(); err != nil {
		return fmt.Errorf("in progress %s seq %d: %w", d.Subject, d.StreamSeq, err)
	}
	return nil
}

// BatchHandler processes a batch fetched from one partition, in stream
// order. It must settle every Delivery itself (Ack, Nak or Term), so that it
// can ack only after its own durable commit. It may block: the next fetch
// of the partition waits for it, which keeps per-partition order (Naked
// messages come back later, out of order). ctx is the consumer's context.
// The handler owns batch and its Deliveries.
type BatchHandler func(ctx context.Context, batch []*Delivery)

// ConsumePartition consumes one partition of a signal through the durable
// pull consumer named durable, creating it or updating it to the configured
// settings. It keeps one pull subscription open (up to the configured batch
// size buffered), hands h what has arrived as one batch, and repeats until
// ctx is done; then it returns nil.
//
// Connection loss, a missing stream, JetStream being unavailable and
// similar transient problems are logged (at most every few seconds) and
// retried with backoff; they never end the loop. Only a consumer that
// cannot be created with these settings returns an error. The durable
// consumer keeps its position on the server, so a restarted process resumes
// where it stopped, and un-acked messages go to whoever consumes next.
func (c *Conn) ConsumePartition(ctx context.Context, signal Signal, partition int, durable string, h BatchHandler) error {
	st := c.state(signal)
	if st == nil {
		return fmt.Errorf("consume: unknown signal %q", signal)
	}
	if partition < 0 || partition >= len(st.subjects) {
		return fmt.Errorf("consume %s: partition %d out of range [0, %d)", signal, partition, len(st.subjects))
	}
	if err := validateDurable(durable); err != nil {
		return fmt.Errorf("consume %s partition %d: %w", signal, partition, err)
	}
	if h == nil {
		return errors.New("consume: nil handler")
	}
	pc := &partitionConsumer{
		c:         c,
		st:        st,
		partition: partition,
		handler:   h,
		batchSize: c.cfg.Consumer.FetchBatch,
		cfg:       c.consumerConfig(st.subjects[partition], durable),
		logger:    c.logger.With("stream", st.stream, "consumer", durable, "partition", partition),
		logs:      newLogLimiter(logEvery),
	}
	return pc.run(ctx)
}

// DurableName is the durable consumer of one partition-replica. The name
// belongs to the partition-replica, not to the node that reads it, so
// whichever aggregator owns it resumes from the same acknowledged position.
func DurableName(signal Signal, partition, replica int) string {
	return "pharos-" + string(signal) + "-p" + strconv.Itoa(partition) + "-r" + strconv.Itoa(replica)
}

func (c *Conn) consumerConfig(subject, durable string) jetstream.ConsumerConfig {
	cc := jetstream.ConsumerConfig{
		Durable:       durable,
		Description:   "Pharos consumer of " + subject,
		FilterSubject: subject,
		AckPolicy:     jetstream.AckExplicitPolicy,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckWait:       c.cfg.Consumer.AckWait,
		MaxAckPending: c.cfg.Consumer.MaxAckPending,
	}
	if c.cfg.Consumer.Exclusive {
		cc.PriorityGroups = []string{ownerGroup}
		cc.PriorityPolicy = jetstream.PriorityPolicyPinned
		cc.PinnedTTL = c.cfg.Consumer.PinnedTTL
	}
	return cc
}

// validateDurable rejects names JetStream would refuse, so a typo fails at
// once instead of retrying forever.
func validateDurable(name string) error {
	if name == "" {
		return errors.New("durable consumer name is required")
	}
	if strings.ContainsAny(name, ".*> \t\r\n/\\") {
		return fmt.Errorf("durable consumer name %q must not contain '.', '*', '>', '/', '\\' or whitespace", name)
	}
	return nil
}

// partitionConsumer is the state of one ConsumePartition loop; only that
// loop's goroutine touches it.
type partitionConsumer struct {
	c         *Conn
	st        *signalState
	partition int
	handler   BatchHandler
	batchSize int
	cfg       jetstream.ConsumerConfig
	logger    *slog.Logger
	logs      *logLimiter

	msgs []jetstream.Msg // reused between fetches
}

func (p *partitionConsumer) run(ctx context.Context) error {
	bo := newBackoff(100*time.Millisecond, 5*time.Second)
	var it jetstream.MessagesContext
	var bindFailingSince time.Time
	defer func() {
		if it != nil {
			p.release(it)
		}
	}()
	for ctx.Err() == nil {
		if it == nil {
			cons, err := p.bind(ctx)
			if err == nil {
				opts := []jetstream.PullMessagesOpt{jetstream.PullMaxMessages(p.batchSize), jetstream.PullExpiry(pullExpiry(p.cfg, p.c.lone))}
				if p.cfg.PriorityPolicy == jetstream.PriorityPolicyPinned {
					opts = append(opts, jetstream.PullPriorityGroup(ownerGroup))
				}
				it, err = cons.Messages(opts...)
			}
			if err != nil {
				if ctx.Err() != nil {
					break
				}
				if !isTransient(err) && !errors.Is(err, jetstream.ErrStreamNotFound) {
					return fmt.Errorf("consume %s: bind consumer %s: %w", p.cfg.FilterSubject, p.cfg.Durable, err)
				}
				if bindFailingSince.IsZero() {
					bindFailingSince = time.Now()
				}
				// A process starting with the bus creates the streams
				// while its consumers start: a stream missing for a
				// moment is expected, only a lasting failure is news.
				if errors.Is(err, jetstream.ErrStreamNotFound) && time.Since(bindFailingSince) < bindGrace {
					p.logger.Debug("cannot bind consumer yet, retrying", "err", err)
				} else {
					p.warn("cannot bind consumer yet, retrying", err)
				}
				_ = bo.wait(ctx)
				continue
			}
			bindFailingSince = time.Time{}
			p.logger.Debug("consumer bound")
		}

		batch, err := p.fetch(ctx, it)
		if len(batch) > 0 {
			bo.reset()
			p.deliver(ctx, batch)
		}
		if err == nil {
			continue
		}
		if ctx.Err() != nil {
			break
		}
		// The iterator failed: the consumer was deleted (or its stream
		// recreated), the connection closed, or the server stopped sending
		// heartbeats. Bind again, which also waits out a JetStream that is
		// restarting.
		it.Stop()
		it = nil
		p.warn("fetch failed, retrying", err)
		_ = bo.wait(ctx)
	}
	return nil
}

// release hands the partition-replica over: messages fetched but not
// handled go back for immediate redelivery (instead of after the ack wait),
// and the pin is dropped so that the next owner is served at its next pull
// rather than after the pinned TTL.
func (p *partitionConsumer) release(it jetstream.MessagesContext) {
	it.Drain()
	for {
		msg, err := it.Next(jetstream.NextMaxWait(collectWait))
		if err != nil {
			break
		}
		_ = msg.Nak()
	}
	if p.cfg.PriorityPolicy != jetstream.PriorityPolicyPinned {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
	defer cancel()
	s, err := p.c.js.Stream(ctx, p.st.stream)
	if err == nil {
		err = s.UnpinConsumer(ctx, p.cfg.Durable, ownerGroup)
	}
	if err != nil {
		// The pin then expires after the pinned TTL.
		p.logger.Debug("could not unpin consumer", "err", err)
	}
}

// bindGrace is how long a consumer's stream may be missing before the
// retries are logged as warnings.
const bindGrace = 10 * time.Second

func (p *partitionConsumer) warn(msg string, err error) {
	if ok, suppressed := p.logs.allow(); ok {
		p.logger.Warn(msg, "err", err, "suppressed", suppressed)
	}
}

func (p *partitionConsumer) bind(ctx context.Context) (jetstream.Consumer, error) {
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	return p.c.js.CreateOrUpdateConsumer(ctx, p.st.stream, p.cfg)
}

// fetch returns the next batch: it waits for a first message, then takes
// what else is buffered or arrives within collectWait, up to the batch size.
func (p *partitionConsumer) fetch(ctx context.Context, it jetstream.MessagesContext) ([]*Delivery, error) {
	p.msgs = p.msgs[:0]
	msg, err := it.Next(jetstream.NextContext(ctx))
	if err != nil {
		return nil, err
	}
	p.msgs = append(p.msgs, msg)
	for len(p.msgs) < p.batchSize {
		msg, err = it.Next(jetstream.NextMaxWait(collectWait))
		if err != nil {
			if isNoMessages(err) {
				err = nil
			}
			break
		}
		p.msgs = append(p.msgs, msg)
	}
	return p.toDeliveries(), err
}

func isNoMessages(err error) bool {
	return errors.Is(err, nats.ErrTimeout) || errors.Is(err, jetstream.ErrNoMessages)
}

// toDeliveries converts the fetched messages, allocating the Deliveries of
// a batch as one block rather than one object per message.
func (p *partitionConsumer) toDeliveries() []*Delivery {
	if len(p.msgs) == 0 {
		return nil
	}
	block := make([]Delivery, len(p.msgs))
	batch := make([]*Delivery, len(p.msgs))
	for i, msg := range p.msgs {
		d := &block[i]
		d.msg = msg
		d.Subject = msg.Subject()
		d.Partition = p.partition
		d.Data = msg.Data()
		h := msg.Headers()
		d.Tenant = h.Get(HeaderTenant)
		if d.Tenant == "" {
			d.Tenant = DefaultTenant
		}
		d.Encoding = h.Get(HeaderEncoding)
		d.MsgID = h.Get(HeaderMsgID)
		if md, err := msg.Metadata(); err == nil {
			d.StreamSeq = md.Sequence.Stream
			d.NumDelivered = md.NumDelivered
		}
		batch[i] = d
		p.msgs[i] = nil // the Delivery owns it now
	}
	p.msgs = p.msgs[:0]
	return batch
}

func (p *partitionConsumer) deliver(ctx context.Context, batch []*Delivery) {
	var n int
	for _, d := range batch {
		n += len(d.Data)
	}
	p.st.m.consumedMessages.Add(float64(len(batch)))
	p.st.m.consumedBytes.Add(float64(n))
	p.handler(ctx, batch)
}

// ConsumerLag reports how far the durable consumer of a signal is behind:
// messages not yet delivered plus those delivered but not acknowledged.
func (c *Conn) ConsumerLag(ctx context.Context, signal Signal, durable string) (uint64, error) {
	st := c.state(signal)
	if st == nil {
		return 0, fmt.Errorf("consumer lag: unknown signal %q", signal)
	}
	cons, err := c.js.Consumer(ctx, st.stream, durable)
	if err != nil {
		return 0, fmt.Errorf("consumer lag %s/%s: %w", st.stream, durable, err)
	}
	info := cons.CachedInfo()
	return info.NumPending + uint64(info.NumAckPending), nil
}
