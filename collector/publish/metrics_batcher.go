package publish

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"

	"github.com/pharos-obs/pharos/internal/bus"
	"github.com/pharos-obs/pharos/internal/bus/codec"
)

// ErrStopped is returned by appends that reach a batcher after shutdown began.
var ErrStopped = errors.New("publisher is stopping")

// PublishFunc publishes one batch and returns once the bus has acknowledged
// it. It must not retain m.Data after returning. bus.Conn.Publish fits.
type PublishFunc func(ctx context.Context, m *bus.OutMsg) error

// Metrics batches samples per partition and publishes the batches. It is a
// storage.AppendableV2, so the Prometheus scrape manager (and the push
// receivers) write into it as they would into a TSDB; an appender's Commit
// hands its samples to the partition batches, and Rollback drops them.
type Metrics struct {
	services.Service

	cfg        Config
	comp       codec.Compression
	partitions []*partition
	publish    PublishFunc
	idPrefix   string
	seq        atomic.Uint64

	// stopMu guards closed and the queue's closing: commits hold it shared,
	// shutdown takes it exclusively, so no commit sends on a closed queue.
	stopMu sync.RWMutex
	closed bool
	queue  chan *batch

	pubCtx    context.Context
	pubCancel context.CancelFunc
	pubWG     sync.WaitGroup

	appenders sync.Pool
	m         *metrics
	logger    *slog.Logger
}

type partition struct {
	mu    sync.Mutex
	enc   *codec.MetricsEncoder
	first time.Time // when the oldest sample in enc arrived
}

type batch struct {
	msg     bus.OutMsg
	samples int
	flushed time.Time
}

// NewMetrics returns a batcher that spreads series over partitions and
// publishes through publish. agentID names this agent in message IDs, which
// JetStream uses to drop a retried publish it already stored.
func NewMetrics(cfg Config, partitions int, agentID string, publish PublishFunc, logger *slog.Logger, reg prometheus.Registerer) (*Metrics, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if partitions < 1 {
		return nil, fmt.Errorf("partitions must be at least 1, got %d", partitions)
	}
	comp, _ := codec.ParseCompression(cfg.Compression)
	b := &Metrics{
		cfg:     cfg,
		comp:    comp,
		publish: publish,
		// A per-start nonce keeps IDs unique across restarts of one agent,
		// which would otherwise reuse sequence numbers inside the dedup window.
		idPrefix: agentID + "-" + strconv.FormatInt(time.Now().UnixNano(), 36) + "-",
		queue:    make(chan *batch, cfg.QueueSize),
		m:        newMetrics(reg),
		logger:   logger,
	}
	for range partitions {
		b.partitions = append(b.partitions, &partition{enc: codec.NewMetricsEncoder(comp)})
	}
	b.appenders.New = func() any { return &appender{b: b} }
	b.Service = services.NewBasicService(b.starting, b.running, b.stopping)
	return b, nil
}

// Partition returns the partition of a series: its label-set hash modulo the
// partition count, the same on every agent.
func Partition(l labels.Labels, partitions int) int {
	return int(seriesRef(l) % uint64(partitions))
}

func seriesRef(l labels.Labels) uint64 {
	h := l.Hash()
	if h == 0 {
		h = 1 // 0 means "no reference" to callers
	}
	return h
}

func (b *Metrics) starting(ctx context.Context) error {
	// Publishers outlive the service context: on shutdown they drain the
	// queue until the drain timeout, then pubCancel stops them.
	b.pubCtx, b.pubCancel = context.WithCancel(context.Background())
	for range b.cfg.Concurrency {
		b.pubWG.Add(1)
		go b.publishLoop()
	}
	return nil
}

func (b *Metrics) running(ctx context.Context) error {
	t := time.NewTicker(b.cfg.FlushInterval / 4)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-t.C:
			b.flushOlderThan(now.Add(-b.cfg.FlushInterval))
		}
	}
}

func (b *Metrics) stopping(_ error) error {
	b.stopMu.Lock()
	b.closed = true
	b.flushOlderThan(time.Time{}) // everything
	close(b.queue)
	b.stopMu.Unlock()

	done := make(chan struct{})
	go func() { b.pubWG.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(b.cfg.DrainTimeout):
		b.pubCancel()
		<-done
	}
	b.pubCancel()
	return nil
}

// flushOlderThan flushes every partition whose oldest sample arrived before
// cutoff; the zero time flushes all non-empty partitions.
func (b *Metrics) flushOlderThan(cutoff time.Time) {
	for i, p := range b.partitions {
		p.mu.Lock()
		var bt *batch
		if p.enc.Samples() > 0 && (cutoff.IsZero() || p.first.Before(cutoff)) {
			bt = b.takeLocked(i, p)
		}
		p.mu.Unlock()
		if bt != nil {
			b.enqueue(bt)
		}
	}
}

// takeLocked encodes the partition's batch and resets it. Encoding errors
// cannot come from valid samples, so they are counted as drops.
func (b *Metrics) takeLocked(i int, p *partition) *batch {
	n := p.enc.Samples()
	data, err := p.enc.Encode(nil)
	p.enc.Reset()
	if err != nil {
		b.m.dropped.WithLabelValues("encode").Add(float64(n))
		b.logger.Error("encode batch", "partition", i, "samples", n, "err", err)
		return nil
	}
	return &batch{
		msg: bus.OutMsg{
			Signal:    bus.SignalMetrics,
			Partition: i,
			Tenant:    bus.DefaultTenant,
			Encoding:  p.enc.Encoding(),
			ID:        b.idPrefix + strconv.FormatUint(b.seq.Add(1), 10),
			Data:      data,
		},
		samples: n,
		flushed: time.Now(),
	}
}

func (b *Metrics) enqueue(bt *batch) {
	b.m.queued.Inc()
	b.queue <- bt
}

func (b *Metrics) publishLoop() {
	defer b.pubWG.Done()
	for bt := range b.queue {
		b.m.queued.Dec()
		b.publishOne(bt)
	}
}

// publishOne retries a batch with capped exponential backoff until the bus
// acknowledges it or the drain deadline cancels the publishers.
func (b *Metrics) publishOne(bt *batch) {
	backoff := 50 * time.Millisecond
	for attempt := 0; ; attempt++ {
		err := b.publish(b.pubCtx, &bt.msg)
		if err == nil {
			b.m.published.Add(float64(bt.samples))
			b.m.batches.Inc()
			b.m.publishedBytes.Add(float64(len(bt.msg.Data)))
			b.m.batchSamples.Observe(float64(bt.samples))
			b.m.publishLatency.Observe(time.Since(bt.flushed).Seconds())
			return
		}
		if b.pubCtx.Err() != nil {
			b.m.dropped.WithLabelValues("shutdown").Add(float64(bt.samples))
			b.logger.Warn("dropping batch at shutdown: bus did not acknowledge it within the drain timeout",
				"partition", bt.msg.Partition, "samples", bt.samples, "id", bt.msg.ID, "err", err)
			return
		}
		b.m.retries.Inc()
		if attempt == 0 || attempt%20 == 0 {
			b.logger.Warn("publish failed, retrying", "partition", bt.msg.Partition, "samples", bt.samples, "attempt", attempt+1, "err", err)
		}
		select {
		case <-time.After(backoff):
		case <-b.pubCtx.Done():
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// AppenderV2 implements storage.AppendableV2.
func (b *Metrics) AppenderV2(_ context.Context) storage.AppenderV2 {
	return b.appenders.Get().(*appender)
}

// appender buffers one transaction. The scrape loop keeps label sets alive in
// its cache, so holding them until Commit copies nothing; exemplar slices
// and histograms may be reused by the caller and are copied.
type appender struct {
	b     *Metrics
	items []codec.Sample
	parts []uint32
	order []int32
	count []int32
}

func (a *appender) Append(ref storage.SeriesRef, ls labels.Labels, st, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, opts storage.AppendV2Options) (storage.SeriesRef, error) {
	r := uint64(ref)
	if r == 0 {
		r = seriesRef(ls)
	}
	s := codec.Sample{Labels: ls, ST: st, T: t, V: v, Meta: opts.Metadata}
	if h != nil {
		s.H = h.Copy()
	}
	if fh != nil {
		s.FH = fh.Copy()
	}
	if len(opts.Exemplars) > 0 {
		s.Exemplars = append([]exemplar.Exemplar(nil), opts.Exemplars...)
	}
	a.items = append(a.items, s)
	a.parts = append(a.parts, uint32(r%uint64(len(a.b.partitions))))
	return storage.SeriesRef(r), nil
}

func (a *appender) Commit() error {
	defer a.release()
	if len(a.items) == 0 {
		return nil
	}
	b := a.b
	b.stopMu.RLock()
	defer b.stopMu.RUnlock()
	if b.closed {
		b.m.dropped.WithLabelValues("shutdown").Add(float64(len(a.items)))
		return ErrStopped
	}
	a.sortByPartition()
	var ready []*batch
	now := time.Now()
	for lo := 0; lo < len(a.order); {
		pi := a.parts[a.order[lo]]
		p := b.partitions[pi]
		p.mu.Lock()
		if p.enc.Samples() == 0 {
			p.first = now
		}
		for ; lo < len(a.order) && a.parts[a.order[lo]] == pi; lo++ {
			p.enc.Append(&a.items[a.order[lo]])
			if p.enc.Samples() >= b.cfg.MaxBatchSamples {
				if bt := b.takeLocked(int(pi), p); bt != nil {
					ready = append(ready, bt)
				}
				p.first = now
			}
		}
		p.mu.Unlock()
	}
	b.m.appended.Add(float64(len(a.items)))
	for _, bt := range ready {
		b.enqueue(bt)
	}
	return nil
}

// sortByPartition fills a.order with item indexes grouped by partition
// (a counting sort: O(items + partitions), stable within a partition).
func (a *appender) sortByPartition() {
	np := len(a.b.partitions)
	a.count = resize(a.count, np+1)
	clear(a.count)
	for _, p := range a.parts {
		a.count[p+1]++
	}
	for i := 1; i <= np; i++ {
		a.count[i] += a.count[i-1]
	}
	a.order = resize(a.order, len(a.parts))
	for i, p := range a.parts {
		a.order[a.count[p]] = int32(i)
		a.count[p]++
	}
}

func (a *appender) Rollback() error {
	a.b.m.rolledBack.Add(float64(len(a.items)))
	a.release()
	return nil
}

func (a *appender) release() {
	clear(a.items) // drop label and histogram references before pooling
	a.items = a.items[:0]
	a.parts = a.parts[:0]
	a.b.appenders.Put(a)
}

func resize(s []int32, n int) []int32 {
	if cap(s) < n {
		return make([]int32, n)
	}
	return s[:n]
}
