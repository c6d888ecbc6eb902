package metrics

import (
	"context"
	"sort"
	"strings"
	"sync"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/metadata"

	"github.com/pharos-obs/pharos/internal/tenant"
)

// metadataStore keeps the last metadata seen per tenant and metric family,
// bounded in entries over all tenants. The TSDB has no read API for
// metadata, so this is what /api/v1/metadata answers from; it is rebuilt
// from the stream after a restart because agents send every family's
// metadata again within minutes (with samples, or as metadata-only
// entries). Each tenant sees only the metadata its own series came with.
type metadataStore struct {
	mu   sync.RWMutex
	max  int
	n    int                                     // entries over all tenants
	byMF map[string]map[string]metadata.Metadata // TenantValue → family → metadata
}

func newMetadataStore(maxEntries int) *metadataStore {
	return &metadataStore{max: maxEntries, byMF: map[string]map[string]metadata.Metadata{}}
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

// SetMetadata records the metadata of tenant's series named name. It is
// called per appended series, so the unchanged case takes only a read
// lock.
func (s *Store) SetMetadata(tenantID, name string, m metadata.Metadata) {
	if m.Type == "" || m.Type == model.MetricTypeUnknown && m.Help == "" && m.Unit == "" {
		return
	}
	md := s.metadata
	tv := TenantValue(tenantID)
	fam := familyName(name, m.Type)
	md.mu.RLock()
	old, ok := md.byMF[tv][fam]
	md.mu.RUnlock()
	if ok && old == m {
		return
	}
	md.mu.Lock()
	defer md.mu.Unlock()
	fams := md.byMF[tv]
	if _, ok := fams[fam]; !ok {
		if md.n >= md.max {
			return
		}
		md.n++
	}
	if fams == nil {
		fams = map[string]metadata.Metadata{}
		md.byMF[strings.Clone(tv)] = fams
	}
	fams[strings.Clone(fam)] = metadata.Metadata{Type: m.Type, Help: strings.Clone(m.Help), Unit: strings.Clone(m.Unit)}
}

// Metadata answers like Prometheus's /api/v1/metadata: family → metadata.
// Each family holds one entry here, so limitPerMetric never cuts; a limit
// of zero or less means no limit, as in Prometheus.
// Only the metadata of ctx's tenant (tenant.FromContext) is returned.
func (s *Store) Metadata(ctx context.Context, metric string, limit, _ int) (map[string][]metadata.Metadata, error) {
	md := s.metadata
	md.mu.RLock()
	defer md.mu.RUnlock()
	fams := md.byMF[TenantValue(tenant.FromContext(ctx))]
	out := map[string][]metadata.Metadata{}
	if metric != "" {
		if m, ok := fams[metric]; ok {
			out[metric] = []metadata.Metadata{m}
		}
		return out, nil
	}
	names := make([]string, 0, len(fams))
	for n := range fams {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if limit > 0 && len(out) >= limit {
			break
		}
		out[n] = []metadata.Metadata{fams[n]}
	}
	return out, nil
}
