package tail

import (
	"flag"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

func TestDefaultConfigIsValid(t *testing.T) {
	cfg := DefaultConfig()
	require.NoError(t, cfg.Validate())
	require.Equal(t, StringList{"/var/log/pods/*/*/*.log"}, cfg.Include)
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want []string
	}{
		{name: "relative glob", mod: func(c *Config) { c.Include = StringList{"logs/*.log"} }, want: []string{"agent.tail.include: glob \"logs/*.log\" must be an absolute path"}},
		{name: "bad glob", mod: func(c *Config) { c.Exclude = StringList{"/a/[x"} }, want: []string{"agent.tail.exclude: glob \"/a/[x\""}},
		{name: "no include", mod: func(c *Config) { c.Include = nil }, want: []string{"agent.tail.include: at least one glob"}},
		{name: "many at once", mod: func(c *Config) {
			c.PollInterval = 0
			c.MaxLineBytes = 1
			c.Format = "xml"
			c.StartAt = "middle"
			c.FingerprintBytes = 1
		}, want: []string{"agent.tail.poll_interval", "agent.tail.max_line_bytes", "agent.tail.format", "agent.tail.start_at", "agent.tail.fingerprint_bytes"}},
		{name: "bad static label", mod: func(c *Config) { c.StaticLabels = LabelSet{"a-b": "x", "ok": ""} },
			want: []string{`agent.tail.static_labels: "a-b" is not a valid label name`, `agent.tail.static_labels: label "ok" has an empty value`}},
		{name: "bad multiline", mod: func(c *Config) { c.Multiline.FirstLine = "("; c.Multiline.MaxLines = 0 },
			want: []string{"agent.tail.multiline.first_line", "agent.tail.multiline.max_lines"}},
		{name: "regex without named group", mod: func(c *Config) { c.Parse.Kind = ParseRegex; c.Parse.Regex = `\w+` },
			want: []string{"agent.tail.parse.regex: regular expression"}},
		{name: "regex missing", mod: func(c *Config) { c.Parse.Kind = ParseRegex }, want: []string{"agent.tail.parse.regex: required"}},
		{name: "fields without parser", mod: func(c *Config) { c.Parse.Labels = StringList{"level"} }, want: []string{"agent.tail.parse.kind: labels and metadata need a parser"}},
		{name: "field both label and metadata", mod: func(c *Config) {
			c.Parse.Kind = ParseJSON
			c.Parse.Labels = StringList{"level"}
			c.Parse.Metadata = StringList{"level"}
		}, want: []string{`agent.tail.parse.metadata: "level" is already a label`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tc.mod(&cfg)
			err := cfg.Validate()
			require.Error(t, err)
			for _, w := range tc.want {
				require.ErrorContains(t, err, w)
			}
		})
	}
}

func TestConfigFlagsAndYAML(t *testing.T) {
	var cfg Config
	fs := flag.NewFlagSet("", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	require.NoError(t, fs.Parse([]string{
		"-agent.tail.include=/a/*.log, /b/*.log",
		"-agent.tail.static-labels=cluster=c1,env=prod",
		"-agent.tail.poll-interval=250ms",
		"-agent.tail.parse.kind=json",
		"-agent.tail.parse.metadata=*",
	}))
	require.Equal(t, StringList{"/a/*.log", "/b/*.log"}, cfg.Include, "the flag replaces the default")
	require.Equal(t, LabelSet{"cluster": "c1", "env": "prod"}, cfg.StaticLabels)
	require.Equal(t, 250*time.Millisecond, cfg.PollInterval)
	require.NoError(t, cfg.Validate())

	require.NoError(t, yaml.Unmarshal([]byte(`
include: [/x/*.log]
exclude: /x/skip*.log,/x/tmp*.log
static_labels: {team: core}
multiline: {first_line: '^\d', max_lines: 10}
`), &cfg))
	require.Equal(t, StringList{"/x/*.log"}, cfg.Include)
	require.Equal(t, StringList{"/x/skip*.log", "/x/tmp*.log"}, cfg.Exclude)
	require.Equal(t, LabelSet{"team": "core"}, cfg.StaticLabels)
	require.Equal(t, 10, cfg.Multiline.MaxLines)
	require.NoError(t, cfg.Validate())
}
