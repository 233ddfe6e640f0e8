package hostcheck

import (
	"fmt"
	"os/exec"
)

// Program is a host program a node's components run that kubling does not
// carry (iptables it does: pkg/agent/iptables), and what provides it.
type Program struct{ Name, Why, Package string }

// NodePrograms: the kubelet mounts and unmounts volumes (Secrets,
// ConfigMaps, projected tokens) through the host's mount and umount.
var NodePrograms = []Program{
	{"mount", "the kubelet mounts volumes with it", "util-linux (or BusyBox's mount)"},
	{"umount", "the kubelet unmounts volumes with it", "util-linux (or BusyBox's umount)"},
}

// ProgramsPresent refuses a host without one of NodePrograms on PATH.
func ProgramsPresent(lookPath func(string) (string, error)) error {
	if lookPath == nil {
		lookPath = exec.LookPath
	}
	for _, p := range NodePrograms {
		if _, err := lookPath(p.Name); err != nil {
			return fmt.Errorf("the host has no %s program (%s): install %s", p.Name, p.Why, p.Package)
		}
	}
	return nil
}
