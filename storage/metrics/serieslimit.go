package metrics

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/chunks"

	"github.com/pharos-obs/pharos/internal/overrides"
	"github.com/pharos-obs/pharos/internal/tenant"
)

// SeriesLimit returns how many series tenant id may have in this store's
// head; 0 or less is no limit. It is called when a series is about to be
// created, from many goroutines at once.
type SeriesLimit func(id string) int

// seriesCounter counts the head's series per tenant through the TSDB's
// series lifecycle callbacks, and refuses to create a tenant's series
// beyond its limit, as Mimir's ingesters do. It counts from the start
// (WAL replay included) but enforces only once the store is open: what
// the WAL holds was accepted before and must come back.
type seriesCounter struct {
	limit    atomic.Pointer[SeriesLimit]
	enforced atomic.Bool

	mu     sync.Mutex
	counts map[string]int
}

func newSeriesCounter() *seriesCounter {
	return &seriesCounter{counts: map[string]int{}}
}

func tenantOfSeries(ls labels.Labels) string {
	if v := ls.Get(TenantLabel); v != "" {
		return v
	}
	return tenant.Default
}

// PreCreation implements tsdb.SeriesLifecycleCallback.
func (c *seriesCounter) PreCreation(ls labels.Labels) error {
	if !c.enforced.Load() {
		return nil
	}
	f := c.limit.Load()
	if f == nil {
		return nil
	}
	id := tenantOfSeries(ls)
	limit := (*f)(id)
	if limit <= 0 {
		return nil
	}
	c.mu.Lock()
	n := c.counts[id]
	c.mu.Unlock()
	if n < limit {
		return nil
	}
	// Not retryable: the aggregator drops the sample (it was
	// acknowledged to the sender long ago) and counts it.
	return &overrides.LimitError{Tenant: id, Limit: overrides.LimitMaxSeries,
		Detail: fmt.Sprintf("the tenant has %d series in this aggregator's head, its share of the limit", n)}
}

// PostCreation implements tsdb.SeriesLifecycleCallback.
func (c *seriesCounter) PostCreation(ls labels.Labels) {
	id := tenantOfSeries(ls)
	c.mu.Lock()
	c.counts[id]++
	c.mu.Unlock()
}

// PostDeletion implements tsdb.SeriesLifecycleCallback.
func (c *seriesCounter) PostDeletion(deleted map[chunks.HeadSeriesRef]labels.Labels) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ls := range deleted {
		id := tenantOfSeries(ls)
		if c.counts[id]--; c.counts[id] <= 0 {
			delete(c.counts, id)
		}
	}
}

func (c *seriesCounter) count(id string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counts[id]
}

// SetSeriesLimit makes the store refuse to create series of a tenant
// that already has f(tenant) series in the head; the append of a refused
// series returns an error wrapping overrides.ErrLimited. nil lifts every
// limit.
func (s *Store) SetSeriesLimit(f SeriesLimit) {
	if f == nil {
		s.series.limit.Store(nil)
		return
	}
	s.series.limit.Store(&f)
}

// TenantSeries returns how many series tenant id has in the head.
func (s *Store) TenantSeries(id string) int { return s.series.count(id) }
