package app

import (
	"fmt"
	"io"
	"path/filepath"

	"github.com/pharos-obs/pharos/alerting/rules"
)

// RunConfigCheck implements `pharos config check FILE…`: each file is read
// as Pharos reads its -config.file (unknown fields are errors), validated
// with every problem named by field path, and the rule files it points to
// are checked as `pharos rules check` does. Nothing is started, nothing
// listens. Environment variables are ignored, so that the result is the
// file's own. It returns the exit code: 0 when every file is valid, 1 when
// one is not, 2 on a usage error.
func RunConfigCheck(files []string, stdout, stderr io.Writer) int {
	if len(files) == 0 {
		fmt.Fprintln(stderr, "usage: pharos config check FILE…")
		return 2
	}
	noEnv := func(string) (string, bool) { return "", false }
	code := 0
	for _, file := range files {
		cfg, _, err := Load([]string{"-config.file=" + file}, noEnv, nil)
		if err == nil {
			err = cfg.Validate()
		}
		if err != nil {
			fmt.Fprintf(stderr, "%s: invalid:\n%v\n", file, err)
			code = 1
			continue
		}
		var ruleErrs []error
		for _, set := range []struct {
			globs []string
			check func(...string) []error
		}{{cfg.Rules.Files, rules.Check}, {cfg.Rules.LogFiles, rules.CheckLogQL}} {
			for _, g := range set.globs {
				matches, err := filepath.Glob(g)
				if err != nil {
					ruleErrs = append(ruleErrs, fmt.Errorf("rules: %q: %w", g, err))
					continue
				}
				ruleErrs = append(ruleErrs, set.check(matches...)...)
			}
		}
		if cfg.Rules.TenantsDir != "" {
			ruleErrs = append(ruleErrs, rules.CheckTenantsDir(cfg.Rules.TenantsDir)...)
		}
		if len(ruleErrs) > 0 {
			fmt.Fprintf(stderr, "%s: rule files invalid:\n", file)
			for _, err := range ruleErrs {
				fmt.Fprintf(stderr, "  %v\n", err)
			}
			code = 1
			continue
		}
		fmt.Fprintf(stdout, "%s: valid\n", file)
	}
	return code
}
