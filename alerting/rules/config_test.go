package rules

import (
	"flag"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestConfigDefaultsValid(t *testing.T) {
	var cfg Config
	fs := flag.NewFlagSet("test", flag.PanicOnError)
	cfg.RegisterFlags(fs)
	require.NoError(t, cfg.Validate())
	require.Equal(t, time.Minute, cfg.EvaluationInterval)
	require.NoError(t, fs.Parse([]string{
		"-rules.files=/etc/pharos/rules/*.yml,/etc/pharos/more.yml",
		"-alertmanager.url=http://am1:9093,https://user:pw@am2/prefix",
		"-rules.external-url=https://pharos.example.com",
		"-rules.log-files=/etc/pharos/log-rules/*.yml",
		"-rules.log-tenant=team-a",
		"-rules.tenants-dir=/etc/pharos/tenant-rules",
	}))
	require.Equal(t, []string{"/etc/pharos/rules/*.yml", "/etc/pharos/more.yml"}, []string(cfg.Files))
	require.Equal(t, []string{"/etc/pharos/log-rules/*.yml"}, []string(cfg.LogFiles))
	require.Equal(t, "team-a", cfg.LogTenant)
	require.Equal(t, "/etc/pharos/tenant-rules", cfg.TenantsDir)
	require.Equal(t, 2*time.Second, cfg.LogSampleTimeout)
	require.Len(t, cfg.Alertmanager.URLs, 2)
	require.NoError(t, cfg.Validate())
}

func TestConfigValidateNamesFields(t *testing.T) {
	for _, tc := range []struct {
		name   string
		modify func(*Config)
		want   string
	}{
		{"bad glob", func(c *Config) { c.Files = []string{"rules/[.yml"} }, "rules.files[0]"},
		{"empty glob", func(c *Config) { c.Files = []string{"a.yml", ""} }, "rules.files[1]: empty glob"},
		{"bad log glob", func(c *Config) { c.LogFiles = []string{"a.yml", "logs/[.yml"} }, "rules.log_files[1]"},
		{"empty log glob", func(c *Config) { c.LogFiles = []string{""} }, "rules.log_files[0]: empty glob"},
		{"log tenant", func(c *Config) { c.LogTenant = "a|b" }, "rules.log_tenant: invalid tenant ID"},
		{"log sample timeout", func(c *Config) { c.LogSampleTimeout = -time.Second }, "rules.log_sample_timeout: must not be negative"},
		{"interval", func(c *Config) { c.EvaluationInterval = 0 }, "rules.evaluation_interval: must be positive"},
		{"outage tolerance", func(c *Config) { c.OutageTolerance = -time.Second }, "rules.outage_tolerance: must not be negative"},
		{"grace period", func(c *Config) { c.ForGracePeriod = -time.Second }, "rules.for_grace_period"},
		{"resend delay", func(c *Config) { c.ResendDelay = -time.Second }, "rules.resend_delay"},
		{"query timeout", func(c *Config) { c.QueryTimeout = 0 }, "rules.query_timeout"},
		{"max samples", func(c *Config) { c.MaxSamples = 0 }, "rules.max_samples"},
		{"external url", func(c *Config) { c.ExternalURL = "/relative" }, "rules.external_url: must be an absolute URL"},
		{"am scheme", func(c *Config) { c.Alertmanager.URLs = []string{"http://ok:9093", "ftp://am"} }, `rules.alertmanager.url[1]: scheme "ftp" not allowed`},
		{"am host", func(c *Config) { c.Alertmanager.URLs = []string{"http://"} }, "rules.alertmanager.url[0]: host missing"},
		{"am query", func(c *Config) { c.Alertmanager.URLs = []string{"http://am:9093/?x=1"} }, "rules.alertmanager.url[0]: query and fragment not allowed"},
		{"am timeout", func(c *Config) { c.Alertmanager.Timeout = 0 }, "rules.alertmanager.timeout"},
		{"am queue", func(c *Config) { c.Alertmanager.QueueCapacity = 0 }, "rules.alertmanager.notification_queue_capacity"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			tc.modify(&cfg)
			err := cfg.Validate()
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestConfigValidateReportsEveryError(t *testing.T) {
	cfg := testConfig()
	cfg.EvaluationInterval = 0
	cfg.MaxSamples = 0
	cfg.Alertmanager.URLs = []string{"nope"}
	err := cfg.Validate()
	require.Error(t, err)
	for _, want := range []string{"rules.evaluation_interval", "rules.max_samples", "rules.alertmanager.url[0]"} {
		require.Contains(t, err.Error(), want)
	}
}
