package agent

import (
	"net"
	"os"
	"path/filepath"
	"strings"

	"k8s.io/klog/v2"

	"github.com/kubling/kubling/pkg/datadir"
	"github.com/kubling/kubling/pkg/fileutil"
)

// resolvConf picks a resolv.conf for pods with dnsPolicy Default (CoreDNS
// among them): --resolv-conf (checked by NewNode), else the host's, unless
// it only names loopback resolvers (such as systemd-resolved's 127.0.0.53),
// which pods cannot reach. Failing those, a public resolver, said loudly:
// an airgapped site cannot reach it.
func resolvConf(l datadir.Layout, given string, log klog.Logger) (string, error) {
	if given != "" {
		return given, nil
	}
	candidates := []string{"/etc/resolv.conf", "/run/systemd/resolve/resolv.conf"}
	for _, candidate := range candidates {
		if usableResolvConf(candidate) {
			return candidate, nil
		}
	}
	path := l.FallbackResolvConf()
	log.Info("WARNING: no usable resolv.conf for pods ("+strings.Join(candidates, ", ")+" are missing or name only loopback resolvers); pods and CoreDNS get nameserver 8.8.8.8. Give a resolv.conf with --resolv-conf", "written", path)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", err
	}
	return path, fileutil.WriteAtomic(path, []byte("nameserver 8.8.8.8\n"), 0o644)
}

func usableResolvConf(path string) bool {
	data, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	found := false
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "nameserver" {
			ip := net.ParseIP(f[1])
			if ip == nil || ip.IsLoopback() {
				return false
			}
			found = true
		}
	}
	return found
}
