// Package app is the composition root: the root configuration, the modules
// of each role and their dependencies, and the process lifecycle.
package app

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/grafana/dskit/flagext"
	"go.yaml.in/yaml/v3"

	"github.com/pharos-obs/pharos/aggregator"
	"github.com/pharos-obs/pharos/aggregator/spanmetrics"
	"github.com/pharos-obs/pharos/alerting/notify"
	"github.com/pharos-obs/pharos/alerting/rules"
	"github.com/pharos-obs/pharos/collector/publish"
	"github.com/pharos-obs/pharos/collector/receive"
	"github.com/pharos-obs/pharos/collector/receive/otlp"
	"github.com/pharos-obs/pharos/collector/scrape"
	"github.com/pharos-obs/pharos/collector/spool"
	"github.com/pharos-obs/pharos/collector/tail"
	"github.com/pharos-obs/pharos/internal/auth"
	"github.com/pharos-obs/pharos/internal/bus"
	"github.com/pharos-obs/pharos/internal/cluster"
	"github.com/pharos-obs/pharos/internal/memlimit"
	"github.com/pharos-obs/pharos/internal/overrides"
	"github.com/pharos-obs/pharos/query"
	"github.com/pharos-obs/pharos/query/logql"
	"github.com/pharos-obs/pharos/query/lokiapi"
	"github.com/pharos-obs/pharos/query/tempoapi"
	"github.com/pharos-obs/pharos/storage/logs/vlogs"
	"github.com/pharos-obs/pharos/storage/metrics"
	"github.com/pharos-obs/pharos/storage/traces/vtraces"
	"github.com/pharos-obs/pharos/ui"
)

// Targets a process can run.
const (
	TargetAll        = "all"
	TargetAgent      = "agent"
	TargetAggregator = "aggregator"
	TargetQuery      = "query"
	// TargetNATS runs only the embedded NATS server, as one node of a NATS
	// JetStream cluster (-nats.embedded.cluster-listen-address, -routes):
	// a cluster needs no separate NATS installation.
	TargetNATS = "nats"
)

// EnvPrefix starts the environment variable of every flag.
const EnvPrefix = "PHAROS_"

// Config is the root configuration. It only composes the packages' own
// configurations; each validates itself.
type Config struct {
	Target     flagext.StringSliceCSV `yaml:"target"`
	DataDir    string                 `yaml:"data_dir"`
	HTTP       ServerConfig           `yaml:"http"`
	Agent      AgentConfig            `yaml:"agent"`
	NATS       bus.Config             `yaml:"nats"`
	Scrape     scrape.Config          `yaml:"scrape"`
	OTLP       otlp.Config            `yaml:"otlp"`
	Aggregator aggregator.Config      `yaml:"aggregator"`
	Storage    StorageConfig          `yaml:"storage"`
	Query      query.Config           `yaml:"query"`
	Loki       lokiapi.Config         `yaml:"loki"`
	LogQL      logql.EngineOpts       `yaml:"logql"`
	Tempo      tempoapi.Config        `yaml:"tempo"`
	UI         ui.Config              `yaml:"ui"`
	// SpanMetrics configures the span and service-graph metrics the
	// aggregators derive from the traces they store.
	SpanMetrics spanmetrics.Config `yaml:"spanmetrics"`
	Cluster     cluster.Config     `yaml:"cluster"`
	Rules       rules.Config       `yaml:"rules"`
	Notify      notify.Config      `yaml:"notify"`
	// Auth is the authentication of every HTTP and OTLP listener and the
	// credential of this process's own calls to Pharos listeners.
	Auth auth.Config `yaml:"auth"`
	// Memory is the memory limiter of the agent's receivers and the
	// aggregator's consumers.
	Memory memlimit.Config `yaml:"memory"`
	// Limits are the per-tenant ingestion limits' defaults and the file
	// of per-tenant overrides.
	Limits overrides.Config `yaml:"limits"`
}

// AgentConfig groups the agent's options.
type AgentConfig struct {
	ID      string         `yaml:"id"`
	Publish publish.Config `yaml:"publish"`
	Spool   spool.Config   `yaml:"spool"`
	Receive receive.Config `yaml:"receive"`
	Limits  receive.Limits `yaml:"limits"`
	Tail    tail.Config    `yaml:"tail"`
}

// StorageConfig groups the storage engines' options.
type StorageConfig struct {
	Metrics metrics.Config `yaml:"metrics"`
	Logs    vlogs.Config   `yaml:"logs"`
	Traces  vtraces.Config `yaml:"traces"`
}

// ServerConfig is the one HTTP listener of the process.
type ServerConfig struct {
	ListenAddress      string `yaml:"listen_address"`
	AdminListenAddress string `yaml:"admin_listen_address"`
	// TLS serves the HTTP and admin listeners over TLS, and the OTLP
	// listeners too unless otlp.tls sets their own.
	TLS auth.TLSConfig `yaml:"tls"`
}

// RegisterFlags registers every option of the process.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	c.Target = flagext.StringSliceCSV{TargetAll}
	f.Var(&c.Target, "target", "Roles to run, comma-separated: all, agent, aggregator, query, nats (an embedded NATS server alone, e.g. one node of a NATS cluster).")
	f.StringVar(&c.DataDir, "data.dir", "./data", "Directory for storage, spool, positions and the embedded NATS store.")
	f.StringVar(&c.HTTP.ListenAddress, "http.listen-address", "127.0.0.1:9400", "The one HTTP listener of the process (APIs, /metrics, dashboard).")
	f.StringVar(&c.HTTP.AdminListenAddress, "http.admin-listen-address", "", "Serve the admin endpoints — POST /-/reload and Go's /debug/pprof/ — on this separate address (off when empty; SIGHUP reloads too).")
	c.HTTP.TLS.RegisterFlagsWithPrefix("http.tls", "the HTTP and admin listeners (and the OTLP listeners unless -otlp.tls.cert-file is set)", f)
	c.Auth.RegisterFlags(f)
	host, _ := os.Hostname()
	f.StringVar(&c.Agent.ID, "agent.id", host, "This agent's name in message IDs; unique per agent (defaults to the host name).")
	c.Agent.Publish.RegisterFlags(f)
	c.Agent.Spool.RegisterFlags(f)
	c.Agent.Receive.RegisterFlags(f)
	c.Agent.Limits.RegisterFlags(f)
	c.Agent.Tail.RegisterFlags(f)
	c.OTLP.RegisterFlags(f)
	c.NATS.RegisterFlags(f)
	c.Scrape.RegisterFlags(f)
	c.Aggregator.RegisterFlags(f)
	c.Storage.Metrics.RegisterFlags(f)
	c.Storage.Logs.RegisterFlags(f)
	c.Storage.Traces.RegisterFlags(f)
	c.Query.RegisterFlags(f)
	c.Loki.RegisterFlags(f)
	c.LogQL.RegisterFlags(f)
	c.Tempo.RegisterFlags(f)
	c.UI.RegisterFlags(f)
	c.SpanMetrics.RegisterFlags(f)
	c.Cluster.RegisterFlags(f)
	c.Rules.RegisterFlags(f)
	c.Notify.RegisterFlags(f)
	c.Memory.RegisterFlags(f)
	c.Limits.RegisterFlags(f)
}

// Validate checks the whole configuration and reports every problem, each
// prefixed with the path of its field.
func (c *Config) Validate() error {
	var errs []error
	if len(c.Target) == 0 {
		errs = append(errs, errors.New("target: at least one target is required"))
	}
	for _, t := range c.Target {
		if !slices.Contains([]string{TargetAll, TargetAgent, TargetAggregator, TargetQuery, TargetNATS}, t) {
			errs = append(errs, fmt.Errorf("target: unknown target %q (want all, agent, aggregator, query or nats)", t))
		}
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("data_dir: must not be empty"))
	}
	if c.HTTP.ListenAddress == "" {
		errs = append(errs, errors.New("http.listen_address: must not be empty"))
	}
	if c.has(TargetAgent) && c.Agent.ID == "" {
		errs = append(errs, errors.New("agent.id: must not be empty"))
	}
	if !c.has(TargetAll) && c.NATS.URL == "" && (c.has(TargetAgent) || c.has(TargetAggregator)) {
		errs = append(errs, errors.New("nats.url: required unless the target includes all (which embeds a NATS server)"))
	}
	errs = append(errs,
		c.Agent.Publish.Validate(),
		c.Agent.Spool.Validate(),
		c.Agent.Receive.Validate(),
		c.Agent.Limits.Validate(),
		c.Agent.Tail.Validate(),
		c.OTLP.Validate(),
		c.NATS.Validate(),
		c.Scrape.Validate(),
		c.Aggregator.Validate(),
		c.Storage.Metrics.Validate(),
		c.Storage.Logs.Validate(),
		c.Storage.Traces.Validate(),
		c.Query.Validate(),
		c.Loki.Validate(),
		c.LogQL.Validate(),
		c.Tempo.Validate(),
		c.UI.Validate(),
		c.SpanMetrics.Validate(),
		c.Cluster.Validate(),
		c.Rules.Validate(),
		c.Notify.Validate(),
		c.HTTP.TLS.Validate("http.tls"),
		c.Auth.Validate(),
		c.Memory.Validate(),
		c.Limits.Validate(),
		c.checkExposure(),
	)
	return errors.Join(errs...)
}

// ringEnabled reports whether this process takes part in the ring:
// aggregators join it and queriers read the aggregators they find in it.
// A lone all-in-one (no -memberlist.join, gossip store) owns every
// partition itself and opens no gossip port; a querier given
// -query.aggregator.addresses reads those instead.
func (c *Config) ringEnabled() bool {
	if c.has(TargetAll) && len(c.Cluster.Memberlist.Join) == 0 && c.Cluster.Ring.Store == cluster.StoreMemberlist {
		return false
	}
	return c.has(TargetAggregator) || c.has(TargetQuery) && len(c.Query.Aggregators) == 0
}

// has reports whether the process runs role t (directly or through all).
func (c *Config) has(t string) bool {
	return slices.Contains(c.Target, t) || slices.Contains(c.Target, TargetAll)
}

// EnvName is the environment variable that sets flag name.
func EnvName(flagName string) string {
	r := strings.NewReplacer(".", "_", "-", "_")
	return EnvPrefix + strings.ToUpper(r.Replace(flagName))
}

// ErrHelp is returned by Load when -help was asked for (usage is printed).
var ErrHelp = flag.ErrHelp

// Load builds the configuration from, in increasing precedence: defaults,
// the YAML file (-config.file), PHAROS_* environment variables and
// command-line flags. It does not validate.
func Load(args []string, environ func(string) (string, bool), usage *bytes.Buffer) (*Config, bool, error) {
	cfg := &Config{}
	fs := flag.NewFlagSet("pharos", flag.ContinueOnError)
	if usage != nil {
		fs.SetOutput(usage)
	}
	var configFile string
	var printVersion bool
	fs.StringVar(&configFile, "config.file", "", "YAML configuration file; flags and PHAROS_* variables override its values.")
	fs.BoolVar(&printVersion, "version", false, "Print the version and exit.")
	cfg.RegisterFlags(fs)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: pharos [flags]\n\nEvery flag can also be set with the environment variable PHAROS_<FLAG_IN_UPPER_SNAKE>\n(e.g. -http.listen-address as PHAROS_HTTP_LISTEN_ADDRESS).\n\n")
		fs.PrintDefaults()
	}

	// The file comes first, so find its name before anything else.
	if v, ok := environ(EnvName("config.file")); ok {
		configFile = v
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || name != "config.file" {
			continue
		}
		if hasVal {
			configFile = val
		} else if i+1 < len(args) {
			configFile = args[i+1]
		}
	}
	if configFile != "" {
		raw, err := os.ReadFile(configFile)
		if err != nil {
			return nil, false, fmt.Errorf("config.file: %w", err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(raw))
		dec.KnownFields(true)
		if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
			return nil, false, fmt.Errorf("config.file %s: %w", configFile, err)
		}
	}
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		if v, ok := environ(EnvName(f.Name)); ok && f.Name != "config.file" {
			if err := fs.Set(f.Name, v); err != nil {
				envErr = errors.Join(envErr, fmt.Errorf("%s: %w", EnvName(f.Name), err))
			}
		}
	})
	if envErr != nil {
		return nil, false, envErr
	}
	if err := fs.Parse(args); err != nil {
		return nil, false, err
	}
	if fs.NArg() > 0 {
		return nil, false, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return cfg, printVersion, nil
}
