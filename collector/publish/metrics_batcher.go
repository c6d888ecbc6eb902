package publish

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/storage"

	"github.com/pharos-obs/pharos/collector/spool"
	"github.com/pharos-obs/pharos/internal/bus"
	"github.com/pharos-obs/pharos/internal/bus/codec"
	"github.com/pharos-obs/pharos/internal/tenant"
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
//
// A batch is published once; if the bus refuses it (not connected, timeout,
// stream full) it goes to the spool (WithSpool), and so does every batch
// after it until the spool is replayed, in order, as the bus takes batches
// again. Samples are dropped only when the spool reaches its bound or
// fails, and every drop is counted in pharos_agent_dropped_samples_total
// and logged. See delivery.go.
type Metrics struct {
	services.Service

	cfg        Config
	comp       codec.Compression
	partitions []*partition // the default tenant's
	// tenantParts holds the partition batches of the other tenants, made
	// on a tenant's first sample: a batch, hence a message, holds one
	// tenant's samples, named in its Pharos-Tenant header.
	tenantsMu   sync.Mutex
	tenantParts map[string][]*partition
	publish     PublishFunc
	idPrefix    string
	seq         atomic.Uint64

	// stopMu guards closed and the queue's closing: commits hold it shared,
	// shutdown takes it exclusively, so no commit sends on a closed queue.
	stopMu sync.RWMutex
	closed bool
	queue  chan *batch

	// pubCtx ends publishing: at the drain deadline, or once the queue
	// is drained at shutdown.
	pubCtx    context.Context
	pubCancel context.CancelFunc
	workers   sync.WaitGroup // publishLoop
	bg        sync.WaitGroup // spoolLoop, replayLoop

	spoolCfg spool.Config
	spoolDir string  // empty: memBacklog
	backlog  backlog // opened in starting
	spoolCh  chan *batch
	// diskSpool is backlog when it is a disk spool, for SpoolStats, which
	// may run before starting has opened it.
	diskSpool atomic.Pointer[spool.Spool]

	// modeMu guards the choice between publishing directly and spooling:
	// spooling is set while the backlog holds batches, and toSpool counts
	// batches handed to the spooler and not yet synced.
	modeMu   sync.Mutex
	spooling bool
	toSpool  int

	// handoff, when set, also gets each batch's samples for an
	// aggregator in this process (WithHandoff).
	handoff *bus.Handoff

	// metaSent is the metric family metadata sent per tenant and family,
	// so that the same metadata from many targets goes out once per
	// codec.MetadataResend.
	metaMu   sync.Mutex
	metaSent map[string]sentMetadata

	appenders sync.Pool
	m         *metrics
	reg       prometheus.Registerer
	logger    *slog.Logger
}

// Option configures a Metrics publisher beyond its Config.
type Option func(*Metrics)

// WithSpool keeps the batches the bus does not take in a disk spool in dir
// (the agent uses <data.dir>/spool/metrics), bounded by cfg, and replays
// them in order when the bus takes batches again, after a restart too.
// Without it they wait in memory, at most cfg.QueueSize batches beyond
// the queue, and what is left at shutdown is dropped (and counted).
func WithSpool(cfg spool.Config, dir string) Option {
	return func(b *Metrics) { b.spoolCfg, b.spoolDir = cfg, dir }
}

// WithHandoff hands every batch's samples to an aggregator in the same
// process through h, besides publishing the batch (see bus.Handoff).
func WithHandoff(h *bus.Handoff) Option {
	return func(b *Metrics) { b.handoff = h }
}

type partition struct {
	mu     sync.Mutex
	enc    *codec.MetricsEncoder
	first  time.Time // when the oldest sample in enc arrived
	tenant string    // sent as Pharos-Tenant
}

type batch struct {
	msg     bus.OutMsg
	samples int
	flushed time.Time
}

// NewMetrics returns a batcher that spreads series over partitions and
// publishes through publish. agentID names this agent in message IDs, which
// JetStream uses to drop a retried publish it already stored. The spool
// (WithSpool) is opened when the service starts.
func NewMetrics(cfg Config, partitions int, agentID string, publish PublishFunc, logger *slog.Logger, reg prometheus.Registerer, opts ...Option) (*Metrics, error) {
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
		spoolCh:  make(chan *batch, cfg.Concurrency),
		m:        newMetrics(reg),
		reg:      reg,
		logger:   logger,
	}
	for _, o := range opts {
		o(b)
	}
	if b.spoolDir != "" {
		if err := b.spoolCfg.Validate(); err != nil {
			return nil, err
		}
	}
	b.partitions = b.newPartitions(bus.DefaultTenant, partitions)
	b.appenders.New = func() any { return &appender{b: b} }
	b.Service = services.NewBasicService(b.starting, b.running, b.stopping)
	return b, nil
}

func (b *Metrics) newPartitions(tenant string, n int) []*partition {
	ps := make([]*partition, n)
	for i := range ps {
		ps[i] = &partition{enc: codec.NewMetricsEncoder(b.comp), tenant: tenant}
		if b.handoff != nil {
			ps[i].enc.KeepLocal()
		}
	}
	return ps
}

// partitionsOf returns the partition batches of tenant ("" or
// bus.DefaultTenant is the default tenant).
func (b *Metrics) partitionsOf(tenant string) []*partition {
	if tenant == "" || tenant == bus.DefaultTenant {
		return b.partitions
	}
	b.tenantsMu.Lock()
	defer b.tenantsMu.Unlock()
	ps, ok := b.tenantParts[tenant]
	if !ok {
		if b.tenantParts == nil {
			b.tenantParts = map[string][]*partition{}
		}
		ps = b.newPartitions(strings.Clone(tenant), len(b.partitions))
		b.tenantParts[ps[0].tenant] = ps
	}
	return ps
}

// allPartitions returns the partition batches of every tenant.
func (b *Metrics) allPartitions() [][]*partition {
	b.tenantsMu.Lock()
	defer b.tenantsMu.Unlock()
	out := make([][]*partition, 0, 1+len(b.tenantParts))
	out = append(out, b.partitions)
	for _, ps := range b.tenantParts {
		out = append(out, ps)
	}
	return out
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

func (b *Metrics) starting(context.Context) error {
	if b.spoolDir == "" {
		b.backlog = newMemBacklog(b.cfg.QueueSize, b.onSpoolDrop(reasonQueueFull))
	} else {
		sp, err := spool.Open(b.spoolCfg, b.spoolDir, b.onSpoolDrop(reasonSpoolFull), b.logger, wrapSignal(b.reg, bus.SignalMetrics))
		if err != nil {
			return err
		}
		b.backlog = sp
		b.diskSpool.Store(sp)
	}
	if b.backlog.Len() > 0 {
		// Spooled before a restart (the spool logged it): new batches
		// queue up behind them.
		b.spooling = true
		b.m.spooling.Set(1)
	}
	// Publishing outlives the service context: on shutdown the queue is
	// drained until the drain timeout, then pubCancel stops it.
	b.pubCtx, b.pubCancel = context.WithCancel(context.Background())
	for range b.cfg.Concurrency {
		b.workers.Add(1)
		go b.publishLoop()
	}
	b.bg.Add(2)
	go b.spoolLoop()
	go b.replayLoop()
	return nil
}

// SpoolStats reports the disk spool (WithSpool) once the service has
// opened it; ok is false before, and without one. It may be called from
// any goroutine.
func (b *Metrics) SpoolStats() (st spool.Stats, ok bool) {
	sp := b.diskSpool.Load()
	if sp == nil {
		return spool.Stats{}, false
	}
	return sp.Stats(), true
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

// stopping flushes the partial batches and publishes what is queued until
// the drain timeout; what is still unpublished then goes to the spool, to
// be replayed at the next start.
func (b *Metrics) stopping(_ error) error {
	// The deadline covers the flush too: enqueueing blocks while the queue
	// is full, and cancelling publishing is what empties it into the spool
	// when the bus hangs.
	deadline := time.AfterFunc(b.cfg.DrainTimeout, b.pubCancel)
	defer deadline.Stop()
	b.stopMu.Lock()
	b.closed = true
	b.flushOlderThan(time.Time{}) // everything
	close(b.queue)
	b.stopMu.Unlock()

	b.workers.Wait()
	// The replayer stops too: what it has not confirmed stays spooled.
	b.pubCancel()
	close(b.spoolCh)
	b.bg.Wait()

	if mem, ok := b.backlog.(*memBacklog); ok {
		if records, samples := mem.held(); records > 0 {
			b.m.dropped.WithLabelValues(reasonShutdown).Add(float64(samples))
			b.logger.Warn("dropping samples: bus did not take them before shutdown and no spool is configured",
				"reason", reasonShutdown, "batches", records, "samples", samples)
		}
	} else if n := b.backlog.Len(); n > 0 {
		b.logger.Info("spooled batches wait for the next start", "batches", n, "spool", b.spoolDir)
	}
	if err := b.backlog.Close(); err != nil {
		return fmt.Errorf("close spool: %w", err)
	}
	return nil
}

// flushOlderThan flushes every partition whose oldest sample arrived before
// cutoff; the zero time flushes all non-empty partitions.
func (b *Metrics) flushOlderThan(cutoff time.Time) {
	for _, ps := range b.allPartitions() {
		for i, p := range ps {
			p.mu.Lock()
			var bt *batch
			if p.enc.Series() > 0 && (cutoff.IsZero() || p.first.Before(cutoff)) {
				bt = b.takeLocked(i, p)
			}
			p.mu.Unlock()
			if bt != nil {
				b.enqueue(bt)
			}
		}
	}
}

// takeLocked encodes the partition's batch and resets it. Encoding errors
// cannot come from valid samples, so they are counted as drops.
func (b *Metrics) takeLocked(i int, p *partition) *batch {
	n := p.enc.Samples()
	data, err := p.enc.Encode(nil)
	local := p.enc.TakeLocal()
	p.enc.Reset()
	if err != nil {
		codec.ReleaseLocal(local)
		b.m.dropped.WithLabelValues(reasonEncode).Add(float64(n))
		b.logger.Error("encode batch", "partition", i, "samples", n, "err", err)
		return nil
	}
	bt := &batch{
		msg: bus.OutMsg{
			Signal:    bus.SignalMetrics,
			Partition: i,
			Tenant:    p.tenant,
			Encoding:  p.enc.Encoding(),
			ID:        b.idPrefix + strconv.FormatUint(b.seq.Add(1), 10),
			Data:      data,
		},
		samples: n,
		flushed: time.Now(),
	}
	switch {
	case b.handoff != nil && b.handoff.Wants(i):
		// Before publishing: the delivery may come before the PubAck.
		b.handoff.Put(bt.msg.ID, local)
	case local != nil:
		// Another process consumes this partition.
		codec.ReleaseLocal(local)
	}
	return bt
}

func (b *Metrics) enqueue(bt *batch) {
	b.m.queued.Inc()
	b.queue <- bt
}

// AppenderV2 implements storage.AppendableV2. The transaction's samples
// belong to the tenant ctx carries (tenant.WithContext; the default
// tenant when none): the push receivers put the request's tenant there,
// the scraper a target's __tenant__.
func (b *Metrics) AppenderV2(ctx context.Context) storage.AppenderV2 {
	a := b.appenders.Get().(*appender)
	a.tenant = tenant.FromContext(ctx)
	return a
}

// appender buffers one transaction. The scrape loop keeps label sets alive in
// its cache, so holding them until Commit copies nothing; exemplar slices
// and histograms may be reused by the caller and are copied.
type appender struct {
	b      *Metrics
	tenant string
	items  []codec.Sample
	parts  []uint32
	order  []int32
	count  []int32
	metas  []familyMetadata
}

type familyMetadata struct {
	family string
	meta   metadata.Metadata
}

type sentMetadata struct {
	meta metadata.Metadata
	at   int64 // unix seconds
}

// maxMetaSent bounds Metrics.metaSent; past it the record starts afresh,
// which only sends some metadata again.
const maxMetaSent = 1 << 16

// AppendFamilyMetadata queues a metric family's metadata with the
// transaction (the scraper sends its targets' metadata so, instead of with
// every sample). Commit sends it unless the same metadata went out for the
// tenant within codec.MetadataResend.
func (a *appender) AppendFamilyMetadata(family string, m metadata.Metadata) {
	a.metas = append(a.metas, familyMetadata{family: family, meta: m})
}

// dueMetadata keeps the entries of metas not sent lately, recording them
// as sent.
func (b *Metrics) dueMetadata(tenant string, metas []familyMetadata, now int64) []familyMetadata {
	b.metaMu.Lock()
	defer b.metaMu.Unlock()
	if b.metaSent == nil || len(b.metaSent) > maxMetaSent {
		b.metaSent = map[string]sentMetadata{}
	}
	due := metas[:0]
	for _, m := range metas {
		key := tenant + "\xff" + m.family
		if old, ok := b.metaSent[key]; ok && old.meta == m.meta && now-old.at < codec.MetadataResend {
			continue
		}
		b.metaSent[key] = sentMetadata{meta: m.meta, at: now}
		due = append(due, m)
	}
	return due
}

func (a *appender) Append(ref storage.SeriesRef, ls labels.Labels, st, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, opts storage.AppendV2Options) (storage.SeriesRef, error) {
	r := uint64(ref)
	if r == 0 {
		r = seriesRef(ls)
	}
	s := codec.Sample{Labels: ls, Ref: r, ST: st, T: t, V: v, Meta: opts.Metadata}
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
	if len(a.items) == 0 && len(a.metas) == 0 {
		return nil
	}
	b := a.b
	b.stopMu.RLock()
	defer b.stopMu.RUnlock()
	if b.closed {
		b.m.dropped.WithLabelValues(reasonShutdown).Add(float64(len(a.items)))
		return ErrStopped
	}
	a.sortByPartition()
	var ready []*batch
	now := time.Now()
	parts := b.partitionsOf(a.tenant)
	for lo := 0; lo < len(a.order); {
		pi := a.parts[a.order[lo]]
		p := parts[pi]
		p.mu.Lock()
		if p.enc.Series() == 0 {
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
	if len(a.metas) > 0 {
		for _, m := range b.dueMetadata(a.tenant, a.metas, now.Unix()) {
			pi := Partition(labels.FromStrings(labels.MetricName, m.family), len(parts))
			p := parts[pi]
			p.mu.Lock()
			if p.enc.Series() == 0 {
				p.first = now
			}
			p.enc.AppendFamilyMetadata(m.family, m.meta)
			p.mu.Unlock()
		}
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
	clear(a.metas)
	a.metas = a.metas[:0]
	a.tenant = ""
	a.b.appenders.Put(a)
}

func resize(s []int32, n int) []int32 {
	if cap(s) < n {
		return make([]int32, n)
	}
	return s[:n]
}
