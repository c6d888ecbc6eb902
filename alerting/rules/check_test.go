package rules

import (
	"bytes"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const goodRules = `groups:
  - name: node
    interval: 30s
    rules:
      - record: job:up:sum
        expr: sum by (job) (up)
        labels:
          team: infra
      - alert: InstanceDown
        expr: up == 0
        for: 5m
        keep_firing_for: 1m
        labels:
          severity: page
          instance_copy: "{{ $labels.instance }}"
        annotations:
          summary: "{{ $labels.instance }} of {{ $labels.job }} is down"
          value: "{{ $value | humanize }}"
  - name: other
    rules:
      - alert: Always
        expr: vector(1)
`

// errLine returns the line an error message places itself at: rulefmt's
// "file: line:col: …" or the YAML decoder's "line N:".
func errLine(t *testing.T, file string, err error) int {
	t.Helper()
	msg := err.Error()
	require.True(t, strings.HasPrefix(msg, file+": "), "error does not start with the file name %s: %s", file, msg)
	msg = strings.TrimPrefix(msg, file+": ")
	if m := regexp.MustCompile(`^(\d+):\d+: `).FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[1])
		return n
	}
	if m := regexp.MustCompile(`\bline (\d+):`).FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[1])
		return n
	}
	t.Fatalf("error has no line number: %s", err)
	return 0
}

func TestCheckGood(t *testing.T) {
	f := writeFile(t, t.TempDir(), "good.yml", goodRules)
	require.Empty(t, Check(f))
	empty := writeFile(t, t.TempDir(), "empty.yml", "")
	require.Empty(t, Check(f, empty))
}

func TestCheckErrorsNameFileAndLine(t *testing.T) {
	for _, tc := range []struct {
		name    string
		content string
		// lines of the errors, in order, and a part of each message
		lines []int
		msgs  []string
	}{
		{
			name:    "bad yaml",
			content: "groups:\n  - name: a\n    rules:\n      - alert: X\n        expr: up\n\tlabels: {}\n",
			// The YAML scanner places this at the line before the tab
			// (its context mark), as promtool shows it too.
			lines: []int{5},
			msgs:  []string{"yaml: line 5: found a tab character that violates indentation"},
		},
		{
			name:    "missing expr",
			content: "groups:\n  - name: a\n    rules:\n      - record: r\n        expr: up\n      - alert: X\n        for: 1m\n",
			lines:   []int{6},
			msgs:    []string{`group "a", rule 2, "X": field 'expr' must be set in rule`},
		},
		{
			name:    "neither record nor alert",
			content: "groups:\n  - name: a\n    rules:\n      - expr: up\n",
			lines:   []int{4},
			msgs:    []string{`group "a", rule 1, "": one of 'record' or 'alert' must be set`},
		},
		{
			name:    "empty group name",
			content: "groups:\n  - name: a\n    rules: []\n  - rules:\n      - record: r\n        expr: up\n",
			lines:   []int{4},
			msgs:    []string{"Groupname must not be empty"},
		},
		{
			name:    "unknown field",
			content: "groups:\n  - name: a\n    rules:\n      - alert: X\n        expr: up\n        severity: page\n",
			lines:   []int{6},
			msgs:    []string{"field severity not found"},
		},
		{
			name:    "bad expr",
			content: "groups:\n  - name: a\n    rules:\n      - record: r\n        expr: up\n      - alert: X\n        expr: sum(up\n",
			lines:   []int{7},
			msgs:    []string{`group "a", rule 2, "X": could not parse expression`},
		},
		{
			name: "bad template",
			content: "groups:\n  - name: a\n    rules:\n      - alert: X\n        expr: up == 0\n" +
				"        annotations:\n          ok: \"{{ $value }}\"\n          summary: \"{{ $labels.instance \"\n",
			lines: []int{8},
			msgs:  []string{`group "a", rule 1, "X": annotation "summary": template:`},
		},
		{
			name: "bad label template",
			content: "groups:\n  - name: a\n    rules:\n      - alert: X\n        expr: up == 0\n" +
				"        labels:\n          severity: \"{{ nosuchfunc }}\"\n",
			lines: []int{7},
			msgs:  []string{`label "severity"`},
		},
		{
			name:    "duplicate group",
			content: "groups:\n  - name: a\n    rules:\n      - record: r\n        expr: up\n  - name: a\n    rules:\n      - record: s\n        expr: up\n  - name: a\n    rules: []\n",
			lines:   []int{6, 10},
			msgs:    []string{`groupname: "a" is repeated in the same file`, `groupname: "a" is repeated in the same file`},
		},
		{
			name:    "unnamed groups",
			content: "groups:\n  - rules:\n      - for: 1m\n  - name: \"\"\n    rules: [{alert: \"\", expr: \"\"}]\n",
			lines:   []int{2, 3, 3, 4, 4, 5, 5},
			msgs: []string{
				"Groupname must not be empty",
				`group "", rule 1, "": one of 'record' or 'alert' must be set`,
				`group "", rule 1, "": field 'expr' must be set in rule`,
				"Groupname must not be empty",
				`groupname: "" is repeated in the same file`,
				`group "", rule 1, "": one of 'record' or 'alert' must be set`,
				`group "", rule 1, "": field 'expr' must be set in rule`,
			},
		},
		{
			name:    "record and alert",
			content: "groups:\n  - name: a\n    rules:\n      - record: r\n        alert: A\n        expr: up\n",
			lines:   []int{4},
			msgs:    []string{"only one of 'record' and 'alert' must be set"},
		},
		{
			name:    "annotations on a recording rule",
			content: "groups:\n  - name: a\n    rules:\n      - record: r\n        expr: up\n        annotations: {a: b}\n",
			lines:   []int{4},
			msgs:    []string{"invalid field 'annotations' in recording rule"},
		},
		{
			name:    "bad duration",
			content: "groups:\n  - name: a\n    rules:\n      - alert: A\n        expr: up\n        for: 5 minutes\n",
			lines:   []int{6},
			msgs:    []string{`unknown unit " minutes" in duration "5 minutes"`},
		},
		{
			name:    "bad label name",
			content: "groups:\n  - name: a\n    rules:\n      - alert: A\n        expr: up\n        labels:\n          __name__: x\n",
			lines:   []int{7},
			msgs:    []string{"invalid label name: __name__"},
		},
		{
			name:    "bad group label name",
			content: "groups:\n  - name: a\n    labels:\n      __name__: x\n    rules:\n      - alert: A\n        expr: up\n",
			lines:   []int{4},
			msgs:    []string{"invalid label name: __name__"},
		},
		{
			name: "several errors",
			content: "groups:\n  - name: a\n    rules:\n      - alert: X\n        expr: up ==\n" +
				"      - alert: Y\n        expr: up\n        annotations:\n          s: \"{{ \"\n",
			lines: []int{5, 9},
			msgs:  []string{"could not parse expression", `annotation "s"`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := writeFile(t, t.TempDir(), "rules.yml", tc.content)
			errs := Check(f)
			require.Len(t, errs, len(tc.lines), "errors: %v", errs)
			for i, err := range errs {
				require.Equal(t, tc.lines[i], errLine(t, f, err), "error %d: %s", i, err)
				require.Contains(t, err.Error(), tc.msgs[i])
			}
		})
	}
}

func TestCheckMissingFile(t *testing.T) {
	f := filepath.Join(t.TempDir(), "nope.yml")
	errs := Check(f)
	require.Len(t, errs, 1)
	require.True(t, strings.HasPrefix(errs[0].Error(), f+": "), errs[0].Error())
}

func TestRunCheck(t *testing.T) {
	dir := t.TempDir()
	good := writeFile(t, dir, "good.yml", goodRules)
	bad := writeFile(t, dir, "bad.yml", "groups:\n  - name: a\n    rules:\n      - alert: X\n        expr: sum(up\n")

	for _, tc := range []struct {
		name       string
		args       []string
		code       int
		stdout     string
		stderrHave []string
	}{
		{
			name:   "good",
			args:   []string{good},
			code:   CheckOK,
			stdout: "Checking " + good + "\n  SUCCESS: 3 rules found\n\n",
		},
		{
			name:       "good and bad",
			args:       []string{good, bad},
			code:       CheckFailed,
			stdout:     "Checking " + good + "\n  SUCCESS: 3 rules found\n\nChecking " + bad + "\n\n",
			stderrHave: []string{"  FAILED:\n" + bad + ": 5:15: group \"a\", rule 1, \"X\": could not parse expression"},
		},
		{
			name:       "missing",
			args:       []string{filepath.Join(dir, "missing.yml")},
			code:       CheckFailed,
			stdout:     "Checking " + filepath.Join(dir, "missing.yml") + "\n\n",
			stderrHave: []string{"  FAILED:\n", "no such file or directory"},
		},
		{
			name:       "no arguments",
			code:       CheckUsage,
			stderrHave: []string{"usage: pharos rules check FILE..."},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			require.Equal(t, tc.code, RunCheck(tc.args, &stdout, &stderr), "stderr: %s", stderr.String())
			require.Equal(t, tc.stdout, stdout.String())
			if len(tc.stderrHave) == 0 {
				require.Empty(t, stderr.String())
			}
			for _, s := range tc.stderrHave {
				require.Contains(t, stderr.String(), s)
			}
		})
	}
}
