package aggregator

import (
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
		e := w.local.get(s.Ref, s.Labels, tv)
		if e == nil {
			e = w.local.add(s.Ref, s.Labels, tv, w.storedLabels(s.Labels, tv), 0)
		}
		var opts storage.AppendV2Options
		var r storage.SeriesRef
		if rare := s.Rare; rare == nil {
			r, err = app.Append(e.ref, e.ls, s.ST, s.T, s.V, nil, nil, opts)
		} else {
			if rare.Meta != (metadata.Metadata{}) {
				opts.Metadata = rare.Meta
				w.a.store.SetMetadata(d.Tenant, e.ls.Get(labels.MetricName), rare.Meta)
			}
			if len(rare.Exemplars) > 0 {
				opts.Exemplars = rare.Exemplars
			}
			switch {
			case rare.FH != nil:
				r, err = app.Append(e.ref, e.ls, s.ST, s.T, 0, nil, rare.FH, opts)
			case rare.H != nil:
				r, err = app.Append(e.ref, e.ls, s.ST, s.T, 0, rare.H, nil, opts)
			default:
				r, err = app.Append(e.ref, e.ls, s.ST, s.T, s.V, nil, nil, opts)
			}
		}
		if w.check(err) {
			e.ref = r
			n++
		}
	}
	return n, nil
}
