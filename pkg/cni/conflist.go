// Package cni is the node's pod network: the CNI configuration (this file
// renders it, writer.go writes it once the node has its pod CIDR) and, in
// pkg/cni/flannel, flannel running in-process between nodes.
package cni

import (
	"encoding/json"
	"fmt"
	"net/netip"
)

// ConflistName is the file the CNI configuration is written to.
const ConflistName = "10-kubling.conflist"

// Conflist renders the node's CNI chain: a bridge (cni0) with host-local
// addresses from the node's pod CIDR, routes to the whole cluster CIDR, then
// portmap (hostPort) and bandwidth (traffic shaping annotations). It is what
// flannel's CNI plugin hands to the bridge plugin; kubling writes it directly.
func Conflist(podCIDR, clusterCIDR string, mtu int, ipamDir string, masquerade bool) ([]byte, error) {
	pod, err := netip.ParsePrefix(podCIDR)
	if err != nil {
		return nil, fmt.Errorf("pod CIDR %q: %w", podCIDR, err)
	}
	cluster, err := netip.ParsePrefix(clusterCIDR)
	if err != nil {
		return nil, fmt.Errorf("cluster CIDR %q: %w", clusterCIDR, err)
	}
	if !cluster.Contains(pod.Addr()) {
		return nil, fmt.Errorf("pod CIDR %s is outside the cluster CIDR %s", pod, cluster)
	}
	if mtu < 576 {
		return nil, fmt.Errorf("MTU %d is too small", mtu)
	}
	conf := map[string]any{
		"cniVersion": "1.0.0",
		"name":       "cbr0",
		"plugins": []any{
			map[string]any{
				"type":             "bridge",
				"bridge":           "cni0",
				"isGateway":        true,
				"isDefaultGateway": true,
				"hairpinMode":      true,
				"forceAddress":     true,
				// Without flannel the bridge masquerades pod traffic leaving
				// the pod CIDR; with flannel, flannel's own rules do.
				"ipMasq": masquerade,
				"mtu":    mtu,
				"ipam": map[string]any{
					"type": "host-local",
					// Address leases live under kubling's data dir, not /var/lib/cni.
					"dataDir": ipamDir,
					"ranges":  [][]map[string]string{{{"subnet": pod.Masked().String()}}},
					"routes":  []map[string]string{{"dst": cluster.Masked().String()}},
				},
			},
			map[string]any{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}},
			map[string]any{"type": "bandwidth", "capabilities": map[string]bool{"bandwidth": true}},
		},
	}
	return json.MarshalIndent(conf, "", "  ")
}
