package tail

import (
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/pharos-obs/pharos/collector/tail/logparse"
)

// pipeline is a tailer that is not started, fed chunks by hand as reads
// from a file would be.
type pipeline struct {
	t *Tailer
	f *tailedFile
}

func newPipeline(t *testing.T, mod func(*Config)) *pipeline {
	t.Helper()
	cfg := testConfig(t.TempDir())
	cfg.MaxLineBytes = 256
	mod(&cfg)
	tl, err := New(cfg, SinkFunc(nil), filepath.Join(t.TempDir(), "positions.json"), slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	require.NoError(t, err)
	tl.now = time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	f := &tailedFile{path: "/var/log/pods/ns_pod_uid/app/0.log", fp: fnvOffset, labels: tl.fileLabels("/var/log/pods/ns_pod_uid/app/0.log")}
	return &pipeline{t: tl, f: f}
}

// feed processes chunks as consecutive reads.
func (p *pipeline) feed(chunks ...string) {
	for _, c := range chunks {
		n := p.t.processChunk(p.f, []byte(c))
		p.f.readOff += int64(n)
	}
}

// flush sends everything pending, as flush_timeout would.
func (p *pipeline) flush() {
	for i := range p.f.streams {
		p.t.flushStream(p.f, streamOf(i))
	}
}

type got struct {
	stream string
	line   string
}

func (p *pipeline) entries() []got {
	out := []got{}
	for _, e := range p.t.cur.Entries {
		out = append(out, got{stream: e.Labels.Get("stream"), line: string(e.Line)})
	}
	return out
}

func TestPipeline(t *testing.T) {
	const (
		t1 = "2024-05-01T12:00:00.000000001Z"
		t2 = "2024-05-01T12:00:00.000000002Z"
		t3 = "2024-05-01T12:00:00.000000003Z"
	)
	long := strings.Repeat("x", 300)
	for _, tc := range []struct {
		name   string
		mod    func(*Config)
		chunks []string
		want   []got // after the chunks
		after  []got // after flushing what is pending
		trunc  float64
		utf8   float64
		perr   float64
	}{
		{name: "raw lines", mod: func(c *Config) {}, chunks: []string{"a\n\nb\n"},
			want: []got{{"", "a"}, {"", ""}, {"", "b"}}},
		{name: "raw line across reads", mod: func(c *Config) {}, chunks: []string{"ab", "c", "d\ne"},
			want: []got{{"", "abcd"}}},
		{name: "overlong line", mod: func(c *Config) {}, chunks: []string{long + "\nok\n"},
			want: []got{{"", long[:256]}, {"", "ok"}}, trunc: 1},
		{name: "overlong line across reads", mod: func(c *Config) {}, chunks: []string{long[:200], long[200:], "\nok\n"},
			want: []got{{"", long[:256]}, {"", "ok"}}, trunc: 1},
		{name: "invalid utf8 replaced", mod: func(c *Config) {}, chunks: []string{"a\xffb\xc3\n"},
			want: []got{{"", "a\uFFFDb\uFFFD"}}, utf8: 1},
		{name: "cri", mod: func(c *Config) { c.Format = FormatCRI }, chunks: []string{t1 + " stdout F hello\n" + t2 + " stderr F oops\n"},
			want: []got{{"stdout", "hello"}, {"stderr", "oops"}}},
		{name: "cri partial lines joined per stream", mod: func(c *Config) { c.Format = FormatCRI },
			chunks: []string{t1 + " stdout P hel", "lo \n" + t2 + " stderr F oops\n" + t2 + " stdout P wor\n" + t3 + " stdout F ld\n"},
			want:   []got{{"stderr", "oops"}, {"stdout", "hello world"}}},
		{name: "cri partial flushed when it waits too long", mod: func(c *Config) { c.Format = FormatCRI },
			chunks: []string{t1 + " stdout P half\n"}, want: []got{}, after: []got{{"stdout", "half"}}},
		{name: "cri joined entry capped", mod: func(c *Config) { c.Format = FormatCRI },
			chunks: []string{t1 + " stdout P " + long[:200] + "\n" + t1 + " stdout F " + long[:200] + "\n"},
			want:   []got{{"stdout", long[:256]}}, trunc: 1},
		{name: "cri malformed kept raw and counted", mod: func(c *Config) { c.Format = FormatCRI }, chunks: []string{"not cri\n"},
			want: []got{{"", "not cri"}}, perr: 1},
		{name: "docker partial lines joined", mod: func(c *Config) { c.Format = FormatDocker },
			chunks: []string{`{"log":"hel","stream":"stdout","time":"` + t1 + `"}` + "\n" + `{"log":"lo\n","stream":"stdout","time":"` + t2 + `"}` + "\n"},
			want:   []got{{"stdout", "hello"}}},
		{name: "auto", mod: func(c *Config) { c.Format = FormatAuto },
			chunks: []string{`{"log":"d\n","stream":"stderr"}` + "\n" + t1 + " stdout F c\nplain\n"},
			want:   []got{{"stderr", "d"}, {"stdout", "c"}, {"", "plain"}}},
		{name: "multiline", mod: func(c *Config) { c.Multiline.FirstLine = `^\d` },
			chunks: []string{"1 panic\n  at a\n", "  at b\n2 next\n"},
			want:   []got{{"", "1 panic\n  at a\n  at b"}}, after: []got{{"", "1 panic\n  at a\n  at b"}, {"", "2 next"}}},
		{name: "multiline before the first start line", mod: func(c *Config) { c.Multiline.FirstLine = `^\d` },
			chunks: []string{"orphan\n1 start\n"}, want: []got{{"", "orphan"}}, after: []got{{"", "orphan"}, {"", "1 start"}}},
		{name: "multiline max lines", mod: func(c *Config) { c.Multiline.FirstLine = `^\d`; c.Multiline.MaxLines = 2 },
			chunks: []string{"1\na\nb\nc\n"}, want: []got{{"", "1\na"}}, after: []got{{"", "1\na"}, {"", "b\nc"}}},
		{name: "multiline over cri partials", mod: func(c *Config) { c.Format = FormatCRI; c.Multiline.FirstLine = `^E` },
			chunks: []string{t1 + " stderr P Err\n" + t1 + " stderr F or\n" + t2 + " stderr F   at x\n" + t3 + " stderr F Eend\n"},
			want:   []got{{"stderr", "Error\n  at x"}}, after: []got{{"stderr", "Error\n  at x"}, {"stderr", "Eend"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPipeline(t, tc.mod)
			p.feed(tc.chunks...)
			require.Equal(t, tc.want, p.entries())
			if tc.after != nil {
				p.flush()
				require.Equal(t, tc.after, p.entries())
			}
			require.Equal(t, tc.trunc, promtest.ToFloat64(p.t.m.linesTruncated), "truncated")
			require.Equal(t, tc.utf8, promtest.ToFloat64(p.t.m.invalidUTF8), "invalid utf8")
			require.Equal(t, tc.perr, promtest.ToFloat64(p.t.formatErrors), "parse errors")
		})
	}
}

// The position may only move past lines whose entries are made: lines
// held in a pending entry are read again after a restart.
func TestCommitStopsAtPendingLines(t *testing.T) {
	p := newPipeline(t, func(c *Config) { c.Multiline.FirstLine = `^\d` })
	p.feed("1 a\n", "  b\n2 c\n  d\n3 e")
	// "1 a\n  b" is an entry; "2 c\n  d" is pending; "3 e" is unfinished.
	require.Equal(t, int64(len("1 a\n  b\n")), p.f.commit())
	require.Equal(t, int64(len("1 a\n  b\n2 c\n  d\n")), p.f.lineOff)
	p.flush()
	require.Equal(t, p.f.lineOff, p.f.commit())

	p = newPipeline(t, func(c *Config) { c.Format = FormatCRI })
	p.feed("2024-05-01T12:00:00Z stdout P x\n2024-05-01T12:00:00Z stderr F y\n")
	require.Zero(t, p.f.commit(), "the stdout partial holds the position at its start")
}

func TestParsedFields(t *testing.T) {
	for _, tc := range []struct {
		name   string
		parse  ParseConfig
		line   string
		labels map[string]string
		meta   map[string]string
	}{
		{name: "json to label and all metadata", parse: ParseConfig{Kind: ParseJSON, Labels: StringList{"level"}, Metadata: StringList{MetadataAll}},
			line: `{"level":"warn","msg":"a\tb","n":3}`, labels: map[string]string{"level": "warn"}, meta: map[string]string{"msg": "a\tb", "n": "3"}},
		{name: "logfmt chosen metadata", parse: ParseConfig{Kind: ParseLogfmt, Metadata: StringList{"trace_id"}},
			line: `level=info trace_id=abc msg="x y"`, meta: map[string]string{"trace_id": "abc"}},
		{name: "regex groups", parse: ParseConfig{Kind: ParseRegex, Regex: `^(?P<level>\w+) (?P<msg>.*)$`, Labels: StringList{"level"}, Metadata: StringList{"msg"}},
			line: `error disk full`, labels: map[string]string{"level": "error"}, meta: map[string]string{"msg": "disk full"}},
		{name: "unparsable kept without fields", parse: ParseConfig{Kind: ParseJSON, Metadata: StringList{MetadataAll}},
			line: `not json`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPipeline(t, func(c *Config) { c.Parse = tc.parse })
			p.feed(tc.line + "\n" + tc.line + "\n")
			require.Len(t, p.t.cur.Entries, 2)
			for _, e := range p.t.cur.Entries {
				require.Equal(t, tc.line, string(e.Line), "the message is kept as it is")
				for k, v := range tc.labels {
					require.Equal(t, v, e.Labels.Get(k))
				}
				require.Equal(t, "/var/log/pods/ns_pod_uid/app/0.log", e.Labels.Get("filename"))
				meta := map[string]string{}
				for _, f := range e.Metadata {
					meta[string(f.Name)] = string(f.Value)
				}
				if tc.meta == nil {
					require.Empty(t, meta)
				} else {
					require.Equal(t, tc.meta, meta)
				}
			}
		})
	}
}

func TestFileLabels(t *testing.T) {
	for _, tc := range []struct {
		path string
		want map[string]string
	}{
		{path: "/var/log/pods/kube-system_coredns-5d78c9869d-abcde_0f1e2d3c-4b5a/coredns/0.log",
			want: map[string]string{"namespace": "kube-system", "pod": "coredns-5d78c9869d-abcde", "container": "coredns"}},
		{path: "/host/var/log/pods/default_web_uid/nginx/12.log",
			want: map[string]string{"namespace": "default", "pod": "web", "container": "nginx"}},
		{path: "/var/log/pods/not-three-parts/c/0.log", want: map[string]string{}},
		{path: "/var/log/syslog.log", want: map[string]string{}},
	} {
		t.Run(tc.path, func(t *testing.T) {
			p := newPipeline(t, func(c *Config) {
				c.KubernetesLabels = true
				c.StaticLabels = LabelSet{"cluster": "c1"}
			})
			ls := p.t.fileLabels(tc.path)
			base := ls[0]
			require.Equal(t, tc.path, base.Get("filename"))
			require.Equal(t, "c1", base.Get("cluster"))
			for _, k := range []string{"namespace", "pod", "container"} {
				require.Equal(t, tc.want[k], base.Get(k), k)
			}
			require.Equal(t, "stdout", ls[1].Get("stream"))
			require.Equal(t, "stderr", ls[2].Get("stream"))
		})
	}
}

func TestUTF8Helpers(t *testing.T) {
	require.Equal(t, "a\uFFFD\uFFFDé", string(appendValidUTF8(nil, []byte("a\xff\xfeé"))))
	require.Equal(t, "ab", string(cutUTF8([]byte("abé"), 3)), "never cut inside a character")
	require.Equal(t, "abé", string(cutUTF8([]byte("abé"), 4)))
	out, cut := appendCapped([]byte("ab"), []byte("cdef"), 4)
	require.True(t, cut)
	require.Equal(t, "abcd", string(out))
}

func streamOf(i int) logparse.Stream { return logparse.Stream(i) }
