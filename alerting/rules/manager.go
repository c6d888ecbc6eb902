package rules

import (
	"cmp"
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
	"github.com/prometheus/prometheus/promql/parser"
	promrules "github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/storage"

	"github.com/pharos-obs/pharos/query/logql"
	"github.com/pharos-obs/pharos/storage/logs"
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
	// Logs is what log rules (Config.LogFiles) are evaluated against and
	// where the sample lines of their notifications are read: the
	// cluster-wide view of the logs. Required when Config.LogFiles is set.
	Logs logs.Querier
	// LogEngine evaluates log rules. Nil builds one with LogQL's default
	// limits and Config.QueryTimeout.
	LogEngine *logql.Engine
}

// GroupKey is the key of a rule group that OwnsFunc gets: the file, as
// matched by the -rules.files or -rules.log-files globs, and the group's
// name. Files are named as the globs match them, not made absolute, so
// that every node computes the same keys from the same configuration.
func GroupKey(file, group string) string { return promrules.GroupKey(file, group) }

// Manager evaluates the rule groups this node owns with the Prometheus
// rules manager and sends their alerts to Alertmanager and to Deps.Send:
// PromQL rules (Config.Files) with one rules manager, LogQL rules
// (Config.LogFiles) with another. It is a dskit service: groups are
// evaluated while it runs. Reload, OwnershipChanged, Groups and Alerts may
// be called from any goroutine at any time.
type Manager struct {
	services.Service

	cfg         Config
	deps        Deps
	logger      *slog.Logger
	m           *metrics
	externalURL string

	// sets are the PromQL rules, then, when configured, the log rules.
	sets    []*ruleSet
	sampler *sampler // of log rules; nil without
	cancel  context.CancelFunc

	// am sends to -alertmanager.url; nil when none is set.
	am        *notifier.Manager
	amTargets map[string][]*targetgroup.Group
	amDone    chan struct{}
	amReg     *prometheus.Registry // the notifier's metrics, for Alertmanagers

	// ownership is signalled by OwnershipChanged and drained by running.
	ownership chan struct{}

	// mu serialises the changes of the rule sets (Reload, ownership,
	// start, stop) and guards what they change (the sets' files and
	// loaders' files). It is held across rules.Manager.Update, which calls
	// the loaders' Load.
	mu     sync.Mutex
	active bool // the rules managers run: Update may be called
}

// ruleSet is the rule files of one language and the Prometheus rules
// manager that evaluates them.
type ruleSet struct {
	field   string // the configuration field of globs, for errors
	globs   []string
	loader  *ownedLoader
	rm      *promrules.Manager
	runDone chan struct{}
	files   []string // matched by the globs at the last load; Manager.mu
}

// loadedSet is what a load read for one ruleSet.
type loadedSet struct {
	files  []string
	groups map[string]*rulefmt.RuleGroups
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
	if len(cfg.LogFiles) > 0 && deps.Logs == nil {
		return nil, fmt.Errorf("%w: Logs (for %s)", ErrMissingDependency, fieldLogFiles)
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
		ownership:   make(chan struct{}, 1),
	}
	m.sets = []*ruleSet{{field: fieldFiles, globs: cfg.Files, loader: &ownedLoader{parser: p, owns: deps.Owns}}}
	var logSet *ruleSet
	if len(cfg.LogFiles) > 0 {
		logSet = &ruleSet{field: fieldLogFiles, globs: cfg.LogFiles, loader: &ownedLoader{parser: newLogParser(), owns: deps.Owns}}
		m.sets = append(m.sets, logSet)
	}
	// The files first: a New that fails on them has registered nothing.
	loaded, err := m.load()
	if err != nil {
		return nil, err
	}
	m.m = newMetrics(reg)
	logEngine := deps.LogEngine
	if logSet != nil {
		if logEngine == nil {
			logEngine = logql.NewEngine(logql.EngineOpts{Timeout: cfg.QueryTimeout})
		}
		m.sampler = &sampler{
			engine:  logEngine,
			q:       deps.Logs,
			tenant:  cfg.LogTenant,
			timeout: cfg.LogSampleTimeout,
			logger:  logger,
			results: m.m.logSamples,
		}
	}
	m.apply(loaded)
	files, groups := countLoaded(loaded)
	m.m.reloaded(true, files, groups)

	if len(cfg.Alertmanager.URLs) > 0 {
		m.amReg = prometheus.NewRegistry()
		if m.am, m.amTargets, err = newAlertmanagers(cfg.Alertmanager, logger, reg, m.amReg); err != nil {
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
	// Both rules managers share the prometheus_rule_* metrics, which are
	// by group and registered once.
	groupMetrics := promrules.NewGroupMetrics(reg)
	opts := func(s *ruleSet, query promrules.QueryFunc, notify promrules.NotifyFunc, p parser.Parser, logger *slog.Logger) *promrules.ManagerOptions {
		return &promrules.ManagerOptions{
			NameValidationScheme: nameValidation,
			ExternalURL:          extURL,
			QueryFunc:            query,
			NotifyFunc:           notify,
			Context:              ctx,
			AppendableV2:         &ownedAppendable{next: deps.Appendable, owns: deps.Owns, dropped: m.m.unownedDropped},
			Queryable:            deps.Queryable,
			Logger:               logger,
			Metrics:              groupMetrics,
			OutageTolerance:      cfg.OutageTolerance,
			ForGracePeriod:       cfg.ForGracePeriod,
			ResendDelay:          cfg.ResendDelay,
			GroupLoader:          s.loader,
			// A group this node takes over is new to its rules manager:
			// with this, it restores the `for` state of its alerts from
			// ALERTS_FOR_STATE as on a restart, instead of starting them
			// over.
			RestoreNewRuleGroups: true,
			Parser:               p,
		}
	}
	m.sets[0].rm = promrules.NewManager(opts(m.sets[0], promrules.EngineQueryFunc(engine, deps.Queryable), m.notify, p, logger))
	if logSet != nil {
		// Log rules write and restore series like PromQL rules (the
		// same Appendable and Queryable); only their queries read logs.
		o := opts(logSet, logQueryFunc(logEngine, deps.Logs, cfg.LogTenant), m.notifyLogs, logSet.loader.parser, logger.With("rules", "logql"))
		o.RuleDependencyController = noRuleDependencies{}
		logSet.rm = promrules.NewManager(o)
	}
	m.Service = services.NewBasicService(m.starting, m.running, m.stopping).WithName("rules")
	return m, nil
}

// load expands the globs of every set and parses every file matched. It
// returns every error, wrapped in ErrInvalidRules. A file matched by the
// globs of both sets is an error: its expressions are in one language.
func (m *Manager) load() ([]loadedSet, error) {
	out := make([]loadedSet, len(m.sets))
	matchedBy := map[string]string{} // file → field
	var errs []error
	for i, s := range m.sets {
		files, err := expandGlobs(s.field, s.globs)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		groups := make(map[string]*rulefmt.RuleGroups, len(files))
		for _, f := range files {
			if other, dup := matchedBy[f]; dup {
				errs = append(errs, fmt.Errorf("%s: matched by both %s and %s; a rule file is either PromQL or LogQL", f, other, s.field))
				continue
			}
			matchedBy[f] = s.field
			rgs, _, fileErrs := checkFile(f, s.loader.parser)
			errs = append(errs, fileErrs...)
			groups[f] = rgs
		}
		out[i] = loadedSet{files: files, groups: groups}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w: %w", ErrInvalidRules, errors.Join(errs...))
	}
	return out, nil
}

// apply makes loaded the files the sets evaluate (at their next update)
// and the sampler's index. m.mu must be held, or m not yet shared.
func (m *Manager) apply(loaded []loadedSet) {
	for i, s := range m.sets {
		s.files, s.loader.files = loaded[i].files, loaded[i].groups
	}
	if m.sampler != nil { // there are log rules, the last set
		idx := buildSampleIndex(loaded[len(loaded)-1].groups)
		m.sampler.index.Store(&idx)
	}
}

// current returns what the sets evaluate. m.mu must be held.
func (m *Manager) current() []loadedSet {
	out := make([]loadedSet, len(m.sets))
	for i, s := range m.sets {
		out[i] = loadedSet{files: s.files, groups: s.loader.files}
	}
	return out
}

// countLoaded returns the number of files and of groups loaded.
func countLoaded(loaded []loadedSet) (files, groups int) {
	for _, l := range loaded {
		files += len(l.files)
		for _, rgs := range l.groups {
			if rgs != nil {
				groups += len(rgs.Groups)
			}
		}
	}
	return files, groups
}

// Reload reads the rule files the globs match again and applies them.
// When one does not load, the rules in use stay and the error (wrapping
// ErrInvalidRules) names every file and line at fault. Groups whose rules
// did not change go on undisturbed, alert state included.
func (m *Manager) Reload() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	loaded, err := m.load()
	if err != nil {
		m.m.reloaded(false, 0, 0)
		m.logger.Error("rule files not reloaded; the previous rules stay in use", "err", err)
		return err
	}
	old := m.current()
	m.apply(loaded)
	if err := m.update(); err != nil {
		m.apply(old)
		m.m.reloaded(false, 0, 0)
		return err
	}
	files, groups := countLoaded(loaded)
	m.m.reloaded(true, files, groups)
	m.logger.Info("rule files reloaded", "files", files, "owned_groups", m.ownedGroups())
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

// update hands the loaded files to the rules managers, which ask their
// loaders, which keep the owned groups only. m.mu must be held. Outside
// the running state, it does nothing: starting applies the rules.
func (m *Manager) update() error {
	if !m.active {
		return nil
	}
	for _, s := range m.sets {
		// Update returns a generic error and logs the causes; the files
		// were checked by load, so this is not expected to fail.
		if err := s.rm.Update(m.cfg.EvaluationInterval, s.files, labels.EmptyLabels(), m.externalURL, m.evalIteration); err != nil {
			return fmt.Errorf("rules: apply rule groups of %s: %w", s.field, err)
		}
	}
	m.m.owned.Set(float64(m.ownedGroups()))
	return nil
}

// ownedGroups counts the groups the rules managers evaluate.
func (m *Manager) ownedGroups() int {
	n := 0
	for _, s := range m.sets {
		n += len(s.rm.RuleGroups())
	}
	return n
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
	// Run before Update: a rules manager starts the groups' goroutines
	// in Update, and they wait for Run; a manager stopped before Run would
	// wait for them forever.
	for _, s := range m.sets {
		s.runDone = make(chan struct{})
		go func() {
			defer close(s.runDone)
			s.rm.Run()
		}()
	}
	m.mu.Lock()
	m.active = true
	err := m.update()
	files, _ := countLoaded(m.current())
	m.mu.Unlock()
	if err != nil {
		_ = m.stopping(err)
		return err
	}
	m.logger.Info("evaluating rules", "files", files, "owned_groups", m.ownedGroups(), "alertmanagers", len(m.cfg.Alertmanager.URLs))
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
	for _, s := range m.sets {
		s.rm.Stop()
		<-s.runDone
	}
	if m.sampler != nil {
		m.sampler.wg.Wait() // look-ups that outlived their notification
	}
	if m.am != nil {
		m.am.Stop()
		<-m.amDone
	}
	return nil
}

// Groups returns the rule groups this node evaluates, PromQL and LogQL,
// sorted by file and name. In a cluster every group appears on exactly one
// node (for a moment on two, while ownership moves).
func (m *Manager) Groups() []*promrules.Group {
	if len(m.sets) == 1 {
		return m.sets[0].rm.RuleGroups()
	}
	var gs []*promrules.Group
	for _, s := range m.sets {
		gs = append(gs, s.rm.RuleGroups()...)
	}
	slices.SortFunc(gs, func(a, b *promrules.Group) int {
		return cmp.Or(strings.Compare(a.File(), b.File()), strings.Compare(a.Name(), b.Name()))
	})
	return gs
}

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
