package metrics

import (
	"context"
	"sort"
	"strings"
	"sync"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/metadata"
)

// metadataStore keeps the last metadata seen per metric family, bounded in
// entries. The TSDB has no read API for metadata, so this is what
// /api/v1/metadata answers from; it is rebuilt from the stream after a
// restart because every batch carries its series' metadata.
type metadataStore struct {
	mu   sync.RWMutex
	max  int
	byMF map[string]metadata.Metadata
}

func newMetadataStore(maxEntries int) *metadataStore {
	return &metadataStore{max: maxEntries, byMF: map[string]metadata.Metadata{}}
}

// familyName maps a series name to its metric family the way the exposition
// formats group them: histogram and summary series drop their suffixes.
func familyName(name string, typ model.MetricType) string {
	switch typ {
	case model.MetricTypeHistogram, model.MetricTypeGaugeHistogram:
		for _, s := range []string{"_bucket", "_count", "_sum", "_created", "_gcount", "_gsum"} {
			if strings.HasSuffix(name, s) {
				return name[:len(name)-len(s)]
			}
		}
	case model.MetricTypeSummary:
		for _, s := range []string{"_count", "_sum", "_created"} {
			if strings.HasSuffix(name, s) {
				return name[:len(name)-len(s)]
			}
		}
	}
	return name
}

// SetMetadata records the metadata of the series named name. It is called
// per appended series, so the unchanged case takes only a read lock.
func (s *Store) SetMetadata(name string, m metadata.Metadata) {
	if m.Type == "" || m.Type == model.MetricTypeUnknown && m.Help == "" && m.Unit == "" {
		return
	}
	md := s.metadata
	fam := familyName(name, m.Type)
	md.mu.RLock()
	old, ok := md.byMF[fam]
	md.mu.RUnlock()
	if ok && old == m {
		return
	}
	md.mu.Lock()
	defer md.mu.Unlock()
	if _, ok := md.byMF[fam]; !ok && len(md.byMF) >= md.max {
		return
	}
	md.byMF[strings.Clone(fam)] = metadata.Metadata{Type: m.Type, Help: strings.Clone(m.Help), Unit: strings.Clone(m.Unit)}
}

// Metadata answers like Prometheus's /api/v1/metadata: family → metadata.
// Each family holds one entry here, so limitPerMetric never cuts; a limit
// of zero or less means no limit, as in Prometheus.
func (s *Store) Metadata(_ context.Context, metric string, limit, _ int) (map[string][]metadata.Metadata, error) {
	md := s.metadata
	md.mu.RLock()
	defer md.mu.RUnlock()
	out := map[string][]metadata.Metadata{}
	if metric != "" {
		if m, ok := md.byMF[metric]; ok {
			out[metric] = []metadata.Metadata{m}
		}
		return out, nil
	}
	names := make([]string, 0, len(md.byMF))
	for n := range md.byMF {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if limit > 0 && len(out) >= limit {
			break
		}
		out[n] = []metadata.Metadata{md.byMF[n]}
	}
	return out, nil
}
