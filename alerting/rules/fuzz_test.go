package rules

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	promrules "github.com/prometheus/prometheus/rules"
	"github.com/stretchr/testify/require"
)

// FuzzCheck feeds arbitrary rule files to Check: nothing may panic, every
// error names the file, and what Check accepts the Prometheus rules
// manager loads.
func FuzzCheck(f *testing.F) {
	f.Add([]byte(goodRules))
	f.Add([]byte(apiRules))
	f.Add([]byte("groups:\n  - name: a\n    rules:\n      - alert: X\n        expr: sum(up\n        annotations:\n          s: \"{{ \"\n"))
	f.Add([]byte("groups:\n  - name: a\n    labels:\n      __name__: x\n    rules: []\n  - name: a\n    rules: []\n  - rules: [{expr: up}]\n"))
	f.Add([]byte("groups: [{name: a, rules: [{record: r, expr: up, for: 5 minutes}]}]"))
	f.Add([]byte(""))
	// One file, rewritten for each input: a path that differs from input
	// to input would change the coverage of everything that formats or
	// scans error messages, and the fuzzer would take that for progress.
	file := filepath.Join(f.TempDir(), "rules.yml")
	f.Fuzz(func(t *testing.T, data []byte) {
		require.NoError(t, os.WriteFile(file, data, 0o600))
		errs := Check(file)
		for _, err := range errs {
			require.True(t, strings.HasPrefix(err.Error(), file+": "), "error without the file name: %s", err)
		}
		if len(errs) > 0 {
			return
		}
		m := promrules.NewManager(&promrules.ManagerOptions{Parser: newParser()})
		_, loadErrs := m.LoadGroups(testInterval, labels.EmptyLabels(), "", nil, false, file)
		require.Empty(t, loadErrs, "Check accepted what the rules manager refuses")
	})
}
