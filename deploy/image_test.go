// Package deploy_test checks the container image's recipe, which no test
// here can build (there is no container engine): the Dockerfile's stages,
// what its last stage holds and runs as, its Go version against go.mod's,
// and that .dockerignore keeps out nothing the build needs.
package deploy_test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// root is the repository root, seen from this package's directory.
const root = ".."

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	cmd  string // upper case: FROM, RUN, COPY…
	args string
}

// stage is a FROM and the instructions after it.
type stage struct {
	image, name string
	body        []instruction
}

// parseDockerfile reads the instructions, joining continued lines and
// dropping comments (parser directives included), and splits them into
// the global ARGs and the stages.
func parseDockerfile(t *testing.T, text string) (args map[string]string, stages []stage) {
	t.Helper()
	var ins []instruction
	var cur strings.Builder
	for _, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") || trimmed == "" && cur.Len() == 0 {
			continue
		}
		if s, ok := strings.CutSuffix(trimmed, "\\"); ok {
			cur.WriteString(s + " ")
			continue
		}
		cur.WriteString(trimmed)
		cmd, rest, _ := strings.Cut(strings.TrimSpace(cur.String()), " ")
		ins = append(ins, instruction{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(rest)})
		cur.Reset()
	}
	require.Zero(t, cur.Len(), "the last instruction is continued into nothing")

	args = map[string]string{}
	for _, in := range ins {
		switch {
		case in.cmd == "FROM":
			f := strings.Fields(in.args)
			s := stage{image: expandArgs(f[0], args)}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				s.name = f[2]
			} else {
				require.Len(t, f, 1, "FROM %s", in.args)
			}
			stages = append(stages, s)
		case len(stages) == 0:
			require.Equal(t, "ARG", in.cmd, "only ARG may come before the first FROM")
			name, def, _ := strings.Cut(in.args, "=")
			args[name] = def
		default:
			stages[len(stages)-1].body = append(stages[len(stages)-1].body, in)
		}
	}
	return args, stages
}

func expandArgs(s string, args map[string]string) string {
	return regexp.MustCompile(`\$\{?(\w+)\}?`).ReplaceAllStringFunc(s, func(m string) string {
		name := strings.Trim(m, "${}")
		if v, ok := args[name]; ok {
			return v
		}
		return m
	})
}

func goVersion(t *testing.T) string {
	t.Helper()
	mod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	require.NoError(t, err)
	// A toolchain line, when there is one, is the version to build with.
	for _, re := range []string{`(?m)^toolchain go(\S+)$`, `(?m)^go (\S+)$`} {
		if m := regexp.MustCompile(re).FindSubmatch(mod); m != nil {
			return string(m[1])
		}
	}
	t.Fatal("go.mod has no go directive")
	return ""
}

func TestDockerfile(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	require.NoError(t, err)
	args, stages := parseDockerfile(t, string(raw))
	require.Len(t, stages, 2, "a build stage and the runtime stage")
	build, final := stages[0], stages[1]

	// Built with the Go of go.mod, on a Debian with gcc (cgo).
	require.Equal(t, goVersion(t), args["GO_VERSION"], "the Dockerfile's GO_VERSION is go.mod's")
	require.Equal(t, "golang:"+args["GO_VERSION"]+"-bookworm", build.image)
	require.Equal(t, "build", build.name)
	var buildCmd string
	for _, in := range build.body {
		if in.cmd == "RUN" && strings.Contains(in.args, "go build") {
			buildCmd = in.args
		}
	}
	require.Contains(t, buildCmd, "CGO_ENABLED=1", "gozstd needs cgo")
	require.Regexp(t, `-o /out/pharos \./cmd/pharos$`, buildCmd)

	// The runtime is the same Debian release (the binary links its glibc).
	require.Equal(t, "gcr.io/distroless/base-debian12:nonroot", final.image)
	for _, s := range stages {
		_, tag, _ := strings.Cut(s.image[strings.LastIndex(s.image, "/")+1:], ":")
		require.NotEmpty(t, tag, "FROM %s: pin a tag", s.image)
		require.NotEqual(t, "latest", tag)
	}

	// The last stage: the binary, a non-root numeric user, pharos as the
	// entrypoint, and nothing run or fetched.
	var copies []string
	var user, entrypoint string
	for _, in := range final.body {
		switch in.cmd {
		case "COPY":
			copies = append(copies, in.args)
		case "USER":
			user = in.args
		case "ENTRYPOINT":
			entrypoint = in.args
		case "RUN", "ADD":
			t.Fatalf("%s in the runtime stage: it has no shell, and holds only the binary", in.cmd)
		}
	}
	require.Len(t, copies, 1, "only the binary goes into the image")
	f := strings.Fields(copies[0])
	require.Equal(t, []string{"--from=build", "/out/pharos"}, f[:2])
	require.Len(t, f, 3)
	binary := f[2]
	require.Regexp(t, `^[1-9][0-9]*(:[0-9]+)?$`, user, "USER: a numeric non-root uid, so that Kubernetes can check runAsNonRoot")
	var ep []string
	require.NoError(t, json.Unmarshal([]byte(entrypoint), &ep), "ENTRYPOINT in exec form: signals reach pharos itself")
	require.Equal(t, []string{binary}, ep)
	require.Equal(t, "pharos", filepath.Base(binary))
}

// TestDockerignore: the context leaves out the repository's history and
// build outputs, and nothing the build of ./cmd/pharos reads.
func TestDockerignore(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	require.NoError(t, err)
	var patterns []*regexp.Regexp
	var plain []string
	for _, line := range strings.Split(string(raw), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		require.False(t, strings.HasPrefix(line, "!"), "exceptions are not supported by this test: %s", line)
		p := strings.TrimPrefix(filepath.Clean(line), "/")
		plain = append(plain, p)
		patterns = append(patterns, ignoreRegexp(p))
	}
	require.Contains(t, plain, ".git")
	excluded := func(path string) bool {
		for p := path; p != "." && p != "/"; p = filepath.Dir(p) {
			for _, re := range patterns {
				if re.MatchString(p) {
					return true
				}
			}
		}
		return false
	}

	needed := []string{"go.mod", "go.sum"}
	cmd := exec.Command("go", "list", "-deps", "-json", "./cmd/pharos")
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, stderr.String())
	abs, err := filepath.Abs(root)
	require.NoError(t, err)
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		var p struct {
			Dir    string
			Module *struct{ Path string }

			GoFiles, CgoFiles, CFiles, HFiles, SFiles, SysoFiles, EmbedFiles []string
		}
		require.NoError(t, dec.Decode(&p))
		if p.Module == nil || p.Module.Path != "github.com/pharos-obs/pharos" {
			continue
		}
		rel, err := filepath.Rel(abs, p.Dir)
		require.NoError(t, err)
		for _, files := range [][]string{p.GoFiles, p.CgoFiles, p.CFiles, p.HFiles, p.SFiles, p.SysoFiles, p.EmbedFiles} {
			for _, f := range files {
				needed = append(needed, filepath.Join(rel, f))
			}
		}
	}
	require.Greater(t, len(needed), 100, "go list found the sources of ./cmd/pharos")
	for _, f := range needed {
		require.False(t, excluded(f), ".dockerignore leaves out %s, which the build needs", f)
	}
	for _, f := range []string{".git/HEAD", "pharos", "data/metrics/wal", ".pharos-cluster/cluster.env", "internal/bus/bus.test"} {
		require.True(t, excluded(f), ".dockerignore keeps %s in the build context", f)
	}
}

// ignoreRegexp translates a .dockerignore pattern (Go's filepath.Match
// syntax plus **) into a regexp on slash-separated paths.
func ignoreRegexp(p string) *regexp.Regexp {
	var b strings.Builder
	b.WriteString("^")
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case strings.HasPrefix(p[i:], "**/"):
			b.WriteString("(.*/)?")
			i += 2
		case strings.HasPrefix(p[i:], "**"):
			b.WriteString(".*")
			i++
		case c == '*':
			b.WriteString("[^/]*")
		case c == '?':
			b.WriteString("[^/]")
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	b.WriteString("$")
	return regexp.MustCompile(b.String())
}
