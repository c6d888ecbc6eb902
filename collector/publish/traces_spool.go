package publish

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/pharos-obs/pharos/collector/spool"
	"github.com/pharos-obs/pharos/internal/bus"
	"github.com/pharos-obs/pharos/internal/bus/codec"
)

// Spooled trace records, and publishing them in batches.
//
// A record is one partition's share of one push:
//
//	version          1 byte, tracesRecordVersion
//	partitions       uvarint, the partition count the push was split for
//	partition        uvarint
//	tenant           uvarint length, then the bytes
//	spans            the rest: an encoded OTLP TracesData
//
// Encoded TracesData messages concatenate into one holding the resource
// spans of each, so a batch's message for a partition is its records'
// spans joined as they are, without decoding them.

const tracesRecordVersion = 1

// maxTracesBatchBytes bounds the spans (encoded, uncompressed) read into
// one batch: a batch is published once it holds this much even if
// Config.TracesBatchWait has not passed.
const maxTracesBatchBytes = 8 << 20

var errTracesRecord = errors.New("malformed spooled trace record")

func appendTracesRecord(dst []byte, tenant string, partition, partitions int, spans []byte) []byte {
	dst = append(dst, tracesRecordVersion)
	dst = binary.AppendUvarint(dst, uint64(partitions))
	dst = binary.AppendUvarint(dst, uint64(partition))
	dst = binary.AppendUvarint(dst, uint64(len(tenant)))
	dst = append(dst, tenant...)
	return append(dst, spans...)
}

// tracesRecordSize is the length of appendTracesRecord's record.
func tracesRecordSize(tenant string, partition, partitions int, spans []byte) int {
	return 1 + protowire.SizeVarint(uint64(partitions)) + protowire.SizeVarint(uint64(partition)) +
		protowire.SizeVarint(uint64(len(tenant))) + len(tenant) + len(spans)
}

// tracesRecord is a parsed record; spans aliases the record's bytes.
type tracesRecord struct {
	tenant                string
	partition, partitions int
	spans                 []byte
}

func parseTracesRecord(b []byte) (tracesRecord, error) {
	var r tracesRecord
	if len(b) == 0 || b[0] != tracesRecordVersion {
		return r, fmt.Errorf("%w: unknown version", errTracesRecord)
	}
	b = b[1:]
	var vals [3]uint64
	for i := range vals {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return r, fmt.Errorf("%w: truncated header", errTracesRecord)
		}
		vals[i], b = v, b[n:]
	}
	partitions, partition, tenantLen := vals[0], vals[1], vals[2]
	switch {
	case partitions == 0 || partitions > 1<<16 || partition >= partitions:
		return r, fmt.Errorf("%w: partition %d of %d", errTracesRecord, partition, partitions)
	case tenantLen > uint64(len(b)):
		return r, fmt.Errorf("%w: truncated tenant", errTracesRecord)
	}
	r.partitions, r.partition = int(partitions), int(partition)
	r.tenant = string(b[:tenantLen])
	r.spans = b[tenantLen:]
	return r, nil
}

// bufList keeps the buffers of delivered batches for the next ones (a
// batch is a few MiB every second, in a message buffer and a payload
// buffer per partition): it belongs to the goroutine that reads the spool,
// and keeps at most maxFreeBytes.
type bufList struct {
	free  [][]byte
	bytes int
}

const maxFreeBytes = 16 << 20

func (l *bufList) get() []byte {
	n := len(l.free)
	if n == 0 {
		return nil
	}
	b := l.free[n-1]
	l.free[n-1] = nil
	l.free = l.free[:n-1]
	l.bytes -= cap(b)
	return b
}

func (l *bufList) put(b []byte) {
	if cap(b) > 0 && l.bytes+cap(b) <= maxFreeBytes {
		l.free = append(l.free, b[:0])
		l.bytes += cap(b)
	}
}

// traceBatch is spooled records read together, to be published as one
// message per tenant and partition (more when over maxTracesMessageBytes).
type traceBatch struct {
	bufs    *bufList
	msgs    []*traceMsg
	open    map[traceKey]*traceMsg // the message records are joined to
	bytes   int
	records int
	last    uint64    // spool sequence number of the last record
	first   time.Time // when the first record was read
	encoded bool
}

type traceKey struct {
	tenant    string
	partition int
}

// traceMsg is one message of a batch.
type traceMsg struct {
	tenant    string
	partition int
	spans     int
	raw       []byte // encoded TracesData
	data      []byte // raw compressed, the payload
	id        string
	done      bool // acknowledged, or dropped for good
}

func (b *traceBatch) add(tenant string, partition, spans int, raw []byte) {
	k := traceKey{tenant, partition}
	m := b.open[k]
	if m == nil || len(m.raw)+len(raw) > maxTracesMessageBytes {
		m = &traceMsg{tenant: tenant, partition: partition, raw: b.bufs.get()}
		b.msgs = append(b.msgs, m)
		if b.open == nil {
			b.open = map[traceKey]*traceMsg{}
		}
		b.open[k] = m
	}
	m.raw = append(m.raw, raw...)
	m.spans += spans
	b.bytes += len(raw)
}

// addRecord adds a record read from the spool to b. A record split for
// another partition count (the agent restarted with a new one) is split
// again.
func (t *Traces) addRecord(b *traceBatch, rec spool.Record) {
	if b.records == 0 {
		b.first = time.Now()
	}
	b.records++
	b.last = rec.Seq
	r, err := parseTracesRecord(rec.Data)
	if err == nil && r.partitions != t.partitions {
		err = t.addResplit(b, r)
		if err == nil {
			return
		}
	}
	if err != nil {
		t.dropped.WithLabelValues(reasonSpoolError).Add(float64(rec.Samples))
		t.logger.Error("dropping spooled spans that cannot be read", "reason", reasonSpoolError, "spans", rec.Samples, "err", err)
		return
	}
	b.add(r.tenant, r.partition, rec.Samples, r.spans)
}

func (t *Traces) addResplit(b *traceBatch, r tracesRecord) error {
	td, err := (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(r.spans)
	if err != nil {
		return fmt.Errorf("%w: %w", errTracesRecord, err)
	}
	s := t.splitters.Get().(*tracesSplitter)
	defer func() {
		s.reset()
		t.splitters.Put(s)
	}()
	s.split(td, t.partitions, maxTracesMessageBytes)
	for i := range s.out {
		p := &s.out[i]
		raw, err := s.m.MarshalTraces(p.td)
		if err != nil {
			return err
		}
		b.add(r.tenant, p.partition, p.spans, raw)
	}
	return nil
}

// collect reads spooled records into a batch until it is due: wait after
// its first record was read, once it holds maxTracesBatchBytes, or when
// ctx is done. With a zero wait it returns as soon as the spool has no
// more to read, with or without records.
func (t *Traces) collect(ctx context.Context, sp *spool.Spool, wait time.Duration) *traceBatch {
	b := &traceBatch{bufs: &t.bufs}
	var due <-chan time.Time
	for b.bytes < maxTracesBatchBytes {
		rec, err := sp.Read(t.readBuf[:0])
		if err == nil {
			t.readBuf = rec.Data
			if b.records == 0 && wait > 0 {
				timer := time.NewTimer(wait)
				defer timer.Stop()
				due = timer.C
			}
			t.addRecord(b, rec)
			continue
		}
		if !errors.Is(err, spool.ErrEmpty) {
			t.logger.Error("reading the trace spool", "err", err)
			if b.records > 0 {
				return b
			}
		}
		if wait == 0 {
			return b
		}
		select {
		case <-ctx.Done():
			return b
		case <-due:
			return b
		case <-sp.Notify():
		}
	}
	return b
}

// deliver publishes b's messages until JetStream has acknowledged every
// one (or refused it for its size, which drops it), retrying those that
// fail with a growing pause, until ctx is done.
func (t *Traces) deliver(ctx context.Context, b *traceBatch) error {
	if !b.encoded {
		enc := codec.NewTracesEncoder(t.comp)
		base := t.idPrefix + strconv.FormatUint(t.nextSeq(), 10) + "."
		for i, m := range b.msgs {
			m.id = base + strconv.Itoa(i)
			data, err := enc.EncodeRaw(t.bufs.get(), m.raw)
			t.bufs.put(m.raw)
			m.raw = nil
			if err != nil {
				m.done = true
				t.dropped.WithLabelValues(reasonEncode).Add(float64(m.spans))
				t.logger.Error("dropping spans that cannot be encoded", "reason", reasonEncode, "spans", m.spans, "err", err)
				continue
			}
			m.data = data
		}
		b.encoded = true
	}
	start := time.Now()
	backoff := replayMinBackoff
	var logged time.Time
	for {
		err := t.publishPending(ctx, b)
		if err == nil {
			t.latency.Observe(time.Since(start).Seconds())
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		t.retries.Inc()
		if now := time.Now(); now.Sub(logged) >= replayLogEvery {
			logged = now
			t.logger.Warn("publishing spooled spans failed, retrying", "err", err, "backoff", backoff)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, replayMaxBackoff)
	}
}

// publishPending publishes b's messages not yet done, up to t.concurrency
// at once, and joins the errors of those that failed.
func (t *Traces) publishPending(ctx context.Context, b *traceBatch) error {
	var pending []*traceMsg
	for _, m := range b.msgs {
		if !m.done {
			pending = append(pending, m)
		}
	}
	encoding := codec.TracesEncoding(t.comp)
	return t.publishEach(ctx, len(pending),
		func(i int) bus.OutMsg {
			m := pending[i]
			return bus.OutMsg{Tenant: m.tenant, ID: m.id, Partition: m.partition, Encoding: encoding, Data: m.data}
		},
		func(i int) {
			m := pending[i]
			m.done = true
			t.spans.Add(float64(m.spans))
			t.messages.Inc()
			t.bytes.Add(float64(len(m.data)))
		},
		func(i int, err error) error {
			m := pending[i]
			m.done = true
			t.dropped.WithLabelValues(reasonTooLarge).Add(float64(m.spans))
			t.logger.Error("dropping spans the bus refuses for their size (is its max_payload below 1 MiB?)",
				"reason", reasonTooLarge, "spans", m.spans, "bytes", len(m.data), "err", err)
			return nil
		})
}

// confirm removes b's records from the spool, and keeps b's buffers for
// the next batches.
func (t *Traces) confirm(sp *spool.Spool, b *traceBatch) {
	if err := sp.Confirm(b.last); err != nil {
		// They are published; after a restart they would be again.
		t.logger.Warn("confirming published spans in the trace spool", "err", err)
	}
	for _, m := range b.msgs {
		t.bufs.put(m.data)
		m.data = nil
	}
}

// running publishes what the spool holds, a batch every
// Config.TracesBatchWait while pushes come.
func (t *Traces) running(ctx context.Context) error {
	sp := t.sp.Load()
	for {
		b := t.collect(ctx, sp, t.cfg.TracesBatchWait)
		if b.records == 0 {
			if ctx.Err() != nil {
				return nil
			}
			continue
		}
		t.batchWait.Observe(time.Since(b.first).Seconds())
		if ctx.Err() != nil || t.deliver(ctx, b) != nil {
			// Stopping: stopping finishes it, under the drain timeout.
			t.pending = b
			return nil
		}
		t.confirm(sp, b)
	}
}

// stopping publishes what is spooled (the pushes have stopped: receivers
// stop first) until Config.DrainTimeout; what is left is published at
// the next start.
func (t *Traces) stopping(error) error {
	sp := t.sp.Load()
	if sp == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), t.cfg.DrainTimeout)
	defer cancel()
	b := t.pending
	t.pending = nil
	for {
		if b == nil {
			if b = t.collect(ctx, sp, 0); b.records == 0 {
				break
			}
		}
		if err := t.deliver(ctx, b); err != nil {
			break
		}
		t.confirm(sp, b)
		b = nil
	}
	if n := sp.Len(); n > 0 {
		t.logger.Info("spooled spans wait for the next start", "records", n, "spool", t.spoolDir)
	}
	if err := sp.Close(); err != nil {
		return fmt.Errorf("close trace spool: %w", err)
	}
	return nil
}
