package memlimit

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// noLimit is what cgroup v1 reports for "unlimited" (rounded to the page
// size); anything at or above it means no limit.
const noLimit = 1 << 62

// cgroupMemoryLimit reads the memory limit of the process's cgroup, v2
// (memory.max) or v1 (memory.limit_in_bytes), looking at the process's own
// cgroup path and at the mount's root (which is the container's cgroup
// when the path is not namespaced).
func cgroupMemoryLimit() (int64, bool) {
	self, _ := os.ReadFile("/proc/self/cgroup")
	return readCgroupLimit("/sys/fs/cgroup", self)
}

// readCgroupLimit is cgroupMemoryLimit over a cgroup mount at root and the
// contents of /proc/self/cgroup.
func readCgroupLimit(root string, selfCgroup []byte) (int64, bool) {
	var candidates []string
	sc := bufio.NewScanner(bytes.NewReader(selfCgroup))
	for sc.Scan() {
		// hierarchy-ID:controller-list:cgroup-path
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		switch {
		case parts[0] == "0" && parts[1] == "":
			candidates = append(candidates, filepath.Join(root, parts[2], "memory.max"))
		case hasController(parts[1], "memory"):
			candidates = append(candidates, filepath.Join(root, "memory", parts[2], "memory.limit_in_bytes"))
		}
	}
	candidates = append(candidates, filepath.Join(root, "memory.max"), filepath.Join(root, "memory", "memory.limit_in_bytes"))
	for _, p := range candidates {
		raw, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		s := strings.TrimSpace(string(raw))
		if s == "max" {
			return 0, false
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n <= 0 || n >= noLimit {
			return 0, false
		}
		return n, true
	}
	return 0, false
}

func hasController(list, name string) bool {
	for c := range strings.SplitSeq(list, ",") {
		if c == name {
			return true
		}
	}
	return false
}
