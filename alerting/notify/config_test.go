package notify

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

func defaultConfig() Config {
	var cfg Config
	cfg.RegisterFlags(flag.NewFlagSet("test", flag.PanicOnError))
	return cfg
}

func TestConfigDefaults(t *testing.T) {
	cfg := defaultConfig()
	require.NoError(t, cfg.Validate())
	require.False(t, cfg.Enabled(), "no receivers by default")
	_, err := New(cfg, testLogger(t), nil)
	require.ErrorIs(t, err, ErrNotConfigured)
}

func TestConfigValidateNamesField(t *testing.T) {
	for _, tc := range []struct {
		name   string
		modify func(*Config)
		want   string
	}{
		{"queue size", func(c *Config) { c.QueueSize = 0 }, "notify.queue_size: must be at least 1, got 0"},
		{"receiver queue", func(c *Config) { c.ReceiverQueueSize = -1 }, "notify.receiver_queue_size: must be at least 1"},
		{"max groups", func(c *Config) { c.MaxGroups = -1 }, "notify.max_groups: must not be negative"},
		{"timeout", func(c *Config) { c.Timeout = 0 }, "notify.timeout: must be positive"},
		{"resolve timeout", func(c *Config) { c.ResolveTimeout = -time.Second }, "notify.resolve_timeout: must be positive"},
		{"attempts", func(c *Config) { c.Retry.MaxAttempts = 0 }, "notify.retry.max_attempts: must be at least 1"},
		{"backoff order", func(c *Config) { c.Retry.MaxBackoff = c.Retry.MinBackoff / 2 }, "notify.retry.max_backoff: must not be below retry.min_backoff"},
		{"breaker", func(c *Config) { c.Breaker.Failures = 0 }, "notify.breaker.failures: must be at least 1"},
		{"breaker timeout", func(c *Config) { c.Breaker.OpenTimeout = 0 }, "notify.breaker.open_timeout: must be positive"},
		{"failure log", func(c *Config) { c.FailureLogSize = 0 }, "notify.failure_log_size: must be at least 1"},
		{"external url", func(c *Config) { c.ExternalURL = "pharos.example.com" }, "notify.external_url: must be an absolute URL"},
		{"file missing", func(c *Config) { c.ConfigFile = "/nonexistent/notify.yaml" }, "notify.config_file: open /nonexistent/notify.yaml"},
		{"inline and file", func(c *Config) {
			c.ConfigFile = "x.yaml"
			c.Route = &RouteConfig{Receiver: "a"}
		}, "notify.config_file: receivers and route are also set inline"},
		{"private literal", func(c *Config) {
			c.AllowPrivateAddresses = false
			c.Receivers = []ReceiverConfig{{Name: "a", URL: "http://10.1.2.3/hook"}, {Name: "b", URL: "http://localhost:9/"}}
			c.Route = &RouteConfig{Receiver: "a"}
		}, "notify.receivers[0].url: 10.1.2.3 is a private, loopback or link-local address"},
		{"localhost", func(c *Config) {
			c.AllowPrivateAddresses = false
			c.Receivers = []ReceiverConfig{{Name: "a", URL: "http://localhost:9/"}}
			c.Route = &RouteConfig{Receiver: "a"}
		}, `notify.receivers[0].url: host "localhost" is a loopback address`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := defaultConfig()
			tc.modify(&cfg)
			err := cfg.Validate()
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestConfigValidateReportsEveryError(t *testing.T) {
	cfg := defaultConfig()
	cfg.QueueSize = 0
	cfg.Timeout = 0
	cfg.Receivers = []ReceiverConfig{{Name: "a", URL: "ftp://x"}}
	cfg.Route = &RouteConfig{Receiver: "b"}
	err := cfg.Validate()
	require.Error(t, err)
	lines := strings.Split(err.Error(), "\n")
	require.Len(t, lines, 4, err.Error())
	for _, want := range []string{"notify.queue_size:", "notify.timeout:", "notify.receivers[0].url:", "notify.route.receiver:"} {
		require.Contains(t, err.Error(), want)
	}
}

func TestRoutingValidateNamesField(t *testing.T) {
	const receivers = `
receivers:
  - name: ops
    url: https://hooks.example.com/ops
  - name: dev
    url: http://hooks.example.com/dev
`
	for _, tc := range []struct {
		name string
		yaml string
		want string
	}{
		{"scheme", `
receivers:
  - name: ops
    url: https://hooks.example.com/ops
  - name: ftp
    url: ftp://files.example.com/x
route: {receiver: ops}`, `notify.receivers[1].url: scheme "ftp" not allowed`},
		{"relative url", `
receivers: [{name: ops, url: /hook}]
route: {receiver: ops}`, `notify.receivers[0].url: scheme "" not allowed`},
		{"no host", `
receivers: [{name: ops, url: "http:///hook"}]
route: {receiver: ops}`, `notify.receivers[0].url: host missing`},
		{"credentials in url", `
receivers: [{name: ops, url: "https://u:p@hooks.example.com/"}]
route: {receiver: ops}`, `notify.receivers[0].url: credentials in the URL are not allowed`},
		{"bad url hides itself", `
receivers: [{name: ops, url: "https://hooks.example.com/%zz?token=s3cret"}]
route: {receiver: ops}`, `notify.receivers[0].url: invalid URL: invalid URL escape "%zz"`},
		{"missing url", `
receivers: [{name: ops}]
route: {receiver: ops}`, `notify.receivers[0].url: must not be empty`},
		{"missing name", receivers + `
  - url: http://x.example.com/
route: {receiver: ops}`, `notify.receivers[2].name: must not be empty`},
		{"duplicate name", receivers + `
  - name: ops
    url: http://x.example.com/
route: {receiver: ops}`, `notify.receivers[2].name: "ops" already used by notify.receivers[0]`},
		{"two auths", `
receivers:
  - name: ops
    url: https://hooks.example.com/
    bearer_token: t
    basic_auth: {username: u, password: p}
route: {receiver: ops}`, `notify.receivers[0].bearer_token: cannot be combined with basic_auth`},
		{"basic auth user", `
receivers:
  - name: ops
    url: https://hooks.example.com/
    basic_auth: {password: p}
route: {receiver: ops}`, `notify.receivers[0].basic_auth.username: must not be empty`},
		{"no route", receivers, `notify.route: required when receivers are set`},
		{"root receiver", receivers + `route: {group_by: [alertname]}`, `notify.route.receiver: the root route must name a default receiver`},
		{"root matchers", receivers + `route: {receiver: ops, matchers: [a=b]}`, `notify.route.matchers: the root route must not have matchers`},
		{"root continue", receivers + `route: {receiver: ops, continue: true}`, `notify.route.continue: not allowed on the root route`},
		{"unknown receiver", receivers + `
route:
  receiver: ops
  routes:
    - receiver: dev
    - matchers: [team=db]
      routes:
        - receiver: nobody`, `notify.route.routes[1].routes[0].receiver: "nobody" is not defined in notify.receivers`},
		{"bad matcher", receivers + `
route:
  receiver: ops
  routes:
    - matchers: ['severity="page"', 'team=~"(db"']`, `notify.route.routes[0].matchers[1]: `},
		{"empty matcher", receivers + `
route:
  receiver: ops
  routes: [{matchers: ["{}"]}]`, `notify.route.routes[0].matchers[0]: no matcher in "{}"`},
		{"group by all and more", receivers + `
route: {receiver: ops, group_by: [alertname, "..."]}`, `notify.route.group_by[1]: "..." (all labels) cannot be combined with other labels`},
		{"group by duplicate", receivers + `
route: {receiver: ops, group_by: [alertname, alertname]}`, `notify.route.group_by[1]: duplicate label "alertname"`},
		{"group by invalid", receivers + `
route: {receiver: ops, group_by: [""]}`, `notify.route.group_by[0]: invalid label name ""`},
		{"group interval zero", receivers + `
route:
  receiver: ops
  routes: [{group_interval: 0s}]`, `notify.route.routes[0].group_interval: must be positive, got 0s`},
		{"repeat interval zero", receivers + `
route: {receiver: ops, repeat_interval: 0s}`, `notify.route.repeat_interval: must be positive, got 0s`},
		{"negative timeout", `
receivers: [{name: ops, url: "https://x.example.com/", timeout: -1s}]
route: {receiver: ops}`, `notify.receivers[0].timeout: not a valid duration string: "-1s"`},
		{"bad group_wait", receivers + `
route: {receiver: ops, routes: [{group_wait: soon}]}`, `notify.route.routes[0].group_wait: not a valid duration string: "soon"`},
		{"unknown field", receivers + `
route: {receiver: ops, group_wiat: 1s}`, `field group_wiat not found`},
		{"empty child", receivers + `
route:
  receiver: ops
  routes: [~]`, `notify.route.routes[0]: empty route`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseRouting([]byte(tc.yaml))
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.want)
			require.NotContains(t, err.Error(), "s3cret", "errors must not leak URL tokens")
		})
	}
}

func TestRoutingDepthBounded(t *testing.T) {
	var b strings.Builder
	b.WriteString("receivers: [{name: ops, url: 'https://x.example.com/'}]\nroute:\n  receiver: ops\n")
	indent := "  "
	for range maxRouteDepth + 1 {
		b.WriteString(indent + "routes:\n" + indent + "- matchers: [a=b]\n")
		indent += "  "
	}
	_, err := ParseRouting([]byte(b.String()))
	require.ErrorContains(t, err, "nested deeper than 32 levels")
}

func TestConfigFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify.yaml")
	require.NoError(t, os.WriteFile(path, []byte(`
receivers:
  - name: ops
    url: https://hooks.example.com/ops
    bearer_token: s3cret
    send_resolved: false
    max_alerts: 10
    timeout: 2s
route:
  receiver: ops
  group_by: [alertname]
  group_wait: 1m
  routes:
    - matchers: ['severity="page"']
      repeat_interval: 1d
`), 0o600))
	cfg := defaultConfig()
	cfg.ConfigFile = path
	require.True(t, cfg.Enabled())
	require.NoError(t, cfg.Validate())

	r, err := cfg.routing()
	require.NoError(t, err)
	require.Len(t, r.Receivers, 1)
	rc := r.Receivers[0]
	require.Equal(t, Secret("s3cret"), rc.BearerToken)
	require.False(t, *rc.SendResolved)
	require.Equal(t, uint64(10), rc.MaxAlerts)
	require.Equal(t, "2s", rc.Timeout)

	root, err := compileRoute(r.Route)
	require.NoError(t, err)
	require.Equal(t, 24*time.Hour, root.routes[0].repeatInterval, "Alertmanager duration units")

	// A broken file is reported under the flag's field.
	require.NoError(t, os.WriteFile(path, []byte("receivers: [\n"), 0o600))
	err = cfg.Validate()
	require.ErrorContains(t, err, "notify.config_file: "+path+": parse: ")
}

func TestSecretsHidden(t *testing.T) {
	rc := ReceiverConfig{
		Name: "ops", URL: "https://x.example.com/",
		BearerToken: "tok3n", HMACSecret: "hm4c",
		BasicAuth: &BasicAuth{Username: "u", Password: "passw0rd"},
	}
	out, err := yaml.Marshal(rc)
	require.NoError(t, err)
	printed := string(out) + fmt.Sprintf("%v %+v", rc, *rc.BasicAuth)
	for _, s := range []string{"tok3n", "hm4c", "passw0rd"} {
		require.NotContains(t, printed, s)
	}
	require.Contains(t, string(out), "<secret>")
}

func TestNewRejectsInvalidConfig(t *testing.T) {
	cfg := testConfig(t, "")
	cfg.Receivers = []ReceiverConfig{{Name: "a", URL: "gopher://x"}}
	cfg.Route = &RouteConfig{Receiver: "a"}
	_, err := New(cfg, testLogger(t), nil)
	require.Error(t, err)
	require.False(t, errors.Is(err, ErrNotConfigured))
	require.ErrorContains(t, err, `notify.receivers[0].url: scheme "gopher" not allowed`)
}

func TestConfigInlineYAML(t *testing.T) {
	// How the notify: section of the Pharos configuration file decodes.
	cfg := defaultConfig()
	dec := yaml.NewDecoder(strings.NewReader(`
external_url: https://pharos.example.com
queue_size: 50
retry: {max_attempts: 3, max_backoff: 5s}
breaker: {failures: 2}
receivers:
  - name: ops
    url: https://hooks.example.com/ops
route:
  receiver: ops
  group_by: ["..."]
`))
	dec.KnownFields(true)
	require.NoError(t, dec.Decode(&cfg))
	require.True(t, cfg.Enabled())
	require.NoError(t, cfg.Validate())
	require.Equal(t, 50, cfg.QueueSize)
	require.Equal(t, 3, cfg.Retry.MaxAttempts)
	require.Equal(t, 5*time.Second, cfg.Retry.MaxBackoff)
	require.Equal(t, 500*time.Millisecond, cfg.Retry.MinBackoff, "flag default kept")
	require.Equal(t, 2, cfg.Breaker.Failures)
	require.Equal(t, "ops", cfg.Route.Receiver)
	require.Len(t, cfg.Receivers, 1)
}

func TestConfigFileEmpty(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify.yaml")
	require.NoError(t, os.WriteFile(path, nil, 0o600))
	cfg := defaultConfig()
	cfg.ConfigFile = path
	require.ErrorContains(t, cfg.Validate(), "notify.route: required")
	_, err := New(cfg, testLogger(t), nil)
	require.ErrorContains(t, err, "notify.route: required")
}
