package agent

import (
	"net/netip"
	"testing"
)

func TestTunnelAllowsTheKubeletAndPodsOnly(t *testing.T) {
	c := &tunnelClient{nodeName: "edge1", nodeIPs: []string{"192.168.1.20", "203.0.113.7"}, clusterCIDR: netip.MustParsePrefix("10.42.0.0/16")}
	for addr, want := range map[string]bool{
		"192.168.1.20:10250": true,
		"203.0.113.7:10250":  true,
		"edge1:10250":        true,
		"10.42.3.9:8080":     true, // a pod
		"192.168.1.20:22":    false,
		"192.168.1.1:10250":  false, // another machine on the node's network
		"10.43.0.1:443":      false, // a Service address
		"localhost:10250":    false,
		"10.42.3.9":          false,
	} {
		if got := c.allow("tcp", addr); got != want {
			t.Errorf("allow(tcp, %s) = %v, want %v", addr, got, want)
		}
	}
	if c.allow("udp", "10.42.3.9:53") {
		t.Error("UDP allowed")
	}
}
