package scrape

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"reflect"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/discovery"
	"github.com/prometheus/prometheus/discovery/targetgroup"
)

// coalesce is how long the sender waits after the first change before it
// sends, so that a reload's burst of initial updates goes out as one.
const coalesce = 100 * time.Millisecond

// targetDiscovery runs the service discoveries of the scrape jobs and hands
// the scrape manager every job's target groups when they change. It does
// what Prometheus's discovery.Manager does for the scrape manager (same
// providers shared between identical configurations, same metrics), but its
// sender sleeps until a discoverer reports a change: the Manager's sender
// resets its back-off on every tick once nothing was sent for a reload
// interval, so an idle agent with static targets wakes 10 times a second
// forever, which measured 1–3 % of the all-in-one's CPU.
type targetDiscovery struct {
	logger    *slog.Logger
	sdMetrics *discovery.SDMetrics
	metrics   *discovery.Metrics
	// interval is the shortest time between two sends.
	interval time.Duration
	syncCh   chan map[string][]*targetgroup.Group
	trigger  chan struct{}

	ctx    context.Context
	cancel context.CancelFunc

	// mu guards everything below, including every provider's jobs.
	mu        sync.Mutex
	providers []*sdProvider
	// targets holds each job's groups per provider, by group source.
	targets map[sdKey]map[string]*targetgroup.Group
	started uint
}

type sdKey struct{ job, provider string }

// sdProvider is one running discoverer, shared by every job whose
// configuration lists an identical service discovery config.
type sdProvider struct {
	name   string
	config discovery.Config
	d      discovery.Discoverer
	ctx    context.Context
	cancel context.CancelFunc
	jobs   map[string]struct{}
	// next collects the jobs of the configuration being applied.
	next map[string]struct{}
}

func newTargetDiscovery(logger *slog.Logger, reg prometheus.Registerer, sdMetrics *discovery.SDMetrics, interval time.Duration) (*targetDiscovery, error) {
	m, err := discovery.NewManagerMetrics(reg, "scrape")
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &targetDiscovery{
		logger:    logger,
		sdMetrics: sdMetrics,
		metrics:   m,
		interval:  interval,
		syncCh:    make(chan map[string][]*targetgroup.Group),
		trigger:   make(chan struct{}, 1),
		ctx:       ctx,
		cancel:    cancel,
		targets:   map[sdKey]map[string]*targetgroup.Group{},
	}, nil
}

// SyncCh is what the scrape manager reads.
func (d *targetDiscovery) SyncCh() <-chan map[string][]*targetgroup.Group { return d.syncCh }

func (d *targetDiscovery) poke() {
	select {
	case d.trigger <- struct{}{}:
	default:
	}
}

// ApplyConfig makes the running discoverers those of cfg (job name → its
// service discovery configs). A discoverer whose configuration is unchanged
// keeps running with the targets it found; the others are stopped and their
// targets dropped. Every job in cfg is sent, with no groups when it has no
// discovery or none of its discoverers could be built, so the scrape manager
// drops targets it no longer has.
func (d *targetDiscovery) ApplyConfig(cfg map[string]discovery.Configs) {
	d.mu.Lock()
	defer d.mu.Unlock()
	failed := 0
	for job, cfgs := range cfg {
		failed += d.register(job, cfgs)
	}
	d.metrics.FailedConfigs.Set(float64(failed))

	kept := d.providers[:0]
	for _, p := range d.providers {
		if len(p.next) == 0 {
			p.cancel()
			for job := range p.jobs {
				d.dropJob(job, p)
			}
			continue
		}
		// A job that joins a running provider starts with the groups it
		// already found for the others.
		var found map[string]*targetgroup.Group
		for job := range p.jobs {
			found = d.targets[sdKey{job, p.name}]
			if _, stays := p.next[job]; !stays {
				d.dropJob(job, p)
			}
		}
		for job := range p.next {
			if _, had := p.jobs[job]; !had && len(found) > 0 {
				d.targets[sdKey{job, p.name}] = maps.Clone(found)
			}
		}
		p.jobs, p.next = p.next, nil
		if p.cancel == nil {
			d.start(p)
		}
		kept = append(kept, p)
	}
	clear(d.providers[len(kept):])
	d.providers = kept
	d.poke()
}

// register adds job to the provider of each of its configs, building the
// providers that are new; it returns how many could not be built.
func (d *targetDiscovery) register(job string, cfgs discovery.Configs) (failed int) {
	added := false
	add := func(cfg discovery.Config) {
		for _, p := range d.providers {
			if reflect.DeepEqual(cfg, p.config) {
				if p.next == nil {
					p.next = map[string]struct{}{}
				}
				p.next[job] = struct{}{}
				added = true
				return
			}
		}
		typ := cfg.Name()
		disc, err := cfg.NewDiscoverer(discovery.DiscovererOptions{
			Logger:  d.logger.With("discovery", typ, "config", job),
			Metrics: d.sdMetrics.MechanismMetrics[typ],
			SetName: job,
		})
		if err != nil {
			d.logger.Error("cannot create service discovery", "err", err, "type", typ, "config", job)
			failed++
			return
		}
		d.providers = append(d.providers, &sdProvider{
			name:   fmt.Sprintf("%s/%d", typ, d.started),
			config: cfg,
			d:      disc,
			next:   map[string]struct{}{job: {}},
		})
		d.started++
		added = true
	}
	for _, cfg := range cfgs {
		add(cfg)
	}
	if !added {
		// An empty static group keeps the job in what is sent, so its old
		// targets are dropped.
		add(discovery.StaticConfig{{}})
	}
	return failed
}

// dropJob forgets what p found for job. Called with mu held.
func (d *targetDiscovery) dropJob(job string, p *sdProvider) {
	delete(d.targets, sdKey{job, p.name})
	d.metrics.DiscoveredTargets.DeleteLabelValues(job)
	d.metrics.LastUpdated.DeleteLabelValues(job)
	d.sdMetrics.RefreshManager.DeleteLabelValues(p.config.Name(), job)
}

// start runs p's discoverer and records its updates. Called with mu held.
func (d *targetDiscovery) start(p *sdProvider) {
	p.ctx, p.cancel = context.WithCancel(d.ctx)
	updates := make(chan []*targetgroup.Group)
	go p.d.Run(p.ctx, updates)
	go func() {
		for {
			select {
			case <-p.ctx.Done():
				return
			case tgs, ok := <-updates:
				if !ok {
					<-p.ctx.Done()
					return
				}
				d.metrics.ReceivedUpdates.Inc()
				d.update(p, tgs)
			}
		}
	}()
}

func (d *targetDiscovery) update(p *sdProvider, tgs []*targetgroup.Group) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if p.ctx.Err() != nil {
		return // stopped by a reload: its targets are gone
	}
	for job := range p.jobs {
		k := sdKey{job, p.name}
		groups := d.targets[k]
		if groups == nil {
			groups = map[string]*targetgroup.Group{}
			d.targets[k] = groups
		}
		for _, tg := range tgs {
			switch {
			case tg == nil:
			case len(tg.Targets) > 0:
				groups[tg.Source] = tg
			default:
				delete(groups, tg.Source)
			}
		}
	}
	d.poke()
}

// groups is every job's target groups, an empty list for a job without any.
func (d *targetDiscovery) groups() map[string][]*targetgroup.Group {
	d.mu.Lock()
	defer d.mu.Unlock()
	sets := map[string][]*targetgroup.Group{}
	counts := map[string]int{}
	for _, p := range d.providers {
		for job := range p.jobs {
			if _, ok := sets[job]; !ok {
				sets[job] = []*targetgroup.Group{}
			}
			for _, tg := range d.targets[sdKey{job, p.name}] {
				sets[job] = append(sets[job], tg)
				counts[job] += len(tg.Targets)
			}
		}
	}
	for job := range sets {
		d.metrics.DiscoveredTargets.WithLabelValues(job).Set(float64(counts[job]))
		d.metrics.LastUpdated.WithLabelValues(job).SetToCurrentTime()
	}
	return sets
}

// Run sends the targets after each change, at most once per interval, until
// Stop.
func (d *targetDiscovery) Run() {
	var next time.Time
	timer := time.NewTimer(0)
	<-timer.C
	for {
		select {
		case <-d.ctx.Done():
			return
		case <-d.trigger:
		}
		timer.Reset(max(coalesce, time.Until(next)))
		select {
		case <-d.ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		}
		// Changes made while waiting are in what is sent now.
		select {
		case <-d.trigger:
		default:
		}
		sets := d.groups()
		d.metrics.SentUpdates.Inc()
		select {
		case d.syncCh <- sets:
		case <-d.ctx.Done():
			return
		}
		next = time.Now().Add(d.interval)
	}
}

// Stop stops every discoverer and Run.
func (d *targetDiscovery) Stop() { d.cancel() }
