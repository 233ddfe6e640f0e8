package nodejoin

import (
	"context"
	"fmt"
	"net"
	"net/netip"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// addressRefused means a node asked for an address in its serving
// certificate that is not its to name.
type addressRefused struct{ msg string }

func (e addressRefused) Error() string { return e.msg }

// checkAddresses refuses serving-certificate addresses a node may not
// name: the apiserver reaches kubelets by these addresses for exec, logs
// and port-forward, so a certificate naming another node's address, a
// server's, or one in the cluster's own ranges would let its holder stand
// in for them.
// apiservers are the apiservers' host:port (the `kubernetes` endpoints).
func (s *Service) checkAddresses(ctx context.Context, client kubernetes.Interface, node string, ips []net.IP, apiservers []string) error {
	cidrs := []netip.Prefix{s.Cluster.ServiceCIDR, s.Cluster.ClusterCIDR}
	servers := append([]net.IP(nil), s.ServerIPs...)
	for _, hp := range apiservers {
		if h, _, err := net.SplitHostPort(hp); err == nil {
			if ip := net.ParseIP(h); ip != nil {
				servers = append(servers, ip)
			}
		}
	}
	for _, ip := range ips {
		switch {
		case ip.IsUnspecified() || ip.IsLoopback() || ip.IsMulticast() || ip.IsLinkLocalUnicast():
			return addressRefused{fmt.Sprintf("address %s cannot be a node's address", ip)}
		case containsIP(servers, ip):
			return addressRefused{fmt.Sprintf("address %s belongs to a server; give this node its own --node-ip", ip)}
		}
		addr, _ := netip.AddrFromSlice(ip)
		for _, n := range cidrs {
			if n.IsValid() && n.Contains(addr.Unmap()) {
				return addressRefused{fmt.Sprintf("address %s lies in the cluster's range %s; give this node its host address as --node-ip", ip, n)}
			}
		}
	}
	nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("list nodes: %w", err)
	}
	for _, n := range nodes.Items {
		if n.Name == node {
			continue
		}
		for _, a := range n.Status.Addresses {
			if ip := net.ParseIP(a.Address); ip != nil && containsIP(ips, ip) {
				return addressRefused{fmt.Sprintf("address %s belongs to node %s; give this node its own --node-ip (or delete the old node: kubectl delete node %s)", ip, n.Name, n.Name)}
			}
		}
	}
	return nil
}

func containsIP(list []net.IP, ip net.IP) bool {
	for _, have := range list {
		if have.Equal(ip) {
			return true
		}
	}
	return false
}
