package app

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRunConfigCheck(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
		return p
	}
	goodRules := write("good.rules.yml", "groups:\n- name: g\n  rules:\n  - record: x\n    expr: up\n")
	badRules := write("bad.rules.yml", "groups:\n- name: g\n  rules:\n  - record: x\n    expr: up{\n")
	tenants := filepath.Join(dir, "tenants")
	require.NoError(t, os.MkdirAll(filepath.Join(tenants, "team-a", "logs"), 0o755))
	badTenantRules := write("tenants/team-a/logs/bad.yml", "groups:\n- name: g\n  rules:\n  - record: x\n    expr: up\n")
	for _, tc := range []struct {
		name     string
		content  string
		code     int
		stdout   string
		stderrIn []string
	}{
		{name: "example", content: "", code: 0, stdout: "valid"},
		{name: "unknown field", content: "nats:\n  partitons: 4\n", code: 1, stderrIn: []string{"partitons", "not found"}},
		{name: "bad value names the field", content: "nats:\n  partitions: 0\n", code: 1, stderrIn: []string{"nats.partitions"}},
		{name: "rule files checked", content: "rules:\n  files: " + goodRules + "\n", code: 0, stdout: "valid"},
		{name: "bad rule file named with its line", content: "rules:\n  files: " + badRules + "\n", code: 1, stderrIn: []string{badRules + ": 5:", "could not parse expression"}},
		{name: "tenants directory checked", content: "rules:\n  tenants_dir: " + tenants + "\n", code: 1, stderrIn: []string{badTenantRules + ": 5:", "could not parse expression"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := write(tc.name+".yml", tc.content)
			if tc.name == "example" {
				file = "../../pharos.example.yaml"
			}
			var stdout, stderr bytes.Buffer
			require.Equal(t, tc.code, RunConfigCheck([]string{file}, &stdout, &stderr), "stderr: %s", stderr.String())
			require.Contains(t, stdout.String(), tc.stdout)
			for _, s := range tc.stderrIn {
				require.Contains(t, stderr.String(), s)
			}
		})
	}
	var stdout, stderr bytes.Buffer
	require.Equal(t, 2, RunConfigCheck(nil, &stdout, &stderr))
}
