package hostcheck

import (
	"os"
	"path/filepath"
	"strings"
)

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
func (r Host) DetectNFS() NFS {
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
