package rules

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/prometheus/alertmanager/types"
	"github.com/prometheus/client_golang/prometheus"
	commoncfg "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/discovery/targetgroup"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/notifier"
	promrules "github.com/prometheus/prometheus/rules"

	"github.com/pharos-obs/pharos/internal/tenant"
)

// Destinations of notifications (pharos_rules_alerts_sent_total).
const (
	destAlertmanager = "alertmanager"
	destHook         = "hook"
)

// newAlertmanagers builds the Prometheus notifier for the Alertmanager
// URLs, one Alertmanager set per URL so that each keeps its scheme, path
// prefix and credentials, and the static target groups that Run must be
// given (Prometheus feeds them from service discovery; here the URLs are
// the targets).
// Its metrics go to reg and to own, which Manager.Alertmanagers gathers.
func newAlertmanagers(cfg AlertmanagerConfig, logger *slog.Logger, reg, own prometheus.Registerer) (*notifier.Manager, map[string][]*targetgroup.Group, error) {
	n := notifier.NewManager(&notifier.Options{
		QueueCapacity:   cfg.QueueCapacity,
		DrainOnShutdown: true,
		Registerer:      teeRegisterer{outer: reg, own: own},
	}, nameValidation, logger.With("component", "notifier"))

	conf := &config.Config{}
	targets := make(map[string][]*targetgroup.Group, len(cfg.URLs))
	for i, raw := range cfg.URLs {
		u, err := parseAlertmanagerURL(raw)
		if err != nil {
			return nil, nil, fmt.Errorf("rules.alertmanager.url[%d]: %w", i, err)
		}
		amc := config.DefaultAlertmanagerConfig
		amc.Scheme = u.Scheme
		amc.PathPrefix = u.Path
		amc.Timeout = model.Duration(cfg.Timeout)
		if u.User != nil {
			pw, _ := u.User.Password()
			amc.HTTPClientConfig.BasicAuth = &commoncfg.BasicAuth{
				Username: u.User.Username(),
				Password: commoncfg.Secret(pw),
			}
		}
		conf.AlertingConfig.AlertmanagerConfigs = append(conf.AlertingConfig.AlertmanagerConfigs, &amc)
		// The key is the one AlertmanagerConfigs.ToMap gives this config.
		targets[fmt.Sprintf("config-%d", i)] = []*targetgroup.Group{{
			Source:  fmt.Sprintf("alertmanager.url[%d]", i),
			Targets: []model.LabelSet{{model.AddressLabel: model.LabelValue(u.Host)}},
		}}
	}
	if err := n.ApplyConfig(conf); err != nil {
		return nil, nil, fmt.Errorf("rules.alertmanager: %w", err)
	}
	return n, targets, nil
}

// notifyFunc is the NotifyFunc of the rule sets of tenant id, of log
// rules or PromQL ones. It converts the alerts as Prometheus does
// (rules.SendAlerts: StartsAt is when the alert fired, EndsAt when it
// resolved or, while it fires, when it expires unless sent again) and
// hands them to the Alertmanagers and to Deps.Send. The notifications of
// firing log alerts first get their sample lines (SampleLinesAnnotation),
// waited for at most Config.LogSampleTimeout.
func (m *Manager) notifyFunc(id string, logs bool) promrules.NotifyFunc {
	if logs {
		return func(ctx context.Context, expr string, alerts ...*promrules.Alert) {
			m.sampler.annotate(ctx, expr, alerts)
			m.send(id, m.dashboardLink("logs", expr), alerts)
		}
	}
	return func(_ context.Context, expr string, alerts ...*promrules.Alert) {
		m.send(id, m.dashboardLink("metrics", expr), alerts)
	}
}

// DashboardPath is the dashboard page showing expr: each notification's
// generatorURL opens the rule's query there (the metrics page for PromQL,
// the logs page for LogQL), over the last hour.
func DashboardPath(page, expr string) string {
	return "/ui/" + page + "?" + url.Values{"q": {expr}, "range": {"1h"}}.Encode()
}

func (m *Manager) dashboardLink(page, expr string) string {
	return m.externalURL + DashboardPath(page, expr)
}

// send notifies the alerts of tenant id; those of a tenant other than
// the default one get TenantLabel.
func (m *Manager) send(id, generatorURL string, alerts []*promrules.Alert) {
	if len(alerts) == 0 {
		return
	}
	lbls := make([]labels.Labels, len(alerts))
	for i, a := range alerts {
		lbls[i] = a.Labels
		if id != tenant.Default {
			lbls[i] = labels.NewBuilder(a.Labels).Set(TenantLabel, id).Labels()
		}
	}
	if m.am != nil {
		out := make([]*notifier.Alert, len(alerts))
		for i, a := range alerts {
			out[i] = &notifier.Alert{
				Labels:       lbls[i],
				Annotations:  a.Annotations,
				StartsAt:     a.FiredAt,
				EndsAt:       endsAt(a),
				GeneratorURL: generatorURL,
			}
		}
		m.am.Send(out...)
		m.m.sent.WithLabelValues(destAlertmanager).Add(float64(len(out)))
	}
	if m.deps.Send != nil {
		now := time.Now()
		out := make([]*types.Alert, len(alerts))
		for i, a := range alerts {
			out[i] = &types.Alert{
				Alert: model.Alert{
					Labels:       labelSet(lbls[i]),
					Annotations:  labelSet(a.Annotations),
					StartsAt:     a.FiredAt,
					EndsAt:       endsAt(a),
					GeneratorURL: generatorURL,
				},
				UpdatedAt: now,
			}
		}
		m.deps.Send(out...)
		m.m.sent.WithLabelValues(destHook).Add(float64(len(out)))
	}
}

func endsAt(a *promrules.Alert) time.Time {
	if !a.ResolvedAt.IsZero() {
		return a.ResolvedAt
	}
	return a.ValidUntil
}

func labelSet(ls labels.Labels) model.LabelSet {
	s := make(model.LabelSet, ls.Len())
	ls.Range(func(l labels.Label) { s[model.LabelName(l.Name)] = model.LabelValue(l.Value) })
	return s
}
