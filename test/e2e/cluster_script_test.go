package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pharos-obs/pharos/internal/testutil"
)

// clusterScript drives deploy/local/cluster.sh with its state in a
// temporary directory and the binary TestMain built.
type clusterScript struct {
	t    *testing.T
	path string
	dir  string
	env  []string
	http map[string]string // member → HTTP address
	pids map[int]string    // every pid the script reported, → member
}

// clusterScriptTimeout bounds one run of the script; `up` waits at most
// 60 s for /ready.
const clusterScriptTimeout = 2 * time.Minute

// clusterMembers are the processes `cluster.sh up` starts.
var clusterMembers = []string{
	"nats-1", "nats-2", "nats-3", "aggregator-1", "aggregator-2", "aggregator-3", "query-1", "agent-1", "agent-2",
}

// clusterOffsets are port offsets to try: every port then lies between
// 24222 and 32423, below Linux's ephemeral range (32768+), so the other
// tests, which listen on port 0, never take one. A developer's own
// cluster or all-in-one (offset 0) is left alone.
var clusterOffsets = []int{20000, 20500, 21000, 21500, 22000, 22500, 23000}

func newClusterScript(t *testing.T) *clusterScript {
	t.Helper()
	for _, tool := range []string{"bash", "curl", "jq", "setsid"} {
		_, err := exec.LookPath(tool)
		require.NoError(t, err, "cluster.sh needs %s (apt-get install -y curl jq)", tool)
	}
	path, err := filepath.Abs(filepath.Join("..", "..", "deploy", "local", "cluster.sh"))
	require.NoError(t, err)
	s := &clusterScript{t: t, path: path, dir: t.TempDir(), pids: map[int]string{}}
	base := append(cleanEnv(),
		"PHAROS_CLUSTER_DIR="+s.dir,
		"PHAROS_BIN="+pharosBin,
		"PHAROS_CLUSTER_SCRAPE_INTERVAL=1s",
		"PHAROS_CLUSTER_EXTRA_ARGS="+strings.Join(clusterTiming, " "),
	)
	for _, off := range clusterOffsets {
		s.env = append(slices.Clone(base), fmt.Sprintf("PHAROS_CLUSTER_PORT_OFFSET=%d", off))
		ports, ok := s.freePorts()
		if ok {
			s.http = ports
			t.Logf("cluster.sh port offset %d (querier on %s)", off, ports["query-1"])
			break
		}
	}
	require.NotNil(t, s.http, "no port offset in %v has all its ports free", clusterOffsets)
	t.Cleanup(s.cleanup)
	return s
}

// freePorts asks the script for its ports and reports whether every one
// can be bound now; it returns each member's HTTP address.
func (s *clusterScript) freePorts() (map[string]string, bool) {
	out := s.run("ports")
	httpAddrs := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		require.Len(s.t, f, 3, "cluster.sh ports: line %q", sc.Text())
		addr := net.JoinHostPort("127.0.0.1", f[2])
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, false
		}
		require.NoError(s.t, ln.Close())
		if f[1] == "http" {
			httpAddrs[f[0]] = addr
		}
	}
	require.Len(s.t, httpAddrs, len(clusterMembers), "cluster.sh ports:\n%s", out)
	return httpAddrs, true
}

// run runs the script with args and requires it to succeed.
func (s *clusterScript) run(args ...string) string {
	s.t.Helper()
	out, err := s.exec(args...)
	require.NoError(s.t, err, "cluster.sh %s:\n%s", strings.Join(args, " "), out)
	return out
}

func (s *clusterScript) exec(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), clusterScriptTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.path, args...)
	cmd.Env = s.env
	cmd.Dir = s.dir
	start := time.Now()
	out, err := cmd.CombinedOutput()
	s.t.Logf("cluster.sh %s: %s, %v", strings.Join(args, " "), time.Since(start).Round(time.Millisecond), err)
	return string(out), err
}

// readPIDs records the pid of every running member from its pid file.
func (s *clusterScript) readPIDs() map[string]int {
	s.t.Helper()
	got := map[string]int{}
	for _, m := range clusterMembers {
		raw, err := os.ReadFile(filepath.Join(s.dir, "pids", m+".pid"))
		if os.IsNotExist(err) {
			continue
		}
		require.NoError(s.t, err)
		pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
		require.NoError(s.t, err, "pid file of %s", m)
		got[m] = pid
		s.pids[pid] = m
	}
	return got
}

// alive reports whether pid runs and is member m of this cluster: its
// command line names the member's data directory. A zombie has exited.
func (s *clusterScript) alive(pid int, m string) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	if i := bytes.LastIndexByte(stat, ')'); i < 0 || i+2 >= len(stat) || stat[i+2] == 'Z' || stat[i+2] == 'X' {
		return false
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	return slices.Contains(strings.Split(string(cmdline), "\x00"), filepath.Join(s.dir, "data", m))
}

// cleanup stops what the test left running: `down`, then SIGKILL by pid
// for anything of this cluster still alive; shows the logs on failure.
func (s *clusterScript) cleanup() {
	if _, err := os.Stat(filepath.Join(s.dir, "cluster.env")); err == nil {
		if out, err := s.exec("down"); err != nil {
			s.t.Errorf("cluster.sh down at cleanup: %v\n%s", err, out)
		}
	}
	s.readPIDs()
	for pid, m := range s.pids {
		if s.alive(pid, m) {
			s.t.Errorf("%s (pid %d) still running at cleanup: SIGKILL", m, pid)
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	if !s.t.Failed() {
		return
	}
	for _, m := range clusterMembers {
		raw, err := os.ReadFile(filepath.Join(s.dir, "logs", m+".log"))
		if err != nil {
			continue
		}
		if len(raw) > maxLogDump/4 {
			raw = append([]byte("[…]"), raw[len(raw)-maxLogDump/4:]...)
		}
		s.t.Logf("log of %s:\n%s", m, raw)
	}
}

// clusterStatusDoc is GET /cluster/status.
type clusterStatusDoc struct {
	Instance string `json:"instance"`
	Members  []struct {
		ID      string `json:"id"`
		Addr    string `json:"addr"`
		State   string `json:"state"`
		Healthy bool   `json:"healthy"`
	} `json:"members"`
	Owners    map[string][]string `json:"owners"`
	Consumers []struct {
		Signal    string `json:"signal"`
		Partition int    `json:"partition"`
		Replica   int    `json:"replica"`
		Lag       uint64 `json:"lag"`
		Error     string `json:"error"`
	} `json:"consumers"`
	Partitions int `json:"partitions"`
	RF         int `json:"replication_factor"`
}

func getClusterStatus(addr string) (clusterStatusDoc, error) {
	var st clusterStatusDoc
	resp, err := httpClient.Get("http://" + addr + "/cluster/status")
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("GET %s/cluster/status: %s", addr, resp.Status)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// consumedBy reads from each named aggregator's /cluster/status which
// partitions it consumes (RF 1: replica 0 only), and returns how many each
// consumes and the consumer of each partition. The message is not empty
// when that is not a consistent picture yet: a partition consumed twice,
// or an aggregator whose ring view still has one of gone as an owner.
func (s *clusterScript) consumedBy(names []string, gone ...string) (map[string]int, map[int]string, string) {
	perAgg := map[string]int{}
	owner := map[int]string{}
	for _, n := range names {
		st, err := getClusterStatus(s.http[n])
		if err != nil {
			return nil, nil, err.Error()
		}
		for p, owners := range st.Owners {
			for _, g := range gone {
				if slices.Contains(owners, g) {
					return nil, nil, fmt.Sprintf("%s still sees %s as an owner of partition %s", n, g, p)
				}
			}
		}
		for _, c := range st.Consumers {
			if c.Signal != "metrics" {
				continue // each signal has its consumer per partition; one tells the owner
			}
			if prev, dup := owner[c.Partition]; dup {
				return nil, nil, fmt.Sprintf("partition %d consumed by %s and %s", c.Partition, prev, n)
			}
			owner[c.Partition] = n
			perAgg[n]++
		}
	}
	return perAgg, owner, ""
}

// TestClusterScript runs deploy/local/cluster.sh as a developer would: up
// (nine processes, ready), status, a crashed aggregator whose partitions
// move to the other two within the heartbeat timeout, the aggregator back
// (balanced again), and down, after which nothing it started runs.
func TestClusterScript(t *testing.T) {
	t.Parallel()
	const partitions = 16
	s := newClusterScript(t)

	t.Log(s.run("up"))
	pids := s.readPIDs()
	require.Len(t, pids, len(clusterMembers), "pid files after up")
	for _, m := range clusterMembers {
		require.True(t, s.alive(pids[m], m), "%s (pid %d) runs", m, pids[m])
		// The script saw each member ready; a NATS node may still turn
		// unready for a moment while JetStream elects the leaders of the
		// streams and consumers the others create (three signals' worth).
		testutil.Poll(t, 30*time.Second, 100*time.Millisecond, func() (bool, string) {
			resp, err := httpClient.Get("http://" + s.http[m] + "/ready")
			if err != nil {
				return false, fmt.Sprintf("%s /ready: %v", m, err)
			}
			_ = resp.Body.Close()
			return resp.StatusCode == http.StatusOK, fmt.Sprintf("%s /ready: %s", m, resp.Status)
		})
	}

	// All three started at once: the ring settles within a few gossip rounds.
	var status string
	testutil.Poll(t, 30*time.Second, 250*time.Millisecond, func() (bool, string) {
		status = s.run("status")
		for _, want := range []string{"9 of 9 ready", "ring: 3 members, 3 healthy",
			"owners: 16/16 partitions fully owned", "consumers: 16 partition-replicas consumed (want 16)"} {
			if !strings.Contains(status, want) {
				return false, fmt.Sprintf("cluster.sh status lacks %q:\n%s", want, status)
			}
		}
		return true, ""
	})
	t.Logf("cluster.sh status:\n%s", status)
	st, err := getClusterStatus(s.http["query-1"])
	require.NoError(t, err)
	require.Len(t, st.Members, 3)
	require.Len(t, st.Owners, partitions)
	for _, m := range st.Members {
		require.True(t, m.Healthy, "member %+v", m)
		require.Equal(t, s.http[m.ID], m.Addr, "member %s advertises its HTTP address", m.ID)
	}

	// Data flows agent → NATS cluster → aggregators → querier: agent-1
	// scrapes the aggregators every second.
	testutil.Poll(t, dataTimeout, 500*time.Millisecond, func() (bool, string) {
		var v struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		}
		err := getAPI(s.http["query-1"], "/api/v1/query", url.Values{"query": {`count(up{job="pharos-aggregator"} == 1)`}}, &v)
		if err != nil {
			return false, err.Error()
		}
		if len(v.Result) != 1 || v.Result[0].Value[1] != "3" {
			return false, fmt.Sprintf("count(up{job=\"pharos-aggregator\"} == 1) through query-1: %+v", v.Result)
		}
		return true, ""
	})

	// The querier's dashboard shows the cluster: its members, the owners of
	// every partition, and every aggregator's consumers (fanned out).
	b := newBrowser(t)
	b.open("http://" + s.http["query-1"] + "/ui/cluster")
	require.Equal(t, 3, b.count("tr.member-row"))
	require.Equal(t, partitions, b.count("tr.partition-row"))
	b.pollCount("tr.consumer-row", func(n int) bool { return n == 3*partitions })
	require.Equal(t, 3, b.count("tr.stream-row"), "one JetStream stream per signal")
	b.screenshot("cluster")
	b.requireClean("cluster page of the querier")

	// A crash: the other two own every partition once aggregator-2's last
	// heartbeat is older than the timeout (3 s), plus gossip and a poll.
	s.run("kill", "aggregator-2")
	killed := time.Now()
	require.False(t, s.alive(pids["aggregator-2"], "aggregator-2"), "aggregator-2 after kill")
	survivors := []string{"aggregator-1", "aggregator-3"}
	testutil.Poll(t, 3*time.Second+10*time.Second, 100*time.Millisecond, func() (bool, string) {
		_, owner, msg := s.consumedBy(survivors, "aggregator-2")
		if msg != "" {
			return false, msg
		}
		return len(owner) == partitions, fmt.Sprintf("partitions consumed by the survivors: %v", owner)
	})
	t.Logf("aggregator-1 and aggregator-3 own all %d partitions %s after the kill (heartbeat timeout 3s)",
		partitions, time.Since(killed).Round(time.Millisecond))
	status = s.run("status")
	require.Contains(t, status, "ring: 3 members, 2 healthy", status)
	require.Regexp(t, `aggregator-2\s+-\s+down`, status)

	// Back with its data dir: balanced again, each 5 or 6 of the 16.
	s.run("start", "aggregator-2")
	restarted := s.readPIDs()["aggregator-2"]
	require.NotEqual(t, pids["aggregator-2"], restarted)
	all := []string{"aggregator-1", "aggregator-2", "aggregator-3"}
	testutil.Poll(t, 30*time.Second, 100*time.Millisecond, func() (bool, string) {
		per, owner, msg := s.consumedBy(all)
		if msg != "" {
			return false, msg
		}
		for _, n := range all {
			if per[n] < partitions/3 || per[n] > partitions/3+1 {
				return false, fmt.Sprintf("consumers per aggregator: %v", per)
			}
		}
		return len(owner) == partitions, fmt.Sprintf("partitions consumed: %v", owner)
	})
	status = s.run("status")
	require.Contains(t, status, "ring: 3 members, 3 healthy", status)

	// down: SIGTERM, every member exits cleanly, nothing is left.
	s.run("down")
	for pid, m := range s.pids {
		require.False(t, s.alive(pid, m), "%s (pid %d) after down", m, pid)
	}
	left, err := filepath.Glob(filepath.Join(s.dir, "pids", "*.pid"))
	require.NoError(t, err)
	require.Empty(t, left, "pid files after down")
	for _, m := range clusterMembers {
		requireStoppedCleanly(t, filepath.Join(s.dir, "logs", m+".log"))
	}
	require.Contains(t, s.run("status"), "0 of 9 ready")
}

// requireStoppedCleanly requires the log at path to have "pharos stopped"
// after its last "pharos started": the last run of the member shut down
// through SIGTERM, not SIGKILL. (Lines after it are allowed: memberlist may
// still log from its transport while the process exits.)
func requireStoppedCleanly(t *testing.T, path string) {
	t.Helper()
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	started, stopped := -1, -1
	for i, line := range bytes.Split(raw, []byte("\n")) {
		var ev logEvent
		if json.Unmarshal(line, &ev) != nil {
			continue
		}
		switch ev.Msg {
		case "pharos started":
			started = i
		case "pharos stopped":
			stopped = i
		}
	}
	require.GreaterOrEqual(t, started, 0, "%s: no \"pharos started\"", filepath.Base(path))
	require.Greater(t, stopped, started, "%s: no \"pharos stopped\" after the last \"pharos started\"", filepath.Base(path))
}
