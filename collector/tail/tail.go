// Package tail is the agent's log-file tailer: it follows the files that
// match a set of globs (by default the kubelet's pod logs), turns their
// lines into entries and hands them in batches to a Sink, which publishes
// them to the bus.
//
// It does not lose lines to rotation or restarts, and it says so when the
// operating system makes a loss unavoidable:
//
//   - A file is identified by device, inode and a fingerprint of its head,
//     so that a reused inode is not taken for the file that had it before.
//   - A file renamed or deleted (rotation by rename and create) is read
//     through its open descriptor to its end before the new file at its
//     path, and released only once its last lines are acknowledged.
//   - A file truncated in place (copytruncate) is noticed by its size and
//     by the bytes before the read offset changing; what was not read yet
//     is read from the copy when one is found next to it. Bytes that are
//     gone for good (written between the copy and the truncation, or in a
//     file deleted before it was read) are reported per file and byte
//     range: pharos_tail_lost_bytes_total{reason} and a warning.
//   - Read positions, keyed by identity, are saved atomically, and only
//     ever advance past lines the Sink has acknowledged: a restart resumes
//     exactly where the acknowledged lines end. Positions are saved every
//     positions_sync_period and at shutdown; after a crash up to that much
//     is sent again (at-least-once).
//
// Concurrency: one goroutine (the service's running function) owns every
// file and the batch being filled; a second calls the Sink, one batch at a
// time, so reading goes on while a batch is in flight. Memory is bounded by
// two batches, one read buffer, and per open file a line and the pending
// multi-line entries (each at most max_line_bytes).
package tail

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/grafana/dskit/backoff"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/pharos-obs/pharos/collector/tail/logparse"
)

// A file is read up to twice what the current batch has room for (a batch
// counts the lines' bytes; the file also holds newlines and the container
// runtime's framing), at least minReadBytes and at most readBufferSize at
// once; what does not fit is read again for the next batch. While files
// have a backlog, a batch then holds one file's lines (the next batch
// starts with the next file) instead of a slice of each: every stream a
// batch touches becomes a JetStream message of its own, and each message
// costs a write, an fsync, a delivery and an ack whatever its size (on the
// log benchmark, 64 KiB reads made 2.2 times the messages and cost 8 %
// more CPU).
const (
	minReadBytes   = 64 << 10
	readBufferSize = 1 << 20
)

// Retry backoff for a failing Sink.
var pushBackoff = backoff.Config{MinBackoff: 100 * time.Millisecond, MaxBackoff: 5 * time.Second}

// Tailer is the log-file tailing service.
type Tailer struct {
	services.Service

	cfg     Config
	sink    Sink
	posPath string
	logger  *slog.Logger
	m       *metrics

	// Built from cfg.
	format       string
	firstLine    *regexp.Regexp
	fparser      logparse.FieldParser
	toLabel      map[string]struct{}
	toMeta       map[string]struct{}
	metaAll      bool
	formatErrors prometheus.Counter
	fieldErrors  prometheus.Counter

	// Owned by the loop goroutine, and by starting and stopping, which run
	// before and after it.
	files      []*tailedFile // every tracked file, in the order found
	byPath     map[string]*tailedFile
	byID       map[fileID]*tailedFile
	restore    map[fileID][]posEntry // saved positions not matched yet (start-up only)
	firstStart bool
	open       int // descriptors held
	queue      []*tailedFile
	readBuf    []byte
	hashBuf    []byte
	globBuf    []string
	keyBuf     []byte
	rec        logparse.Record
	lb         *labels.Builder
	now        time.Time
	lines      int // lines split since the metric was last updated
	scanGen    uint64

	cur, spare *Batch
	inflight   bool
	// ready is closed: selecting on it keeps the loop going while there is
	// reading to do.
	ready      chan struct{}
	batchTimer *time.Timer
	batchArmed bool

	watcher     *fsnotify.Watcher
	watched     map[string]bool
	wantWatch   map[string]bool
	watchWarned bool
	rescanTimer *time.Timer
	rescanDue   bool

	openLimitHit bool
	posDirty     bool
	newUnsaved   bool // files found that the positions file does not list yet
	lastSave     time.Time
	posBuf       bytes.Buffer
	posEntries   []posEntry

	// The sender goroutine.
	sendCh     chan *Batch
	ackCh      chan pushResult
	pushCtx    context.Context
	pushCancel context.CancelFunc
	senderDone chan struct{}

	// statusReq takes Files' requests to the loop; loopDone is closed
	// when the loop has returned.
	statusReq chan chan []FileStatus
	loopDone  chan struct{}
}

type pushResult struct {
	b   *Batch
	err error
}

// New builds a tailer that hands batches to sink and keeps its read
// positions in positionsFile (created, with its directory, if missing).
// cfg is validated here.
func New(cfg Config, sink Sink, positionsFile string, logger *slog.Logger, reg prometheus.Registerer) (*Tailer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if sink == nil {
		return nil, errors.New("tail: nil sink")
	}
	if positionsFile == "" {
		return nil, errors.New("tail: no positions file")
	}
	t := &Tailer{
		cfg:       cfg,
		sink:      sink,
		posPath:   positionsFile,
		logger:    logger,
		m:         newMetrics(reg),
		format:    cfg.Format,
		byPath:    map[string]*tailedFile{},
		byID:      map[fileID]*tailedFile{},
		readBuf:   make([]byte, readBufferSize),
		hashBuf:   make([]byte, cfg.FingerprintBytes),
		lb:        labels.NewBuilder(labels.EmptyLabels()),
		cur:       &Batch{},
		spare:     &Batch{},
		watched:   map[string]bool{},
		wantWatch: map[string]bool{},
		toLabel:   map[string]struct{}{},
		toMeta:    map[string]struct{}{},
		ready:     make(chan struct{}),
		sendCh:    make(chan *Batch),
		ackCh:     make(chan pushResult, 1),
		statusReq: make(chan chan []FileStatus),
		loopDone:  make(chan struct{}),
	}
	close(t.ready)
	t.formatErrors = t.m.parseErrors.WithLabelValues(cfg.Format)
	t.fieldErrors = t.m.parseErrors.WithLabelValues(cfg.Parse.Kind)
	if cfg.Multiline.FirstLine != "" {
		t.firstLine = regexp.MustCompile(cfg.Multiline.FirstLine) // validated
	}
	switch cfg.Parse.Kind {
	case ParseJSON:
		t.fparser = &logparse.JSON{}
	case ParseLogfmt:
		t.fparser = &logparse.Logfmt{}
	case ParseRegex:
		re, err := logparse.NewRegex(cfg.Parse.Regex)
		if err != nil {
			return nil, fmt.Errorf("agent.tail.parse.regex: %w", err)
		}
		t.fparser = re
	}
	for _, l := range cfg.Parse.Labels {
		t.toLabel[l] = struct{}{}
	}
	for _, m := range cfg.Parse.Metadata {
		if m == MetadataAll {
			t.metaAll = true
		}
		t.toMeta[m] = struct{}{}
	}
	t.Service = services.NewBasicService(t.starting, t.running, t.stopping)
	return t, nil
}

func (t *Tailer) starting(context.Context) error {
	if err := os.MkdirAll(filepath.Dir(t.posPath), 0o755); err != nil {
		return fmt.Errorf("tail: positions directory: %w", err)
	}
	entries, exists, err := loadPositions(t.posPath)
	if err != nil {
		return err
	}
	t.firstStart = !exists
	t.restore = map[fileID][]posEntry{}
	for _, e := range entries {
		t.restore[e.id()] = append(t.restore[e.id()], e)
	}
	if t.cfg.UseFSNotify {
		w, err := fsnotify.NewWatcher()
		if err != nil {
			t.logger.Warn("cannot watch log directories; relying on polling", "poll_interval", t.cfg.PollInterval, "err", err)
		} else {
			t.watcher = w
		}
	}
	t.rescanTimer = time.NewTimer(time.Hour)
	t.rescanTimer.Stop()
	t.batchTimer = time.NewTimer(time.Hour)
	t.batchTimer.Stop()

	t.now = time.Now()
	t.lastSave = t.now
	t.rescan(true)
	t.restoreLeftovers()
	// The matched and lost files are settled, and new ones found: record
	// that before anything is read.
	t.newUnsaved = false
	if err := t.savePositions(); err != nil {
		t.posDirty = true // logged and counted; retried at the next tick
	}

	// Pushing outlives the service context: on shutdown it goes on until
	// the drain timeout, then pushCancel stops it.
	t.pushCtx, t.pushCancel = context.WithCancel(context.Background())
	t.senderDone = make(chan struct{})
	go t.sendLoop()
	t.logger.Info("tailing log files", "files", len(t.files), "include", t.cfg.Include.String(), "fsnotify", t.watcher != nil)
	return nil
}

func (t *Tailer) running(ctx context.Context) error {
	defer close(t.loopDone)
	tick := time.NewTicker(t.cfg.PollInterval)
	defer tick.Stop()
	var (
		events <-chan fsnotify.Event
		errs   <-chan error
	)
	if t.watcher != nil {
		events, errs = t.watcher.Events, t.watcher.Errors
	}
	for {
		t.now = time.Now()
		t.readRound()
		if t.newUnsaved {
			// A file or incarnation the positions file does not know yet,
			// or whose head was just first read: record it before any of
			// its lines can be handed over below, so that a crash cannot
			// leave published lines of a file that a restart cannot find
			// again by identity (and whose rest, moved by a rotation while
			// the agent was down, it would then miss or re-read into a new
			// stream).
			t.newUnsaved = false
			if err := t.savePositions(); err != nil {
				t.posDirty = true // logged and counted; retried at the next tick
			}
		}
		busy := t.room() && len(t.queue) > 0
		var sendC chan<- *Batch
		if t.readyToSend(busy) {
			sendC = t.sendCh
		}
		t.armBatchTimer()
		var kick <-chan struct{}
		if busy {
			kick = t.ready
		}
		select {
		case <-ctx.Done():
			return nil
		case <-kick:
		case sendC <- t.cur:
			t.handedOver()
		case r := <-t.ackCh:
			t.now = time.Now()
			t.onAck(r)
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			t.onEvent(ev)
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			t.onWatchError(err)
		case <-t.rescanTimer.C:
			t.rescanDue = false
			t.now = time.Now()
			t.rescan(false)
		case <-t.batchTimer.C:
			t.batchArmed = false
		case reply := <-t.statusReq:
			reply <- t.snapshot() // buffered: never blocks
		case <-tick.C:
			t.now = time.Now()
			t.tick()
		}
	}
}

// readRound reads one chunk from each file with something to read, as
// long as the batch has room. Files not reached keep their turn.
func (t *Tailer) readRound() {
	i := 0
	for ; i < len(t.queue) && t.room(); i++ {
		f := t.queue[i]
		t.queue[i] = nil
		f.queued = false
		if !t.readable(f) {
			continue
		}
		t.readChunk(f)
		if !f.atEOF && f.state != stateDone {
			t.enqueue(f)
		}
	}
	k := copy(t.queue, t.queue[i:])
	clear(t.queue[k:])
	t.queue = t.queue[:k]
}

func (t *Tailer) enqueue(f *tailedFile) {
	if !f.queued && f.state != stateDone {
		f.queued = true
		t.queue = append(t.queue, f)
	}
}

func (t *Tailer) readable(f *tailedFile) bool {
	if f.fd == nil || f.state == stateDone {
		return false
	}
	if p := f.pred; p != nil {
		if p.state == stateDraining && !p.atEOF {
			return false // reachedEOF or finish queues f again
		}
		f.pred, p.succ = nil, nil
	}
	return true
}

func (t *Tailer) room() bool {
	return len(t.cur.Entries) < t.cfg.MaxBatchEntries && t.cur.bytes < t.cfg.MaxBatchBytes
}

func (t *Tailer) readyToSend(busy bool) bool {
	switch {
	case t.inflight || len(t.cur.Entries) == 0:
		return false
	case !t.room():
		return true
	case t.cfg.BatchWait == 0:
		return !busy
	}
	return !t.now.Before(t.cur.first.Add(t.cfg.BatchWait))
}

// armBatchTimer wakes the loop when the current batch has waited
// batch_wait.
func (t *Tailer) armBatchTimer() {
	if t.batchArmed || t.inflight || len(t.cur.Entries) == 0 || t.cfg.BatchWait == 0 {
		return
	}
	if d := t.cur.first.Add(t.cfg.BatchWait).Sub(t.now); d > 0 {
		t.batchTimer.Reset(d)
		t.batchArmed = true
	}
}

func (t *Tailer) handedOver() {
	t.inflight = true
	t.cur, t.spare = t.spare, nil
	if t.batchArmed {
		t.batchTimer.Stop()
		t.batchArmed = false
	}
}

// onAck applies the sender's result for the batch in flight.
func (t *Tailer) onAck(r pushResult) {
	t.inflight = false
	b := r.b
	switch {
	case r.err == nil:
		t.m.entriesSent.Add(float64(b.Len()))
		t.advance(b)
	case errors.Is(r.err, ErrPermanent):
		t.m.droppedEntries.WithLabelValues(reasonRejected).Add(float64(b.Len()))
		t.logger.Warn("sink rejected a batch for good; its entries are dropped", "entries", b.Len(), "bytes", b.Bytes(), "err", r.err)
		t.advance(b)
	default:
		// Given up on at shutdown: positions stay, the lines are read
		// again at the next start.
	}
	b.reset()
	t.spare = b
}

// advance moves each file's acknowledged position to its mark in b.
func (t *Tailer) advance(b *Batch) {
	release := false
	for _, mk := range b.marks {
		if mk.off > mk.f.acked {
			mk.f.acked = mk.off
			t.posDirty = true
		}
		release = release || mk.f.state == stateDone
	}
	if release {
		t.releaseDone()
	}
}

// releaseDone forgets the finished files whose lines are all acknowledged.
func (t *Tailer) releaseDone() {
	before := len(t.files)
	t.files = slices.DeleteFunc(t.files, func(f *tailedFile) bool {
		return f.state == stateDone && f.acked >= f.commit()
	})
	if len(t.files) != before {
		t.posDirty = true
	}
}

// tick is the poll: everything fsnotify might have missed, and the
// housekeeping that goes by time.
func (t *Tailer) tick() {
	t.rescan(false)
	t.pollDraining()
	t.flushExpired()
	t.openWaiting()
	t.releaseDone()
	var lag int64
	for _, f := range t.files {
		if f.state != stateDone && f.size > f.readOff {
			lag += f.size - f.readOff
		}
	}
	t.m.lagBytes.Set(float64(lag))
	t.m.filesWatched.Set(float64(len(t.files)))
	t.m.filesOpen.Set(float64(t.open))
	if t.posDirty && t.now.Sub(t.lastSave) >= t.cfg.PositionsSyncPeriod {
		_ = t.savePositions() // logged and counted; retried at the next tick
	}
}

func (t *Tailer) savePositions() error {
	es := t.posEntries[:0]
	for _, f := range t.files {
		e := posEntry{
			Path: f.path, Dev: f.id.dev, Ino: f.id.ino, FP: fpString(f.fp), FPLen: f.fpLen,
			Offset: f.acked, Size: max(f.size, f.acked),
		}
		if f.source != f.path {
			e.Source = f.source
		}
		es = append(es, e)
	}
	slices.SortFunc(es, func(a, b posEntry) int {
		return cmp.Or(cmp.Compare(a.Path, b.Path), cmp.Compare(a.Offset, b.Offset))
	})
	t.posEntries = es
	t.lastSave = t.now
	if err := savePositions(t.posPath, es, &t.posBuf); err != nil {
		t.m.positionsErrors.Inc()
		t.logger.Warn("saving read positions failed", "path", t.posPath, "err", err)
		return err
	}
	t.m.positionsWrites.Inc()
	t.posDirty = false
	return nil
}

func (t *Tailer) sendLoop() {
	defer close(t.senderDone)
	for b := range t.sendCh {
		t.ackCh <- t.push(b)
	}
}

// push hands b to the sink until it takes it, rejects it for good, or
// pushing is cancelled at shutdown.
func (t *Tailer) push(b *Batch) pushResult {
	bo := backoff.New(t.pushCtx, pushBackoff)
	for {
		err := t.sink.PushLogs(t.pushCtx, b)
		if err == nil {
			if bo.NumRetries() > 0 {
				t.logger.Info("sink took the batch after retries", "retries", bo.NumRetries())
			}
			return pushResult{b: b}
		}
		if errors.Is(err, ErrPermanent) || t.pushCtx.Err() != nil {
			return pushResult{b: b, err: err}
		}
		t.m.pushRetries.Inc()
		if bo.NumRetries() == 0 {
			t.logger.Warn("sink failed to take a batch; retrying with backoff, read positions held", "entries", b.Len(), "err", err)
		}
		bo.Wait()
		if !bo.Ongoing() {
			return pushResult{b: b, err: err}
		}
	}
}

// stopping hands what was read to the sink, within the drain timeout, and
// saves the positions. Lines not acknowledged by then are read again at
// the next start.
func (t *Tailer) stopping(_ error) error {
	t.now = time.Now()
	// Rotated files read to their end cannot be read again after a
	// restart if they are deleted: send what they hold pending.
	for _, f := range t.files {
		if f.state == stateDraining && f.atEOF {
			t.finish(f)
		}
	}
	deadline := time.NewTimer(t.cfg.DrainTimeout)
	defer deadline.Stop()
drain:
	for t.inflight || len(t.cur.Entries) > 0 {
		if !t.inflight {
			select {
			case t.sendCh <- t.cur:
				t.handedOver()
			case <-deadline.C:
				break drain
			}
			continue
		}
		select {
		case r := <-t.ackCh:
			t.onAck(r)
		case <-deadline.C:
			break drain
		}
	}
	t.pushCancel()
	close(t.sendCh)
	<-t.senderDone
	select {
	case r := <-t.ackCh:
		t.onAck(r)
	default:
	}
	if t.inflight || len(t.cur.Entries) > 0 {
		t.logger.Warn("shutting down with log lines not acknowledged; they are read again at the next start", "drain_timeout", t.cfg.DrainTimeout)
	}
	var errs []error
	if t.watcher != nil {
		errs = append(errs, t.watcher.Close())
	}
	t.rescanTimer.Stop()
	t.batchTimer.Stop()
	t.now = time.Now()
	t.releaseDone()
	errs = append(errs, t.savePositions())
	for _, f := range t.files {
		t.closeFD(f)
	}
	return errors.Join(errs...)
}
