package aggregator

import (
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/storage"

	"github.com/pharos-obs/pharos/internal/bus"
	"github.com/pharos-obs/pharos/internal/bus/codec"
)

// takeLocal returns the samples of d when an agent in this process handed
// them off (bus.Handoff). Only a first delivery can be handed off: a
// redelivered message is decoded, as its hand-off was taken the first time.
func (w *metricsWriter) takeLocal(d *bus.Delivery) ([]codec.LocalSample, bool) {
	h := w.a.handoff
	if h == nil || w.local == nil || d.MsgID == "" {
		return nil, false
	}
	return h.Take(d.MsgID)
}

// appendLocal appends a handed-off batch as appendMessage appends the same
// batch decoded: the same series, samples, histograms, exemplars and
// metadata, under the same tenant.
func (w *metricsWriter) appendLocal(app storage.AppenderV2, d *bus.Delivery, samples []codec.LocalSample) (int, error) {
	tv, err := tenantValue(d)
	if err != nil {
		return 0, err
	}
	n := 0
	for i := range samples {
		s := &samples[i]
		if s.Rare != nil && s.Rare.MetaOnly {
			w.a.store.SetMetadata(d.Tenant, s.Labels.Get(labels.MetricName), s.Rare.Meta)
			continue
		}
		e := w.local.get(s.Ref, s.Labels, tv)
		if e == nil {
			e = w.local.add(s.Ref, s.Labels, tv, w.storedLabels(s.Labels, tv))
		}
		var opts storage.AppendV2Options
		v := s.V
		var h *histogram.Histogram
		var fh *histogram.FloatHistogram
		if rare := s.Rare; rare != nil {
			if rare.Meta != (metadata.Metadata{}) {
				opts.Metadata = rare.Meta
				w.a.store.SetMetadata(d.Tenant, e.ls.Get(labels.MetricName), rare.Meta)
			}
			if len(rare.Exemplars) > 0 {
				opts.Exemplars = rare.Exemplars
			}
			// As encoded: a float histogram before an integer one.
			switch {
			case rare.FH != nil:
				v, fh = 0, rare.FH
			case rare.H != nil:
				v, h = 0, rare.H
			}
		}
		r, err := app.Append(e.ref, e.ls, s.ST, s.T, v, h, fh, opts)
		if w.check(err) {
			e.ref = r
			n++
		}
	}
	return n, nil
}
