package publish

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/pharos-obs/pharos/collector/receive"
	"github.com/pharos-obs/pharos/collector/tail"
	"github.com/pharos-obs/pharos/internal/bus"
	"github.com/pharos-obs/pharos/internal/bus/codec"
	"github.com/pharos-obs/pharos/storage/logs"
)

// maxLogsMessageBytes bounds one message's uncompressed payload, below
// NATS's default 1 MiB max_payload once compressed (log lines compress
// several-fold; a single entry is capped well below this by the receivers
// and the tailer).
const maxLogsMessageBytes = 1 << 20

// Logs publishes log streams: pushed ones (Loki push, OTLP) and the
// tailer's batches. Unlike metrics, logs are not batched further or
// spooled here: every caller already holds its data until the bus takes it
// (the tailer holds its read positions; a pushing client its request, which
// it retries on 503), so each call partitions its streams by label set,
// publishes one message per partition (more when large) at once, and
// returns once JetStream has acknowledged every one.
type Logs struct {
	*signalPublisher
	// A batch the tailer retries gets the message IDs of its first
	// attempt, so JetStream drops the parts it already stored. Guarded by
	// the signalPublisher's mu, with its seq.
	tailRetrySeq uint64

	encoders sync.Pool // *partitionEncoders

	entries   prometheus.Counter
	lineBytes prometheus.Counter
	messages  prometheus.Counter
	dropped   *prometheus.CounterVec
	latency   prometheus.Histogram
}

// NewLogs returns the log publisher.
func NewLogs(cfg Config, partitions int, agentID string, publish PublishFunc, logger *slog.Logger, reg prometheus.Registerer) (*Logs, error) {
	sp, err := newSignalPublisher(cfg, bus.SignalLogs, partitions, agentID, publish, logger)
	if err != nil {
		return nil, err
	}
	f := promauto.With(reg)
	l := &Logs{
		signalPublisher: sp,
		entries: f.NewCounter(prometheus.CounterOpts{
			Name: "pharos_agent_log_entries_published_total", Help: "Log entries acknowledged by JetStream."}),
		lineBytes: f.NewCounter(prometheus.CounterOpts{
			Name: "pharos_agent_log_bytes_published_total", Help: "Bytes of log lines acknowledged by JetStream."}),
		messages: f.NewCounter(prometheus.CounterOpts{
			Name: "pharos_agent_log_messages_published_total", Help: "Log messages (one partition's share of a push or tailer batch) acknowledged by JetStream."}),
		dropped: f.NewCounterVec(prometheus.CounterOpts{
			Name: "pharos_agent_dropped_log_entries_total", Help: "Log entries the bus refused for good, by reason."}, []string{"reason"}),
		latency: f.NewHistogram(prometheus.HistogramOpts{
			Name: "pharos_agent_log_publish_duration_seconds", Help: "Time to publish a push or tailer batch, until every part is acknowledged.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 9)}),
	}
	l.dropped.WithLabelValues(reasonTooLarge)
	l.encoders.New = func() any { return l.newPartitionEncoders() }
	return l, nil
}

// partitionEncoders is one call's encoders, one per partition, and the
// messages finished so far.
type partitionEncoders struct {
	enc   []*codec.LogsEncoder
	last  []labels.Labels // the stream each encoder is writing
	msgs  []logsMessage
	meta  []codec.LogField
	bytes int
}

type logsMessage struct {
	partition int
	data      []byte
	entries   int
	lineBytes int
}

func (l *Logs) newPartitionEncoders() *partitionEncoders {
	pe := &partitionEncoders{enc: make([]*codec.LogsEncoder, l.partitions), last: make([]labels.Labels, l.partitions)}
	for i := range pe.enc {
		pe.enc[i] = codec.NewLogsEncoder(l.comp)
	}
	return pe
}

func (l *Logs) getEncoders() *partitionEncoders {
	pe := l.encoders.Get().(*partitionEncoders)
	for i, e := range pe.enc {
		e.Reset()
		pe.last[i] = labels.EmptyLabels()
	}
	pe.msgs = pe.msgs[:0]
	pe.bytes = 0
	return pe
}

func (l *Logs) putEncoders(pe *partitionEncoders) {
	clear(pe.last)
	for i := range pe.msgs {
		pe.msgs[i].data = nil
	}
	l.encoders.Put(pe)
}

// stream returns the encoder for ls's partition with ls's stream open,
// finishing a full message first.
func (l *Logs) stream(pe *partitionEncoders, ls labels.Labels, hash uint64) (*codec.LogsEncoder, error) {
	p := int(hash % uint64(l.partitions))
	enc := pe.enc[p]
	if enc.Size() >= maxLogsMessageBytes {
		if err := l.finish(pe, p); err != nil {
			return nil, err
		}
	}
	if enc.Len() == 0 || !labels.Equal(pe.last[p], ls) {
		enc.StartStream(ls)
		pe.last[p] = ls
	}
	return enc, nil
}

// finish closes partition p's message, if it has entries.
func (l *Logs) finish(pe *partitionEncoders, p int) error {
	enc := pe.enc[p]
	if enc.Len() == 0 {
		return nil
	}
	data, err := enc.Finish()
	if err != nil {
		return err
	}
	pe.msgs = append(pe.msgs, logsMessage{partition: p, data: append([]byte(nil), data...), entries: enc.Len(), lineBytes: enc.LineBytes()})
	enc.Reset()
	pe.last[p] = labels.EmptyLabels()
	return nil
}

// PushStreams publishes streams for tenant and returns once all of them
// are acknowledged. An error wrapping receive.ErrLogsRejected means the
// bus refuses them for what they are; any other may pass on a retry.
func (l *Logs) PushStreams(ctx context.Context, tenant string, streams []logs.Stream) error {
	pe := l.getEncoders()
	defer l.putEncoders(pe)
	for i := range streams {
		st := &streams[i]
		if len(st.Entries) == 0 {
			continue
		}
		hash := st.Labels.Hash()
		for j := range st.Entries {
			enc, err := l.stream(pe, st.Labels, hash)
			if err != nil {
				return err
			}
			enc.AddEntry(&st.Entries[j])
		}
	}
	return l.publishAll(ctx, pe, tenant, l.nextSeq(0))
}

// PushLogs publishes a tailer batch; it makes Logs a tail.Sink. The tailer
// retries a failed batch until it goes through, so a retry reuses the
// failed attempt's message IDs.
func (l *Logs) PushLogs(ctx context.Context, b *tail.Batch) error {
	pe := l.getEncoders()
	defer l.putEncoders(pe)
	var (
		prev     labels.Labels
		prevHash uint64
	)
	for i := range b.Entries {
		e := &b.Entries[i]
		if i == 0 || !labels.Equal(prev, e.Labels) {
			prev, prevHash = e.Labels, e.Labels.Hash()
		}
		enc, err := l.stream(pe, e.Labels, prevHash)
		if err != nil {
			return err
		}
		pe.meta = pe.meta[:0]
		for _, f := range e.Metadata {
			pe.meta = append(pe.meta, codec.LogField{Name: f.Name, Value: f.Value})
		}
		enc.Add(e.Timestamp.UnixNano(), e.Line, pe.meta)
	}
	l.mu.Lock()
	seq := l.tailRetrySeq
	l.mu.Unlock()
	seq = l.nextSeq(seq)
	err := l.publishAll(ctx, pe, "", seq)
	l.mu.Lock()
	if err != nil && !errors.Is(err, receive.ErrLogsRejected) {
		l.tailRetrySeq = seq
	} else {
		l.tailRetrySeq = 0
	}
	l.mu.Unlock()
	if errors.Is(err, receive.ErrLogsRejected) {
		return fmt.Errorf("%w: %w", tail.ErrPermanent, err)
	}
	return err
}

// nextSeq returns reuse when set, else a fresh sequence number.
func (l *Logs) nextSeq(reuse uint64) uint64 {
	if reuse != 0 {
		return reuse
	}
	return l.signalPublisher.nextSeq()
}

// publishAll finishes every partition's message and publishes them, up to
// l.concurrency at once, waiting for all. Message i of call seq has the ID
// <prefix><seq>.<i>, the same for the same input.
func (l *Logs) publishAll(ctx context.Context, pe *partitionEncoders, tenant string, seq uint64) error {
	for p := range pe.enc {
		if err := l.finish(pe, p); err != nil {
			return err
		}
	}
	if len(pe.msgs) == 0 {
		return nil
	}
	start := time.Now()
	err := l.publishParts(ctx, tenant, seq, len(pe.msgs),
		func(i int) bus.OutMsg {
			m := &pe.msgs[i]
			return bus.OutMsg{Partition: m.partition, Encoding: pe.enc[m.partition].Encoding(), Data: m.data}
		},
		func(i int) {
			m := &pe.msgs[i]
			l.entries.Add(float64(m.entries))
			l.lineBytes.Add(float64(m.lineBytes))
			l.messages.Inc()
		},
		func(i int, err error) error {
			m := &pe.msgs[i]
			l.dropped.WithLabelValues(reasonTooLarge).Add(float64(m.entries))
			return fmt.Errorf("%w: %d entries refused by the bus for their size: %w", receive.ErrLogsRejected, m.entries, err)
		})
	l.latency.Observe(time.Since(start).Seconds())
	return err
}
