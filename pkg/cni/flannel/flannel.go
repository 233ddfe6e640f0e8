// Package flannel runs flannel in kubling's process: the kube subnet manager
// (leases are the pod CIDRs node IPAM assigns), the VXLAN or host-gw backend,
// and flannel's masquerade and forward rules.
package flannel

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"

	"github.com/flannel-io/flannel/pkg/backend"
	_ "github.com/flannel-io/flannel/pkg/backend/hostgw" // registers host-gw
	_ "github.com/flannel-io/flannel/pkg/backend/vxlan"  // registers vxlan
	"github.com/flannel-io/flannel/pkg/ip"
	"github.com/flannel-io/flannel/pkg/subnet/kube"
	"github.com/flannel-io/flannel/pkg/trafficmngr/iptables"

	"github.com/kubling/kubling/pkg/component"
	"github.com/kubling/kubling/pkg/fileutil"
)

// Config places flannel.
type Config struct {
	NodeName string
	NodeIP   string
	// PublicIP is where other nodes send this node's traffic
	// (--node-external-ip); empty: NodeIP.
	PublicIP    string
	ClusterCIDR string
	Backend     string
	// Kubeconfig of an identity that may list/watch nodes and patch nodes/status.
	Kubeconfig string
	// Dir holds net-conf.json.
	Dir string
}

// NetConf is flannel's network configuration for the cluster CIDR.
func NetConf(clusterCIDR, backendType string) ([]byte, error) {
	if _, _, err := net.ParseCIDR(clusterCIDR); err != nil {
		return nil, err
	}
	return json.Marshal(map[string]any{
		"Network":    clusterCIDR,
		"EnableIPv4": true,
		"EnableIPv6": false,
		"Backend":    map[string]string{"Type": backendType},
	})
}

// New returns flannel as a component. Its set-up (lease, device, rules) is
// done in Start; Run serves peer changes until the process exits.
func New(c Config) *component.InProcess {
	return component.NewInProcess("flannel",
		func(ctx context.Context) (func(context.Context) error, error) {
			conf, err := NetConf(c.ClusterCIDR, c.Backend)
			if err != nil {
				return nil, err
			}
			netConf := filepath.Join(c.Dir, "net-conf.json")
			if err := os.MkdirAll(c.Dir, 0o755); err != nil {
				return nil, err
			}
			if err := fileutil.WriteAtomic(netConf, conf, 0o644); err != nil {
				return nil, err
			}
			// flannel's kube subnet manager finds its node through this
			// variable only (process-wide, as upstream forces).
			if err := os.Setenv("NODE_NAME", c.NodeName); err != nil {
				return nil, err
			}
			nodeIP := net.ParseIP(c.NodeIP)
			iface, err := ip.GetInterfaceByIP(nodeIP)
			if err != nil {
				return nil, fmt.Errorf("find the interface of %s: %w", c.NodeIP, err)
			}
			ext := &backend.ExternalInterface{Iface: iface, IfaceAddr: nodeIP, ExtAddr: nodeIP}
			if c.PublicIP != "" {
				ext.ExtAddr = net.ParseIP(c.PublicIP)
			}
			sm, err := kube.NewSubnetManager(ctx, "", c.Kubeconfig, "flannel.alpha.coreos.com", netConf, false)
			if err != nil {
				return nil, err
			}
			cfg, err := sm.GetNetworkConfig(ctx)
			if err != nil {
				return nil, err
			}
			be, err := backend.NewManager(ctx, sm, ext).GetBackend(cfg.BackendType)
			if err != nil {
				return nil, err
			}
			var wg sync.WaitGroup
			bn, err := be.RegisterNetwork(ctx, &wg, cfg)
			if err != nil {
				return nil, fmt.Errorf("register %s network: %w", cfg.BackendType, err)
			}
			tm := &iptables.IPTablesManager{}
			if err := tm.Init(ctx); err != nil {
				return nil, err
			}
			if err := tm.SetupAndEnsureMasqRules(ctx, cfg.Network, ip.IP4Net{}, ip.IP4Net{}, ip.IP6Net{}, ip.IP6Net{}, ip.IP6Net{}, bn.Lease(), 60, false); err != nil {
				return nil, err
			}
			tm.SetupAndEnsureForwardRules(ctx, cfg.Network, cfg.IPv6Network, 50)
			return func(ctx context.Context) error {
				bn.Run(ctx)
				wg.Wait()
				return ctx.Err()
			}, nil
		},
		func(context.Context) error { return nil }, // ready once Start has registered the network
	).StopGrace(0)
}
