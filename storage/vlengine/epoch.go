package vlengine

import (
	"strconv"
	"strings"
	"sync/atomic"
)

// lib/logstorage caches the streams a stream filter selects, keyed by the
// filter and a generation its stream index bumps once new streams are
// searchable. The key is computed again when the result is stored, so a
// search that began before the bump stores its result, without the new
// streams, under the new generation; with no further new streams that
// stale entry answers every later query with the same filter until the
// cache is cleaned (minutes). Streams pushed in one batch then stay
// partly invisible (seen in the cluster tests: 150 of 600 lines for a
// minute, on both replicas).
//
// streamEpoch is a second generation in the filter's text: a durability
// round that finds new streams bumps it after it made them searchable, so
// queries that start after the round never meet an entry stored by a
// query that started before it. A new stream is visible to every query
// once the round that acknowledged its rows has ended.
var streamEpoch atomic.Uint64

// epochLabel is a stream label no row carries: `!=` on it selects every
// stream, so the filter's meaning does not change.
const epochLabel = "__pharos_epoch"

// withStreamEpoch adds the epoch to the first non-empty stream filter of
// qs (the stores build at most one).
func withStreamEpoch(qs string) string {
	const open = "_stream:{"
	i := strings.Index(qs, open)
	if i < 0 {
		return qs
	}
	j := i + len(open)
	if j < len(qs) && qs[j] == '}' {
		return qs
	}
	return qs[:j] + strconv.Quote(epochLabel) + `!="` + strconv.FormatUint(streamEpoch.Load(), 10) + `",` + qs[j:]
}

// noteStreams bumps the epoch when the stream index holds streams the last
// bump did not cover. before and after are the index's stream count just
// before and after the round's flush: streams counted before are
// searchable now; those registered during the flush come from rows
// buffered before the round (searchable too) or from appends racing it,
// whose own round will follow, so the next round compares against before
// and bumps again for them.
func (d *durability) noteStreams(before, after uint64) {
	if after != d.epochStreams {
		streamEpoch.Add(1)
	}
	d.epochStreams = before
}
