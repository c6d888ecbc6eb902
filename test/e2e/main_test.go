package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// buildTimeout allows for a cold build cache: CI builds every dependency of
// the binary (Prometheus, NATS server, dskit) from scratch.
const buildTimeout = 10 * time.Minute

// pharosBin is the binary under test, built once by TestMain.
var pharosBin string

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "pharos-e2e-bin-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)

	start := time.Now()
	bin, err := buildPharos(dir)
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "e2e: built %s in %s\n", bin, time.Since(start).Round(time.Millisecond))
	pharosBin = bin

	code := m.Run()
	if code == 0 {
		// Every process and server a test starts must be stopped by it; the
		// helpers' goroutines (process waiters, HTTP servers) prove it here.
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: leaked goroutines: %v\n", err)
			return 1
		}
	}
	return code
}

// buildPharos builds ./cmd/pharos of the module this package belongs to into
// dir and returns the binary's path.
func buildPharos(dir string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("go env GOMOD: not inside a module")
	}
	bin := filepath.Join(dir, "pharos")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/pharos")
	cmd.Dir = filepath.Dir(gomod)
	if out, err := cmd.CombinedOutput(); err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (timed out after %s)", err, buildTimeout)
		}
		return "", fmt.Errorf("go build ./cmd/pharos in %s: %w\n%s", cmd.Dir, err, out)
	}
	return bin, nil
}
