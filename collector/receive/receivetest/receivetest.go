// Package receivetest has test doubles for the receivers' tests: an
// appendable that keeps what was committed (standing in for the agent's
// batcher), one that discards everything (for benchmarks) and a logs sink
// that records; and the chores their tests share: posting and compressing
// bodies, holding a request in flight, checking seed corpora.
package receivetest

import (
	"context"
	"slices"
	"sync"

	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/storage"
)

// Sample is one committed append.
type Sample struct {
	Labels    labels.Labels
	ST, T     int64
	V         float64
	H         *histogram.Histogram
	FH        *histogram.FloatHistogram
	Meta      metadata.Metadata
	Exemplars []exemplar.Exemplar
}

// Recorder is a storage.AppendableV2 that keeps what is committed and
// drops what is rolled back. Like the agent's batcher, its appenders copy
// histograms and exemplars (callers may reuse them) and do not implement
// storage.ExemplarAppenderV2. It is safe for concurrent use.
type Recorder struct {
	mu        sync.Mutex
	samples   []Sample
	commits   int
	rollbacks int
	// BeforeCommit, when set, runs at the start of every Commit (outside
	// the lock): tests block in it to hold requests in flight.
	BeforeCommit func()
	// CommitErr, when set, is returned by every Commit, which then keeps
	// nothing (as the batcher does once stopping).
	CommitErr error
}

// AppenderV2 implements storage.AppendableV2.
func (r *Recorder) AppenderV2(context.Context) storage.AppenderV2 { return &recAppender{r: r} }

// Samples returns a copy of everything committed so far.
func (r *Recorder) Samples() []Sample {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.samples)
}

// Series returns the committed samples of the series named name.
func (r *Recorder) Series(name string) []Sample {
	var out []Sample
	for _, s := range r.Samples() {
		if s.Labels.Get(labels.MetricName) == name {
			out = append(out, s)
		}
	}
	return out
}

// Names returns the distinct metric names committed, sorted.
func (r *Recorder) Names() []string {
	var out []string
	for _, s := range r.Samples() {
		out = append(out, s.Labels.Get(labels.MetricName))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Transactions returns the number of commits and rollbacks so far.
func (r *Recorder) Transactions() (commits, rollbacks int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.commits, r.rollbacks
}

type recAppender struct {
	r   *Recorder
	buf []Sample
}

// Append implements storage.AppenderV2.
func (a *recAppender) Append(ref storage.SeriesRef, ls labels.Labels, st, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, opts storage.AppendV2Options) (storage.SeriesRef, error) {
	s := Sample{Labels: ls, ST: st, T: t, V: v, Meta: opts.Metadata}
	if h != nil {
		s.H = h.Copy()
	}
	if fh != nil {
		s.FH = fh.Copy()
	}
	if len(opts.Exemplars) > 0 {
		s.Exemplars = slices.Clone(opts.Exemplars)
	}
	a.buf = append(a.buf, s)
	if ref == 0 {
		ref = storage.SeriesRef(max(ls.Hash(), 1))
	}
	return ref, nil
}

// Commit implements storage.AppenderV2.
func (a *recAppender) Commit() error {
	if f := a.r.BeforeCommit; f != nil {
		f()
	}
	a.r.mu.Lock()
	defer a.r.mu.Unlock()
	if a.r.CommitErr != nil {
		a.r.rollbacks++
		return a.r.CommitErr
	}
	a.r.commits++
	a.r.samples = append(a.r.samples, a.buf...)
	a.buf = nil
	return nil
}

// Rollback implements storage.AppenderV2.
func (a *recAppender) Rollback() error {
	a.r.mu.Lock()
	defer a.r.mu.Unlock()
	a.r.rollbacks++
	a.buf = nil
	return nil
}

// Discard is a storage.AppendableV2 that keeps nothing and allocates
// nothing, for benchmarks of what comes before the batcher.
type Discard struct{}

// AppenderV2 implements storage.AppendableV2.
func (Discard) AppenderV2(context.Context) storage.AppenderV2 { return discardAppender{} }

type discardAppender struct{}

// Append implements storage.AppenderV2.
func (discardAppender) Append(ref storage.SeriesRef, ls labels.Labels, _, _ int64, _ float64, _ *histogram.Histogram, _ *histogram.FloatHistogram, _ storage.AppendV2Options) (storage.SeriesRef, error) {
	if ref == 0 {
		ref = storage.SeriesRef(max(ls.Hash(), 1))
	}
	return ref, nil
}

// Commit implements storage.AppenderV2.
func (discardAppender) Commit() error { return nil }

// Rollback implements storage.AppenderV2.
func (discardAppender) Rollback() error { return nil }
