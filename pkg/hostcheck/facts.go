// Package host detects what the node's host offers — cgroup version and
// driver, capabilities, kernel filesystems — once, so every component is told
// the same answer. Paths are parameters so tests can use fake files.
package host

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

// Root is where the host's files are read from ("/" in production).
type Root string

func (r Root) path(p string) string { return filepath.Join(string(r), p) }

// Detect reads the host's facts.
func (r Root) Detect() (Facts, error) {
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

func (r Root) statusField(name string) (string, error) {
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

// NFS describes what this host offers for NFS volumes: kernel support (the
// NFS CSI driver mounts from its own container, so the kernel is what it
// needs) and a mount helper (needed by in-tree `nfs:` volumes, which the
// kubelet mounts on the host).
type NFS struct {
	Kernel      bool
	MountHelper string // path, or "" when none
}

// Problem is one line saying what is missing, or "" when nothing is.
func (n NFS) Problem() string {
	switch {
	case !n.Kernel && n.MountHelper == "":
		return "the kernel has no NFS client (nfs/nfs4 are not in /proc/filesystems and no nfs module is installed) and mount.nfs is missing (install nfs-common or nfs-utils): NFS volumes cannot mount on this node"
	case !n.Kernel:
		return "the kernel has no NFS client (nfs/nfs4 are not in /proc/filesystems and no nfs module is installed): NFS volumes cannot mount on this node"
	case n.MountHelper == "":
		return "mount.nfs is missing (install nfs-common or nfs-utils): in-tree nfs volumes cannot mount on this node; nfs-csi volumes can"
	}
	return ""
}

// DetectNFS looks for NFS support: nfs or nfs4 in /proc/filesystems, or an
// nfs module for the running kernel (loaded on first mount), and mount.nfs
// in the usual places.
func (r Root) DetectNFS() NFS {
	var n NFS
	if data, err := os.ReadFile(r.path("/proc/filesystems")); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if f := strings.Fields(line); len(f) > 0 && (f[len(f)-1] == "nfs" || f[len(f)-1] == "nfs4") {
				n.Kernel = true
			}
		}
	}
	if release, err := os.ReadFile(r.path("/proc/sys/kernel/osrelease")); err == nil && !n.Kernel {
		mods, _ := filepath.Glob(r.path(filepath.Join("/lib/modules", strings.TrimSpace(string(release)), "kernel/fs/nfs/nfs.ko*")))
		n.Kernel = len(mods) > 0
	}
	for _, dir := range []string{"/sbin", "/usr/sbin", "/bin", "/usr/bin"} {
		if info, err := os.Stat(r.path(filepath.Join(dir, "mount.nfs"))); err == nil && !info.IsDir() {
			n.MountHelper = filepath.Join(dir, "mount.nfs")
			break
		}
	}
	return n
}
