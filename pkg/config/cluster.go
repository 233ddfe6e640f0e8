package config

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"

	utilnet "k8s.io/apimachinery/pkg/util/net"

	"github.com/kubling/kubling/pkg/join"
	"github.com/kubling/kubling/pkg/token"
)

// Cluster is what every server and node of a cluster must agree on, parsed
// once (by Server.Validate) and passed down as values.
type Cluster struct {
	ClusterCIDR   netip.Prefix
	ServiceCIDR   netip.Prefix
	ClusterDNS    netip.Addr
	ClusterDomain string
	// CNI is the pod network (CNIFlannel or CNICalico); FlannelBackend is
	// flannel's backend, empty with Calico.
	CNI            string
	FlannelBackend string
	// DisableNetworkPolicy: no node enforces NetworkPolicy.
	DisableNetworkPolicy bool
	// NodePortRange is the apiserver's service-node-port-range.
	NodePortRange utilnet.PortRange
}

// DefaultNodePortRange is the apiserver's service-node-port-range unless a
// --kube-apiserver-arg says otherwise.
const DefaultNodePortRange = "30000-32767"

// parseNodePortRange reads a service-node-port-range; empty is the default.
func parseNodePortRange(s string) (utilnet.PortRange, error) {
	if s == "" {
		s = DefaultNodePortRange
	}
	pr, err := utilnet.ParsePortRange(s)
	if err != nil {
		return utilnet.PortRange{}, fmt.Errorf("service-node-port-range %q: %w", s, err)
	}
	return *pr, nil
}

// ParseCluster parses the settings as they travel between servers and to
// nodes (join.Cluster, text).
func ParseCluster(c join.Cluster) (Cluster, error) {
	cluster, err := ParseCIDR("--cluster-cidr", c.ClusterCIDR)
	if err != nil {
		return Cluster{}, err
	}
	service, err := ParseCIDR("--service-cidr", c.ServiceCIDR)
	if err != nil {
		return Cluster{}, err
	}
	dns, err := netip.ParseAddr(c.ClusterDNS)
	if err != nil {
		return Cluster{}, fmt.Errorf("--cluster-dns %q: not an IP address", c.ClusterDNS)
	}
	ports, err := parseNodePortRange(c.NodePortRange)
	if err != nil {
		return Cluster{}, err
	}
	cni := c.CNI
	switch cni {
	case "": // servers before --cni: flannel
		cni = CNIFlannel
	case CNIFlannel, CNICalico:
	default:
		return Cluster{}, fmt.Errorf("--cni %q: this kubling runs flannel or calico", cni)
	}
	return Cluster{ClusterCIDR: cluster, ServiceCIDR: service, ClusterDNS: dns, ClusterDomain: c.ClusterDomain, CNI: cni, FlannelBackend: c.FlannelBackend,
		DisableNetworkPolicy: c.DisableNetworkPolicy, NodePortRange: ports}, nil
}

// Join is the settings as a joining node or server receives them.
func (c Cluster) Join() join.Cluster {
	return join.Cluster{ClusterCIDR: c.ClusterCIDR.String(), ServiceCIDR: c.ServiceCIDR.String(), ClusterDNS: c.ClusterDNS.String(),
		ClusterDomain: c.ClusterDomain, CNI: c.CNI, FlannelBackend: c.FlannelBackend, DisableNetworkPolicy: c.DisableNetworkPolicy,
		NodePortRange: c.NodePortRange.String()}
}

// CheckSame refuses settings (a joining server's) that differ from c,
// naming the first flag that differs. Addresses are compared as addresses,
// not as text.
func (c Cluster) CheckSame(asked join.Cluster) error {
	a, err := ParseCluster(asked)
	if err != nil {
		return fmt.Errorf("the new server's settings: %w", err)
	}
	for _, s := range []struct {
		flag, have, asked string
		same              bool
	}{
		{"--cluster-cidr", c.ClusterCIDR.String(), asked.ClusterCIDR, a.ClusterCIDR == c.ClusterCIDR},
		{"--service-cidr", c.ServiceCIDR.String(), asked.ServiceCIDR, a.ServiceCIDR == c.ServiceCIDR},
		{"--cluster-dns", c.ClusterDNS.String(), asked.ClusterDNS, a.ClusterDNS == c.ClusterDNS},
		{"--cluster-domain", c.ClusterDomain, asked.ClusterDomain, a.ClusterDomain == c.ClusterDomain},
		{"--cni", c.CNI, a.CNI, a.CNI == c.CNI},
		{"--flannel-backend", c.FlannelBackend, asked.FlannelBackend, a.FlannelBackend == c.FlannelBackend},
		{"--disable-network-policy", strconv.FormatBool(c.DisableNetworkPolicy), strconv.FormatBool(asked.DisableNetworkPolicy), a.DisableNetworkPolicy == c.DisableNetworkPolicy},
		{"--kube-apiserver-arg service-node-port-range", c.NodePortRange.String(), a.NodePortRange.String(), a.NodePortRange == c.NodePortRange},
	} {
		if !s.same {
			return fmt.Errorf("%s %s differs from the cluster's %s: start the new server with the cluster's settings", s.flag, s.asked, s.have)
		}
	}
	return nil
}

// APIServerServiceIP is the first address of the service CIDR: the
// ClusterIP of the `kubernetes` Service, which the serving certificate must name.
func (c Cluster) APIServerServiceIP() netip.Addr {
	return nthAddr(c.ServiceCIDR.Masked(), 1)
}

// Cluster is the cluster's settings as Validate parsed them.
func (s *Server) Cluster() Cluster { return s.cluster }

// ParsedToken is --token as Validate parsed it; ok is false without --token.
func (s *Server) ParsedToken() (t token.Token, ok bool) { return s.token, s.Token != "" }

// ParsedAgentToken is --agent-token as Validate parsed it; ok is false
// without it.
func (s *Server) ParsedAgentToken() (t token.Token, ok bool) { return s.agentToken, s.AgentToken != "" }

// NodeAddress is the address this machine goes by in the cluster: its
// node's IP, its etcd member's URLs, the join URL it prints, a name in its
// serving certificates. One precedence for all: --node-ip, then
// --advertise-address (servers), then the address of the interface of the
// default route. Either flag may be empty.
func NodeAddress(nodeIP, advertiseAddress string) (netip.Addr, error) {
	for _, a := range []struct{ flag, value string }{{"--node-ip", nodeIP}, {"--advertise-address", advertiseAddress}} {
		if a.value == "" {
			continue
		}
		addr, err := netip.ParseAddr(a.value)
		if err != nil {
			return netip.Addr{}, fmt.Errorf("%s %q: not an IP address", a.flag, a.value)
		}
		return addr.Unmap(), nil
	}
	ip, err := utilnet.ChooseHostInterface()
	if err != nil {
		return netip.Addr{}, fmt.Errorf("detect this machine's address (set --node-ip): %w", err)
	}
	addr, ok := netip.AddrFromSlice(ip)
	if !ok {
		return netip.Addr{}, errors.New("detect this machine's address (set --node-ip): no address")
	}
	return addr.Unmap(), nil
}
