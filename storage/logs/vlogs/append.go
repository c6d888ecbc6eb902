package vlogs

import (
	"fmt"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/VictoriaMetrics/VictoriaLogs/lib/logstorage"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/pharos-obs/pharos/storage/logs"
	"github.com/pharos-obs/pharos/storage/vlengine"
)

// metaPrefix starts the field name of every metadata entry. Labels may not
// start with it, so a metadata name can never collide with a label (both
// are fields of the row in VictoriaLogs) or with a VictoriaLogs field.
const metaPrefix = "_meta."

// Limits of lib/logstorage on one row (consts.go there); a row beyond them
// is dropped by the library with only a log line, so Append checks first.
const (
	maxFieldNameSize = 128
	maxFieldsPerRow  = 2000
	maxRowSize       = 2 << 20 // as estimated by EstimatedJSONRowLen
)

// reservedNames are the fields VictoriaLogs fills itself.
var reservedNames = [...]string{"_msg", "_time", "_stream", "_stream_id"}

func isReserved(name string) bool {
	for _, r := range reservedNames {
		if name == r {
			return true
		}
	}
	return false
}

// Append adds streams' entries for tenant (see logs.Appender). A stream
// label becomes a VictoriaLogs stream field; a label with an empty value is
// no label, as in Prometheus. A metadata entry with an empty value is not
// stored.
//
// Bad labels or metadata names (empty, reserved by VictoriaLogs, starting
// with "_meta.", containing '=' or '}', longer than 128 bytes, duplicated)
// reject the whole call with an error wrapping logs.ErrInvalid, before
// anything is stored. Entries outside the accepted time window (older than
// the backfill limit less a minute, or further ahead than the future
// retention) or over VictoriaLogs' row limits are dropped and counted in
// pharos_logs_rejected_entries_total; the rest of the call is stored.
//
// Append does not keep references to streams after it returns.
func (s *Store) Append(tenant string, streams []logs.Stream) error {
	for i := range streams {
		if err := validateStream(&streams[i]); err != nil {
			n := 0
			for j := range streams {
				n += len(streams[j].Entries)
			}
			s.metrics.rejected.WithLabelValues(reasonInvalid).Add(float64(n))
			return err
		}
	}

	if _, err := s.eng.Acquire(); err != nil {
		return err
	}
	defer s.eng.Release()
	now := time.Now().UnixNano()
	if s.eng.ReadOnly(now) {
		return ErrReadOnly
	}
	minTS, maxTS := s.eng.TimeWindow(now)
	tid, err := s.eng.AppendTenantID(tenant)
	if err != nil {
		return err
	}

	b := appendBufPool.Get().(*appendBuf)
	defer b.put()

	var accepted, lineBytes, tooOld, tooNew, tooLarge int
	for i := range streams {
		st := &streams[i]
		b.fields = b.fields[:0]
		st.Labels.Range(func(l labels.Label) {
			if l.Value != "" {
				b.fields = append(b.fields, logstorage.Field{Name: l.Name, Value: l.Value})
			}
		})
		nLabels := len(b.fields)
		var staged *vlengine.StagedRows
		for j := range st.Entries {
			e := &st.Entries[j]
			switch {
			case e.Timestamp < minTS:
				tooOld++
				continue
			case e.Timestamp > maxTS:
				tooNew++
				continue
			}
			b.fields = append(b.fields[:nLabels], logstorage.Field{Name: "_msg", Value: e.Line})
			b.names = b.names[:0]
			e.Metadata.Range(func(l labels.Label) {
				if l.Value != "" {
					b.fields = append(b.fields, logstorage.Field{Name: b.metaName(l.Name), Value: l.Value})
				}
			})
			if len(b.fields) > maxFieldsPerRow || logstorage.EstimatedJSONRowLen(b.fields) > maxRowSize {
				tooLarge++
				continue
			}
			if staged == nil {
				staged = s.eng.Stage(tid, st.Labels.Hash())
			}
			staged.Add(e.Timestamp, b.fields, nLabels)
			b.days = vlengine.AddDay(b.days, e.Timestamp)
			accepted++
			lineBytes += len(e.Line)
		}
		if staged != nil {
			staged.Done()
		}
	}
	s.eng.MarkDirty(b.days)

	m := s.metrics
	m.appendedEntries.Add(float64(accepted))
	m.appendedBytes.Add(float64(lineBytes))
	if tooOld > 0 {
		m.rejected.WithLabelValues(reasonTooOld).Add(float64(tooOld))
	}
	if tooNew > 0 {
		m.rejected.WithLabelValues(reasonTooNew).Add(float64(tooNew))
	}
	if tooLarge > 0 {
		m.rejected.WithLabelValues(reasonTooLarge).Add(float64(tooLarge))
	}
	return nil
}

// validateStream checks what VictoriaLogs would reject or misread.
func validateStream(st *logs.Stream) error {
	var err error
	n := 0
	st.Labels.Range(func(l labels.Label) {
		if err != nil {
			return
		}
		if e := checkName(l.Name, "label", false); e != nil {
			err = e
			return
		}
		if l.Value != "" {
			n++
		}
	})
	if err != nil {
		return fmt.Errorf("%w: stream %s: %w", logs.ErrInvalid, st.Labels, err)
	}
	if n == 0 {
		return fmt.Errorf("%w: stream %s has no labels", logs.ErrInvalid, st.Labels)
	}
	if name, dup := st.Labels.HasDuplicateLabelNames(); dup {
		return fmt.Errorf("%w: stream %s has label %q twice", logs.ErrInvalid, st.Labels, name)
	}
	for i := range st.Entries {
		md := st.Entries[i].Metadata
		if md.IsEmpty() {
			continue
		}
		md.Range(func(l labels.Label) {
			if err == nil {
				err = checkName(l.Name, "metadata", true)
			}
		})
		if name, dup := md.HasDuplicateLabelNames(); err == nil && dup {
			err = fmt.Errorf("metadata %s has %q twice", md, name)
		}
		if err != nil {
			return fmt.Errorf("%w: stream %s, entry %d: %w", logs.ErrInvalid, st.Labels, i, err)
		}
	}
	return nil
}

func checkName(name, what string, meta bool) error {
	if name == "" {
		return fmt.Errorf("empty %s name", what)
	}
	size := len(name)
	if meta {
		size += len(metaPrefix)
	} else {
		if isReserved(name) {
			return fmt.Errorf("%s name %q is reserved by VictoriaLogs", what, name)
		}
		if strings.HasPrefix(name, metaPrefix) {
			return fmt.Errorf("%s name %q starts with %q, which the log store keeps for metadata", what, name, metaPrefix)
		}
		if err := logstorage.CheckStreamFieldName(name); err != nil {
			return fmt.Errorf("%s name %q cannot be a VictoriaLogs stream field: %w", what, name, err)
		}
	}
	if size > maxFieldNameSize {
		return fmt.Errorf("%s name %q is longer than VictoriaLogs' %d bytes", what, name, maxFieldNameSize-(size-len(name)))
	}
	return nil
}

// appendBuf holds what Append reuses between calls.
type appendBuf struct {
	fields []logstorage.Field
	// names holds the prefixed metadata names of the current entry.
	names []byte
	days  []int64
}

var appendBufPool = sync.Pool{New: func() any { return &appendBuf{} }}

func (b *appendBuf) put() {
	clear(b.fields) // drop references to the caller's strings
	b.fields = b.fields[:0]
	b.names = b.names[:0]
	b.days = b.days[:0]
	appendBufPool.Put(b)
}

// metaName returns metaPrefix+name without allocating. The string aliases
// b.names, which is only overwritten for the next entry: LogRows.MustAdd
// copies every name and value before that. (A reallocation of b.names
// leaves the strings made so far on the old, unchanged array.)
func (b *appendBuf) metaName(name string) string {
	start := len(b.names)
	b.names = append(b.names, metaPrefix...)
	b.names = append(b.names, name...)
	return unsafe.String(&b.names[start], len(b.names)-start)
}
