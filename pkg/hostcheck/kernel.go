package hostcheck

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// brNetfilterSysctl exists only when the kernel has bridge netfilter.
const brNetfilterSysctl = "/proc/sys/net/bridge/bridge-nf-call-iptables"

// ErrNoBrNetfilter is the one line for a kernel without bridge netfilter,
// which pod traffic through Services needs.
var ErrNoBrNetfilter = errors.New("the kernel lacks br_netfilter (/proc/sys/net/bridge is missing): load it with `modprobe br_netfilter`")

// BrNetfilter refuses a kernel without bridge netfilter.
func (r Host) BrNetfilter() error {
	if _, err := os.Stat(r.path(brNetfilterSysctl)); err != nil {
		return ErrNoBrNetfilter
	}
	return nil
}

// nodeSysctls are what the kubeadm guides set by hand for a node.
var nodeSysctls = []struct{ key, value string }{
	{"net/ipv4/ip_forward", "1"},
	{"net/bridge/bridge-nf-call-iptables", "1"},
	{"net/bridge/bridge-nf-call-ip6tables", "1"},
}

// SetNodeSysctls turns on IPv4 forwarding and bridge netfilter; where it
// cannot, one error names the missing piece.
func (r Host) SetNodeSysctls() error {
	if err := r.BrNetfilter(); err != nil {
		return err
	}
	for _, s := range nodeSysctls {
		path := r.path("/proc/sys/" + s.key)
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) && strings.HasPrefix(s.key, "net/bridge/") {
			return ErrNoBrNetfilter
		}
		if cur, err := os.ReadFile(path); err == nil && strings.TrimSpace(string(cur)) == s.value {
			continue
		}
		if err := os.WriteFile(path, []byte(s.value), 0o644); err != nil {
			return fmt.Errorf("cannot set sysctl %s=%s: %w", strings.ReplaceAll(s.key, "/", "."), s.value, err)
		}
	}
	return nil
}
