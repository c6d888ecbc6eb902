// Command pharos runs the Pharos observability pipeline: with no flags, every
// role in one process with an embedded NATS server; with -target, one role
// of a cluster. `pharos rules check [-logql] FILE…` checks rule files (with
// -logql, log rule files) and exits; `pharos config check FILE…` validates
// configuration files without starting anything.
package main

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/pharos-obs/pharos/alerting/rules"
	"github.com/pharos-obs/pharos/internal/app"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) >= 2 && args[0] == "rules" && args[1] == "check" {
		// Like promtool check rules: every error with file and line;
		// RunCheck parses -logql itself.
		return rules.RunCheck(args[2:], os.Stdout, os.Stderr)
	}
	if len(args) >= 2 && args[0] == "config" && args[1] == "check" {
		return app.RunConfigCheck(args[2:], os.Stdout, os.Stderr)
	}
	var usage bytes.Buffer
	cfg, printVersion, err := app.Load(args, os.LookupEnv, &usage)
	if errors.Is(err, app.ErrHelp) {
		_, _ = os.Stdout.Write(usage.Bytes())
		return 0
	}
	if err != nil {
		_, _ = os.Stderr.Write(usage.Bytes())
		fmt.Fprintf(os.Stderr, "pharos: %v\n", err)
		return 2
	}
	if printVersion {
		fmt.Printf("pharos version %s\n", app.Version)
		return 0
	}
	logger := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	a, err := app.New(cfg, logger)
	if err != nil {
		logger.Error("invalid configuration", "err", err.Error())
		fmt.Fprintf(os.Stderr, "pharos: invalid configuration:\n%v\n", err)
		return 2
	}
	if err := a.Run(); err != nil {
		logger.Error("pharos failed", "err", err.Error())
		return 1
	}
	return 0
}
