package config

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/kubling/kubling/pkg/componentargs"
	"github.com/kubling/kubling/pkg/datadir"
)

// Node is the configuration of a node: what `kubling server` (for its own
// node) and `kubling agent` both take, declared once. Server and Agent
// embed it, so its fields read as theirs (c.NodeName).
type Node struct {
	DataDir string
	Debug   bool

	NodeName string
	NodeIP   string
	// NodeExternalIPs are the node's public addresses (--node-external-ip,
	// at most one per IP family): its ExternalIPs, used by ServiceLB and by
	// flannel as the node's public address.
	NodeExternalIPs []string
	NodeLabels      []string
	NodeTaints      []string
	KubeletArgs     []string
	KubeProxyArgs   []string
	DefaultRuntime  string
	// PrivateRegistry is the registries.yaml file.
	PrivateRegistry string
	// ResolvConf is the resolv.conf pods with dnsPolicy Default (CoreDNS
	// among them) get; empty: the host's, when usable.
	ResolvConf string
	// PreferBundledBin runs the payload's iptables even where the host
	// has one (pkg/agent/iptables).
	PreferBundledBin bool
}

// Debugging says whether upstream components' info lines are logged (--debug).
func (n *Node) Debugging() bool { return n.Debug }

// Layout places the node's files under its data dir.
func (n *Node) Layout() datadir.Layout { return datadir.New(n.DataDir) }

// Normalize makes the data dir absolute (default /var/lib/kubling) and the
// node name the lowercase hostname unless given.
func (n *Node) Normalize() error {
	if n.DataDir == "" {
		n.DataDir = DefaultDataDir
	}
	abs, err := filepath.Abs(n.DataDir)
	if err != nil {
		return fmt.Errorf("--data-dir %q: %w", n.DataDir, err)
	}
	n.DataDir = abs
	if n.ResolvConf != "" {
		if n.ResolvConf, err = filepath.Abs(n.ResolvConf); err != nil {
			return fmt.Errorf("--resolv-conf %q: %w", n.ResolvConf, err)
		}
	}
	if n.NodeName == "" {
		if h, err := os.Hostname(); err == nil {
			n.NodeName = h
		}
	}
	n.NodeName = strings.ToLower(n.NodeName)
	return nil
}

// Validate checks the node's settings on their own; whether the host has
// the runtime, the registries file or the node IP is checked when the node
// is prepared (agent.NewNode).
func (n *Node) Validate() error { return n.validate(true) }

// validate checks every setting; the node name only when nameRequired (a
// server without a node has no use for it).
func (n *Node) validate(nameRequired bool) error {
	if nameRequired && !ValidNodeName(n.NodeName) {
		return fmt.Errorf("--node-name %q: want a lowercase DNS name (letters, digits, '-', single dots between labels; at most %d characters)", n.NodeName, MaxNodeNameLength)
	}
	if n.NodeIP != "" && net.ParseIP(n.NodeIP) == nil {
		return fmt.Errorf("--node-ip %q: not an IP address", n.NodeIP)
	}
	if err := validExternalIPs(n.NodeExternalIPs); err != nil {
		return err
	}
	if err := validRuntime(n.DefaultRuntime); err != nil {
		return err
	}
	for _, l := range n.NodeLabels {
		if k, _, ok := strings.Cut(l, "="); !ok || k == "" {
			return fmt.Errorf("--node-label %q: want key=value", l)
		}
	}
	return checkOverrides(map[string][]string{"--kubelet-arg": n.KubeletArgs, "--kube-proxy-arg": n.KubeProxyArgs})
}

// validExternalIPs checks --node-external-ip: addresses a node can be
// reached at, at most one per family.
func validExternalIPs(ips []string) error {
	families := map[bool]string{}
	for _, s := range ips {
		ip := net.ParseIP(s)
		if ip == nil {
			return fmt.Errorf("--node-external-ip %q: not an IP address", s)
		}
		if ip.IsUnspecified() || ip.IsLoopback() || ip.IsMulticast() || ip.IsLinkLocalUnicast() {
			return fmt.Errorf("--node-external-ip %q: not an address other machines can reach the node at", s)
		}
		v4 := ip.To4() != nil
		if other, ok := families[v4]; ok {
			return fmt.Errorf("--node-external-ip %q: one address per IP family (already %s)", s, other)
		}
		families[v4] = s
	}
	return nil
}

// ExternalIPv4 is the node's IPv4 --node-external-ip, or "".
func (n *Node) ExternalIPv4() string {
	for _, s := range n.NodeExternalIPs {
		if ip := net.ParseIP(s); ip != nil && ip.To4() != nil {
			return ip.String()
		}
	}
	return ""
}

// checkOverrides checks each component-argument flag's values are key=value.
func checkOverrides(flags map[string][]string) error {
	for flag, list := range flags {
		for _, o := range list {
			if _, _, err := componentargs.ParseOverride(o); err != nil {
				return fmt.Errorf("%s: %w", flag, err)
			}
		}
	}
	return nil
}

// validRuntime checks --default-runtime's shape; whether the node has that
// runtime is known only when the node starts.
func validRuntime(name string) error {
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return fmt.Errorf("--default-runtime %q: want a runtime name such as runc or nvidia", name)
		}
	}
	return nil
}

// MaxNodeNameLength is the longest node name kubling accepts: the server
// keeps each node's password hash in a Secret named
// "<node>.node-password.kubling", which must fit Kubernetes' 253 characters.
const MaxNodeNameLength = 253 - len(".node-password.kubling")

// ValidNodeName says whether n is a name the apiserver accepts for a Node
// (a lowercase RFC 1123 subdomain: labels of letters, digits and '-',
// joined by single dots) and short enough for its password Secret.
func ValidNodeName(n string) bool {
	return len(n) <= MaxNodeNameLength && len(validation.IsDNS1123Subdomain(n)) == 0
}
