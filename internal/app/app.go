package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/grafana/dskit/modules"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/storage"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/pharos-obs/pharos/aggregator"
	"github.com/pharos-obs/pharos/aggregator/spanmetrics"
	"github.com/pharos-obs/pharos/alerting/notify"
	"github.com/pharos-obs/pharos/alerting/rules"
	"github.com/pharos-obs/pharos/collector/publish"
	"github.com/pharos-obs/pharos/collector/receive"
	"github.com/pharos-obs/pharos/collector/receive/loki"
	"github.com/pharos-obs/pharos/collector/receive/otlp"
	"github.com/pharos-obs/pharos/collector/receive/promrw"
	"github.com/pharos-obs/pharos/collector/scrape"
	"github.com/pharos-obs/pharos/collector/tail"
	"github.com/pharos-obs/pharos/internal/bus"
	"github.com/pharos-obs/pharos/internal/cluster"
	"github.com/pharos-obs/pharos/internal/kitlog"
	"github.com/pharos-obs/pharos/internal/otlpwire"
	"github.com/pharos-obs/pharos/query"
	"github.com/pharos-obs/pharos/query/logql"
	"github.com/pharos-obs/pharos/query/lokiapi"
	"github.com/pharos-obs/pharos/query/promapi"
	"github.com/pharos-obs/pharos/query/tempoapi"
	"github.com/pharos-obs/pharos/storage/logs"
	"github.com/pharos-obs/pharos/storage/logs/vlogs"
	"github.com/pharos-obs/pharos/storage/metrics"
	"github.com/pharos-obs/pharos/storage/traces"
	"github.com/pharos-obs/pharos/storage/traces/vtraces"
	"github.com/pharos-obs/pharos/ui"
)

// Build information, set by the linker (-X) for releases.
var (
	Version   = "0.1.0-dev"
	Revision  = ""
	Branch    = ""
	BuildUser = ""
	BuildDate = ""
)

// ShutdownTimeout bounds a graceful stop: SIGTERM must end the process
// within 10 s, with room left for the runtime to exit.
const ShutdownTimeout = 9 * time.Second

// App is one Pharos process: the modules its targets need, wired together.
type App struct {
	cfg      *Config
	logger   *slog.Logger
	reg      *prometheus.Registry
	gatherer prometheus.Gatherer

	mm       *modules.Manager
	handoff  *bus.Handoff // see metricsHandoff
	services map[string]services.Service

	server    *server
	embedded  *bus.EmbeddedServer
	conn      *bus.Conn
	store     *metrics.Store
	logStore  *vlogs.Store
	trStore   *vtraces.Store
	spanGen   *spanmetrics.Generator
	tracesPub *publish.Traces
	batcher   *publish.Metrics
	logsPub   *publish.Logs
	tailer    *tail.Tailer
	scraper   *scrape.Scraper
	agg       *aggregator.Aggregator
	kv        *cluster.KV
	member    atomic.Pointer[cluster.Member]
	watcher   *cluster.Watcher
	notifier  *notify.Notifier
	rules     atomic.Pointer[rules.Manager]
	// rulesFanOut serves the rules API from the aggregators on a
	// querier without rules of its own; nil elsewhere.
	rulesFanOut *query.RemoteRules
	ownState
	authState
	memState
	limitsState
	started atomic.Bool
}

// New validates cfg and prepares the modules of its targets; nothing runs
// until Run.
func New(cfg *Config, logger *slog.Logger) (*App, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	// Every partition-replica needs its durable consumer from the start;
	// in a ring, consumers are pinned to one aggregator at a time, and
	// aggregators own the consumers' settings.
	cfg.NATS.Consumer.Replicas = cfg.Cluster.Ring.ReplicationFactor
	cfg.NATS.Consumer.Exclusive = cfg.ringEnabled()
	cfg.NATS.Consumer.Manage = cfg.has(TargetAggregator)
	reg := prometheus.NewRegistry()
	a := &App{
		cfg:    cfg,
		logger: logger,
		reg:    reg,
		// The Go and process collectors, and the few Prometheus packages
		// that register globally (remote read client), live in the
		// default registry; /metrics serves both.
		gatherer: prometheus.Gatherers{reg, prometheus.DefaultGatherer},
	}
	promauto.With(reg).NewGaugeFunc(prometheus.GaugeOpts{
		Name: "pharos_build_info", Help: "A constant 1 labelled with the build of this process.",
		ConstLabels: prometheus.Labels{"version": Version, "revision": Revision, "goversion": runtime.Version()},
	}, func() float64 { return 1 })
	a.mm = modules.NewManager(kitlog.New(logger))
	if err := a.registerModules(); err != nil {
		return nil, err
	}
	servs, err := a.mm.InitModuleServices(cfg.Target...)
	if err != nil {
		return nil, err
	}
	a.services = servs
	return a, nil
}

// Module names. The four targets are the user-visible ones.
const (
	modServer       = "server"
	modEmbeddedNATS = "embedded-nats"
	modBus          = "bus"
	modMetricsStore = "metrics-store"
	modPublisher    = "publisher"
	modTracesPub    = "trace-publisher"
	modScraper      = "scraper"
	modAggregator   = "aggregator-consumer"
	modQuery        = "query-api"
	modAdmin        = "admin"
	modReceivers    = "receivers"
	modLogsStore    = "logs-store"
	modTailer       = "tailer"
	modTracesStore  = "traces-store"
	modSpanMetrics  = "span-metrics"
)

func (a *App) registerModules() error {
	m := a.mm
	m.RegisterModule(modServer, a.initServer, modules.UserInvisibleModule)
	m.RegisterModule(modEmbeddedNATS, a.initEmbeddedNATS, modules.UserInvisibleModule)
	m.RegisterModule(modBus, a.initBus, modules.UserInvisibleModule)
	m.RegisterModule(modMetricsStore, a.initMetricsStore, modules.UserInvisibleModule)
	m.RegisterModule(modPublisher, a.initPublisher, modules.UserInvisibleModule)
	m.RegisterModule(modTracesPub, a.initTracesPublisher, modules.UserInvisibleModule)
	m.RegisterModule(modScraper, a.initScraper, modules.UserInvisibleModule)
	m.RegisterModule(modAggregator, a.initAggregator, modules.UserInvisibleModule)
	m.RegisterModule(modQuery, a.initQuery, modules.UserInvisibleModule)
	m.RegisterModule(modAdmin, a.initAdmin, modules.UserInvisibleModule)
	m.RegisterModule(modReceivers, a.initReceivers, modules.UserInvisibleModule)
	m.RegisterModule(modLogsStore, a.initLogsStore, modules.UserInvisibleModule)
	m.RegisterModule(modTailer, a.initTailer, modules.UserInvisibleModule)
	m.RegisterModule(modTracesStore, a.initTracesStore, modules.UserInvisibleModule)
	m.RegisterModule(modSpanMetrics, a.initSpanMetrics, modules.UserInvisibleModule)
	m.RegisterModule(modClusterKV, a.initClusterKV, modules.UserInvisibleModule)
	m.RegisterModule(modRingMember, a.initRingMember, modules.UserInvisibleModule)
	m.RegisterModule(modRingWatcher, a.initRingWatcher, modules.UserInvisibleModule)
	m.RegisterModule(modNotifier, a.initNotifier, modules.UserInvisibleModule)
	m.RegisterModule(modRules, a.initRules, modules.UserInvisibleModule)
	m.RegisterModule(modMemLimit, a.initMemLimiter, modules.UserInvisibleModule)
	m.RegisterModule(TargetAgent, nil)
	m.RegisterModule(TargetAggregator, nil)
	m.RegisterModule(TargetQuery, nil)
	m.RegisterModule(TargetNATS, nil)
	m.RegisterModule(TargetAll, nil)

	// The embedded server belongs to the all-in-one only; split roles reach
	// an external NATS.
	busDeps := []string{modServer}
	if a.cfg.has(TargetAll) && a.cfg.NATS.URL == "" {
		busDeps = append(busDeps, modEmbeddedNATS)
	}
	// The all-in-one's query reads local storage; a split query role reads
	// the aggregators over HTTP.
	queryDeps := []string{modServer}
	aggDeps := []string{modBus, modMetricsStore, modLogsStore, modTracesStore, modSpanMetrics, modMemLimit}
	switch {
	case a.cfg.ringEnabled():
		// In a cluster the local store holds only this node's partitions:
		// queries fan out to every aggregator in the ring, this one too.
		queryDeps = append(queryDeps, modRingWatcher)
		if a.cfg.has(TargetAggregator) {
			aggDeps = append(aggDeps, modRingMember)
		}
	case a.cfg.has(TargetAggregator):
		queryDeps = append(queryDeps, modMetricsStore, modLogsStore, modTracesStore)
	}
	if !a.cfg.has(TargetQuery) || len(a.cfg.Query.Aggregators) > 0 {
		// Only the query role reads from the ring.
		queryDeps = slices.DeleteFunc(queryDeps, func(d string) bool { return d == modRingWatcher })
	}
	// Rules read the cluster (or the local store) and write through the
	// publisher; their ownership follows the ring.
	rulesDeps := []string{modServer, modPublisher, modMetricsStore, modLogsStore}
	if a.cfg.ringEnabled() {
		rulesDeps = append(rulesDeps, modRingMember)
	}
	serverDeps := []string{}
	if a.cfg.HTTP.AdminListenAddress != "" {
		serverDeps = append(serverDeps, modAdmin)
	}
	deps := map[string][]string{
		modServer:        serverDeps,
		modBus:           busDeps,
		modMetricsStore:  {modServer},
		modPublisher:     {modBus},
		modTracesPub:     {modBus},
		modScraper:       {modPublisher, modServer},
		modAggregator:    aggDeps,
		modClusterKV:     {modServer},
		modRingMember:    {modClusterKV, modServer},
		modRingWatcher:   {modClusterKV},
		modQuery:         queryDeps,
		modReceivers:     {modPublisher, modTracesPub, modServer, modMemLimit},
		modLogsStore:     {modServer},
		modTracesStore:   {modServer},
		modSpanMetrics:   {modPublisher},
		modTailer:        {modPublisher},
		TargetAgent:      {modScraper, modReceivers},
		TargetAggregator: {modAggregator},
		TargetQuery:      {modQuery},
		TargetAll:        {TargetAgent, TargetAggregator, TargetQuery},
		modEmbeddedNATS:  {modServer},
		TargetNATS:       {modEmbeddedNATS},
		modNotifier:      {modServer},
		modRules:         rulesDeps,
	}
	if a.cfg.Agent.Tail.Enabled {
		deps[TargetAgent] = append(deps[TargetAgent], modTailer)
	}
	if a.cfg.rulesEnabled() {
		deps[TargetAggregator] = append(deps[TargetAggregator], modRules)
		if a.cfg.Notify.Enabled() {
			deps[modRules] = append(deps[modRules], modNotifier)
		}
	}
	for mod, d := range deps {
		if err := m.AddDependency(mod, d...); err != nil {
			return err
		}
	}
	return nil
}

func (a *App) initServer() (services.Service, error) {
	a.server = newServer(a.cfg.HTTP.ListenAddress, a.gatherer, a.logger.With("component", "http"))
	if err := a.secureServer(); err != nil {
		return nil, err
	}
	// Modules add their own checks; this one holds /ready back until every
	// module has started, since the listener is up before the rest.
	a.server.addReadyCheck("modules", func() error {
		if !a.started.Load() {
			return errors.New("starting")
		}
		return nil
	})
	a.registerStatusRoutes()
	return a.server, nil
}

// initAdmin starts the admin listener (reload, pprof), when configured.
func (a *App) initAdmin() (services.Service, error) {
	return a.newAdmin()
}

func (a *App) initEmbeddedNATS() (services.Service, error) {
	a.server.addReadyCheck("jetstream", func() error {
		if a.embedded == nil || !a.embedded.JetStreamReady() {
			return errors.New("JetStream not ready (in a cluster: no meta leader yet)")
		}
		return nil
	})
	start := func(context.Context) error {
		srv, err := bus.StartEmbedded(a.cfg.NATS.Embedded, filepath.Join(a.cfg.DataDir, "nats"), a.logger.With("component", "nats-server"))
		if err != nil {
			return err
		}
		a.embedded = srv
		return nil
	}
	stop := func(error) error {
		a.embedded.Shutdown()
		return nil
	}
	return services.NewIdleService(start, stop), nil
}

func (a *App) initBus() (services.Service, error) {
	a.server.addReadyCheck("nats", func() error {
		if a.conn == nil || !a.conn.Connected() {
			return errors.New("not connected")
		}
		if !a.conn.Ensured() {
			// Publishing waits for every partition-replica's consumer
			// (see bus.Conn.Publish); traffic should too.
			return errors.New("streams and consumers not ensured yet")
		}
		return nil
	})
	start := func(ctx context.Context) error {
		// The client name shows in NATS's monitoring: an aggregator's ring ID
		// tells apart the processes of one host.
		name := "pharos-" + a.cfg.Agent.ID
		if a.cfg.ringEnabled() && a.cfg.has(TargetAggregator) {
			name = "pharos-" + a.cfg.Cluster.Ring.InstanceID
		}
		conn, err := bus.Connect(a.cfg.NATS, a.embedded, name, a.logger.With("component", "bus"), a.reg)
		if err != nil {
			return err
		}
		a.conn = conn
		// Streams are created by whoever starts first; a NATS that is not
		// up yet is waited for in the background so the process still starts
		// (agents spool, aggregators retry).
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			if err := conn.EnsureStreams(ctx, bus.SignalMetrics, bus.SignalLogs, bus.SignalTraces); err != nil {
				a.logger.Error("could not create streams", "err", err)
			}
		}()
		return nil
	}
	stop := func(error) error { return a.conn.Close() }
	return services.NewIdleService(start, stop), nil
}

func (a *App) initMetricsStore() (services.Service, error) {
	a.server.addReadyCheck("storage", func() error {
		if a.store == nil {
			return errors.New("metrics storage not open")
		}
		return nil
	})
	start := func(context.Context) error {
		st, err := metrics.Open(a.cfg.Storage.Metrics, filepath.Join(a.cfg.DataDir, "metrics"), a.logger, a.reg)
		if err != nil {
			return err
		}
		a.store = st
		if a.seriesLimit != nil {
			st.SetSeriesLimit(a.seriesLimit)
		}
		aggregator.RegisterReadAPI(a.server.mux, aggregator.ReadAPIConfig{
			SampleLimit: 50_000_000, ConcurrencyLimit: 10, MaxBytesInFrame: 1 << 20,
		}, st, a.logger.With("component", "read-api"), a.reg)
		return nil
	}
	stop := func(error) error { return a.store.Close() }
	return services.NewIdleService(start, stop), nil
}

// metricsHandoff returns the in-process hand-off of metrics batches from
// the publisher to the aggregator, when this process runs both; nil
// otherwise.
func (a *App) metricsHandoff() *bus.Handoff {
	if a.handoff == nil && a.cfg.has(TargetAgent) && a.cfg.has(TargetAggregator) && a.cfg.Agent.Publish.HandoffMaxBytes > 0 {
		a.handoff = bus.NewHandoff(int64(a.cfg.Agent.Publish.HandoffMaxBytes), a.reg)
	}
	return a.handoff
}

// publishToBus lets the batcher be built before the bus connection exists.
func (a *App) publishToBus(ctx context.Context, m *bus.OutMsg) error { return a.conn.Publish(ctx, m) }

func (a *App) initPublisher() (services.Service, error) {
	spoolDir := filepath.Join(a.cfg.DataDir, "spool", "metrics")
	opts := []publish.Option{publish.WithSpool(a.cfg.Agent.Spool, spoolDir)}
	if h := a.metricsHandoff(); h != nil {
		opts = append(opts, publish.WithHandoff(h))
	}
	b, err := publish.NewMetrics(a.cfg.Agent.Publish, a.cfg.NATS.Partitions, a.cfg.Agent.ID, a.publishToBus, a.logger.With("component", "publisher"), a.reg, opts...)
	if err != nil {
		return nil, err
	}
	a.batcher = b
	a.logsPub, err = publish.NewLogs(a.cfg.Agent.Publish, a.cfg.NATS.Partitions, a.cfg.Agent.ID, a.publishToBus, a.logger.With("component", "log-publisher"), a.reg)
	if err != nil {
		return nil, err
	}
	return b, nil
}

// initTracesPublisher makes the agent's trace publisher, with its spool
// beside the metrics one.
func (a *App) initTracesPublisher() (services.Service, error) {
	spoolDir := filepath.Join(a.cfg.DataDir, "spool", "traces")
	tp, err := publish.NewTraces(a.cfg.Agent.Publish, a.cfg.Agent.Spool, spoolDir, a.cfg.NATS.Partitions, a.cfg.Agent.ID, a.publishToBus, a.logger.With("component", "trace-publisher"), a.reg)
	if err != nil {
		return nil, err
	}
	a.tracesPub = tp
	return tp, nil
}

func (a *App) initTracesStore() (services.Service, error) {
	a.server.addReadyCheck("trace-storage", func() error {
		if a.trStore == nil {
			return errors.New("trace storage not open")
		}
		return nil
	})
	start := func(context.Context) error {
		cfg := a.cfg.Storage.Traces
		cfg.Path = filepath.Join(a.cfg.DataDir, "traces")
		st, err := vtraces.Open(cfg, a.logger.With("component", "trace-store"), a.reg)
		if err != nil {
			return err
		}
		a.trStore = st
		aggregator.RegisterTracesReadAPI(a.server.mux, st, a.logger.With("component", "traces-read-api"))
		return nil
	}
	stop := func(error) error { return a.trStore.Close() }
	return services.NewIdleService(start, stop), nil
}

// initSpanMetrics derives span and service-graph metrics from the traces
// this aggregator stores, written through the agent's publisher (like
// recording rules) under this aggregator's name.
func (a *App) initSpanMetrics() (services.Service, error) {
	instance := a.cfg.Agent.ID
	if a.cfg.ringEnabled() {
		instance = a.cfg.Cluster.Ring.InstanceID
	}
	g, err := spanmetrics.New(a.cfg.SpanMetrics, instance, a.batcher, a.logger.With("component", "span-metrics"), a.reg)
	if err != nil {
		return nil, err
	}
	a.spanGen = g
	return g, nil
}

// initTailer follows the log files the agent is configured for; its read
// positions live under the data directory.
func (a *App) initTailer() (services.Service, error) {
	t, err := tail.New(a.cfg.Agent.Tail, a.logsPub, filepath.Join(a.cfg.DataDir, "tail", "positions.json"), a.logger.With("component", "tail"), a.reg)
	if err != nil {
		return nil, err
	}
	a.tailer = t
	return t, nil
}

func (a *App) initLogsStore() (services.Service, error) {
	a.server.addReadyCheck("log-storage", func() error {
		if a.logStore == nil {
			return errors.New("log storage not open")
		}
		return nil
	})
	start := func(context.Context) error {
		cfg := a.cfg.Storage.Logs
		cfg.Path = filepath.Join(a.cfg.DataDir, "logs")
		st, err := vlogs.Open(cfg, a.logger.With("component", "log-store"), a.reg)
		if err != nil {
			return err
		}
		a.logStore = st
		aggregator.RegisterLogsReadAPI(a.server.mux, a.localLogs(), a.logger.With("component", "logs-read-api"))
		return nil
	}
	stop := func(error) error { return a.logStore.Close() }
	return services.NewIdleService(start, stop), nil
}

// localLogs is the local log store as queries see it: redelivered batches
// may have stored an entry twice, and a query shows it once.
func (a *App) localLogs() logs.Querier { return query.DedupLogs(a.logStore) }

func (a *App) initScraper() (services.Service, error) {
	s, err := scrape.New(a.cfg.Scrape, a.batcher, func() string { return a.server.Addr() }, a.logger.With("component", "scrape"), a.reg, a.selfScrapeOption())
	if err != nil {
		return nil, err
	}
	a.scraper = s
	a.server.mux.Handle("GET "+scrape.TargetsPath, s.TargetsHandler())
	return s, nil
}

// initReceivers serves the push protocols: remote write on the main port,
// OTLP on its own gRPC and HTTP ports and at /v1/metrics on the main port.
// Pushed data is validated against the agent's limits; scrapes are not (the
// scrape configuration has its own limits).
func (a *App) initReceivers() (services.Service, error) {
	in, err := receive.New(a.cfg.Agent.Receive, a.cfg.Agent.Limits, a.batcher, a.logger.With("component", "receive"), a.reg)
	if err != nil {
		return nil, err
	}
	in.SetMemoryGate(a.receiveGate())
	lim, err := a.tenantLimits()
	if err != nil {
		return nil, err
	}
	in.SetOverrides(lim, a.reg)
	promrw.NewHandler(in, a.logger.With("component", "remote-write")).Register(a.server.mux)
	otlpCfg, otlpAuth := a.otlpConfig()
	r, err := otlp.New(otlpCfg, in, a.logger.With("component", "otlp"), otlpAuth)
	if err != nil {
		return nil, err
	}
	a.server.mux.Handle(otlp.MetricsPath, r.MetricsHandler())
	// Logs: the Loki push API on the main port, OTLP logs beside metrics.
	li, err := receive.NewLogsIntake(a.cfg.Agent.Receive.Logs, in, a.logsPub, a.logger.With("component", "receive-logs"), a.reg)
	if err != nil {
		return nil, err
	}
	loki.NewHandler(li, a.logger.With("component", "loki-push")).Register(a.server.mux)
	logsSig := otlp.NewLogs(li, a.logger.With("component", "otlp-logs"))
	if err := r.Register(logsSig); err != nil {
		return nil, err
	}
	a.server.mux.Handle(otlp.LogsPath, logsSig)
	// Traces: OTLP beside metrics and logs.
	ti, err := receive.NewTracesIntake(a.cfg.Agent.Receive.Traces, in, a.tracesPub, a.logger.With("component", "receive-traces"), a.reg)
	if err != nil {
		return nil, err
	}
	tracesSig := otlp.NewTraces(ti, a.logger.With("component", "otlp-traces"))
	if err := r.Register(tracesSig); err != nil {
		return nil, err
	}
	a.server.mux.Handle(otlp.TracesPath, tracesSig)
	return r, nil
}

func (a *App) initAggregator() (services.Service, error) {
	consume := func(ctx context.Context, s bus.Signal, p int, durable string, h bus.BatchHandler) error {
		return a.conn.ConsumePartition(ctx, s, p, durable, h)
	}
	// The store opens when its module starts; the consumer only touches it
	// once running, after its dependencies.
	deadLetter := func(ctx context.Context, d *bus.Delivery, s bus.Signal, reason string) error {
		return a.conn.DeadLetter(ctx, d, s, reason)
	}
	agg, err := aggregator.New(a.cfg.Aggregator, a.cfg.NATS.Partitions, consume, deadLetter, storeRef{a}, a.logger.With("component", "aggregator"), a.reg)
	if err != nil {
		return nil, err
	}
	agg.WithMemoryGate(a.aggregatorGate())
	if h := a.metricsHandoff(); h != nil {
		agg.WithHandoff(h)
	}
	if err := a.aggregatorLimits(agg); err != nil {
		return nil, err
	}
	agg.WithLogs(logStoreRef{a}, a.reg)
	agg.WithTraces(traceStoreRef{a}, a.reg, a.spanGen.ObserveWire)
	if a.cfg.ringEnabled() {
		// Nothing is consumed until the ring says what this node owns.
		a.ownMu.Lock()
		agg.SetOwned(a.owned)
		a.agg = agg
		a.ownMu.Unlock()
	}
	return agg, nil
}

func (a *App) initQuery() (services.Service, error) {
	a.registerRulesFanOut()
	var loki *lokiapi.API
	start := func(context.Context) error {
		var (
			src    query.Source
			logQ   logs.Querier
			traceQ traces.Querier
		)
		logsClient := a.internalClient(a.cfg.Query.ReadTimeout)
		logsLogger := a.logger.With("component", "logs-fan-out")
		switch {
		case len(a.cfg.Query.Aggregators) > 0:
			eps := query.StaticEndpoints(a.cfg.Query.Aggregators)
			remote := query.NewRemote(eps, a.cfg.Query.ReadTimeout, a.cfg.Query.PartialResponse, a.remoteOption())
			src = query.Source{Queryable: remote, Metadata: remote}
			logQ = query.NewRemoteLogs(eps, logsClient, a.cfg.Query.PartialResponse, logsLogger)
			traceQ = query.NewRemoteTraces(eps, logsClient, a.cfg.Query.PartialResponse, logsLogger)
		case a.watcher != nil:
			remote := query.NewRemote(a.ringEndpoints, a.cfg.Query.ReadTimeout, a.cfg.Query.PartialResponse, a.remoteOption())
			src = query.Source{Queryable: remote, Metadata: remote}
			logQ = query.NewRemoteLogs(a.ringEndpoints, logsClient, a.cfg.Query.PartialResponse, logsLogger)
			traceQ = query.NewRemoteTraces(a.ringEndpoints, logsClient, a.cfg.Query.PartialResponse, logsLogger)
		case a.store != nil:
			src = query.Source{Queryable: a.store, Exemplars: a.store, Metadata: a.store, CountSamples: metrics.CountSamples}
			logQ = a.localLogs()
			traceQ = a.trStore
		default:
			return errors.New("query: no aggregators to read from (set -query.aggregator.addresses or -memberlist.join)")
		}
		build := promapi.BuildInfo{
			Version: Version, Revision: Revision, Branch: Branch, BuildUser: BuildUser, BuildDate: BuildDate, GoVersion: runtime.Version(),
		}
		api, err := query.New(a.cfg.Query, src, build, a.logger.With("component", "query"), a.reg)
		if err != nil {
			return err
		}
		a.server.mux.Handle("/api/v1/", api.PrometheusHandler())
		loki, err = lokiapi.New(a.cfg.Loki, logQ, logql.NewEngine(a.cfg.LogQL), lokiapi.BuildInfo(build), a.logger.With("component", "loki-api"), a.reg)
		if err != nil {
			return err
		}
		loki.Register(a.server.mux)
		engine := logql.NewEngine(a.cfg.LogQL)
		tempo, err := tempoapi.New(a.cfg.Tempo, traceQ, tempoapi.BuildInfo(build), a.logger.With("component", "tempo-api"), a.reg,
			tempoapi.WithLogsByTrace(logsByTrace(engine, logQ)))
		if err != nil {
			return err
		}
		tempo.Register(a.server.mux)
		ui.Register(a.server.mux, a.cfg.UI)
		return nil
	}
	stop := func(error) error {
		if loki != nil {
			loki.Stop() // open tails end; the HTTP server does not wait for websockets
		}
		return nil
	}
	return services.NewIdleService(start, stop), nil
}

// Reload re-reads what can change at run time: the scrape configuration
// and the rule files. A broken file keeps the old configuration running.
func (a *App) Reload() error {
	var errs []error
	if a.scraper != nil {
		errs = append(errs, a.scraper.Reload())
	}
	if m := a.rules.Load(); m != nil {
		errs = append(errs, m.Reload())
	}
	errs = append(errs, a.reloadLimits())
	return errors.Join(errs...)
}

func (a *App) handleReload(w http.ResponseWriter, _ *http.Request) {
	if err := a.Reload(); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	_, _ = w.Write([]byte("reloaded\n"))
}

// Run starts every module, then waits for SIGTERM or SIGINT (stop), SIGHUP
// (reload) or a module failure, and stops everything in dependency order.
func (a *App) Run() error {
	servs := make([]services.Service, 0, len(a.services))
	for _, s := range a.services {
		servs = append(servs, s)
	}
	sm, err := services.NewManager(servs...)
	if err != nil {
		return err
	}
	failed := make(chan error, 1)
	sm.AddListener(services.NewManagerListener(nil, nil, func(s services.Service) {
		select {
		case failed <- s.FailureCase():
		default:
		}
	}))
	ctx := context.Background()
	if err := sm.StartAsync(ctx); err != nil {
		return err
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)

	healthy := make(chan error, 1)
	go func() { healthy <- sm.AwaitHealthy(ctx) }()

	var runErr error
loop:
	for {
		select {
		case err := <-healthy:
			if err != nil {
				runErr = fmt.Errorf("start: %w", firstFailure(sm, err))
				break loop
			}
			a.started.Store(true)
			a.logger.Info("pharos started", "targets", a.cfg.Target.String(), "http", a.server.Addr(), "version", Version)
		case err := <-failed:
			runErr = err
			break loop
		case s := <-sigs:
			if s == syscall.SIGHUP {
				if err := a.Reload(); err != nil {
					a.logger.Error("reload failed", "err", err)
				}
				continue
			}
			a.logger.Info("shutting down", "signal", s.String())
			break loop
		}
	}
	if a.server != nil {
		a.server.beginShutdown()
	}
	sm.StopAsync()
	stopCtx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel()
	if err := sm.AwaitStopped(stopCtx); err != nil {
		a.logger.Error("modules did not stop in time", "err", err)
		if runErr == nil {
			runErr = err
		}
	}
	if runErr == nil {
		a.logger.Info("pharos stopped")
	}
	return runErr
}

func firstFailure(sm *services.Manager, err error) error {
	for _, s := range sm.ServicesByState()[services.Failed] {
		if f := s.FailureCase(); f != nil {
			return f
		}
	}
	return err
}

// storeRef defers to the metrics store opened by its module.
type storeRef struct{ a *App }

func (r storeRef) AppenderV2(ctx context.Context) storage.AppenderV2 {
	return r.a.store.AppenderV2(ctx)
}
func (r storeRef) SetMetadata(tenant, name string, m metadata.Metadata) {
	r.a.store.SetMetadata(tenant, name, m)
}

// traceStoreRef defers to the trace store opened by its module.
type traceStoreRef struct{ a *App }

func (r traceStoreRef) Append(tenant string, td ptrace.Traces) error {
	return r.a.trStore.Append(tenant, td)
}
func (r traceStoreRef) AppendWire(tenant string, t *otlpwire.Traces) error {
	return r.a.trStore.AppendWire(tenant, t)
}
func (r traceStoreRef) WaitDurable(ctx context.Context) error { return r.a.trStore.WaitDurable(ctx) }

// logStoreRef defers to the log store opened by its module.
type logStoreRef struct{ a *App }

func (r logStoreRef) Append(tenant string, streams []logs.Stream) error {
	return r.a.logStore.Append(tenant, streams)
}
func (r logStoreRef) WaitDurable(ctx context.Context) error { return r.a.logStore.WaitDurable(ctx) }
