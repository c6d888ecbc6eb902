package tail

import (
	"errors"
	"flag"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/common/model"

	"github.com/pharos-obs/pharos/collector/tail/logparse"
)

// Line formats: the framing container runtimes put around each line.
const (
	// FormatAuto decodes lines starting with "{" as docker json-file and
	// others as CRI, and passes lines that are neither on as they are.
	FormatAuto = "auto"
	// FormatCRI is containerd's and CRI-O's "<time> <stream> <P|F> <msg>".
	FormatCRI = "cri"
	// FormatDocker is docker's json-file log driver.
	FormatDocker = "docker"
	// FormatRaw takes each line as the message.
	FormatRaw = "raw"
)

// Message parsers: how fields are extracted from a message.
const (
	ParseNone   = "none"
	ParseJSON   = "json"
	ParseLogfmt = "logfmt"
	ParseRegex  = "regex"
)

// Where the tailer starts reading a file it has no position for, when it
// starts for the first time (no positions file yet). Files found later
// are always read from their beginning, so that nothing written while the
// agent was down is skipped.
const (
	StartBeginning = "beginning"
	StartEnd       = "end"
)

// MetadataAll in ParseConfig.Metadata keeps every parsed field that is not
// made a label.
const MetadataAll = "*"

// Limits on the configuration.
const (
	minFingerprintBytes = 16
	maxFingerprintBytes = 64 << 10
	minLineBytes        = 256
	maxLineBytes        = 64 << 20
)

// Config tunes the log-file tailer. The flags' help texts (RegisterFlags)
// say more about each field.
type Config struct {
	// Enabled runs the tailer in the agent.
	Enabled bool `yaml:"enabled"`
	// Include and Exclude are filepath.Match globs on absolute paths; a
	// file is tailed when it matches an Include and no Exclude.
	Include StringList `yaml:"include"`
	Exclude StringList `yaml:"exclude"`
	// UseFSNotify watches the directories with inotify for low latency.
	// Polling runs either way, as the safety net for what inotify misses
	// (network file systems, exhausted watch limits).
	UseFSNotify bool `yaml:"use_fsnotify"`
	// PollInterval is how often the globs are matched again and every file
	// is checked for growth, rotation and truncation.
	PollInterval time.Duration `yaml:"poll_interval"`
	// RotateWait is how long a renamed or deleted file is still watched
	// for late writes after it has been read to its end.
	RotateWait time.Duration `yaml:"rotate_wait"`
	// StartAt is StartBeginning or StartEnd.
	StartAt string `yaml:"start_at"`
	// FingerprintBytes is the length of a file's head whose hash is part
	// of its identity.
	FingerprintBytes int `yaml:"fingerprint_bytes"`
	// MaxOpenFiles bounds the descriptors held.
	MaxOpenFiles int `yaml:"max_open_files"`
	// MaxLineBytes bounds a line and a joined entry; longer ones are cut.
	MaxLineBytes int `yaml:"max_line_bytes"`
	// PositionsSyncPeriod is how often acknowledged positions are written
	// to disk; a crash replays at most this much (at-least-once).
	PositionsSyncPeriod time.Duration `yaml:"positions_sync_period"`
	// MaxBatchEntries and MaxBatchBytes bound a batch handed to the Sink.
	MaxBatchEntries int `yaml:"max_batch_entries"`
	MaxBatchBytes   int `yaml:"max_batch_bytes"`
	// BatchWait is the longest a non-full batch waits; 0 hands it over as
	// soon as every file has been read to its end.
	BatchWait time.Duration `yaml:"batch_wait"`
	// DrainTimeout bounds the shutdown's last hand-over to the Sink.
	DrainTimeout time.Duration `yaml:"drain_timeout"`
	// Format is one of the Format constants.
	Format string `yaml:"format"`
	// KubernetesLabels adds namespace, pod and container labels to files
	// under .../pods/<namespace>_<pod>_<uid>/<container>/<n>.log.
	KubernetesLabels bool `yaml:"kubernetes_labels"`
	// StaticLabels are added to every entry.
	StaticLabels LabelSet        `yaml:"static_labels"`
	Multiline    MultilineConfig `yaml:"multiline"`
	Parse        ParseConfig     `yaml:"parse"`
}

// MultilineConfig joins the lines of one entry (a stack trace, say) into
// one. It is off while FirstLine is empty.
type MultilineConfig struct {
	// FirstLine matches the first line of an entry; lines that do not
	// match are appended to the entry before them.
	FirstLine string `yaml:"first_line"`
	// MaxLines bounds the lines of an entry; the next starts a new one.
	MaxLines int `yaml:"max_lines"`
	// FlushTimeout is how long an unfinished entry, or a partial
	// container line, waits for its next line before it is sent as it is.
	FlushTimeout time.Duration `yaml:"flush_timeout"`
}

// ParseConfig extracts fields from each entry's message and keeps them as
// labels or as structured metadata. The message itself is kept as it is.
type ParseConfig struct {
	// Kind is one of the Parse constants.
	Kind string `yaml:"kind"`
	// Regex is the expression for Kind regex; its named groups are the
	// fields.
	Regex string `yaml:"regex"`
	// Labels names the fields that become stream labels. Keep this to
	// low-cardinality fields: every distinct value is a new stream.
	Labels StringList `yaml:"labels"`
	// Metadata names the fields kept as structured metadata; MetadataAll
	// keeps every field not in Labels.
	Metadata StringList `yaml:"metadata"`
}

// DefaultConfig returns a Config holding every flag default.
func DefaultConfig() Config {
	var c Config
	c.RegisterFlags(flag.NewFlagSet("", flag.ContinueOnError))
	return c
}

// RegisterFlags registers the options under -agent.tail.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	c.Include = StringList{"/var/log/pods/*/*/*.log"}
	f.BoolVar(&c.Enabled, "agent.tail.enabled", true, "Tail the log files the include globs match (a missing directory is fine: it is watched for).")
	f.Var(&c.Include, "agent.tail.include", "Comma-separated globs of the log files to tail (absolute paths).")
	f.Var(&c.Exclude, "agent.tail.exclude", "Comma-separated globs of files not to tail, even when included.")
	f.BoolVar(&c.UseFSNotify, "agent.tail.use-fsnotify", true, "Watch directories with inotify to notice new and growing files at once; polling still runs as the safety net.")
	f.DurationVar(&c.PollInterval, "agent.tail.poll-interval", 500*time.Millisecond, "How often the globs are matched again and every file is checked for growth, rotation and truncation.")
	f.DurationVar(&c.RotateWait, "agent.tail.rotate-wait", 5*time.Second, "How long a renamed or deleted file is still read for late writes once it has been read to its end.")
	f.StringVar(&c.StartAt, "agent.tail.start-at", StartBeginning, "On the very first start (no positions file), read existing files from the beginning or the end.")
	f.IntVar(&c.FingerprintBytes, "agent.tail.fingerprint-bytes", 1024, "Bytes at the head of a file whose hash, with device and inode, identifies it, so that a reused inode is not taken for the same file.")
	f.IntVar(&c.MaxOpenFiles, "agent.tail.max-open-files", 1024, "Most files held open at once; idle files are closed (and reopened when they grow) to stay under it.")
	f.IntVar(&c.MaxLineBytes, "agent.tail.max-line-bytes", 256<<10, "Longest line or joined entry; longer ones are truncated and counted.")
	f.DurationVar(&c.PositionsSyncPeriod, "agent.tail.positions-sync-period", time.Second, "How often acknowledged read positions are saved; after a crash at most this much is read again.")
	// Batches end at 1 MiB of lines (Promtail's and Vector's size) more often
	// than at this count: each batch becomes a JetStream message per stream
	// partition it touches, and each message costs a write, an fsync, a
	// delivery and an ack whatever its size.
	f.IntVar(&c.MaxBatchEntries, "agent.tail.max-batch-entries", 10000, "Entries per batch handed to the publisher.")
	f.IntVar(&c.MaxBatchBytes, "agent.tail.max-batch-bytes", 1<<20, "Bytes of log lines per batch handed to the publisher.")
	f.DurationVar(&c.BatchWait, "agent.tail.batch-wait", time.Second, "Longest time a non-full batch waits before it is handed over; 0 hands it over as soon as the files are read to their end.")
	f.DurationVar(&c.DrainTimeout, "agent.tail.drain-timeout", 5*time.Second, "On shutdown, how long to keep handing over what was read; what is not acknowledged by then is read again at the next start.")
	f.StringVar(&c.Format, "agent.tail.format", FormatAuto, "Line format: auto, cri, docker or raw.")
	f.BoolVar(&c.KubernetesLabels, "agent.tail.kubernetes-labels", true, "Add namespace, pod and container labels to files under .../pods/<namespace>_<pod>_<uid>/<container>/.")
	f.Var(&c.StaticLabels, "agent.tail.static-labels", "Labels added to every entry, as name=value pairs separated by commas.")
	f.StringVar(&c.Multiline.FirstLine, "agent.tail.multiline.first-line", "", "Regular expression matching the first line of a multi-line entry; empty turns multi-line joining off.")
	f.IntVar(&c.Multiline.MaxLines, "agent.tail.multiline.max-lines", 128, "Most lines joined into one entry; the next line starts a new one.")
	f.DurationVar(&c.Multiline.FlushTimeout, "agent.tail.multiline.flush-timeout", 3*time.Second, "How long an unfinished multi-line entry, or a partial container line, waits for its next line before it is sent as it is.")
	f.StringVar(&c.Parse.Kind, "agent.tail.parse.kind", ParseNone, "Parser of the message: none, json, logfmt or regex.")
	f.StringVar(&c.Parse.Regex, "agent.tail.parse.regex", "", "Regular expression (RE2) with named groups, for parse kind regex.")
	f.Var(&c.Parse.Labels, "agent.tail.parse.labels", "Comma-separated parsed fields to make labels (low cardinality only).")
	f.Var(&c.Parse.Metadata, "agent.tail.parse.metadata", "Comma-separated parsed fields to keep as structured metadata; * keeps all that are not labels.")
}

// Validate reports every invalid field.
func (c *Config) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if !c.Enabled {
		return nil
	}
	if len(c.Include) == 0 {
		add("agent.tail.include: at least one glob is required")
	}
	for _, g := range c.Include {
		if err := checkGlob(g); err != nil {
			add("agent.tail.include: %w", err)
		}
	}
	for _, g := range c.Exclude {
		if err := checkGlob(g); err != nil {
			add("agent.tail.exclude: %w", err)
		}
	}
	if c.PollInterval < 10*time.Millisecond {
		add("agent.tail.poll_interval: must be at least 10ms, got %s", c.PollInterval)
	}
	if c.RotateWait < 0 {
		add("agent.tail.rotate_wait: must not be negative, got %s", c.RotateWait)
	}
	if c.StartAt != StartBeginning && c.StartAt != StartEnd {
		add("agent.tail.start_at: must be %s or %s, got %q", StartBeginning, StartEnd, c.StartAt)
	}
	if c.FingerprintBytes < minFingerprintBytes || c.FingerprintBytes > maxFingerprintBytes {
		add("agent.tail.fingerprint_bytes: must be between %d and %d, got %d", minFingerprintBytes, maxFingerprintBytes, c.FingerprintBytes)
	}
	if c.MaxOpenFiles < 1 {
		add("agent.tail.max_open_files: must be at least 1, got %d", c.MaxOpenFiles)
	}
	if c.MaxLineBytes < minLineBytes || c.MaxLineBytes > maxLineBytes {
		add("agent.tail.max_line_bytes: must be between %d and %d, got %d", minLineBytes, maxLineBytes, c.MaxLineBytes)
	}
	if c.PositionsSyncPeriod <= 0 {
		add("agent.tail.positions_sync_period: must be positive, got %s", c.PositionsSyncPeriod)
	}
	if c.MaxBatchEntries < 1 {
		add("agent.tail.max_batch_entries: must be at least 1, got %d", c.MaxBatchEntries)
	}
	if c.MaxBatchBytes < 1 {
		add("agent.tail.max_batch_bytes: must be at least 1, got %d", c.MaxBatchBytes)
	}
	if c.BatchWait < 0 {
		add("agent.tail.batch_wait: must not be negative, got %s", c.BatchWait)
	}
	if c.DrainTimeout < 0 {
		add("agent.tail.drain_timeout: must not be negative, got %s", c.DrainTimeout)
	}
	if !slices.Contains([]string{FormatAuto, FormatCRI, FormatDocker, FormatRaw}, c.Format) {
		add("agent.tail.format: must be auto, cri, docker or raw, got %q", c.Format)
	}
	for _, name := range c.StaticLabels.names() {
		if !model.LegacyValidation.IsValidLabelName(name) {
			add("agent.tail.static_labels: %q is not a valid label name", name)
		}
		if c.StaticLabels[name] == "" {
			add("agent.tail.static_labels: label %q has an empty value", name)
		}
	}
	errs = append(errs, c.Multiline.validate("agent.tail.multiline")...)
	errs = append(errs, c.Parse.validate("agent.tail.parse")...)
	return errors.Join(errs...)
}

func (c *MultilineConfig) validate(prefix string) []error {
	var errs []error
	if c.FirstLine != "" {
		if _, err := regexp.Compile(c.FirstLine); err != nil {
			errs = append(errs, fmt.Errorf("%s.first_line: %w", prefix, err))
		}
	}
	if c.MaxLines < 1 {
		errs = append(errs, fmt.Errorf("%s.max_lines: must be at least 1, got %d", prefix, c.MaxLines))
	}
	if c.FlushTimeout <= 0 {
		errs = append(errs, fmt.Errorf("%s.flush_timeout: must be positive, got %s", prefix, c.FlushTimeout))
	}
	return errs
}

func (c *ParseConfig) validate(prefix string) []error {
	var errs []error
	switch c.Kind {
	case ParseNone:
		if len(c.Labels) > 0 || len(c.Metadata) > 0 {
			errs = append(errs, fmt.Errorf("%s.kind: labels and metadata need a parser (json, logfmt or regex)", prefix))
		}
	case ParseJSON, ParseLogfmt:
	case ParseRegex:
		if c.Regex == "" {
			errs = append(errs, fmt.Errorf("%s.regex: required for kind regex", prefix))
		} else if _, err := logparse.NewRegex(c.Regex); err != nil {
			errs = append(errs, fmt.Errorf("%s.regex: %w", prefix, err))
		}
	default:
		errs = append(errs, fmt.Errorf("%s.kind: must be none, json, logfmt or regex, got %q", prefix, c.Kind))
	}
	if c.Kind != ParseRegex && c.Regex != "" {
		errs = append(errs, fmt.Errorf("%s.regex: only used with kind regex", prefix))
	}
	for _, l := range c.Labels {
		if !model.LegacyValidation.IsValidLabelName(l) {
			errs = append(errs, fmt.Errorf("%s.labels: %q is not a valid label name", prefix, l))
		}
		if slices.Contains(c.Metadata, l) {
			errs = append(errs, fmt.Errorf("%s.metadata: %q is already a label", prefix, l))
		}
	}
	for _, m := range c.Metadata {
		if m == "" {
			errs = append(errs, fmt.Errorf("%s.metadata: empty field name", prefix))
		}
	}
	return errs
}

func checkGlob(g string) error {
	if !filepath.IsAbs(g) {
		return fmt.Errorf("glob %q must be an absolute path", g)
	}
	if _, err := filepath.Match(g, ""); err != nil {
		return fmt.Errorf("glob %q: %w", g, err)
	}
	return nil
}

// StringList is a list of strings: comma-separated on the command line,
// a YAML sequence (or one comma-separated string) in a file.
type StringList []string

// String implements flag.Value.
func (l StringList) String() string { return strings.Join(l, ",") }

// Set implements flag.Value; it replaces the list, defaults included.
func (l *StringList) Set(s string) error {
	*l = nil
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*l = append(*l, p)
		}
	}
	return nil
}

// UnmarshalYAML accepts a sequence or a comma-separated string.
func (l *StringList) UnmarshalYAML(unmarshal func(any) error) error {
	var seq []string
	if err := unmarshal(&seq); err == nil {
		*l = seq
		return nil
	}
	var s string
	if err := unmarshal(&s); err != nil {
		return err
	}
	return l.Set(s)
}

// LabelSet is a set of static labels: name=value pairs separated by commas
// on the command line, a mapping in a file.
type LabelSet map[string]string

// String implements flag.Value.
func (s LabelSet) String() string {
	names := s.names()
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = n + "=" + s[n]
	}
	return strings.Join(parts, ",")
}

// Set implements flag.Value.
func (s *LabelSet) Set(v string) error {
	m := LabelSet{}
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		name, value, ok := strings.Cut(p, "=")
		if !ok {
			return fmt.Errorf("label %q: want name=value", p)
		}
		m[strings.TrimSpace(name)] = strings.TrimSpace(value)
	}
	*s = m
	return nil
}

// UnmarshalYAML replaces the set, as the flag does, rather than merging
// into it.
func (s *LabelSet) UnmarshalYAML(unmarshal func(any) error) error {
	var m map[string]string
	if err := unmarshal(&m); err != nil {
		return err
	}
	*s = m
	return nil
}

func (s LabelSet) names() []string {
	names := make([]string, 0, len(s))
	for n := range s {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
