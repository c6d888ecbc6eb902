package overrides

import (
	"sync"
	"time"
)

// ActiveSet counts each tenant's active keys (series or stream label
// hashes): a key is active until it has not been seen for the window.
// It holds at most each tenant's limit of keys, so a tenant's memory here
// is bounded by its limit; tenants without a limit are not tracked.
type ActiveSet struct {
	window int64 // seconds
	now    func() time.Time

	mu      sync.Mutex
	tenants map[string]*activeTenant
	swept   int64
}

type activeTenant struct {
	mu     sync.Mutex
	seen   map[uint64]int64 // key → last seen, unix seconds
	purged int64
}

// NewActiveSet returns a set whose keys stay active for window after
// they were last seen.
func NewActiveSet(window time.Duration) *ActiveSet {
	return &ActiveSet{window: max(1, int64(window/time.Second)), now: time.Now, tenants: map[string]*activeTenant{}}
}

func (s *ActiveSet) tenant(id string, now int64) *activeTenant {
	s.mu.Lock()
	defer s.mu.Unlock()
	if now-s.swept > s.window {
		// Drop the tenants that have gone quiet, so the map holds the
		// tenants that sent within a window or two.
		for tid, t := range s.tenants {
			t.mu.Lock()
			t.purgeLocked(now, s.window)
			empty := len(t.seen) == 0
			t.mu.Unlock()
			if empty {
				delete(s.tenants, tid)
			}
		}
		s.swept = now
	}
	t := s.tenants[id]
	if t == nil {
		t = &activeTenant{seen: map[uint64]int64{}, purged: now}
		s.tenants[id] = t
	}
	return t
}

func (t *activeTenant) purgeLocked(now, window int64) {
	for k, seen := range t.seen {
		if now-seen > window {
			delete(t.seen, k)
		}
	}
	t.purged = now
}

// roomLocked reports whether n more keys fit under limit, purging the
// expired ones first when the set is full (at most once a second: a
// tenant at its limit sending new keys must not make every call scan).
func (t *activeTenant) roomLocked(n, limit int, now, window int64) bool {
	if len(t.seen)+n <= limit {
		return true
	}
	if now != t.purged {
		t.purgeLocked(now, window)
	}
	return len(t.seen)+n <= limit
}

// Admit marks key active for tenant and reports true, unless key is not
// active yet and the tenant already has limit active keys. A limit of 0
// or less admits everything without tracking.
func (s *ActiveSet) Admit(tenant string, key uint64, limit int) bool {
	if limit <= 0 {
		return true
	}
	now := s.now().Unix()
	t := s.tenant(tenant, now)
	t.mu.Lock()
	defer t.mu.Unlock()
	if seen, ok := t.seen[key]; ok {
		if seen != now {
			t.seen[key] = now
		}
		return true
	}
	if !t.roomLocked(1, limit, now, s.window) {
		return false
	}
	t.seen[key] = now
	return true
}

// AdmitAll admits every key or none: it reports how many of keys are
// not active yet, and whether they all fit under limit (then every key
// is marked active; otherwise nothing changes). Duplicates in keys count
// once.
func (s *ActiveSet) AdmitAll(tenant string, keys []uint64, limit int) (fresh int, ok bool) {
	if limit <= 0 || len(keys) == 0 {
		return 0, true
	}
	now := s.now().Unix()
	t := s.tenant(tenant, now)
	t.mu.Lock()
	defer t.mu.Unlock()
	var seenNew map[uint64]struct{}
	for _, k := range keys {
		if _, ok := t.seen[k]; ok {
			continue
		}
		if seenNew == nil {
			seenNew = map[uint64]struct{}{}
		}
		seenNew[k] = struct{}{}
	}
	fresh = len(seenNew)
	if fresh > 0 && !t.roomLocked(fresh, limit, now, s.window) {
		// roomLocked may have purged expired keys of this very request:
		// count again against the purged set.
		for _, k := range keys {
			if _, ok := t.seen[k]; !ok {
				seenNew[k] = struct{}{}
			}
		}
		fresh = len(seenNew)
		if len(t.seen)+fresh > limit {
			return fresh, false
		}
	}
	for _, k := range keys {
		t.seen[k] = now
	}
	return fresh, true
}

// Len returns tenant's active keys.
func (s *ActiveSet) Len(tenant string) int {
	s.mu.Lock()
	t := s.tenants[tenant]
	s.mu.Unlock()
	if t == nil {
		return 0
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.seen)
}
