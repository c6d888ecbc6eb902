// Package scrape runs Prometheus's scrape manager and service discoveries on
// a Prometheus-format configuration file, writing into any
// storage.AppendableV2 (the agent's batcher).
package scrape

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	config_util "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/discovery"
	promscrape "github.com/prometheus/prometheus/scrape"
	"github.com/prometheus/prometheus/storage"
)

// Config names the scrape configuration.
type Config struct {
	// ConfigFile is a Prometheus configuration file; its global section and
	// scrape_configs (and scrape_config_files) are used as they are.
	ConfigFile string `yaml:"config_file"`
	// DiscoveryReloadInterval throttles how often target changes found by
	// service discovery are applied (Prometheus uses 5 s).
	DiscoveryReloadInterval time.Duration `yaml:"discovery_reload_interval"`
}

// RegisterFlags registers -scrape.config-file.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.StringVar(&c.ConfigFile, "scrape.config-file", "", "Prometheus-format configuration file whose global and scrape_configs sections are used; empty scrapes Pharos itself.")
	f.DurationVar(&c.DiscoveryReloadInterval, "scrape.discovery-reload-interval", 5*time.Second, "How often target changes from service discovery are applied.")
}

// Validate checks that the file exists and parses.
func (c Config) Validate() error {
	if c.DiscoveryReloadInterval <= 0 {
		return fmt.Errorf("scrape.discovery_reload_interval: must be positive, got %s", c.DiscoveryReloadInterval)
	}
	if c.ConfigFile == "" {
		return nil
	}
	if _, err := config.LoadFile(c.ConfigFile, false, slog.New(slog.DiscardHandler)); err != nil {
		return fmt.Errorf("scrape.config_file: %w", err)
	}
	return nil
}

// SelfConfig is the configuration used without a file: Pharos scrapes its
// own /metrics at addr.
func SelfConfig(addr string) string {
	return fmt.Sprintf(`global:
  scrape_interval: 15s
  scrape_timeout: 10s
scrape_configs:
  - job_name: pharos
    static_configs:
      - targets: [%q]
`, addr)
}

// Scraper is the scrape service.
type Scraper struct {
	services.Service

	cfg      Config
	selfAddr func() string
	logger   *slog.Logger
	// selfScheme and selfClient are how the self-scrape reaches this
	// process (nil selfClient: plain HTTP without credentials).
	selfScheme string
	selfClient *config_util.HTTPClientConfig

	discovery *targetDiscovery
	scrape    *promscrape.Manager
	wg        sync.WaitGroup
	reloadMu  sync.Mutex
}

// Option configures a Scraper.
type Option func(*Scraper)

// WithSelfClient makes the self-scrape (the configuration used without a
// file) reach this process with scheme ("http" or "https") and the client
// configuration hc: its credentials and TLS, when its listener asks for
// them.
func WithSelfClient(scheme string, hc config_util.HTTPClientConfig) Option {
	return func(s *Scraper) { s.selfScheme, s.selfClient = scheme, &hc }
}

// New builds the scrape manager and the target discovery that feeds it.
// selfAddr gives the address of this process's HTTP listener; it is read when
// the service starts, after the listener is bound.
func New(cfg Config, app storage.AppendableV2, selfAddr func() string, logger *slog.Logger, reg prometheus.Registerer, opts ...Option) (*Scraper, error) {
	sdMetrics, err := discovery.CreateAndRegisterSDMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("register discovery metrics: %w", err)
	}
	dm, err := newTargetDiscovery(logger.With("component", "discovery"), reg, sdMetrics, cfg.DiscoveryReloadInterval)
	if err != nil {
		return nil, fmt.Errorf("register discovery manager metrics: %w", err)
	}
	sm, err := promscrape.NewManager(&promscrape.Options{
		// Metadata goes out per target and family (metadataAppender), not
		// with every sample.
		AppendMetadata:          false,
		DiscoveryReloadInterval: model.Duration(cfg.DiscoveryReloadInterval),
		// The target in the appender's context carries __tenant__.
		PassMetadataInContext: true,
	}, logger.With("component", "scrape"), nil, nil, tenantAppendable{next: app, meta: newTargetMetadata()}, reg)
	if err != nil {
		return nil, fmt.Errorf("create scrape manager: %w", err)
	}
	s := &Scraper{cfg: cfg, selfAddr: selfAddr, logger: logger, discovery: dm, scrape: sm}
	for _, o := range opts {
		o(s)
	}
	s.Service = services.NewBasicService(s.starting, s.running, s.stopping)
	return s, nil
}

func (s *Scraper) load() (*config.Config, error) {
	if s.cfg.ConfigFile == "" {
		cfg, err := config.Load(SelfConfig(s.selfAddr()), s.logger)
		if err != nil || s.selfClient == nil {
			return cfg, err
		}
		for _, sc := range cfg.ScrapeConfigs {
			sc.Scheme = s.selfScheme
			sc.HTTPClientConfig = *s.selfClient
		}
		return cfg, nil
	}
	return config.LoadFile(s.cfg.ConfigFile, false, s.logger)
}

// Reload re-reads the configuration file and applies it. Targets that stay
// keep their scrape loops (and series caches); a bad file leaves the running
// configuration untouched.
func (s *Scraper) Reload() error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	cfg, err := s.load()
	if err != nil {
		return fmt.Errorf("load scrape config: %w", err)
	}
	scfgs, err := cfg.GetScrapeConfigs()
	if err != nil {
		return fmt.Errorf("load scrape configs: %w", err)
	}
	if err := s.scrape.ApplyConfig(cfg); err != nil {
		return fmt.Errorf("apply scrape config: %w", err)
	}
	sd := make(map[string]discovery.Configs, len(scfgs))
	for _, sc := range scfgs {
		sd[sc.JobName] = sc.ServiceDiscoveryConfigs
	}
	s.discovery.ApplyConfig(sd)
	s.logger.Info("scrape configuration loaded", "file", s.cfg.ConfigFile, "jobs", len(scfgs))
	return nil
}

func (s *Scraper) starting(context.Context) error {
	if err := s.Reload(); err != nil {
		return err
	}
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		s.discovery.Run()
	}()
	go func() {
		defer s.wg.Done()
		if err := s.scrape.Run(s.discovery.SyncCh()); err != nil {
			s.logger.Error("scrape manager stopped", "err", err)
		}
	}()
	return nil
}

func (s *Scraper) running(ctx context.Context) error {
	<-ctx.Done()
	return nil
}

func (s *Scraper) stopping(error) error {
	s.scrape.Stop()
	s.discovery.Stop()
	s.wg.Wait()
	return nil
}

// TargetsActive lists the active targets by scrape pool (for the targets
// API and the dashboard).
func (s *Scraper) TargetsActive() map[string][]*promscrape.Target { return s.scrape.TargetsActive() }
