package bus

import (
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/pharos-obs/pharos/internal/bus/codec"
)

// Handoff passes metrics batches from the agent to an aggregator in the
// same process, beside the bus. The batch still goes through JetStream
// (published, stored, delivered, acked: nothing about durability or
// ordering changes); what the hand-off saves is the consumer's work of
// decompressing and decoding bytes this process has just encoded, and of
// resolving every series from its wire labels. The publisher puts a
// batch's samples under its message ID before publishing it; the
// consumer takes them when that message is delivered and decodes the
// payload only when they are not there (a redelivery, a batch from the
// spool or from another agent).
//
// Memory is bounded: a batch not taken within handoffMaxAge, or pushed
// out by newer ones beyond the byte bound, is dropped (the consumer then
// decodes the message as usual), and only batches of partitions the local
// aggregator consumes are kept (SetWanted).
type Handoff struct {
	maxBytes int64
	now      func() time.Time

	mu      sync.Mutex
	entries map[string]*handoffEntry
	fifo    []*handoffEntry // put order; taken entries stay until popped
	head    int
	bytes   int64

	wanted atomic.Pointer[[]bool] // by partition; nil: none

	taken, expired prometheus.Counter
	held           prometheus.Gauge
}

// handoffMaxAge is how long an untaken batch is kept: far longer than
// publishing and delivering it takes.
const handoffMaxAge = time.Minute

type handoffEntry struct {
	id      string
	samples []codec.LocalSample
	size    int64
	at      time.Time
	taken   bool
}

// localSampleSize is what a LocalSample costs besides its label set and
// its Rare part.
const localSampleSize = int64(unsafe.Sizeof(codec.LocalSample{}))

// rareSize approximates a Rare part (a histogram's buckets, exemplars).
const rareSize = 256

// batchSize is what a batch's samples hold. A scrape's label sets are
// shared with the scrape cache, but a push's are not, so they count.
func batchSize(samples []codec.LocalSample) int64 {
	n := int64(len(samples)) * localSampleSize
	for i := range samples {
		n += int64(samples[i].Labels.ByteSize())
		if samples[i].Rare != nil {
			n += rareSize
		}
	}
	return n
}

// NewHandoff returns a hand-off holding at most maxBytes of samples.
func NewHandoff(maxBytes int64, reg prometheus.Registerer) *Handoff {
	f := promauto.With(reg)
	return &Handoff{
		maxBytes: maxBytes,
		now:      time.Now,
		entries:  map[string]*handoffEntry{},
		taken: f.NewCounter(prometheus.CounterOpts{
			Name: "pharos_handoff_batches_taken_total",
			Help: "Metrics batches an aggregator took from the in-process hand-off instead of decoding them.",
		}),
		expired: f.NewCounter(prometheus.CounterOpts{
			Name: "pharos_handoff_batches_dropped_total",
			Help: "Metrics batches dropped from the in-process hand-off untaken (too old, or beyond its byte bound); their messages are decoded when delivered.",
		}),
		held: f.NewGauge(prometheus.GaugeOpts{
			Name: "pharos_handoff_bytes",
			Help: "Approximate bytes of samples held by the in-process hand-off.",
		}),
	}
}

// SetWanted sets the partitions whose batches are kept: those the local
// aggregator consumes.
func (h *Handoff) SetWanted(partitions []int, total int) {
	w := make([]bool, total)
	for _, p := range partitions {
		if p >= 0 && p < total {
			w[p] = true
		}
	}
	h.wanted.Store(&w)
}

// Wants reports whether a batch of partition would be kept.
func (h *Handoff) Wants(partition int) bool {
	w := h.wanted.Load()
	return w != nil && partition >= 0 && partition < len(*w) && (*w)[partition]
}

// Put keeps the samples of the batch published as message id. The
// hand-off owns them from then on.
func (h *Handoff) Put(id string, samples []codec.LocalSample) {
	if len(samples) == 0 {
		return
	}
	e := &handoffEntry{id: id, samples: samples, size: batchSize(samples), at: h.now()}
	h.mu.Lock()
	defer h.mu.Unlock()
	if old, ok := h.entries[id]; ok {
		// The same batch again (a retried publish): keep the newer.
		h.dropLocked(old)
		codec.ReleaseLocal(old.samples)
		old.samples = nil
	}
	h.entries[id] = e
	h.fifo = append(h.fifo, e)
	h.bytes += e.size
	h.trimLocked(e.at)
	h.held.Set(float64(h.bytes))
}

// Take returns and forgets the samples of message id, if they are held.
func (h *Handoff) Take(id string) ([]codec.LocalSample, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	e, ok := h.entries[id]
	if !ok {
		return nil, false
	}
	h.dropLocked(e)
	h.held.Set(float64(h.bytes))
	h.taken.Inc()
	return e.samples, true
}

func (h *Handoff) dropLocked(e *handoffEntry) {
	delete(h.entries, e.id)
	e.taken = true
	h.bytes -= e.size
}

// trimLocked pops taken entries off the front, and drops untaken ones
// that are too old or beyond the byte bound.
func (h *Handoff) trimLocked(now time.Time) {
	for h.head < len(h.fifo) {
		e := h.fifo[h.head]
		if !e.taken && h.bytes <= h.maxBytes && now.Sub(e.at) < handoffMaxAge {
			break
		}
		if !e.taken {
			h.dropLocked(e)
			h.expired.Inc()
			// Nobody got them: the slice can be reused.
			codec.ReleaseLocal(e.samples)
		}
		e.samples = nil
		h.fifo[h.head] = nil
		h.head++
	}
	// Compact once the popped front is the larger part.
	if h.head > 64 && h.head*2 > len(h.fifo) {
		n := copy(h.fifo, h.fifo[h.head:])
		clear(h.fifo[n:])
		h.fifo = h.fifo[:n]
		h.head = 0
	}
}
