package hostcheck

import (
	"strings"
	"testing"

	"github.com/kubling/kubling/internal/fakefs"
)

func fakeRoot(t *testing.T, files map[string]string) Host { return Host(fakefs.Tree(t, files)) }

const fsList = "nodev\tsysfs\nnodev\ttmpfs\n\text4\nnodev\toverlay\n"

func TestCgroupV1WithoutSysResource(t *testing.T) {
	// CapBnd of a container host: everything but CAP_SYS_RESOURCE (bit 24).
	r := fakeRoot(t, map[string]string{
		"/proc/self/status":                   "Name:\tkubling\nCapBnd:\t000001fffeffffff\n",
		"/proc/filesystems":                   fsList,
		"/sys/fs/cgroup/memory/tasks":         "",
		"/sys/fs/cgroup/unified/cgroup.procs": "",
	})
	f, err := r.Detect()
	if err != nil {
		t.Fatal(err)
	}
	if f.CgroupV2 || f.CgroupDriver != "cgroupfs" || f.CapSysResource || !f.Overlay {
		t.Fatalf("%+v", f)
	}
}

func TestCgroupV2WithSystemd(t *testing.T) {
	r := fakeRoot(t, map[string]string{
		"/proc/self/status":                 "CapBnd:\t000001ffffffffff\n",
		"/proc/filesystems":                 "nodev\tsysfs\n",
		"/sys/fs/cgroup/cgroup.controllers": "cpu memory pids",
		"/run/systemd/system/.keep":         "",
	})
	f, err := r.Detect()
	if err != nil {
		t.Fatal(err)
	}
	if !f.CgroupV2 || f.CgroupDriver != "systemd" || !f.CapSysResource || f.Overlay {
		t.Fatalf("%+v", f)
	}
}

func TestDetectNFS(t *testing.T) {
	none := fakeRoot(t, map[string]string{"proc/filesystems": "nodev\tsysfs\n\text4\nnodev\toverlay\n", "proc/sys/kernel/osrelease": "6.18.0\n"})
	if n := none.DetectNFS(); n.Kernel || n.MountHelper != "" || !strings.Contains(n.Problem(), "no NFS client") || !strings.Contains(n.Problem(), "mount.nfs is missing") {
		t.Fatalf("%+v: %s", n, n.Problem())
	}
	loaded := fakeRoot(t, map[string]string{"proc/filesystems": "nodev\tnfs\nnodev\tnfs4\n", "sbin/mount.nfs": "#!"})
	if n := loaded.DetectNFS(); !n.Kernel || n.MountHelper != "/sbin/mount.nfs" || n.Problem() != "" {
		t.Fatalf("%+v: %s", n, n.Problem())
	}
	module := fakeRoot(t, map[string]string{"proc/filesystems": "\text4\n", "proc/sys/kernel/osrelease": "6.1.0-13-amd64\n", "lib/modules/6.1.0-13-amd64/kernel/fs/nfs/nfs.ko.xz": ""})
	if n := module.DetectNFS(); !n.Kernel || !strings.Contains(n.Problem(), "in-tree nfs volumes cannot mount") {
		t.Fatalf("%+v: %s", n, n.Problem())
	}
}
