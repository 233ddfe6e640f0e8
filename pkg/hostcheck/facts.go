package hostcheck

// Facts: what the node's host offers — cgroup version and driver,
// capabilities, kernel filesystems — detected once, so every component is
// told the same answer.

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Facts are what kubling decides from the host.
type Facts struct {
	CgroupV2 bool
	// CgroupDriver is "systemd" when systemd is the init system on a
	// unified (v2) host, else "cgroupfs", the same rule K3s follows.
	CgroupDriver string
	// CapSysResource tells whether the process may raise limits such as a
	// negative oom_score_adj. Without it, containerd must be told
	// restrict_oom_score_adj or no pod sandbox can start.
	CapSysResource bool
	Overlay        bool
}

// Host is where the host's files are read from ("/" in production, a fake
// tree in tests).
type Host string

// Real is the host kubling runs on.
const Real Host = "/"

func (r Host) path(p string) string { return filepath.Join(string(r), p) }

// Detect reads the host's facts.
func (r Host) Detect() (Facts, error) {
	var f Facts
	if _, err := os.Stat(r.path("/sys/fs/cgroup/cgroup.controllers")); err == nil {
		f.CgroupV2 = true
	}
	f.CgroupDriver = "cgroupfs"
	if _, err := os.Stat(r.path("/run/systemd/system")); err == nil && f.CgroupV2 {
		f.CgroupDriver = "systemd"
	}
	capBnd, err := r.statusField("CapBnd")
	if err != nil {
		return f, err
	}
	caps, err := strconv.ParseUint(capBnd, 16, 64)
	if err != nil {
		return f, fmt.Errorf("parse CapBnd %q: %w", capBnd, err)
	}
	const capSysResource = 24
	f.CapSysResource = caps&(1<<capSysResource) != 0
	fs, err := os.ReadFile(r.path("/proc/filesystems"))
	if err != nil {
		return f, err
	}
	for _, line := range strings.Split(string(fs), "\n") {
		if strings.TrimSpace(strings.TrimPrefix(line, "nodev")) == "overlay" {
			f.Overlay = true
		}
	}
	return f, nil
}

func (r Host) statusField(name string) (string, error) {
	file, err := os.Open(r.path("/proc/self/status"))
	if err != nil {
		return "", err
	}
	defer file.Close()
	sc := bufio.NewScanner(file)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && k == name {
			return strings.TrimSpace(v), nil
		}
	}
	return "", fmt.Errorf("no %s in /proc/self/status", name)
}
