package scrape

import (
	"context"
	"fmt"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	promscrape "github.com/prometheus/prometheus/scrape"
	"github.com/prometheus/prometheus/storage"

	"github.com/pharos-obs/pharos/internal/tenant"
)

// TenantLabel is the Pharos-reserved target label that names the tenant a
// target's series belong to. relabel_configs set it (say, from a
// Kubernetes namespace annotation); like every "__" label it never reaches
// the series. A target without it writes to the default tenant.
const TenantLabel = "__tenant__"

// tenantAppendable hands each scrape loop's appender the tenant of its
// target, through the context the scrape manager passes with
// PassMetadataInContext, and has the target's metadata sent with it
// (metadataAppender).
type tenantAppendable struct {
	next storage.AppendableV2
	meta *targetMetadata
}

func (a tenantAppendable) AppenderV2(ctx context.Context) storage.AppenderV2 {
	t, ok := promscrape.TargetFromContext(ctx)
	if !ok {
		return a.next.AppenderV2(ctx)
	}
	if id := t.GetValue(TenantLabel); id != "" {
		if err := tenant.Validate(id); err != nil {
			return refusingAppender{err: fmt.Errorf("target label %s: %w", TenantLabel, err)}
		}
		ctx = tenant.WithContext(ctx, id)
	}
	app := a.next.AppenderV2(ctx)
	if fa, ok := app.(FamilyMetadataAppender); ok && a.meta != nil {
		return &metadataAppender{AppenderV2: app, fa: fa, target: t, sent: a.meta}
	}
	return app
}

// refusingAppender fails every append of a target whose __tenant__ is
// malformed, so the scrape fails and /api/v1/targets shows why.
type refusingAppender struct{ err error }

func (r refusingAppender) Append(storage.SeriesRef, labels.Labels, int64, int64, float64, *histogram.Histogram, *histogram.FloatHistogram, storage.AppendV2Options) (storage.SeriesRef, error) {
	return 0, r.err
}
func (refusingAppender) Commit() error   { return nil }
func (refusingAppender) Rollback() error { return nil }
