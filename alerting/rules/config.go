package rules

import (
	"errors"
	"flag"
	"fmt"
	"net/url"
	"path/filepath"
	"time"

	"github.com/grafana/dskit/flagext"

	"github.com/pharos-obs/pharos/internal/tenant"
)

// Config configures rule evaluation and the notifications to Alertmanager.
// The flags' help texts (RegisterFlags) say more about each field.
type Config struct {
	// Files are globs of rule files in Prometheus's format.
	Files flagext.StringSliceCSV `yaml:"files"`
	// LogFiles are globs of rule files in the same format whose
	// expressions are LogQL metric queries over the logs. They are listed
	// apart because an expression such as sum(rate({app="x"}[5m])) is
	// valid PromQL and valid LogQL, as Loki's ruler and Mimir keep them.
	LogFiles flagext.StringSliceCSV `yaml:"log_files"`
	// TenantsDir holds one directory per tenant, named by its ID, with
	// that tenant's PromQL rule files (*.yml, *.yaml) and, in logs/, its
	// LogQL ones. Files and LogFiles stay the default tenant's. Empty
	// turns per-tenant rules off.
	TenantsDir string `yaml:"tenants_dir"`
	// LogTenant is the tenant whose logs the log rules read ("" is the
	// default tenant, that of pushes without X-Scope-OrgID).
	LogTenant string `yaml:"log_tenant"`
	// LogSampleTimeout bounds the look-up of the sample lines added to the
	// notifications of log alerting rules; 0 adds none.
	LogSampleTimeout time.Duration `yaml:"log_sample_timeout"`
	// EvaluationInterval applies to groups that set no interval.
	EvaluationInterval time.Duration `yaml:"evaluation_interval"`
	// OutageTolerance bounds how old an ALERTS_FOR_STATE sample may be and
	// still restore the `for` state of an alert.
	OutageTolerance time.Duration `yaml:"outage_tolerance"`
	// ForGracePeriod is the least time a restored alert waits before it
	// fires, when its `for` is at least that long.
	ForGracePeriod time.Duration `yaml:"for_grace_period"`
	// ResendDelay is the least time between two notifications of one
	// firing alert.
	ResendDelay time.Duration `yaml:"resend_delay"`
	// ExternalURL is where people reach Pharos: the base of the alerts'
	// generator URLs and $externalURL in templates.
	ExternalURL string `yaml:"external_url"`
	// QueryTimeout bounds the evaluation of one rule's expression.
	QueryTimeout time.Duration `yaml:"query_timeout"`
	// MaxSamples bounds the samples one rule's query may hold in memory.
	MaxSamples int `yaml:"max_samples"`

	// Alertmanager lists where alerts are sent besides Deps.Send.
	Alertmanager AlertmanagerConfig `yaml:"alertmanager"`
}

// AlertmanagerConfig lists the Alertmanagers that get the firing and
// resolved alerts, through their v2 API.
type AlertmanagerConfig struct {
	// URLs are Alertmanager base URLs (http://am:9093, or with a path
	// prefix when Alertmanager runs under one); alerts are POSTed to
	// <url>/api/v2/alerts. Every Alertmanager gets every alert.
	URLs flagext.StringSliceCSV `yaml:"url"`
	// Timeout bounds one request to one Alertmanager.
	Timeout time.Duration `yaml:"timeout"`
	// QueueCapacity bounds the alerts waiting for each Alertmanager; when
	// full, the oldest are dropped (and counted).
	QueueCapacity int `yaml:"notification_queue_capacity"`
}

// The configuration fields of the two lists of rule files, as errors name
// them.
const (
	fieldFiles    = "rules.files"
	fieldLogFiles = "rules.log_files"
	fieldTenants  = "rules.tenants_dir"
)

// RegisterFlags registers the options under -rules and -alertmanager.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.Var(&c.Files, "rules.files", "Comma-separated globs of rule files in Prometheus's format (groups of alerting and recording rules). Reloaded on SIGHUP and POST /-/reload.")
	f.Var(&c.LogFiles, "rules.log-files", "Comma-separated globs of rule files in Prometheus's format whose expressions are LogQL metric queries (log rules). Kept apart from -rules.files: some expressions are valid in both languages. Reloaded with them.")
	f.StringVar(&c.TenantsDir, "rules.tenants-dir", "", "Directory with one subdirectory per tenant, named by the tenant ID: <dir>/<tenant>/*.yml|*.yaml are that tenant's PromQL rule files, <dir>/<tenant>/logs/*.yml|*.yaml its LogQL ones. A tenant's rules read and write that tenant's data, and its alerts are notified with the label tenant=\"<tenant>\". Entries whose names start with '.' are skipped. Reloaded with -rules.files.")
	f.StringVar(&c.LogTenant, "rules.log-tenant", "", "Tenant (X-Scope-OrgID) whose logs the log rules of -rules.log-files read; empty is the default tenant. Their results and alerts stay the default tenant's.")
	f.DurationVar(&c.LogSampleTimeout, "rules.log-sample-timeout", 2*time.Second, "Longest look-up of the sample log lines added to the notifications of firing log alerts (annotation sample_lines); a notification never waits longer. 0 adds no sample.")
	f.DurationVar(&c.EvaluationInterval, "rules.evaluation-interval", time.Minute, "How often rule groups are evaluated, for groups that set no interval.")
	f.DurationVar(&c.OutageTolerance, "rules.outage-tolerance", time.Hour, "Longest outage (or ownership handover) after which the `for` state of alerts is still restored from ALERTS_FOR_STATE.")
	f.DurationVar(&c.ForGracePeriod, "rules.for-grace-period", 10*time.Minute, "Least time a restored alert waits before firing, when its `for` is at least this long.")
	f.DurationVar(&c.ResendDelay, "rules.resend-delay", time.Minute, "Least time between two notifications of an alert that keeps firing.")
	f.StringVar(&c.ExternalURL, "rules.external-url", "", "URL under which people reach Pharos; the base of alerts' generator URLs and $externalURL in templates. Empty leaves generator URLs relative.")
	f.DurationVar(&c.QueryTimeout, "rules.query-timeout", 2*time.Minute, "Longest evaluation of one rule's expression.")
	f.IntVar(&c.MaxSamples, "rules.max-samples", 50_000_000, "Most samples one rule's query may hold in memory.")
	f.Var(&c.Alertmanager.URLs, "alertmanager.url", "Comma-separated Alertmanager base URLs (http://host:9093); alerts are sent to each through its v2 API. Empty sends to none.")
	f.DurationVar(&c.Alertmanager.Timeout, "alertmanager.timeout", 10*time.Second, "Timeout of one request to an Alertmanager.")
	f.IntVar(&c.Alertmanager.QueueCapacity, "alertmanager.notification-queue-capacity", 10000, "Alerts waiting for each Alertmanager; when full, the oldest are dropped.")
}

// Validate reports every invalid field, each with its path. It does not
// read the rule files: New does, and reports their errors with file and
// line.
func (c *Config) Validate() error {
	var errs []error
	for _, globs := range []struct {
		field string
		pats  []string
	}{{fieldFiles, c.Files}, {fieldLogFiles, c.LogFiles}} {
		for i, pat := range globs.pats {
			if pat == "" {
				errs = append(errs, fmt.Errorf("%s[%d]: empty glob", globs.field, i))
				continue
			}
			if _, err := filepath.Match(pat, ""); err != nil {
				errs = append(errs, fmt.Errorf("%s[%d]: %q: %w", globs.field, i, pat, err))
			}
		}
	}
	for _, d := range []struct {
		name      string
		v         time.Duration
		allowZero bool
	}{
		{"rules.evaluation_interval", c.EvaluationInterval, false},
		{"rules.outage_tolerance", c.OutageTolerance, false},
		{"rules.for_grace_period", c.ForGracePeriod, true},
		{"rules.resend_delay", c.ResendDelay, true},
		{"rules.log_sample_timeout", c.LogSampleTimeout, true},
		{"rules.query_timeout", c.QueryTimeout, false},
		{"rules.alertmanager.timeout", c.Alertmanager.Timeout, false},
	} {
		switch {
		case d.v < 0:
			errs = append(errs, fmt.Errorf("%s: must not be negative, got %s", d.name, d.v))
		case d.v == 0 && !d.allowZero:
			errs = append(errs, fmt.Errorf("%s: must be positive, got %s", d.name, d.v))
		}
	}
	if c.LogTenant != "" {
		if err := tenant.Validate(c.LogTenant); err != nil {
			errs = append(errs, fmt.Errorf("rules.log_tenant: %w", err))
		}
	}
	if c.MaxSamples < 1 {
		errs = append(errs, fmt.Errorf("rules.max_samples: must be positive, got %d", c.MaxSamples))
	}
	if c.Alertmanager.QueueCapacity < 1 {
		errs = append(errs, fmt.Errorf("rules.alertmanager.notification_queue_capacity: must be positive, got %d", c.Alertmanager.QueueCapacity))
	}
	if c.ExternalURL != "" {
		if u, err := url.Parse(c.ExternalURL); err != nil {
			errs = append(errs, fmt.Errorf("rules.external_url: %w", err))
		} else if !u.IsAbs() || u.Host == "" {
			errs = append(errs, fmt.Errorf("rules.external_url: must be an absolute URL, got %q", c.ExternalURL))
		}
	}
	for i, raw := range c.Alertmanager.URLs {
		if _, err := parseAlertmanagerURL(raw); err != nil {
			errs = append(errs, fmt.Errorf("rules.alertmanager.url[%d]: %w", i, err))
		}
	}
	return errors.Join(errs...)
}

// parseAlertmanagerURL parses one -alertmanager.url entry: http or https,
// a host, an optional path prefix, no query or fragment.
func parseAlertmanagerURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error repeats the whole URL, which may hold credentials.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("invalid URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("scheme %q not allowed, use http or https", u.Scheme)
	}
	if u.Host == "" {
		return nil, errors.New("host missing")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, errors.New("query and fragment not allowed: give the base URL")
	}
	return u, nil
}
