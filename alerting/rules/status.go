package rules

import (
	"errors"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// AlertmanagerStatus is one Alertmanager of -alertmanager.url as the
// Prometheus notifier reports it (its prometheus_notifications_* series).
type AlertmanagerStatus struct {
	// URL is where alerts are posted, without credentials.
	URL string
	// Sent, Errors and Dropped count alerts: posted, in posts that failed,
	// and given up on.
	Sent    float64
	Errors  float64
	Dropped float64
	// Queued is the number of alerts waiting to be posted.
	Queued float64
}

// Alertmanagers reports the Alertmanagers alerts are sent to, sorted by
// URL; none without -alertmanager.url. It gathers only the notifier's own
// metrics, so it costs O(Alertmanagers), and may be called from any
// goroutine.
func (m *Manager) Alertmanagers() []AlertmanagerStatus {
	if m.am == nil {
		return nil
	}
	urls := m.am.Alertmanagers()
	out := make([]AlertmanagerStatus, len(urls))
	byURL := make(map[string]*AlertmanagerStatus, len(urls))
	for i, u := range urls {
		out[i].URL = u.Redacted()
		byURL[u.String()] = &out[i]
	}
	mfs, err := m.amReg.Gather()
	if err != nil {
		mfs = nil // the counts stay zero; the list is still right
	}
	for _, mf := range mfs {
		for _, mt := range mf.GetMetric() {
			var st *AlertmanagerStatus
			for _, l := range mt.GetLabel() {
				if l.GetName() == "alertmanager" {
					st = byURL[l.GetValue()]
				}
			}
			if st == nil {
				continue
			}
			switch mf.GetName() {
			case "prometheus_notifications_sent_total":
				st.Sent = mt.GetCounter().GetValue()
			case "prometheus_notifications_errors_total":
				st.Errors = mt.GetCounter().GetValue()
			case "prometheus_notifications_dropped_total":
				st.Dropped = mt.GetCounter().GetValue()
			case "prometheus_notifications_queue_length":
				st.Queued = mt.GetGauge().GetValue()
			}
		}
	}
	slices.SortFunc(out, func(a, b AlertmanagerStatus) int { return strings.Compare(a.URL, b.URL) })
	return out
}

// teeRegisterer registers collectors in two registries: the process's,
// which /metrics serves, and a private one that Alertmanagers gathers
// without gathering everything else.
type teeRegisterer struct {
	outer prometheus.Registerer // may be nil
	own   prometheus.Registerer
}

func (r teeRegisterer) Register(c prometheus.Collector) error {
	if r.outer != nil {
		if err := r.outer.Register(c); err != nil {
			return err
		}
	}
	if err := r.own.Register(c); err != nil {
		if r.outer != nil {
			r.outer.Unregister(c)
		}
		return err
	}
	return nil
}

func (r teeRegisterer) MustRegister(cs ...prometheus.Collector) {
	var errs []error
	for _, c := range cs {
		errs = append(errs, r.Register(c))
	}
	if err := errors.Join(errs...); err != nil {
		panic(err)
	}
}

func (r teeRegisterer) Unregister(c prometheus.Collector) bool {
	ok := r.own.Unregister(c)
	if r.outer != nil {
		ok = r.outer.Unregister(c) && ok
	}
	return ok
}
