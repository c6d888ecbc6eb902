package rules

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/grafana/dskit/services"
	"github.com/prometheus/alertmanager/types"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/discovery/targetgroup"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/notifier"
	"github.com/prometheus/prometheus/promql"
	promrules "github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/storage"
)

// Errors of New and Reload.
var (
	// ErrInvalidRules wraps the errors of rule files that do not load;
	// each of those names its file and, where it can, the line.
	ErrInvalidRules = errors.New("invalid rule files")
	// ErrMissingDependency is returned by New when Deps lacks a
	// collaborator it cannot do without.
	ErrMissingDependency = errors.New("rules: missing dependency")
)

// OwnsFunc reports whether this node evaluates the rule group with the
// given key (see GroupKey). It is called before every evaluation of every
// group this node has loaded, from the groups' goroutines, and whenever
// the ownership is applied: it must be fast, must not block and must be
// safe for concurrent use.
type OwnsFunc func(groupKey string) bool

// SendFunc takes alerts to notify, firing or resolved (EndsAt in the
// past); (*notify.Notifier).Send fits. It is called from the groups'
// evaluation goroutines and must not block for long. The alerts are the
// callee's: the Manager does not touch them after the call.
type SendFunc func(alerts ...*types.Alert)

// Deps are the Manager's collaborators.
type Deps struct {
	// Queryable is what rules are evaluated against: the cluster-wide
	// (fan-out) view, so that a group sees every series wherever it is
	// stored. The `for` state of alerts is restored from its
	// ALERTS_FOR_STATE series. Required.
	Queryable storage.Queryable
	// Appendable takes the results of recording rules and the ALERTS and
	// ALERTS_FOR_STATE series; in the application, a publisher into the
	// pipeline, so that they are stored like any series and reach the
	// next owner of the group. Required.
	Appendable storage.AppendableV2
	// Engine evaluates the rules' expressions. Nil builds one from Config
	// (its prometheus_engine_* metrics are not registered, since a query
	// engine in the same process registers those names).
	Engine promql.QueryEngine
	// Owns picks the groups this node evaluates. Nil evaluates all of them
	// (a single node).
	Owns OwnsFunc
	// Send, when set, gets every alert notification as well as the
	// Alertmanagers of Config.Alertmanager: the built-in webhook receivers.
	Send SendFunc
}

// GroupKey is the key of a rule group that OwnsFunc gets: the file, as
// matched by the -rules.files globs, and the group's name. Files are named
// as the globs match them, not made absolute, so that every node computes
// the same keys from the same configuration.
func GroupKey(file, group string) string { return promrules.GroupKey(file, group) }

// Manager evaluates the rule groups this node owns with the Prometheus
// rules manager and sends their alerts to Alertmanager and to Deps.Send.
// It is a dskit service: groups are evaluated while it runs. Reload,
// OwnershipChanged, Groups and Alerts may be called from any goroutine at
// any time.
type Manager struct {
	services.Service

	cfg         Config
	deps        Deps
	logger      *slog.Logger
	m           *metrics
	externalURL string

	rm      *promrules.Manager
	loader  *ownedLoader
	cancel  context.CancelFunc
	runDone chan struct{}

	// am sends to -alertmanager.url; nil when none is set.
	am        *notifier.Manager
	amTargets map[string][]*targetgroup.Group
	amDone    chan struct{}

	// ownership is signalled by OwnershipChanged and drained by running.
	ownership chan struct{}

	// mu serialises the changes of the rule set (Reload, ownership,
	// start, stop) and guards what they change. It is held across
	// rules.Manager.Update, which calls loader.Load.
	mu     sync.Mutex
	files  []string // rule files matched by the globs at the last load
	active bool     // rm runs: Update may be called
}

// New returns a Manager for cfg, which it validates. It loads the rule
// files, so that a broken one fails start-up with its file and line (see
// ErrInvalidRules). Prometheus's prometheus_rule_* and
// prometheus_notifications_* metrics and Pharos's pharos_rules_* metrics
// are registered on reg.
func New(cfg Config, deps Deps, logger *slog.Logger, reg prometheus.Registerer) (*Manager, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Queryable == nil {
		return nil, fmt.Errorf("%w: Queryable", ErrMissingDependency)
	}
	if deps.Appendable == nil {
		return nil, fmt.Errorf("%w: Appendable", ErrMissingDependency)
	}
	if deps.Owns == nil {
		deps.Owns = func(string) bool { return true }
	}
	extURL := &url.URL{}
	if cfg.ExternalURL != "" {
		u, err := url.Parse(cfg.ExternalURL)
		if err != nil {
			return nil, fmt.Errorf("rules.external_url: %w", err)
		}
		extURL = u
	}
	p := newParser()
	m := &Manager{
		cfg:         cfg,
		deps:        deps,
		logger:      logger,
		externalURL: strings.TrimSuffix(extURL.String(), "/"),
		loader:      &ownedLoader{parser: p, owns: deps.Owns},
		ownership:   make(chan struct{}, 1),
	}
	// The files first: a New that fails on them has registered nothing.
	files, loaded, err := m.load()
	if err != nil {
		return nil, err
	}
	m.files, m.loader.files = files, loaded
	m.m = newMetrics(reg)
	m.m.reloaded(true, len(files), loaded)

	if len(cfg.Alertmanager.URLs) > 0 {
		if m.am, m.amTargets, err = newAlertmanagers(cfg.Alertmanager, logger, reg); err != nil {
			return nil, err
		}
	}

	engine := deps.Engine
	if engine == nil {
		interval := cfg.EvaluationInterval.Milliseconds()
		engine = promql.NewEngine(promql.EngineOpts{
			Logger:                   logger.With("component", "promql"),
			MaxSamples:               cfg.MaxSamples,
			Timeout:                  cfg.QueryTimeout,
			EnableAtModifier:         true,
			EnableNegativeOffset:     true,
			EnableDelayedNameRemoval: true,
			NoStepSubqueryIntervalFn: func(int64) int64 { return interval },
			Parser:                   p,
		})
	}

	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	m.rm = promrules.NewManager(&promrules.ManagerOptions{
		NameValidationScheme: nameValidation,
		ExternalURL:          extURL,
		QueryFunc:            promrules.EngineQueryFunc(engine, deps.Queryable),
		NotifyFunc:           m.notify,
		Context:              ctx,
		AppendableV2:         &ownedAppendable{next: deps.Appendable, owns: deps.Owns, dropped: m.m.unownedDropped},
		Queryable:            deps.Queryable,
		Logger:               logger,
		Registerer:           reg,
		OutageTolerance:      cfg.OutageTolerance,
		ForGracePeriod:       cfg.ForGracePeriod,
		ResendDelay:          cfg.ResendDelay,
		GroupLoader:          m.loader,
		// A group this node takes over is new to its rules manager: with
		// this, it restores the `for` state of its alerts from
		// ALERTS_FOR_STATE as on a restart, instead of starting them over.
		RestoreNewRuleGroups: true,
		Parser:               p,
	})
	m.Service = services.NewBasicService(m.starting, m.running, m.stopping).WithName("rules")
	return m, nil
}

// load expands the globs and parses every file matched. It returns every
// error, wrapped in ErrInvalidRules.
func (m *Manager) load() ([]string, map[string]*rulefmt.RuleGroups, error) {
	files, err := expandGlobs(m.cfg.Files)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrInvalidRules, err)
	}
	loaded := make(map[string]*rulefmt.RuleGroups, len(files))
	var errs []error
	for _, f := range files {
		rgs, _, fileErrs := checkFile(f, m.loader.parser)
		errs = append(errs, fileErrs...)
		loaded[f] = rgs
	}
	if len(errs) > 0 {
		return nil, nil, fmt.Errorf("%w: %w", ErrInvalidRules, errors.Join(errs...))
	}
	return files, loaded, nil
}

// Reload reads the rule files the globs match again and applies them.
// When one does not load, the rules in use stay and the error (wrapping
// ErrInvalidRules) names every file and line at fault. Groups whose rules
// did not change go on undisturbed, alert state included.
func (m *Manager) Reload() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	files, loaded, err := m.load()
	if err != nil {
		m.m.reloaded(false, 0, nil)
		m.logger.Error("rule files not reloaded; the previous rules stay in use", "err", err)
		return err
	}
	oldFiles, oldLoaded := m.files, m.loader.files
	m.files, m.loader.files = files, loaded
	if err := m.update(); err != nil {
		m.files, m.loader.files = oldFiles, oldLoaded
		m.m.reloaded(false, 0, nil)
		return err
	}
	m.m.reloaded(true, len(files), loaded)
	m.logger.Info("rule files reloaded", "files", len(files), "owned_groups", len(m.rm.RuleGroups()))
	return nil
}

// OwnershipChanged tells the Manager that Deps.Owns may answer otherwise
// now (the ring changed). It does not block: the running service applies
// the change soon after, once for any number of calls in between. Groups
// no longer owned stop (without marking their series stale: the new owner
// writes them); groups newly owned start and restore the `for` state of
// their alerts from ALERTS_FOR_STATE.
func (m *Manager) OwnershipChanged() {
	select {
	case m.ownership <- struct{}{}:
	default:
	}
}

// update hands the loaded files to the rules manager, which asks the
// loader, which keeps the owned groups only. m.mu must be held. Outside
// the running state, it does nothing: starting applies the rules.
func (m *Manager) update() error {
	if !m.active {
		return nil
	}
	// Update returns a generic error and logs the causes; the files were
	// checked by load, so this is not expected to fail.
	if err := m.rm.Update(m.cfg.EvaluationInterval, m.files, labels.EmptyLabels(), m.externalURL, m.evalIteration); err != nil {
		return fmt.Errorf("rules: apply rule groups: %w", err)
	}
	m.m.owned.Set(float64(len(m.rm.RuleGroups())))
	return nil
}

// evalIteration evaluates a group if this node still owns it. Ownership is
// asked before every evaluation so that a group lost is not evaluated
// again, even before OwnershipChanged has stopped it.
func (m *Manager) evalIteration(ctx context.Context, g *promrules.Group, ts time.Time) {
	if !m.deps.Owns(GroupKey(g.File(), g.Name())) {
		m.m.skipped.Inc()
		return
	}
	promrules.DefaultEvalIterationFunc(ctx, g, ts)
}

func (m *Manager) starting(ctx context.Context) error {
	if m.am != nil {
		m.amDone = make(chan struct{})
		tsets := make(chan map[string][]*targetgroup.Group)
		go func() {
			defer close(m.amDone)
			m.am.Run(tsets)
		}()
		// Run takes one update of the Alertmanager list at a time, so the
		// second send completes only once the first is applied: no alert
		// can reach the notifier before it knows where to send it.
		for range 2 {
			select {
			case tsets <- m.amTargets:
			case <-ctx.Done():
				m.am.Stop()
				<-m.amDone
				return ctx.Err()
			}
		}
	}
	// Run before Update: the rules manager starts the groups' goroutines
	// in Update, and they wait for Run; a manager stopped before Run would
	// wait for them forever.
	m.runDone = make(chan struct{})
	go func() {
		defer close(m.runDone)
		m.rm.Run()
	}()
	m.mu.Lock()
	m.active = true
	err := m.update()
	files := len(m.files)
	m.mu.Unlock()
	if err != nil {
		_ = m.stopping(err)
		return err
	}
	m.logger.Info("evaluating rules", "files", files, "owned_groups", len(m.rm.RuleGroups()), "alertmanagers", len(m.cfg.Alertmanager.URLs))
	return nil
}

func (m *Manager) running(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-m.ownership:
			m.mu.Lock()
			if err := m.update(); err != nil {
				m.logger.Error("applying rule group ownership failed", "err", err)
			}
			m.mu.Unlock()
		}
	}
}

// stopping stops the evaluations first, so that their last notifications
// are queued, then the notifier, which sends what is queued (each request
// bounded by -alertmanager.timeout).
func (m *Manager) stopping(error) error {
	m.mu.Lock()
	m.active = false
	m.mu.Unlock()
	m.cancel() // in-flight queries
	m.rm.Stop()
	<-m.runDone
	if m.am != nil {
		m.am.Stop()
		<-m.amDone
	}
	return nil
}

// Groups returns the rule groups this node evaluates, sorted by file and
// name. In a cluster every group appears on exactly one node (for a
// moment on two, while ownership moves).
func (m *Manager) Groups() []*promrules.Group { return m.rm.RuleGroups() }

// Alerts returns the active (pending and firing) alerts of the groups this
// node evaluates, in the order of their groups and rules, and by labels
// within a rule. They are copies.
func (m *Manager) Alerts() []*promrules.Alert {
	var res []*promrules.Alert
	for _, g := range m.Groups() {
		for _, r := range g.Rules() {
			if ar, ok := r.(*promrules.AlertingRule); ok {
				res = append(res, sortedAlerts(ar.ActiveAlerts())...)
			}
		}
	}
	return res
}

func sortedAlerts(as []*promrules.Alert) []*promrules.Alert {
	slices.SortFunc(as, func(a, b *promrules.Alert) int { return labels.Compare(a.Labels, b.Labels) })
	return as
}
