package publish

import (
	"sync"

	"github.com/pharos-obs/pharos/collector/spool"
)

// backlog holds the batches the bus has not taken yet, oldest first, for
// the replayer. *spool.Spool is the durable one; memBacklog stands in when
// no spool is configured. One goroutine writes (Write, Sync) and one reads
// (Read, Confirm, Rewind); Len and Notify may be called from any.
type backlog interface {
	Write(data []byte, samples int) error
	Sync() error
	Read(dst []byte) (spool.Record, error)
	Confirm(seq uint64) error
	Rewind()
	Len() int
	Notify() <-chan struct{}
	Close() error
}

var _ backlog = (*spool.Spool)(nil)

// memBacklog is a backlog in memory, bounded in records: past the bound
// the oldest is dropped and reported, as the disk spool does. What it
// holds is lost when the process stops.
type memBacklog struct {
	max    int
	onDrop spool.DropFunc
	notify chan struct{}

	mu      sync.Mutex
	recs    []memRecord // oldest first
	read    int         // index in recs of the next Read
	pending int         // the newest records, written but not synced yet
	nextSeq uint64
}

type memRecord struct {
	seq     uint64
	samples int
	data    []byte
}

func newMemBacklog(maxRecords int, onDrop spool.DropFunc) *memBacklog {
	return &memBacklog{max: maxRecords, onDrop: onDrop, notify: make(chan struct{}, 1), nextSeq: 1}
}

func (q *memBacklog) Write(data []byte, samples int) error {
	q.mu.Lock()
	var drop *memRecord
	if len(q.recs) >= q.max {
		drop = &memRecord{samples: q.recs[0].samples}
		q.recs[0] = memRecord{}
		q.recs = q.recs[1:]
		q.read = max(q.read-1, 0)
		q.pending = min(q.pending, len(q.recs))
	}
	q.recs = append(q.recs, memRecord{seq: q.nextSeq, samples: samples, data: append([]byte(nil), data...)})
	q.nextSeq++
	q.pending++
	q.mu.Unlock()
	if drop != nil {
		q.onDrop(1, drop.samples)
	}
	return nil
}

func (q *memBacklog) Sync() error {
	q.mu.Lock()
	q.pending = 0
	q.mu.Unlock()
	select {
	case q.notify <- struct{}{}:
	default:
	}
	return nil
}

func (q *memBacklog) Read(dst []byte) (spool.Record, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.read >= len(q.recs)-q.pending {
		return spool.Record{}, spool.ErrEmpty
	}
	r := q.recs[q.read]
	q.read++
	return spool.Record{Seq: r.seq, Samples: r.samples, Data: append(dst[:0], r.data...)}, nil
}

func (q *memBacklog) Confirm(seq uint64) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := 0
	for n < q.read && q.recs[n].seq <= seq {
		q.recs[n] = memRecord{}
		n++
	}
	q.recs = q.recs[n:]
	q.read -= n
	return nil
}

func (q *memBacklog) Rewind() {
	q.mu.Lock()
	q.read = 0
	q.mu.Unlock()
}

func (q *memBacklog) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.recs) - q.pending
}

func (q *memBacklog) Notify() <-chan struct{} { return q.notify }

func (q *memBacklog) Close() error { return nil }

// held returns the records and samples still held, which Close loses.
func (q *memBacklog) held() (records, samples int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, r := range q.recs {
		samples += r.samples
	}
	return len(q.recs), samples
}
