package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pharos-obs/pharos/internal/testutil"
)

// Deadlines, generous for a loaded two-core machine.
const (
	startTimeout = 60 * time.Second // until /ready and "pharos started"
	stopTimeout  = 10 * time.Second // from SIGTERM to exit: the contract
	dataTimeout  = 60 * time.Second // until scraped data is queryable
	killTimeout  = 10 * time.Second // after SIGKILL at cleanup
	maxLogDump   = 256 << 10        // bytes of a process's log shown on failure
)

// httpClient keeps no idle connections, so no transport goroutine outlives
// a request (goleak checks at the end).
var httpClient = &http.Client{
	Timeout:   15 * time.Second,
	Transport: &http.Transport{DisableKeepAlives: true},
}

// pharosProc is one pharos process started by a test.
type pharosProc struct {
	t       *testing.T
	name    string
	cmd     *exec.Cmd
	logPath string
	// addr is the bound HTTP address (host:port) from the process's log.
	addr string

	exited  chan struct{} // closed once cmd.Wait has returned
	waitErr error         // cmd.Wait's result, valid after exited is closed
}

// startPharos starts pharos with args and the extra environment env
// ("NAME=value"), and waits until it has logged its HTTP address, /ready
// returns 200 and it has logged "pharos started". The process is killed at
// cleanup if the test has not stopped it; its log (stdout and stderr) is
// printed if the test failed.
func startPharos(t *testing.T, name string, args []string, env ...string) *pharosProc {
	t.Helper()
	p := launchPharos(t, name, withEphemeralPorts(args), env)
	p.waitStarted()
	return p
}

func launchPharos(t *testing.T, name string, args, env []string) *pharosProc {
	t.Helper()
	require.NotEmpty(t, pharosBin, "TestMain did not build pharos")
	logPath := filepath.Join(t.TempDir(), name+".log")
	f, err := os.Create(logPath)
	require.NoError(t, err)
	defer f.Close() // the child has its own descriptor

	cmd := exec.Command(pharosBin, args...)
	cmd.Env = append(cleanEnv(), env...)
	cmd.Stdout = f
	cmd.Stderr = f
	require.NoError(t, cmd.Start(), "start pharos %s", name)
	t.Logf("started pharos %s (pid %d): %s", name, cmd.Process.Pid, strings.Join(args, " "))

	p := &pharosProc{t: t, name: name, cmd: cmd, logPath: logPath, exited: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(p.cleanup)
	return p
}

// cleanEnv is the test's environment without PHAROS_* variables, so that a
// developer's settings cannot change what a test runs.
func cleanEnv() []string {
	return slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "PHAROS_")
	})
}

// ephemeralFlags are listener flags that default to fixed ports. Those the
// binary knows and args do not set are given port 0, so that tests running
// in parallel never collide.
var ephemeralFlags = []string{
	"http.listen-address",
	"nats.embedded.listen-address",
	"otlp.grpc.listen-address",
	"otlp.http.listen-address",
	"memberlist.bind-address",
}

// pharosHelp is the -help output of the binary under test.
var pharosHelp = sync.OnceValues(func() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, pharosBin, "-help").Output()
	return string(out), err
})

func withEphemeralPorts(args []string) []string {
	help, err := pharosHelp()
	if err != nil {
		return args // the test's own checks will show the problem
	}
	out := slices.Clone(args)
	for _, f := range ephemeralFlags {
		if !strings.Contains(help, "-"+f+" ") || setsFlag(args, f) {
			continue
		}
		out = append(out, "-"+f+"=127.0.0.1:0")
	}
	return out
}

func setsFlag(args []string, name string) bool {
	for _, a := range args {
		n, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if strings.HasPrefix(a, "-") && n == name {
			return true
		}
	}
	return false
}

// waitStarted polls the log for the HTTP address, then /ready, then the
// "pharos started" line, failing at once if the process exits.
func (p *pharosProc) waitStarted() {
	t := p.t
	t.Helper()
	start := time.Now()
	testutil.Poll(t, startTimeout, 100*time.Millisecond, func() (bool, string) {
		p.requireRunning()
		if p.addr == "" {
			ev, ok := p.findLog(func(ev logEvent) bool {
				return ev.Msg == "http server listening" && ev.Component == "http"
			})
			if !ok {
				return false, fmt.Sprintf("pharos %s has not logged \"http server listening\"", p.name)
			}
			require.NotEmpty(t, ev.Address, "\"http server listening\" without an address")
			p.addr = ev.Address
		}
		resp, err := httpClient.Get("http://" + p.addr + "/ready")
		if err != nil {
			return false, fmt.Sprintf("GET /ready of pharos %s: %v", p.name, err)
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return false, fmt.Sprintf("GET /ready of pharos %s: %s: %s", p.name, resp.Status, bytes.TrimSpace(body))
		}
		if _, ok := p.findLog(func(ev logEvent) bool { return ev.Msg == "pharos started" }); !ok {
			return false, fmt.Sprintf("pharos %s: /ready is 200 but \"pharos started\" is not logged", p.name)
		}
		return true, ""
	})
	t.Logf("pharos %s ready at %s after %s", p.name, p.addr, time.Since(start).Round(time.Millisecond))
}

// requireRunning fails the test if the process has exited.
func (p *pharosProc) requireRunning() {
	p.t.Helper()
	select {
	case <-p.exited:
		p.t.Fatalf("pharos %s exited unexpectedly: %v", p.name, p.waitErr)
	default:
	}
}

// Stop sends SIGTERM and requires exit code 0 within stopTimeout.
func (p *pharosProc) Stop() {
	t := p.t
	t.Helper()
	p.requireRunning()
	sent := time.Now()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM), "SIGTERM pharos %s", p.name)
	timer := time.NewTimer(stopTimeout)
	defer timer.Stop()
	select {
	case <-p.exited:
	case <-timer.C:
		t.Fatalf("pharos %s did not exit within %s of SIGTERM", p.name, stopTimeout)
	}
	require.NoError(t, p.waitErr, "pharos %s after SIGTERM: want exit code 0", p.name)
	require.Equal(t, 0, p.cmd.ProcessState.ExitCode())
	t.Logf("pharos %s exited 0, %s after SIGTERM", p.name, time.Since(sent).Round(time.Millisecond))
}

// cleanup kills the process if it still runs (only this PID, which the
// test started) and shows its log if the test failed, with its consumers'
// state (what a stalled partition looks like from the inside).
func (p *pharosProc) cleanup() {
	if p.t.Failed() && p.addr != "" {
		select {
		case <-p.exited:
		default:
			p.logStatus()
		}
	}
	select {
	case <-p.exited:
	default:
		p.t.Logf("pharos %s still running at cleanup: killing pid %d", p.name, p.cmd.Process.Pid)
		_ = p.cmd.Process.Kill()
		timer := time.NewTimer(killTimeout)
		defer timer.Stop()
		select {
		case <-p.exited:
		case <-timer.C:
			p.t.Errorf("pharos %s (pid %d) did not exit after SIGKILL", p.name, p.cmd.Process.Pid)
		}
	}
	if !p.t.Failed() {
		return
	}
	raw, err := os.ReadFile(p.logPath)
	if err != nil {
		p.t.Logf("read log of pharos %s: %v", p.name, err)
		return
	}
	if len(raw) > maxLogDump {
		raw = append([]byte("[…]"), raw[len(raw)-maxLogDump:]...)
	}
	p.t.Logf("log of pharos %s (%s):\n%s", p.name, p.logPath, raw)
}

// logStatus logs the process's own /cluster/status (consumers per signal
// and partition with lag and messages awaiting ack, streams), if it has one.
func (p *pharosProc) logStatus() {
	resp, err := httpClient.Get("http://" + p.addr + "/cluster/status?scope=local")
	if err != nil {
		p.t.Logf("status of pharos %s: %v", p.name, err)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode == http.StatusOK {
		p.t.Logf("status of pharos %s: %s", p.name, bytes.TrimSpace(body))
	}
	// And its own counters of what it received, published, consumed and
	// stored, where a stalled signal shows which step it stalled at.
	mresp, err := httpClient.Get("http://" + p.addr + "/metrics")
	if err != nil {
		return
	}
	defer mresp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(mresp.Body, 4<<20))
	var keep []string
	for _, line := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(line, "pharos_") && !strings.Contains(line, "_bucket{") &&
			(strings.Contains(line, "_total") || strings.Contains(line, "_state")) && !strings.HasSuffix(line, " 0") {
			keep = append(keep, line)
		}
	}
	if len(keep) > 0 {
		p.t.Logf("counters of pharos %s:\n%s", p.name, strings.Join(keep, "\n"))
	}
}

// logEvent holds the fields of a JSON log line the tests look at.
type logEvent struct {
	Level     string `json:"level"`
	Msg       string `json:"msg"`
	Component string `json:"component"`
	Address   string `json:"address"`
}

// findLog returns the first JSON log line of the process that match
// accepts. Lines that are not JSON objects are skipped.
func (p *pharosProc) findLog(match func(logEvent) bool) (logEvent, bool) {
	f, err := os.Open(p.logPath)
	require.NoError(p.t, err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 || line[0] != '{' {
			continue
		}
		var ev logEvent
		if json.Unmarshal(line, &ev) != nil {
			continue // the last line may still be being written
		}
		if match(ev) {
			return ev, true
		}
	}
	if err := sc.Err(); err != nil && !errors.Is(err, io.EOF) {
		require.NoError(p.t, err, "read log of pharos %s", p.name)
	}
	return logEvent{}, false
}

// Kill sends SIGKILL — a crash, no shutdown code runs — and waits for the
// process to be gone.
func (p *pharosProc) Kill() {
	t := p.t
	t.Helper()
	p.requireRunning()
	require.NoError(t, p.cmd.Process.Kill(), "SIGKILL pharos %s", p.name)
	timer := time.NewTimer(killTimeout)
	defer timer.Stop()
	select {
	case <-p.exited:
	case <-timer.C:
		t.Fatalf("pharos %s did not exit within %s of SIGKILL", p.name, killTimeout)
	}
	t.Logf("pharos %s killed (pid %d)", p.name, p.cmd.Process.Pid)
}

// adminArgs turns on the admin listener (POST /-/reload, pprof) on a free
// loopback port.
var adminArgs = []string{"-http.admin-listen-address=127.0.0.1:0"}

// reload POSTs /-/reload to the process's admin listener (started with
// adminArgs) and returns the status and body.
func (p *pharosProc) reload() (int, string) {
	t := p.t
	t.Helper()
	ev, ok := p.findLog(func(ev logEvent) bool { return ev.Msg == "admin listening" })
	require.True(t, ok, "pharos %s has no admin listener (start it with adminArgs)", p.name)
	resp, err := httpClient.Post("http://"+ev.Address+"/-/reload", "", nil)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
