package e2e

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// runTimeout bounds a pharos run that is expected to exit by itself.
const runTimeout = 30 * time.Second

// runPharos runs pharos to completion and returns its stdout, stderr and
// exit code. A process still running after runTimeout is killed and fails
// the test: it accepted a configuration it should have refused.
func runPharos(t *testing.T, args []string, env ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	var out, errOut bytes.Buffer
	cmd := exec.CommandContext(ctx, pharosBin, args...)
	cmd.Env = append(cleanEnv(), env...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	require.NoError(t, ctx.Err(), "pharos %v did not exit within %s\nstderr:\n%s", args, runTimeout, errOut.String())
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		require.NoError(t, err, "run pharos %v", args)
	}
	return out.String(), errOut.String(), cmd.ProcessState.ExitCode()
}

// TestBadConfig requires that invalid configuration is refused at start
// with exit code 2 and a message naming the field, and checks -version and
// -help.
func TestBadConfig(t *testing.T) {
	t.Parallel()
	// Were a case accepted, it must not bind fixed ports or write to ./data.
	base := func(t *testing.T) []string {
		return []string{
			"-data.dir", t.TempDir(),
			"-http.listen-address", "127.0.0.1:0",
			"-nats.embedded.listen-address", "127.0.0.1:0",
		}
	}
	for _, tc := range []struct {
		name string
		args func(t *testing.T) []string
		env  []string
		want []string // substrings of stderr
	}{
		{
			name: "partitions flag",
			args: func(*testing.T) []string { return []string{"-nats.partitions=0"} },
			want: []string{"nats.partitions"},
		},
		{
			name: "partitions env",
			env:  []string{"PHAROS_NATS_PARTITIONS=0"},
			want: []string{"nats.partitions"},
		},
		{
			name: "unknown target",
			args: func(*testing.T) []string { return []string{"-target=bogus"} },
			want: []string{"target", `"bogus"`},
		},
		{
			name: "agent without nats url",
			args: func(*testing.T) []string { return []string{"-target=agent"} },
			want: []string{"nats.url"},
		},
		{
			name: "unknown field in config file",
			args: func(t *testing.T) []string {
				return []string{"-config.file", writeFile(t, "pharos.yaml", "nats:\n  partitions: 4\n  bogus_field: 1\n")}
			},
			want: []string{"config.file", "bogus_field"},
		},
		{
			name: "broken scrape config",
			args: func(t *testing.T) []string {
				return []string{"-scrape.config-file", writeFile(t, "prometheus.yml",
					"scrape_configs:\n  - job_name: broken\n    scrape_interval: not-a-duration\n")}
			},
			want: []string{"scrape.config_file", "not-a-duration"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := base(t)
			if tc.args != nil {
				args = append(args, tc.args(t)...)
			}
			_, stderr, code := runPharos(t, args, tc.env...)
			require.Equal(t, 2, code, "exit code of pharos %v %v\nstderr:\n%s", tc.env, args, stderr)
			for _, w := range tc.want {
				require.Contains(t, stderr, w, "stderr of pharos %v %v", tc.env, args)
			}
			require.NotContains(t, stderr, "pharos started")
		})
	}

	t.Run("version", func(t *testing.T) {
		stdout, stderr, code := runPharos(t, []string{"-version"})
		require.Equal(t, 0, code, "stderr:\n%s", stderr)
		require.Regexp(t, regexp.MustCompile(`^pharos version \S+\n$`), stdout)
	})

	t.Run("help", func(t *testing.T) {
		stdout, stderr, code := runPharos(t, []string{"-help"})
		require.Equal(t, 0, code, "stderr:\n%s", stderr)
		for _, f := range []string{"-http.listen-address", "-nats.url", "-scrape.config-file", "-data.dir", "-target", "-config.file", "-nats.partitions"} {
			require.Contains(t, stdout, "  "+f+" ", "-help lists %s", f)
		}
		require.Contains(t, stdout, "PHAROS_", "-help mentions the environment variables")
	})
}
