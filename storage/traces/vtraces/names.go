package vtraces

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"

	"github.com/VictoriaMetrics/VictoriaLogs/lib/logstorage"

	"github.com/pharos-obs/pharos/storage/vlengine"
)

// maxBlockColumns is lib/logstorage's limit on the distinct field names of
// one block (maxColumnsPerBlock there), and intrinsicFields bounds the
// fields a row has besides its attributes.
const (
	maxBlockColumns = 2000
	intrinsicFields = 16
)

// attrNames bounds the attribute fields of each stream (a tenant's
// service) and day.
//
// lib/logstorage silently drops rows while it builds a block (on every
// flush, and on every merge of a stream's blocks) once the block's rows
// have more than 2000 distinct field names between them. A block holds one
// stream's rows of one day, so a span whose attributes would take a
// stream-day past Config.MaxAttributeFields distinct names gets fields for
// the names already admitted only; the rest stay in its stored OTLP (Trace
// returns them) but are not searchable, and are counted. The first Append
// to a stream-day reads the names it already has from the storage, so the
// bound holds across restarts too.
type attrNames struct {
	limit  int
	logger *slog.Logger

	mu   sync.Mutex
	sets map[nameSetKey]*nameSet
	// minDay is the oldest day kept: sets of older days are dropped as
	// later days come.
	minDay int64
}

type nameSetKey struct {
	tenant  logstorage.TenantID
	service string
	day     int64
}

// nameSet is one stream-day's admitted attribute field names.
type nameSet struct {
	key   nameSetKey
	seed  sync.Once
	mu    sync.RWMutex
	names map[string]struct{}
}

// get returns the set of a stream-day, seeding it from st the first time.
// The caller holds the engine (st is open); minDay is the oldest day that
// may still receive rows.
func (a *attrNames) get(st *logstorage.Storage, key nameSetKey, minDay int64) *nameSet {
	a.mu.Lock()
	if a.sets == nil {
		a.sets = make(map[nameSetKey]*nameSet)
	}
	if minDay > a.minDay {
		a.minDay = minDay
		for k := range a.sets {
			if k.day < minDay {
				delete(a.sets, k)
			}
		}
	}
	set := a.sets[key]
	if set == nil {
		key.service = strings.Clone(key.service)
		set = &nameSet{key: key, names: make(map[string]struct{})}
		a.sets[key] = set
	}
	a.mu.Unlock()
	set.seed.Do(func() {
		if err := set.seedFrom(st); err != nil {
			// The names the stream-day has are unknown: the bound may not
			// hold for it.
			a.logger.Warn("read the attribute names of a service", "service", set.key.service, "err", err)
		}
	})
	return set
}

// seedFrom adds the attribute field names the stream-day already has.
func (set *nameSet) seedFrom(st *logstorage.Storage) (err error) {
	defer func() {
		// The library panics on file system errors.
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	key := set.key
	qs := "_stream:{" + strconv.Quote(fieldService) + "=" + strconv.Quote(key.service) + "}"
	start := key.day * vlengine.NsPerDay
	q, err := vlengine.ParseQuery(qs, start, start+vlengine.NsPerDay)
	if err != nil {
		return err
	}
	var qst logstorage.QueryStats
	qctx := logstorage.NewQueryContext(context.Background(), &qst, []logstorage.TenantID{key.tenant}, q, false, nil)
	names, err := st.GetFieldNames(qctx, "")
	if err != nil {
		return err
	}
	set.mu.Lock()
	defer set.mu.Unlock()
	for _, n := range names {
		if strings.HasPrefix(n.Value, resourcePrefix) || strings.HasPrefix(n.Value, spanPrefix) {
			set.names[strings.Clone(n.Value)] = struct{}{}
		}
	}
	return nil
}

// admit reports whether name may be a field, adding it when the set has
// room.
func (set *nameSet) admit(name string, limit int) bool {
	set.mu.RLock()
	_, ok := set.names[name]
	set.mu.RUnlock()
	if ok {
		return true
	}
	set.mu.Lock()
	defer set.mu.Unlock()
	if _, ok := set.names[name]; ok {
		return true
	}
	if len(set.names) >= limit {
		return false
	}
	set.names[strings.Clone(name)] = struct{}{}
	return true
}
