package notify

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/prometheus/alertmanager/pkg/labels"
	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"
)

// Defaults of the root route, the same as Alertmanager's.
const (
	DefaultGroupWait      = 30 * time.Second
	DefaultGroupInterval  = 5 * time.Minute
	DefaultRepeatInterval = 4 * time.Hour
)

// maxRouteDepth bounds the routing tree so that a hostile or broken file
// cannot exhaust the stack of the recursive validation and matching.
const maxRouteDepth = 32

// Config configures the notifier. The receivers and the routing tree come
// from ConfigFile or, without one, from Routing set inline under notify: in
// the Pharos configuration file.
type Config struct {
	// ConfigFile holds receivers and route (see Routing).
	ConfigFile string `yaml:"config_file"`
	// ExternalURL is sent as externalURL in every payload: where a human
	// finds the alerts (the Pharos dashboard).
	ExternalURL string `yaml:"external_url"`
	// QueueSize bounds the alerts handed to Send and not yet grouped.
	QueueSize int `yaml:"queue_size"`
	// ReceiverQueueSize bounds the notifications waiting for each receiver.
	ReceiverQueueSize int `yaml:"receiver_queue_size"`
	// MaxGroups bounds the aggregation groups held in memory.
	MaxGroups int `yaml:"max_groups"`
	// ResolveTimeout is how long an alert without EndsAt stays firing
	// after it was last sent (Alertmanager's global resolve_timeout).
	ResolveTimeout time.Duration `yaml:"resolve_timeout"`
	// Timeout is the per-request timeout of receivers that set none.
	Timeout time.Duration `yaml:"timeout"`
	// AllowPrivateAddresses lets receivers reach loopback, private,
	// link-local and other internal addresses. Off, such addresses are
	// refused when connecting, after DNS resolution.
	AllowPrivateAddresses bool          `yaml:"allow_private_addresses"`
	Retry                 RetryConfig   `yaml:"retry"`
	Breaker               BreakerConfig `yaml:"breaker"`
	// FailureLogSize is how many undelivered notifications Failures keeps.
	FailureLogSize int `yaml:"failure_log_size"`

	// Routing set inline; ConfigFile, when set, is used instead.
	Routing `yaml:",inline"`
}

// RetryConfig tunes the retries of one notification.
type RetryConfig struct {
	// MaxAttempts is how many requests a notification gets, the first
	// one included.
	MaxAttempts int `yaml:"max_attempts"`
	// MinBackoff is the wait before the first retry; it doubles for each
	// further retry, up to MaxBackoff.
	MinBackoff time.Duration `yaml:"min_backoff"`
	MaxBackoff time.Duration `yaml:"max_backoff"`
}

// BreakerConfig tunes the circuit breaker of each receiver.
type BreakerConfig struct {
	// Failures is how many consecutive failed requests open the breaker.
	Failures int `yaml:"failures"`
	// OpenTimeout is how long an open breaker refuses requests before it
	// lets one through to probe the receiver.
	OpenTimeout time.Duration `yaml:"open_timeout"`
}

// RegisterFlags registers the options under -notify.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.StringVar(&c.ConfigFile, "notify.config-file", "", "YAML file with the webhook receivers and the Alertmanager-style routing tree (receivers:, route:); empty uses notify.receivers and notify.route of the configuration file.")
	f.StringVar(&c.ExternalURL, "notify.external-url", "", "URL sent as externalURL in webhook payloads, where people find the alerts.")
	f.IntVar(&c.QueueSize, "notify.queue-size", 10000, "Alerts waiting to be grouped; when full, further alerts are dropped and counted.")
	f.IntVar(&c.ReceiverQueueSize, "notify.receiver-queue-size", 256, "Notifications waiting for each receiver; when full, further notifications are dropped, counted and tried again at the group's next interval.")
	f.IntVar(&c.MaxGroups, "notify.max-groups", 10000, "Aggregation groups kept in memory; alerts that would open another are dropped and counted.")
	f.DurationVar(&c.ResolveTimeout, "notify.resolve-timeout", 5*time.Minute, "How long an alert without an end time stays firing after it was last sent.")
	f.DurationVar(&c.Timeout, "notify.timeout", 10*time.Second, "Timeout of one webhook request, for receivers that set no timeout.")
	f.BoolVar(&c.AllowPrivateAddresses, "notify.allow-private-addresses", false, "Let webhooks reach loopback, private, link-local and shared addresses (checked when connecting, after DNS resolution).")
	f.IntVar(&c.Retry.MaxAttempts, "notify.retry.max-attempts", 5, "Requests per notification before it counts as failed; only network errors, timeouts, 429 and 5xx are retried.")
	f.DurationVar(&c.Retry.MinBackoff, "notify.retry.min-backoff", 500*time.Millisecond, "Wait before the first retry; it doubles for each further retry, with jitter.")
	f.DurationVar(&c.Retry.MaxBackoff, "notify.retry.max-backoff", 10*time.Second, "Longest wait between retries, Retry-After included.")
	f.IntVar(&c.Breaker.Failures, "notify.breaker.failures", 5, "Consecutive failed requests to a receiver that open its circuit breaker.")
	f.DurationVar(&c.Breaker.OpenTimeout, "notify.breaker.open-timeout", 30*time.Second, "How long an open breaker fails notifications at once before it probes the receiver again.")
	f.IntVar(&c.FailureLogSize, "notify.failure-log-size", 100, "Undelivered notifications remembered for the API.")
}

// Enabled reports whether receivers are configured, in a file or inline.
// Without them there is nothing to notify and New refuses the config.
func (c *Config) Enabled() bool {
	return c.ConfigFile != "" || c.Route != nil || len(c.Receivers) > 0
}

// Validate reports every invalid field; with ConfigFile set, it loads the
// file and validates it too.
func (c *Config) Validate() error {
	var errs []error
	if c.ExternalURL != "" {
		if u, err := url.Parse(c.ExternalURL); err != nil {
			errs = append(errs, fmt.Errorf("notify.external_url: %w", err))
		} else if !u.IsAbs() {
			errs = append(errs, fmt.Errorf("notify.external_url: must be an absolute URL, got %q", c.ExternalURL))
		}
	}
	positive := func(name string, v int) {
		if v < 1 {
			errs = append(errs, fmt.Errorf("notify.%s: must be at least 1, got %d", name, v))
		}
	}
	positive("queue_size", c.QueueSize)
	positive("receiver_queue_size", c.ReceiverQueueSize)
	positive("failure_log_size", c.FailureLogSize)
	positive("retry.max_attempts", c.Retry.MaxAttempts)
	positive("breaker.failures", c.Breaker.Failures)
	if c.MaxGroups < 0 {
		errs = append(errs, fmt.Errorf("notify.max_groups: must not be negative, got %d", c.MaxGroups))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"resolve_timeout", c.ResolveTimeout},
		{"timeout", c.Timeout},
		{"retry.min_backoff", c.Retry.MinBackoff},
		{"retry.max_backoff", c.Retry.MaxBackoff},
		{"breaker.open_timeout", c.Breaker.OpenTimeout},
	} {
		if d.v <= 0 {
			errs = append(errs, fmt.Errorf("notify.%s: must be positive, got %s", d.name, d.v))
		}
	}
	if c.Retry.MaxBackoff > 0 && c.Retry.MaxBackoff < c.Retry.MinBackoff {
		errs = append(errs, fmt.Errorf("notify.retry.max_backoff: must not be below retry.min_backoff (%s), got %s", c.Retry.MinBackoff, c.Retry.MaxBackoff))
	}
	if c.Enabled() {
		_, err := c.load()
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// load returns the receivers and route in use, validated.
func (c *Config) load() (*Routing, error) {
	r, err := c.routing()
	if err != nil {
		return nil, err
	}
	errs := []error{r.Validate()}
	if r.Route == nil && len(r.Receivers) == 0 {
		errs = append(errs, errors.New("notify.route: required: no receivers or routing tree configured"))
	}
	if !c.AllowPrivateAddresses {
		errs = append(errs, r.checkLiteralAddresses())
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return r, nil
}

// routing returns the receivers and route in use: the file's, or those set
// inline. Setting both is refused rather than silently preferring one.
func (c *Config) routing() (*Routing, error) {
	if c.ConfigFile == "" {
		r := c.Routing
		return &r, nil
	}
	if c.Route != nil || len(c.Receivers) > 0 {
		return nil, errors.New("notify.config_file: receivers and route are also set inline; use one or the other")
	}
	r, err := loadRouting(c.ConfigFile)
	if err != nil {
		return nil, fmt.Errorf("notify.config_file: %w", err)
	}
	return r, nil
}

// Routing is what -notify.config-file holds: the webhook receivers and the
// routing tree, in Alertmanager's syntax.
type Routing struct {
	// Receivers are the webhooks alerts can be sent to, by name.
	Receivers []ReceiverConfig `yaml:"receivers"`
	// Route is the root of the routing tree; every alert matches it.
	Route *RouteConfig `yaml:"route"`
}

// ReceiverConfig is one webhook receiver.
type ReceiverConfig struct {
	// Name is what routes refer to, and the receiver label of metrics.
	Name string `yaml:"name"`
	// URL must be http or https. Redirects are not followed.
	URL string `yaml:"url"`
	// BearerToken, when set, is sent as "Authorization: Bearer <token>".
	BearerToken Secret `yaml:"bearer_token"`
	// BasicAuth, when set, is sent as HTTP basic authentication.
	BasicAuth *BasicAuth `yaml:"basic_auth"`
	// HMACSecret, when set, signs each request: see SignatureHeader.
	HMACSecret Secret `yaml:"hmac_secret"`
	// Timeout of one request, in Prometheus' duration syntax; empty uses
	// -notify.timeout.
	Timeout string `yaml:"timeout"`
	// SendResolved defaults to true, as for Alertmanager's webhook_configs.
	SendResolved *bool `yaml:"send_resolved"`
	// MaxAlerts caps the alerts in one payload (0: no cap); the payload's
	// truncatedAlerts counts those left out.
	MaxAlerts uint64 `yaml:"max_alerts"`
}

// BasicAuth holds HTTP basic authentication credentials.
type BasicAuth struct {
	Username string `yaml:"username"`
	Password Secret `yaml:"password"`
}

// RouteConfig is one node of the routing tree, as in Alertmanager. Fields
// left out are inherited from the parent; the root inherits the defaults.
// Durations are in Prometheus' syntax (30s, 5m, 4h, 1d); they are kept as
// strings so that a bad one is reported with its field path.
type RouteConfig struct {
	// Receiver gets the alerts that end at this route.
	Receiver string `yaml:"receiver"`
	// Matchers are in Alertmanager's syntax (`severity=~"page|critical"`);
	// each entry may hold several, comma-separated. All must match.
	Matchers []string `yaml:"matchers"`
	// GroupBy lists the labels alerts are grouped by; "..." groups by all
	// labels. Nil inherits; an empty list puts all alerts in one group.
	GroupBy        []string `yaml:"group_by"`
	GroupWait      string   `yaml:"group_wait"`
	GroupInterval  string   `yaml:"group_interval"`
	RepeatInterval string   `yaml:"repeat_interval"`
	// Continue lets an alert that matched this route go on to its later
	// siblings.
	Continue bool `yaml:"continue"`
	// Routes are tried in order; the alert ends at the first that matches
	// (unless it has continue set), or here if none does.
	Routes []*RouteConfig `yaml:"routes"`
}

// Secret is a credential: printing or marshalling it shows "<secret>".
type Secret string

// String hides the secret from logs and %v.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "<secret>"
}

// MarshalYAML hides the secret when a configuration is dumped.
func (s Secret) MarshalYAML() (any, error) { return s.String(), nil }

// MarshalText hides the secret from JSON and other text encodings.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// ParseRouting decodes and validates a routing file's content. Unknown
// fields are errors, so that a misspelt option does not go unnoticed.
func ParseRouting(data []byte) (*Routing, error) {
	var r Routing
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&r); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("parse: %w", err)
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return &r, nil
}

func loadRouting(path string) (*Routing, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	r, err := ParseRouting(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return r, nil
}

// Validate reports every invalid field of the receivers and the routing
// tree, each with its path (notify.route.routes[0].matchers[1]).
func (r *Routing) Validate() error {
	var errs []error
	names := make(map[string]int, len(r.Receivers))
	for i := range r.Receivers {
		p := fmt.Sprintf("notify.receivers[%d]", i)
		rc := &r.Receivers[i]
		if rc.Name == "" {
			errs = append(errs, fmt.Errorf("%s.name: must not be empty", p))
		} else if j, dup := names[rc.Name]; dup {
			errs = append(errs, fmt.Errorf("%s.name: %q already used by notify.receivers[%d]", p, rc.Name, j))
		} else {
			names[rc.Name] = i
		}
		errs = append(errs, rc.validate(p))
	}
	switch {
	case r.Route == nil && len(r.Receivers) > 0:
		errs = append(errs, errors.New("notify.route: required when receivers are set"))
	case r.Route != nil:
		rt := r.Route
		if rt.Receiver == "" {
			errs = append(errs, errors.New("notify.route.receiver: the root route must name a default receiver"))
		}
		if len(rt.Matchers) > 0 {
			errs = append(errs, errors.New("notify.route.matchers: the root route must not have matchers; it matches every alert"))
		}
		if rt.Continue {
			errs = append(errs, errors.New("notify.route.continue: not allowed on the root route"))
		}
		errs = append(errs, rt.validate("notify.route", names, 0))
	}
	return errors.Join(errs...)
}

func (rc *ReceiverConfig) validate(p string) error {
	var errs []error
	if rc.URL == "" {
		errs = append(errs, fmt.Errorf("%s.url: must not be empty", p))
	} else if err := checkURL(rc.URL); err != nil {
		errs = append(errs, fmt.Errorf("%s.url: %w", p, err))
	}
	if rc.BearerToken != "" && rc.BasicAuth != nil {
		errs = append(errs, fmt.Errorf("%s.bearer_token: cannot be combined with basic_auth", p))
	}
	if rc.BasicAuth != nil && rc.BasicAuth.Username == "" {
		errs = append(errs, fmt.Errorf("%s.basic_auth.username: must not be empty", p))
	}
	if _, err := parseDuration(rc.Timeout, true); err != nil {
		errs = append(errs, fmt.Errorf("%s.timeout: %w", p, err))
	}
	return errors.Join(errs...)
}

// checkURL allows absolute http(s) URLs with a host and without
// credentials, which belong in basic_auth where they are kept out of logs.
func checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error repeats the whole URL, which may hold a token.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("invalid URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("scheme %q not allowed, use http or https", u.Scheme)
	}
	if u.Hostname() == "" {
		return errors.New("host missing")
	}
	if u.User != nil {
		return errors.New("credentials in the URL are not allowed, use basic_auth")
	}
	return nil
}

// checkLiteralAddresses refuses, at start-up rather than at the first
// alert, URLs whose host is an address the dialer would refuse anyway.
func (r *Routing) checkLiteralAddresses() error {
	var errs []error
	for i, rc := range r.Receivers {
		u, err := url.Parse(rc.URL)
		if err != nil {
			continue // reported by Validate
		}
		host := u.Hostname()
		if strings.EqualFold(host, "localhost") {
			errs = append(errs, fmt.Errorf("notify.receivers[%d].url: host %q is a loopback address; set -notify.allow-private-addresses to allow it", i, host))
			continue
		}
		if ip, err := netip.ParseAddr(host); err == nil && blockedAddr(ip) {
			errs = append(errs, fmt.Errorf("notify.receivers[%d].url: %s is a private, loopback or link-local address; set -notify.allow-private-addresses to allow it", i, ip))
		}
	}
	return errors.Join(errs...)
}

func (rc *RouteConfig) validate(p string, receivers map[string]int, depth int) error {
	if depth >= maxRouteDepth {
		return fmt.Errorf("%s.routes: nested deeper than %d levels", p, maxRouteDepth)
	}
	var errs []error
	if rc.Receiver != "" {
		if _, ok := receivers[rc.Receiver]; !ok {
			errs = append(errs, fmt.Errorf("%s.receiver: %q is not defined in notify.receivers", p, rc.Receiver))
		}
	}
	for i, m := range rc.Matchers {
		if _, err := parseMatchers(m); err != nil {
			errs = append(errs, fmt.Errorf("%s.matchers[%d]: %w", p, i, err))
		}
	}
	seen := make(map[string]struct{}, len(rc.GroupBy))
	for i, l := range rc.GroupBy {
		switch {
		case l == "...":
			if len(rc.GroupBy) > 1 {
				errs = append(errs, fmt.Errorf("%s.group_by[%d]: \"...\" (all labels) cannot be combined with other labels", p, i))
			}
		case !model.UTF8Validation.IsValidLabelName(l):
			errs = append(errs, fmt.Errorf("%s.group_by[%d]: invalid label name %q", p, i, l))
		}
		if _, dup := seen[l]; dup {
			errs = append(errs, fmt.Errorf("%s.group_by[%d]: duplicate label %q", p, i, l))
		}
		seen[l] = struct{}{}
	}
	for _, d := range []struct {
		name      string
		v         string
		allowZero bool
	}{
		{"group_wait", rc.GroupWait, true},
		{"group_interval", rc.GroupInterval, false},
		{"repeat_interval", rc.RepeatInterval, false},
	} {
		if _, err := parseDuration(d.v, d.allowZero); err != nil {
			errs = append(errs, fmt.Errorf("%s.%s: %w", p, d.name, err))
		}
	}
	for i, child := range rc.Routes {
		cp := fmt.Sprintf("%s.routes[%d]", p, i)
		if child == nil {
			errs = append(errs, fmt.Errorf("%s: empty route", cp))
			continue
		}
		errs = append(errs, child.validate(cp, receivers, depth+1))
	}
	return errors.Join(errs...)
}

// parseDuration parses a duration in Prometheus' syntax; "" is zero, for
// "not set".
func parseDuration(s string, allowZero bool) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := model.ParseDuration(s)
	if err != nil {
		return 0, err
	}
	if d == 0 && !allowZero {
		return 0, fmt.Errorf("must be positive, got %s", s)
	}
	return time.Duration(d), nil
}

// parseMatchers parses one matchers entry the way Alertmanager's
// configuration does (labels.ParseMatchers); an entry without any matcher
// is refused because it is almost certainly a mistake.
func parseMatchers(s string) (labels.Matchers, error) {
	ms, err := labels.ParseMatchers(s)
	if err != nil {
		return nil, err
	}
	if len(ms) == 0 {
		return nil, fmt.Errorf("no matcher in %q", s)
	}
	return ms, nil
}
