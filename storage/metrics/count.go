package metrics

import (
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
)

// chargeEvery is how many samples an iterator reads between charges: a
// charge is an atomic add shared by the query, and charging ahead of reading
// over-counts at most this many samples per series.
const chargeEvery = 32

// CountSamples wraps set so that iterating its series calls charge with the
// number of samples read, chargeEvery at a time and ahead of reading them.
// An error from charge stops the iterator, which reports it as its Err. It
// is how the query limits bound what one query reads from the TSDB without
// importing it.
func CountSamples(set storage.SeriesSet, charge func(samples int) error) storage.SeriesSet {
	return &countingSet{SeriesSet: set, charge: charge}
}

type countingSet struct {
	storage.SeriesSet
	charge func(int) error
}

func (s *countingSet) At() storage.Series {
	return countingSeries{Series: s.SeriesSet.At(), charge: s.charge}
}

type countingSeries struct {
	storage.Series
	charge func(int) error
}

func (s countingSeries) Iterator(it chunkenc.Iterator) chunkenc.Iterator {
	if c, ok := it.(*countingIterator); ok {
		c.Iterator = s.Series.Iterator(c.Iterator)
		c.charge, c.left, c.err = s.charge, 0, nil
		return c
	}
	return &countingIterator{Iterator: s.Series.Iterator(it), charge: s.charge}
}

type countingIterator struct {
	chunkenc.Iterator
	charge func(int) error
	left   int
	err    error
}

// take counts one sample read. Samples are counted where they are read
// (At…) rather than where the iterator moves, because a method named Seek
// that is not io.Seeker's upsets go vet; an iterator past the limit stops at
// its next Next.
func (c *countingIterator) take() {
	if c.err != nil {
		return
	}
	if c.left == 0 {
		if err := c.charge(chargeEvery); err != nil {
			c.err = err
			return
		}
		c.left = chargeEvery
	}
	c.left--
}

func (c *countingIterator) Next() chunkenc.ValueType {
	if c.err != nil {
		return chunkenc.ValNone
	}
	return c.Iterator.Next()
}

func (c *countingIterator) At() (int64, float64) {
	c.take()
	return c.Iterator.At()
}

func (c *countingIterator) AtHistogram(h *histogram.Histogram) (int64, *histogram.Histogram) {
	c.take()
	return c.Iterator.AtHistogram(h)
}

func (c *countingIterator) AtFloatHistogram(fh *histogram.FloatHistogram) (int64, *histogram.FloatHistogram) {
	c.take()
	return c.Iterator.AtFloatHistogram(fh)
}

func (c *countingIterator) Err() error {
	if c.err != nil {
		return c.err
	}
	return c.Iterator.Err()
}
