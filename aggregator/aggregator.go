// Package aggregator consumes the partitions this node owns from the bus,
// writes them to storage and acknowledges each message only after the write
// is committed, and serves its local data to queriers.
package aggregator

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/prometheus/prometheus/storage"

	"github.com/pharos-obs/pharos/internal/bus"
	"github.com/pharos-obs/pharos/internal/bus/codec"
	"github.com/pharos-obs/pharos/internal/tenant"
	mstore "github.com/pharos-obs/pharos/storage/metrics"
)

// Config tunes consumption.
type Config struct {
	MaxDecodedBytes int `yaml:"max_decoded_bytes"`
	SeriesCacheSize int `yaml:"series_cache_size"`
}

// RegisterFlags registers the options under -aggregator.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.IntVar(&c.MaxDecodedBytes, "aggregator.max-decoded-bytes", 64<<20, "Largest decompressed batch accepted from the bus; larger ones are rejected as invalid.")
	f.IntVar(&c.SeriesCacheSize, "aggregator.series-cache-size", 2_000_000, "Series whose label set and TSDB reference are cached (split over partitions); about 200 bytes each. Size it above the active series count.")
}

// Validate reports every invalid field.
func (c *Config) Validate() error {
	var errs []error
	if c.MaxDecodedBytes < 1<<10 {
		errs = append(errs, fmt.Errorf("aggregator.max_decoded_bytes: must be at least 1024, got %d", c.MaxDecodedBytes))
	}
	if c.SeriesCacheSize < 1 {
		errs = append(errs, fmt.Errorf("aggregator.series_cache_size: must be positive, got %d", c.SeriesCacheSize))
	}
	return errors.Join(errs...)
}

// MetricsStore is where decoded samples go. AppenderV2 transactions must be
// durable (WAL) once Commit returns: the aggregator acknowledges the bus
// messages right after. SetMetadata is called for every series that carries
// metadata and must be cheap when nothing changed. A tenant other than the
// default one (bus.DefaultTenant) has its series appended with the label
// mstore.TenantLabel set to its ID.
type MetricsStore interface {
	storage.AppendableV2
	SetMetadata(tenant, name string, m metadata.Metadata)
}

// Consumer reads one partition of a signal with a durable consumer and
// calls h for every fetched batch until ctx ends. bus.Conn.ConsumePartition fits.
type Consumer func(ctx context.Context, signal bus.Signal, partition int, durable string, h bus.BatchHandler) error

// DeadLetterFunc sets an unprocessable message aside and terminates it;
// bus.Conn.DeadLetter fits. On error the message is left unsettled.
type DeadLetterFunc func(ctx context.Context, d *bus.Delivery, signal bus.Signal, reason string) error

// PartitionReplica names what one durable consumer reads: replica Replica
// of partition Partition.
type PartitionReplica struct {
	Partition int
	Replica   int
}

// Aggregator is the consuming service. It runs one consumer per
// partition-replica it owns; SetOwned changes the set while it runs.
type Aggregator struct {
	services.Service

	cfg        Config
	partitions int
	consume    Consumer
	deadLetter DeadLetterFunc
	store      MetricsStore
	logger     *slog.Logger
	m          *metrics
	wg         sync.WaitGroup
	logs       *logsSignal   // nil: no logs
	traces     *tracesSignal // nil: no traces
	gate       MemoryGate    // nil: no memory limit
	decoders   decoderPool   // metrics decoders, shared by the partitions
	tl         *tenantLimits // nil: no per-tenant limits
	handoff    *bus.Handoff  // nil: every batch is decoded

	mu      sync.Mutex
	ctx     context.Context // the running context; nil before running and after stopping
	owned   []PartitionReplica
	running map[PartitionReplica]*partitionRun
}

type partitionRun struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// New returns an aggregator that owns replica 0 of every one of partitions
// metrics partitions — the single-node layout — until SetOwned says
// otherwise.
func New(cfg Config, partitions int, consume Consumer, deadLetter DeadLetterFunc, store MetricsStore, logger *slog.Logger, reg prometheus.Registerer) (*Aggregator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	a := &Aggregator{cfg: cfg, partitions: partitions, consume: consume, deadLetter: deadLetter, store: store, logger: logger,
		m: newMetrics(reg), running: map[PartitionReplica]*partitionRun{}, decoders: newDecoderPool(cfg.MaxDecodedBytes)}
	for p := range partitions {
		a.owned = append(a.owned, PartitionReplica{Partition: p})
	}
	a.Service = services.NewBasicService(nil, a.run, nil)
	return a, nil
}

// SetOwned sets the partition-replicas this aggregator consumes: consumers
// of new ones start, consumers of the others finish their current batch
// (committed and acked) and stop, handing the partition-replica over. It
// may be called before the service runs and from any goroutine.
func (a *Aggregator) SetOwned(owned []PartitionReplica) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.owned = append([]PartitionReplica(nil), owned...)
	a.updateHandoffLocked()
	a.updateShareLocked()
	a.reconcileLocked()
}

// WithHandoff takes the metrics batches an agent in this process hands
// off through h instead of decoding their messages (see bus.Handoff).
func (a *Aggregator) WithHandoff(h *bus.Handoff) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.handoff = h
	a.updateHandoffLocked()
}

// updateHandoffLocked tells the hand-off which partitions are consumed
// here, so that it keeps only their batches.
func (a *Aggregator) updateHandoffLocked() {
	if a.handoff == nil {
		return
	}
	ps := make([]int, 0, len(a.owned))
	for _, pr := range a.owned {
		ps = append(ps, pr.Partition)
	}
	a.handoff.SetWanted(ps, a.partitions)
}

// Owned returns the partition-replicas being consumed now.
func (a *Aggregator) Owned() []PartitionReplica {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]PartitionReplica, 0, len(a.running))
	for pr := range a.running {
		out = append(out, pr)
	}
	slices.SortFunc(out, func(x, y PartitionReplica) int {
		if x.Partition != y.Partition {
			return x.Partition - y.Partition
		}
		return x.Replica - y.Replica
	})
	return out
}

func (a *Aggregator) run(ctx context.Context) error {
	// The ackers outlive the consumers: they settle what these stored last.
	ackCtx, stopAckers := context.WithCancel(context.Background())
	defer stopAckers()
	ackers := a.ackers()
	for _, ak := range ackers {
		go ak.run(ackCtx)
	}
	a.mu.Lock()
	a.ctx = ctx
	a.reconcileLocked()
	a.mu.Unlock()
	<-ctx.Done()
	a.mu.Lock()
	a.ctx = nil
	a.mu.Unlock()
	// Each consumer returns after its current batch is committed and acked.
	a.wg.Wait()
	stopAckers()
	for _, ak := range ackers {
		<-ak.done
	}
	return nil
}

// ackers returns the durability ackers of the signals consumed.
func (a *Aggregator) ackers() []*durableAcker {
	var out []*durableAcker
	if a.logs != nil {
		out = append(out, a.logs.acker)
	}
	if a.traces != nil {
		out = append(out, a.traces.acker)
	}
	return out
}

func (a *Aggregator) reconcileLocked() {
	if a.ctx == nil || a.ctx.Err() != nil {
		return
	}
	want := make(map[PartitionReplica]bool, len(a.owned))
	for _, pr := range a.owned {
		want[pr] = true
	}
	for pr, r := range a.running {
		if !want[pr] {
			r.cancel()
			delete(a.running, pr)
			a.logger.Info("partition-replica released", "partition", pr.Partition, "replica", pr.Replica)
		}
	}
	for pr := range want {
		if _, ok := a.running[pr]; ok {
			continue
		}
		if pr.Partition < 0 || pr.Partition >= a.partitions || pr.Replica < 0 {
			a.logger.Error("ignoring partition-replica out of range", "partition", pr.Partition, "replica", pr.Replica, "partitions", a.partitions)
			continue
		}
		ctx, cancel := context.WithCancel(a.ctx)
		r := &partitionRun{cancel: cancel, done: make(chan struct{})}
		a.running[pr] = r
		a.wg.Add(1)
		go a.consumePartition(ctx, pr, r.done)
		a.logger.Info("partition-replica taken", "partition", pr.Partition, "replica", pr.Replica)
	}
	a.m.consumers.Set(float64(len(a.running)))
}

func (a *Aggregator) consumePartition(ctx context.Context, pr PartitionReplica, done chan struct{}) {
	defer a.wg.Done()
	defer close(done)
	var wg sync.WaitGroup
	wg.Go(func() {
		size := a.cfg.SeriesCacheSize / max(a.partitions, 1)
		w := &metricsWriter{a: a, partition: pr.Partition, cache: newRefCache(size)}
		if a.handoff != nil {
			w.local = newLocalRefs(size)
		}
		a.consumeSignal(ctx, pr, bus.SignalMetrics, w.handle)
	})
	if a.logs != nil {
		wg.Go(func() {
			w := &logsWriter{a: a, partition: pr.Partition, dec: codec.NewLogsDecoder(a.cfg.MaxDecodedBytes)}
			a.consumeSignal(ctx, pr, bus.SignalLogs, w.handle)
		})
	}
	if a.traces != nil {
		wg.Go(func() {
			w := &tracesWriter{a: a, pr: pr, dec: codec.NewTracesDecoder(a.cfg.MaxDecodedBytes)}
			a.consumeSignal(ctx, pr, bus.SignalTraces, w.handle)
		})
	}
	wg.Wait()
}

func (a *Aggregator) consumeSignal(ctx context.Context, pr PartitionReplica, signal bus.Signal, h bus.BatchHandler) {
	durable := bus.DurableName(signal, pr.Partition, pr.Replica)
	if err := a.consume(ctx, signal, pr.Partition, durable, a.gated(signal, h)); err != nil && ctx.Err() == nil {
		a.logger.Error("partition consumer stopped", "signal", signal, "partition", pr.Partition, "replica", pr.Replica, "err", err)
	}
}

// metricsWriter owns the decode state of one partition's consumer goroutine.
type metricsWriter struct {
	a         *Aggregator
	partition int
	dec       *codec.MetricsDecoder // borrowed from a.decoders during handle
	sb        labels.ScratchBuilder
	exemplars []exemplar.Exemplar
	good      []*bus.Delivery
	cache     *refCache
	local     *localRefs // for handed-off batches; nil without a hand-off
	key       []byte
	lb        *labels.Builder
}

// handle appends a fetched batch in one transaction and acks its messages
// after the commit. A message that cannot be decoded goes to the dead-letter
// stream (it would fail the same way on every redelivery) without holding up
// the others. A
// failed commit naks the batch for redelivery, which is safe because
// re-appending an identical sample is a no-op.
func (w *metricsWriter) handle(ctx context.Context, batch []*bus.Delivery) {
	a := w.a
	defer func() {
		if w.dec != nil {
			a.decoders.put(w.dec)
			w.dec = nil
		}
	}()
	start := time.Now()
	app := a.store.AppenderV2(ctx)
	w.good = w.good[:0]
	var appended int
	for _, d := range batch {
		var n int
		var err error
		if local, ok := w.takeLocal(d); ok {
			n, err = w.appendLocal(app, d, local)
			// The appender holds the stored label sets and the histograms,
			// not the slice.
			codec.ReleaseLocal(local)
		} else {
			n, err = w.appendMessage(app, d)
		}
		if err == nil {
			appended += n
			w.good = append(w.good, d)
			continue
		}
		a.m.invalidMessages.Inc()
		if dlErr := a.deadLetter(ctx, d, bus.SignalMetrics, err.Error()); dlErr != nil {
			// Not stored aside yet: let it come back rather than lose it.
			a.logger.Error("could not dead-letter undecodable message, will retry", "partition", w.partition, "stream_seq", d.StreamSeq, "err", dlErr)
			_ = d.Nak(5 * time.Second)
			continue
		}
		a.logger.Warn("undecodable message moved to the dead-letter stream", "partition", w.partition, "stream_seq", d.StreamSeq, "msg_id", d.MsgID, "err", err)
	}
	if err := app.Commit(); err != nil {
		a.m.batches.WithLabelValues("storage_error").Inc()
		a.logger.Error("commit failed, batch will be redelivered", "partition", w.partition, "err", err)
		for _, d := range w.good {
			_ = d.Nak(time.Second)
		}
		return
	}
	for _, d := range w.good {
		_ = d.Ack()
	}
	a.m.appended.Add(float64(appended))
	pred, idx, prev, miss := w.cache.takeStats()
	if w.local != nil {
		lp, li, lm := w.local.takeStats()
		pred, idx, miss = pred+lp, idx+li, miss+lm
	}
	a.m.cacheLookups[0].Add(float64(pred))
	a.m.cacheLookups[1].Add(float64(idx))
	a.m.cacheLookups[2].Add(float64(prev))
	a.m.cacheLookups[3].Add(float64(miss))
	a.m.batches.WithLabelValues("ok").Inc()
	a.m.commitDuration.Observe(time.Since(start).Seconds())
}

// tenantValue returns the value of the tenant label for d's series: ""
// for the default tenant, whose series must not carry the label either. A
// bad tenant cannot come from an agent, which validates it, so it is
// refused like an undecodable message rather than stored where another
// tenant could read it.
func tenantValue(d *bus.Delivery) (string, error) {
	if d.Tenant == "" || d.Tenant == bus.DefaultTenant {
		return "", nil
	}
	if err := tenant.Validate(d.Tenant); err != nil {
		return "", fmt.Errorf("%s header: %w", bus.HeaderTenant, err)
	}
	return d.Tenant, nil
}

// storedLabels returns the label set a series is stored under: with the
// tenant label set to tv, or without one for the default tenant ("").
func (w *metricsWriter) storedLabels(ls labels.Labels, tv string) labels.Labels {
	if tv == "" && !ls.Has(mstore.TenantLabel) {
		return ls
	}
	if w.lb == nil {
		w.lb = labels.NewBuilder(labels.EmptyLabels())
	}
	w.lb.Reset(ls)
	if tv == "" {
		w.lb.Del(mstore.TenantLabel)
	} else {
		w.lb.Set(mstore.TenantLabel, tv)
	}
	return w.lb.Labels()
}

func (w *metricsWriter) appendMessage(app storage.AppenderV2, d *bus.Delivery) (int, error) {
	if w.dec == nil {
		w.dec = w.a.decoders.get()
	}
	req, err := w.dec.Decode(d.Encoding, d.Data)
	if err != nil {
		return 0, err
	}
	tv, err := tenantValue(d)
	if err != nil {
		return 0, err
	}
	n := 0
	for i := range req.Timeseries {
		ts := &req.Timeseries[i]
		if len(ts.Samples) == 0 && len(ts.Histograms) == 0 {
			// A metric family's metadata (codec AppendFamilyMetadata),
			// or an empty series: nothing to store.
			if err := w.familyMetadata(d.Tenant, ts, req.Symbols); err != nil {
				return n, fmt.Errorf("series %d: %w", i, err)
			}
			continue
		}
		var ci int
		var cached bool
		if tv == "" {
			// A tenant's series must not match the default tenant's entry
			// of the same wire labels, so only these are predicted.
			ci, cached = w.cache.predicted(ts.LabelsRefs, req.Symbols)
		}
		var key []byte
		if !cached {
			key, err = seriesKey(w.key[:0], ts.LabelsRefs, req.Symbols)
			if err == nil && tv != "" {
				// One more length-prefixed string: keys of the default
				// tenant hold an even number of them, so none is equal.
				key = binary.AppendUvarint(key, uint64(len(tv)))
				key = append(key, tv...)
			}
			w.key = key
			if err != nil {
				return n, fmt.Errorf("series %d: %w", i, err)
			}
			ci, cached = w.cache.get(key)
		}
		var ls labels.Labels
		var ref storage.SeriesRef
		if cached {
			e := w.cache.entry(ci)
			ls, ref = e.ls, e.ref
		} else if ls, err = ts.ToLabels(&w.sb, req.Symbols); err != nil {
			// ScratchBuilder.Labels copies, so the labels do not alias the
			// decoder's buffer that the symbols point into.
			return n, fmt.Errorf("series %d: %w", i, err)
		} else {
			ls = w.storedLabels(ls, tv)
		}
		var opts storage.AppendV2Options
		if ts.Metadata.Type != 0 || ts.Metadata.HelpRef != 0 || ts.Metadata.UnitRef != 0 {
			md, err := ts.ToMetadata(req.Symbols)
			if err != nil {
				return n, fmt.Errorf("series %d: %w", i, err)
			}
			opts.Metadata = md
			// Agents send a series' metadata only when it changes and every
			// few minutes, so recording it each time it comes is cheap.
			w.a.store.SetMetadata(d.Tenant, ls.Get(labels.MetricName), md)
		}
		w.exemplars = w.exemplars[:0]
		for j := range ts.Exemplars {
			ex, err := ts.Exemplars[j].ToExemplar(&w.sb, req.Symbols)
			if err != nil {
				return n, fmt.Errorf("series %d exemplar %d: %w", i, j, err)
			}
			w.exemplars = append(w.exemplars, ex)
		}
		if len(w.exemplars) > 0 {
			opts.Exemplars = w.exemplars
		}
		first := ref
		for _, s := range ts.Samples {
			r, err := app.Append(ref, ls, s.StartTimestamp, s.Timestamp, s.Value, nil, nil, opts)
			if w.check(err) {
				ref = r
				n++
			}
		}
		for j := range ts.Histograms {
			hp := &ts.Histograms[j]
			var r storage.SeriesRef
			var err error
			if hp.IsFloatHistogram() {
				r, err = app.Append(ref, ls, hp.StartTimestamp, hp.Timestamp, 0, nil, hp.ToFloatHistogram(), opts)
			} else {
				r, err = app.Append(ref, ls, hp.StartTimestamp, hp.Timestamp, 0, hp.ToIntHistogram(), nil, opts)
			}
			if w.check(err) {
				ref = r
				n++
			}
		}
		switch {
		case !cached:
			w.cache.add(key, ls, ref)
		case ref != first:
			w.cache.entry(ci).ref = ref
		}
	}
	return n, nil
}

// familyMetadata records the metadata of a series that has no samples
// under the value of its metric name label. Such entries are few (a family
// a minute per target at most), so their labels are simply built.
func (w *metricsWriter) familyMetadata(tenant string, ts *writev2.TimeSeries, symbols []string) error {
	md, err := ts.ToMetadata(symbols)
	if err != nil {
		return err
	}
	ls, err := ts.ToLabels(&w.sb, symbols)
	if err != nil {
		return err
	}
	w.a.store.SetMetadata(tenant, ls.Get(labels.MetricName), md)
	return nil
}

// seriesKey appends the series' label names and values, each prefixed with
// its length (so no two label sets share a key, whatever bytes they hold),
// checking every symbol reference.
func seriesKey(dst []byte, refs []uint32, symbols []string) ([]byte, error) {
	if len(refs)%2 != 0 {
		return dst, fmt.Errorf("odd number of label refs (%d)", len(refs))
	}
	for _, r := range refs {
		if int(r) >= len(symbols) {
			return dst, fmt.Errorf("label ref %d outside of symbols table (size %d)", r, len(symbols))
		}
		dst = binary.AppendUvarint(dst, uint64(len(symbols[r])))
		dst = append(dst, symbols[r]...)
	}
	return dst, nil
}

// check counts append errors and reports whether the sample was stored. The
// TSDB's Append only validates and stages in memory (the WAL is written at
// Commit), so an error here is about the sample itself (too old, out of
// order, a different value at the same timestamp, an invalid histogram): it
// is counted and skipped, and never fails the batch, or a bad sample would be
// redelivered forever.
func (w *metricsWriter) check(err error) bool {
	if err == nil {
		return true
	}
	if _, err2 := (*storage.AppendPartialError)(nil).Handle(err); err2 == nil {
		w.a.m.rejected.WithLabelValues("exemplar").Inc()
		return true
	}
	switch {
	case w.a.countSeriesLimited(err):
		w.a.m.rejected.WithLabelValues("tenant_limit").Inc()
	case errors.Is(err, storage.ErrOutOfBounds), errors.Is(err, storage.ErrTooOldSample):
		w.a.m.rejected.WithLabelValues("too_old").Inc()
	case errors.Is(err, storage.ErrOutOfOrderSample):
		w.a.m.rejected.WithLabelValues("out_of_order").Inc()
	case errors.Is(err, storage.ErrDuplicateSampleForTimestamp):
		w.a.m.rejected.WithLabelValues("duplicate_timestamp").Inc()
	default:
		w.a.m.rejected.WithLabelValues("invalid").Inc()
	}
	return false
}

type metrics struct {
	cacheLookups    [4]prometheus.Counter // predicted, index, previous, miss
	consumers       prometheus.Gauge
	appended        prometheus.Counter
	rejected        *prometheus.CounterVec
	batches         *prometheus.CounterVec
	invalidMessages prometheus.Counter
	commitDuration  prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	m := &metrics{
		consumers: f.NewGauge(prometheus.GaugeOpts{
			Name: "pharos_aggregator_consumers", Help: "Partition-replicas this aggregator consumes now."}),
		appended: f.NewCounter(prometheus.CounterOpts{
			Name: "pharos_aggregator_samples_appended_total", Help: "Samples committed to the TSDB."}),
		rejected: f.NewCounterVec(prometheus.CounterOpts{
			Name: "pharos_aggregator_samples_rejected_total", Help: "Samples the TSDB refused, by reason."}, []string{"reason"}),
		batches: f.NewCounterVec(prometheus.CounterOpts{
			Name: "pharos_aggregator_batches_total", Help: "Fetched batches by outcome."}, []string{"result"}),
		invalidMessages: f.NewCounter(prometheus.CounterOpts{
			Name: "pharos_aggregator_invalid_messages_total", Help: "Bus messages that could not be decoded (moved to the dead-letter stream)."}),
		commitDuration: f.NewHistogram(prometheus.HistogramOpts{
			Name: "pharos_aggregator_batch_duration_seconds", Help: "Time to decode, append and commit one fetched batch.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 9)}),
	}
	lookups := f.NewCounterVec(prometheus.CounterOpts{
		Name: "pharos_aggregator_series_cache_lookups_total",
		Help: "Series looked up in the aggregator's series cache, by how they were found: predicted (next in arrival order), index, previous (older generation) or miss (new to the cache)."}, []string{"result"})
	for i, r := range []string{"predicted", "index", "previous", "miss"} {
		m.cacheLookups[i] = lookups.WithLabelValues(r)
	}
	for _, r := range []string{"too_old", "out_of_order", "duplicate_timestamp", "invalid", "exemplar"} {
		m.rejected.WithLabelValues(r)
	}
	return m
}

// decoderPool keeps a few metrics decoders for the partitions' writers to
// borrow while they handle a batch. A decoder keeps the buffers of the
// largest batch it decoded (the decompressed bytes and the request's
// series), so one per partition would hold that much per partition for
// nothing: only as many batches are decoded at once as there are CPUs.
// A channel rather than a sync.Pool, whose contents each GC cycle drops,
// so that the buffers are not grown again after every collection.
type decoderPool struct {
	free            chan *codec.MetricsDecoder
	maxDecodedBytes int
}

func newDecoderPool(maxDecodedBytes int) decoderPool {
	return decoderPool{free: make(chan *codec.MetricsDecoder, runtime.GOMAXPROCS(0)), maxDecodedBytes: maxDecodedBytes}
}

func (p decoderPool) get() *codec.MetricsDecoder {
	select {
	case d := <-p.free:
		return d
	default:
		return &codec.MetricsDecoder{MaxDecodedBytes: p.maxDecodedBytes}
	}
}

func (p decoderPool) put(d *codec.MetricsDecoder) {
	select {
	case p.free <- d:
	default:
	}
}
