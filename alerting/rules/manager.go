package rules

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
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

	"github.com/pharos-obs/pharos/internal/tenant"
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
// given key (TenantGroupKey: GroupKey for the default tenant's groups). It is called before every evaluation of every
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
	// ALERTS_FOR_STATE series. Every read must be scoped to the tenant of
	// its context (tenant.FromContext), as the metrics store and the
	// fan-out are: a tenant's rules read that tenant's series. Required.
	Queryable storage.Queryable
	// Appendable takes the results of recording rules and the ALERTS and
	// ALERTS_FOR_STATE series; in the application, a publisher into the
	// pipeline, so that they are stored like any series and reach the
	// next owner of the group. It must write as the tenant of the
	// AppenderV2 context, as the publisher does. Required.
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
	// cluster-wide view of the logs. Required when Config.LogFiles is set,
	// and for the log rules of the tenants directory.
	Logs logs.Querier
	// LogEngine evaluates log rules. Nil builds one with LogQL's default
	// limits and Config.QueryTimeout.
	LogEngine *logql.Engine
}

// GroupKey is the key of a default-tenant rule group that OwnsFunc gets:
// the file, as matched by the -rules.files or -rules.log-files globs (or
// found in the tenants directory), and the group's name. Files are named
// as the globs match them, not made absolute, so that every node computes
// the same keys from the same configuration. Other tenants' groups have
// TenantGroupKey.
func GroupKey(file, group string) string { return promrules.GroupKey(file, group) }

// Manager evaluates the rule groups this node owns with Prometheus rules
// managers and sends their alerts to Alertmanager and to Deps.Send. Each
// rule set — one tenant's rules of one language from one source — has
// its own rules manager, whose context carries the tenant, so that its
// queries, its writes and its `for`-state restore are the tenant's: the
// default tenant's PromQL rules (Config.Files) and LogQL rules
// (Config.LogFiles), and each tenant's of Config.TenantsDir. It is a
// dskit service: groups are evaluated while it runs. Reload,
// OwnershipChanged, Groups, TenantGroups and Alerts may be called from any
// goroutine at any time.
type Manager struct {
	services.Service

	cfg         Config
	deps        Deps
	logger      *slog.Logger
	m           *metrics
	externalURL string

	promParser, logParser parser.Parser
	// newRules builds the rules manager of a rule set.
	newRules func(*ruleSet) *promrules.Manager
	sampler  *sampler // of log rules; nil without Deps.Logs
	cancel   context.CancelFunc

	// am sends to -alertmanager.url; nil when none is set.
	am        *notifier.Manager
	amTargets map[string][]*targetgroup.Group
	amDone    chan struct{}
	amReg     *prometheus.Registry // the notifier's metrics, for Alertmanagers

	// ownership is signalled by OwnershipChanged and drained by running.
	ownership chan struct{}

	// mu serialises the changes of the rule sets (Reload, ownership,
	// start, stop) and guards what they change (the sets, their files and
	// loaders' files, tenants). It is held across rules.Manager.Update,
	// which calls the loaders' Load.
	mu     sync.Mutex
	active bool // the rules managers run: Update may be called
	// sets holds every rule set made so far. A set whose tenant directory
	// went away stays, without groups: its rules manager marks the series
	// of the groups it stopped stale two intervals later, which it would
	// not do once stopped. So there are at most two sets (PromQL, LogQL)
	// per tenant directory ever seen, besides the default tenant's, and
	// sets are made only on loads.
	sets map[setKey]*ruleSet
	// list is sets in key order, for readers that do not take mu (the
	// API); replaced whole when a set is added.
	list atomic.Pointer[[]*ruleSet]
	// tenants are the default tenant and those of the tenants directory
	// at the last load applied.
	tenants []string
}

// setKey identifies a rule set: the rule files of one tenant in one
// language, from the configured globs or from the tenants directory.
type setKey struct {
	tenant string
	logs   bool // LogQL rules
	dir    bool // from Config.TenantsDir
}

func (k setKey) compare(o setKey) int {
	b := func(v bool) int {
		if v {
			return 1
		}
		return 0
	}
	return cmp.Or(strings.Compare(k.tenant, o.tenant), cmp.Compare(b(k.logs), b(o.logs)), cmp.Compare(b(k.dir), b(o.dir)))
}

// ruleSet is a rule set's files and the Prometheus rules manager that
// evaluates them.
type ruleSet struct {
	key   setKey
	field string // the configuration field the files come from, for errors
	// logsTenant is the log store key (tenant.Key) that log rules read.
	logsTenant string
	loader     *ownedLoader
	rm         *promrules.Manager
	runDone    chan struct{} // closed when rm.Run returns; nil until it runs
	files      []string      // at the last load applied; Manager.mu
}

// loadedSet is what a load read for one ruleSet.
type loadedSet struct {
	files  []string
	groups map[string]*rulefmt.RuleGroups
}

// loadResult is what one load read: the files of every rule set it found
// (the default tenant's PromQL set is always there), and the tenants.
type loadResult struct {
	sets    map[setKey]loadedSet
	tenants []string // the default tenant, then those of the tenants directory, sorted
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
		promParser:  p,
		logParser:   newLogParser(),
		ownership:   make(chan struct{}, 1),
		sets:        map[setKey]*ruleSet{},
	}
	m.list.Store(&[]*ruleSet{})
	// The files first: a New that fails on them has registered nothing.
	loaded, err := m.load()
	if err != nil {
		return nil, err
	}
	m.m = newMetrics(reg)
	logEngine := deps.LogEngine
	if deps.Logs != nil {
		if logEngine == nil {
			logEngine = logql.NewEngine(logql.EngineOpts{Timeout: cfg.QueryTimeout})
		}
		m.sampler = &sampler{
			engine:  logEngine,
			q:       deps.Logs,
			timeout: cfg.LogSampleTimeout,
			logger:  logger,
			results: m.m.logSamples,
		}
	}

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
	// Every rules manager shares the prometheus_rule_* metrics, which are
	// by group (file;name, and a tenant's files are its own) and
	// registered once.
	groupMetrics := promrules.NewGroupMetrics(reg)
	appendable := &ownedAppendable{next: deps.Appendable, owns: deps.Owns, dropped: m.m.unownedDropped}
	promQuery := promrules.EngineQueryFunc(engine, deps.Queryable)
	m.newRules = func(s *ruleSet) *promrules.Manager {
		id := s.key.tenant
		lg := logger
		if id != tenant.Default {
			lg = lg.With("tenant", id)
		}
		o := &promrules.ManagerOptions{
			NameValidationScheme: nameValidation,
			ExternalURL:          extURL,
			QueryFunc:            promQuery,
			NotifyFunc:           m.notifyFunc(id, false),
			// The tenant of every query, write and restore of the set's
			// groups: the rules package evaluates, appends (AppenderV2)
			// and marks stale in contexts made from this one, and restores
			// the `for` state with it.
			Context:         tenant.WithContext(ctx, id),
			AppendableV2:    appendable,
			Queryable:       deps.Queryable,
			Logger:          lg,
			Metrics:         groupMetrics,
			OutageTolerance: cfg.OutageTolerance,
			ForGracePeriod:  cfg.ForGracePeriod,
			ResendDelay:     cfg.ResendDelay,
			GroupLoader:     s.loader,
			// A group this node takes over (or a tenant's group that
			// appears) is new to its rules manager: with this, it
			// restores the `for` state of its alerts from
			// ALERTS_FOR_STATE as on a restart, instead of starting them
			// over.
			RestoreNewRuleGroups: true,
			Parser:               p,
		}
		if s.key.logs {
			// Log rules write and restore series like PromQL rules (the
			// same Appendable and Queryable); only their queries read logs.
			o.QueryFunc = logQueryFunc(logEngine, deps.Logs, s.logsTenant)
			o.NotifyFunc = m.notifyFunc(id, true)
			o.Logger = lg.With("rules", "logql")
			o.Parser = m.logParser
			o.RuleDependencyController = noRuleDependencies{}
		}
		return promrules.NewManager(o)
	}
	m.apply(loaded)
	m.m.reloaded(loaded)
	m.Service = services.NewBasicService(m.starting, m.running, m.stopping).WithName("rules")
	return m, nil
}

// load expands the globs, lists the tenants directory and parses every
// file found. It returns every error, wrapped in ErrInvalidRules. A file
// found twice (by the globs of both languages, or by a glob and in the
// tenants directory) is an error: its expressions are in one language,
// and its rules one tenant's.
func (m *Manager) load() (loadResult, error) {
	out := loadResult{sets: map[setKey]loadedSet{}, tenants: []string{tenant.Default}}
	foundIn := map[string]string{} // file → field
	var errs []error
	read := func(key setKey, field string, files []string) {
		p := m.promParser
		if key.logs {
			p = m.logParser
		}
		groups := make(map[string]*rulefmt.RuleGroups, len(files))
		kept := files[:0:0]
		for _, f := range files {
			if other, dup := foundIn[f]; dup {
				errs = append(errs, fmt.Errorf("%s: matched by both %s and %s; a rule file is in one list only, for one language and one tenant", f, other, field))
				continue
			}
			foundIn[f] = field
			rgs, _, fileErrs := checkFile(f, p)
			errs = append(errs, fileErrs...)
			groups[f] = rgs
			kept = append(kept, f)
		}
		out.sets[key] = loadedSet{files: kept, groups: groups}
	}
	for _, fixed := range []struct {
		field string
		globs []string
		logs  bool
	}{{fieldFiles, m.cfg.Files, false}, {fieldLogFiles, m.cfg.LogFiles, true}} {
		if fixed.logs && len(fixed.globs) == 0 {
			continue // no default log set without log files
		}
		files, err := expandGlobs(fixed.field, fixed.globs)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		read(setKey{tenant: tenant.Default, logs: fixed.logs}, fixed.field, files)
	}
	if m.cfg.TenantsDir != "" {
		tenants, dirErrs := listTenantsDir(m.cfg.TenantsDir)
		errs = append(errs, dirErrs...)
		for _, id := range slices.Sorted(maps.Keys(tenants)) {
			if id != tenant.Default {
				out.tenants = append(out.tenants, id)
			}
			tf := tenants[id]
			if len(tf.promql) > 0 {
				read(setKey{tenant: id, dir: true}, fieldTenants, tf.promql)
			}
			if len(tf.logql) > 0 {
				if m.deps.Logs == nil {
					errs = append(errs, fmt.Errorf("%s: %s: log rules need the log store, which this process does not read", fieldTenants, filepath.Dir(tf.logql[0])))
					continue
				}
				read(setKey{tenant: id, logs: true, dir: true}, fieldTenants, tf.logql)
			}
		}
	}
	if len(errs) > 0 {
		return loadResult{}, fmt.Errorf("%w: %w", ErrInvalidRules, errors.Join(errs...))
	}
	return out, nil
}

// apply makes l the files the sets evaluate (at their next update), making
// the sets l needs that do not exist yet, and rebuilds the sampler's
// index. A set l does not name gets no files: its groups stop at the next
// update. m.mu must be held, or m not yet shared.
func (m *Manager) apply(l loadResult) {
	added := false
	for key := range l.sets {
		if _, ok := m.sets[key]; !ok {
			m.addSet(key)
			added = true
		}
	}
	if added {
		list := slices.SortedFunc(maps.Values(m.sets), func(a, b *ruleSet) int { return a.key.compare(b.key) })
		m.list.Store(&list)
	}
	var logSets []sampleSource
	for key, s := range m.sets {
		ls := l.sets[key]
		s.files, s.loader.files = ls.files, ls.groups
		if key.logs {
			logSets = append(logSets, sampleSource{tenantID: key.tenant, logsTenant: s.logsTenant, files: ls.groups})
		}
	}
	m.tenants = l.tenants
	if m.sampler != nil {
		idx := buildSampleIndex(logSets)
		m.sampler.index.Store(&idx)
	}
}

// addSet makes the rule set of key, and runs its rules manager when the
// others run. m.mu must be held, or m not yet shared.
func (m *Manager) addSet(key setKey) {
	s := &ruleSet{key: key, field: fieldTenants}
	switch {
	case !key.dir && key.logs:
		s.field, s.logsTenant = fieldLogFiles, tenant.Key(m.cfg.LogTenant)
	case !key.dir:
		s.field = fieldFiles
	default:
		s.logsTenant = tenant.Key(key.tenant)
	}
	p := m.promParser
	if key.logs {
		p = m.logParser
	}
	s.loader = &ownedLoader{parser: p, owns: m.deps.Owns, tenant: key.tenant}
	s.rm = m.newRules(s)
	m.sets[key] = s
	if m.active {
		m.run(s)
	}
}

// run runs s's rules manager. Run comes before Update: a rules manager
// starts the groups' goroutines in Update, and they wait for Run; a
// manager stopped before Run would wait for them forever.
func (m *Manager) run(s *ruleSet) {
	s.runDone = make(chan struct{})
	go func() {
		defer close(s.runDone)
		s.rm.Run()
	}()
}

// current returns what the sets evaluate. m.mu must be held.
func (m *Manager) current() loadResult {
	out := loadResult{sets: make(map[setKey]loadedSet, len(m.sets)), tenants: m.tenants}
	for key, s := range m.sets {
		out.sets[key] = loadedSet{files: s.files, groups: s.loader.files}
	}
	return out
}

// Reload reads the rule files the globs match and the tenants directory
// again and applies them. When one does not load, the rules in use stay
// and the error (wrapping ErrInvalidRules) names every file and line at
// fault. Groups whose rules did not change go on undisturbed, alert state
// included; the groups of a tenant directory that appeared start, those
// of one that went away stop.
func (m *Manager) Reload() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	loaded, err := m.load()
	if err != nil {
		m.m.reloadFailed()
		m.logger.Error("rule files not reloaded; the previous rules stay in use", "err", err)
		return err
	}
	old := m.current()
	m.apply(loaded)
	if err := m.update(); err != nil {
		m.apply(old)
		m.m.reloadFailed()
		return err
	}
	m.m.reloaded(loaded)
	files, groups := loaded.count()
	m.logger.Info("rule files reloaded", "files", files, "groups", groups, "tenants", len(loaded.tenants), "owned_groups", len(m.Groups()))
	return nil
}

// count returns the number of files and of groups loaded.
func (l loadResult) count() (files, groups int) {
	for _, ls := range l.sets {
		f, g := ls.count()
		files += f
		groups += g
	}
	return files, groups
}

// count returns the number of files and of groups of one set.
func (ls loadedSet) count() (files, groups int) {
	for _, rgs := range ls.groups {
		if rgs != nil {
			groups += len(rgs.Groups)
		}
	}
	return len(ls.files), groups
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
	for _, s := range *m.list.Load() {
		// Update returns a generic error and logs the causes; the files
		// were checked by load, so this is not expected to fail.
		if err := s.rm.Update(m.cfg.EvaluationInterval, s.files, labels.EmptyLabels(), m.externalURL, m.evalIteration); err != nil {
			return fmt.Errorf("rules: apply rule groups of %s (tenant %s): %w", s.field, s.key.tenant, err)
		}
	}
	owned := make(map[string]int, len(m.tenants))
	for _, s := range *m.list.Load() {
		owned[s.key.tenant] += len(s.rm.RuleGroups())
	}
	m.m.setOwned(m.tenants, owned)
	return nil
}

// evalIteration evaluates a group if this node still owns it. Ownership is
// asked before every evaluation so that a group lost is not evaluated
// again, even before OwnershipChanged has stopped it. ctx carries the
// group's tenant.
func (m *Manager) evalIteration(ctx context.Context, g *promrules.Group, ts time.Time) {
	if !m.deps.Owns(TenantGroupKey(tenant.FromContext(ctx), g.File(), g.Name())) {
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
	m.mu.Lock()
	for _, s := range *m.list.Load() {
		m.run(s)
	}
	m.active = true
	err := m.update()
	files, _ := m.current().count()
	tenants := len(m.tenants)
	m.mu.Unlock()
	if err != nil {
		_ = m.stopping(err)
		return err
	}
	m.logger.Info("evaluating rules", "files", files, "tenants", tenants, "owned_groups", len(m.Groups()), "alertmanagers", len(m.cfg.Alertmanager.URLs))
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
	m.active = false // no set made from now on runs
	m.mu.Unlock()
	m.cancel() // in-flight queries
	for _, s := range *m.list.Load() {
		if s.runDone != nil {
			s.rm.Stop()
			<-s.runDone
		}
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

// Groups returns the rule groups this node evaluates, of every tenant,
// PromQL and LogQL, sorted by file and name. In a cluster every group
// appears on exactly one node (for a moment on two, while ownership
// moves).
func (m *Manager) Groups() []*promrules.Group { return groupsOf(*m.list.Load(), "", true) }

// TenantGroups returns the rule groups of tenant id that this node
// evaluates, sorted by file and name: what the rules API shows id.
func (m *Manager) TenantGroups(id string) []*promrules.Group {
	return groupsOf(*m.list.Load(), id, false)
}

// Alerts returns the active (pending and firing) alerts of the groups this
// node evaluates, of every tenant, in the order of their groups and rules,
// and by labels within a rule. They are copies.
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

func sortGroups(gs []*promrules.Group) {
	slices.SortFunc(gs, func(a, b *promrules.Group) int {
		return cmp.Or(strings.Compare(a.File(), b.File()), strings.Compare(a.Name(), b.Name()))
	})
}

func sortedAlerts(as []*promrules.Alert) []*promrules.Alert {
	slices.SortFunc(as, func(a, b *promrules.Alert) int { return labels.Compare(a.Labels, b.Labels) })
	return as
}
