package publish

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pharos-obs/pharos/collector/spool"
	"github.com/pharos-obs/pharos/internal/bus"
)

// Delivery.
//
// Publishers (cfg.Concurrency goroutines) take batches from the queue and
// publish them, one attempt each. A batch the bus refuses goes to the
// backlog (the disk spool) instead of being retried in memory, and so does
// every later batch while the backlog holds any, so that they go out in the
// order they were flushed. One spooler goroutine owns the backlog's writing
// side: it writes whatever batches are waiting and syncs once (group
// commit). One replayer goroutine publishes from the backlog's head, up to
// cfg.Concurrency batches at once (never two of one partition, which keeps
// each partition's order), confirms each once JetStream has acknowledged it
// and everything before it, and backs off while the bus still fails. When
// the backlog is empty again, publishers go back to publishing directly.
//
// Goroutines: publishLoop ×Concurrency (owned by workers), spoolLoop and
// replayLoop (owned by bg); all end in stopping. Lock order: stopMu, then
// a partition's mu; modeMu, then the backlog's own locks.

const (
	replayMinBackoff = 50 * time.Millisecond
	replayMaxBackoff = 5 * time.Second
	// replayLogEvery limits the warnings of a replay that keeps failing.
	replayLogEvery = 30 * time.Second
)

// Reasons for pharos_agent_dropped_samples_total.
const (
	reasonShutdown   = "shutdown"    // no spool: what was left in memory at shutdown
	reasonSpoolFull  = "spool_full"  // the spool dropped its oldest segments to stay within its bound
	reasonSpoolError = "spool_error" // the spool could not store a batch, or gave back an unreadable one
	reasonQueueFull  = "queue_full"  // no spool: the in-memory backlog dropped its oldest batch
	reasonTooLarge   = "too_large"   // the bus refuses the batch for its size, permanently
	reasonEncode     = "encode"
)

func (b *Metrics) publishLoop() {
	defer b.workers.Done()
	for bt := range b.queue {
		b.m.queued.Dec()
		b.deliver(bt)
	}
}

// deliver publishes bt once, or hands it to the spooler.
func (b *Metrics) deliver(bt *batch) {
	if b.routeToSpool() {
		b.spoolCh <- bt
		return
	}
	err := b.publish(b.pubCtx, &bt.msg)
	if err == nil {
		b.observePublished(bt.samples, len(bt.msg.Data), bt.flushed)
		return
	}
	if errors.Is(err, bus.ErrMessageTooLarge) {
		b.drop(reasonTooLarge, bt.samples, "batch refused by the bus for its size", err)
		return
	}
	b.m.retries.Inc()
	b.beginSpooling(err)
	b.spoolCh <- bt
}

// routeToSpool decides, and records, that a batch goes to the spool: while
// the spool holds batches (order), and after the drain deadline.
func (b *Metrics) routeToSpool() bool {
	b.modeMu.Lock()
	defer b.modeMu.Unlock()
	if b.spooling || b.pubCtx.Err() != nil {
		b.toSpool++
		return true
	}
	return false
}

func (b *Metrics) beginSpooling(err error) {
	b.modeMu.Lock()
	b.toSpool++
	begin := !b.spooling && b.pubCtx.Err() == nil
	if begin {
		b.spooling = true
		b.m.spooling.Set(1)
	}
	b.modeMu.Unlock()
	if begin {
		b.logger.Warn("bus not accepting batches, spooling them until it does", "err", err, "spool", b.backlogName())
	}
}

// endSpooling goes back to publishing directly once every spooled batch is
// confirmed and none is on its way to the spool.
func (b *Metrics) endSpooling() {
	b.modeMu.Lock()
	end := b.spooling && b.toSpool == 0 && b.backlog.Len() == 0
	if end {
		b.spooling = false
		b.m.spooling.Set(0)
	}
	b.modeMu.Unlock()
	if end {
		b.logger.Info("spool replayed, publishing directly again")
	}
}

func (b *Metrics) backlogName() string {
	if b.spoolDir == "" {
		return "memory"
	}
	return b.spoolDir
}

func (b *Metrics) observePublished(samples, bytes int, flushed time.Time) {
	b.m.published.Add(float64(samples))
	b.m.batches.Inc()
	b.m.publishedBytes.Add(float64(bytes))
	b.m.batchSamples.Observe(float64(samples))
	b.m.publishLatency.Observe(time.Since(flushed).Seconds())
}

// drop counts and logs samples given up on.
func (b *Metrics) drop(reason string, samples int, msg string, err error) {
	b.m.dropped.WithLabelValues(reason).Add(float64(samples))
	b.logger.Warn("dropping samples: "+msg, "reason", reason, "samples", samples, "err", err)
}

// spoolLoop writes the batches handed to it to the backlog. It writes all
// that are waiting, then syncs once, so a burst (an outage beginning, a
// shutdown) costs one fsync rather than one per batch.
func (b *Metrics) spoolLoop() {
	defer b.bg.Done()
	var buf []byte
	for bt := range b.spoolCh {
		buf = b.writeBacklog(buf, bt)
		n := 1
	more:
		for {
			select {
			case bt, ok := <-b.spoolCh:
				if !ok {
					break more
				}
				buf = b.writeBacklog(buf, bt)
				n++
			default:
				break more
			}
		}
		if err := b.backlog.Sync(); err != nil {
			// The batches stay readable and are replayed from memory; only
			// a machine crash before the next sync could lose them.
			b.logger.Error("spool sync failed", "batches", n, "err", err)
		}
		b.modeMu.Lock()
		b.toSpool -= n
		b.modeMu.Unlock()
	}
}

func (b *Metrics) writeBacklog(buf []byte, bt *batch) []byte {
	buf = appendRecord(buf[:0], bt)
	if err := b.backlog.Write(buf, bt.samples); err != nil {
		b.drop(reasonSpoolError, bt.samples, "the spool could not store a batch", err)
	}
	return buf
}

// onSpoolDrop counts what the backlog dropped to stay within its bound;
// the spool logs it.
func (b *Metrics) onSpoolDrop(reason string) spool.DropFunc {
	return func(records, samples int) {
		b.m.dropped.WithLabelValues(reason).Add(float64(samples))
		if reason != reasonSpoolFull {
			b.logger.Warn("dropping samples: backlog full, dropped its oldest batches", "reason", reason, "batches", records, "samples", samples)
		}
	}
}

// replaySlot is one batch of a replay window.
type replaySlot struct {
	buf []byte // owns the record's bytes between windows
	seq uint64
	rec spooled
	err error
}

func (b *Metrics) replayLoop() {
	defer b.bg.Done()
	slots := make([]replaySlot, b.cfg.Concurrency)
	delay := replayMinBackoff
	var failures int
	var lastLog time.Time
	for b.pubCtx.Err() == nil {
		n, err := b.replayWindow(slots)
		switch {
		case b.pubCtx.Err() != nil:
			return
		case err != nil:
			failures++
			if time.Since(lastLog) >= replayLogEvery {
				lastLog = time.Now()
				b.logger.Warn("replaying spool: bus still refuses batches, backing off",
					"attempts", failures, "spooled_batches", b.backlog.Len(), "err", err)
			}
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-b.pubCtx.Done():
				t.Stop()
				return
			}
			delay = min(delay*2, replayMaxBackoff)
		case n == 0:
			delay = replayMinBackoff
			if failures > 0 {
				b.logger.Info("bus accepting batches again", "failed_attempts", failures)
				failures = 0
			}
			b.endSpooling()
			select {
			case <-b.backlog.Notify():
			case <-b.pubCtx.Done():
				return
			}
		default:
			delay = replayMinBackoff
		}
	}
}

// replayWindow publishes the oldest spooled batches, at most one per
// partition and len(slots) in all, at once, and confirms those that the
// bus acknowledged up to the first failure. It returns how many it
// confirmed and the first failure.
func (b *Metrics) replayWindow(slots []replaySlot) (int, error) {
	// Batches after a failed one in the last window may have gone out;
	// publishing them again is harmless (same message IDs: JetStream
	// drops the copy).
	b.backlog.Rewind()
	n := 0
	var readErr error
	for n < len(slots) {
		s := &slots[n]
		rec, err := b.backlog.Read(s.buf[:0])
		if err != nil {
			if !errors.Is(err, spool.ErrEmpty) {
				readErr = fmt.Errorf("read spool: %w", err)
			}
			break
		}
		s.buf, s.seq, s.err = rec.Data, rec.Seq, nil
		if err := parseRecord(rec.Data, &s.rec); err != nil {
			if n > 0 {
				break // the head of the next window
			}
			// Nothing can publish it: drop it, or it would block the
			// spool forever.
			b.drop(reasonSpoolError, rec.Samples, "unreadable batch in the spool", err)
			if err := b.backlog.Confirm(rec.Seq); err != nil {
				return 0, fmt.Errorf("confirm spool record: %w", err)
			}
			continue
		}
		if p := s.rec.msg.Partition; p >= len(b.partitions) {
			// Spooled before a change of nats.partitions: any aggregator
			// can store any series, so publish it to an existing one.
			s.rec.msg.Partition = p % len(b.partitions)
		}
		if samePartition(slots[:n], s.rec.msg.Partition) {
			break
		}
		n++
	}
	if n == 0 {
		return 0, readErr
	}

	var wg sync.WaitGroup
	for i := 1; i < n; i++ {
		wg.Go(func() { slots[i].err = b.publish(b.pubCtx, &slots[i].rec.msg) })
	}
	slots[0].err = b.publish(b.pubCtx, &slots[0].rec.msg)
	wg.Wait()

	done := 0
	var firstErr error
	for i := range slots[:n] {
		s := &slots[i]
		switch {
		case s.err == nil:
			if firstErr == nil {
				b.observePublished(s.rec.samples, len(s.rec.msg.Data), time.Unix(0, s.rec.flushed))
			}
		case errors.Is(s.err, bus.ErrMessageTooLarge):
			if firstErr == nil {
				b.drop(reasonTooLarge, s.rec.samples, "batch refused by the bus for its size", s.err)
			}
		default:
			b.m.retries.Inc()
			if firstErr == nil {
				firstErr = s.err
			}
		}
		if firstErr == nil {
			done = i + 1
		}
	}
	if done > 0 {
		if err := b.backlog.Confirm(slots[done-1].seq); err != nil {
			// They were delivered; a restart replays them, which JetStream
			// or the TSDB de-duplicates.
			b.logger.Error("could not record replayed batches as delivered", "err", err)
		}
	}
	if firstErr != nil {
		return done, firstErr
	}
	return done, readErr
}

func samePartition(slots []replaySlot, p int) bool {
	for i := range slots {
		if slots[i].rec.msg.Partition == p {
			return true
		}
	}
	return false
}

// wrapSignal labels the spool's metrics, so that the spools of other
// signals can share the registry.
func wrapSignal(reg prometheus.Registerer, s bus.Signal) prometheus.Registerer {
	if reg == nil {
		return nil
	}
	return prometheus.WrapRegistererWith(prometheus.Labels{"signal": string(s)}, reg)
}
