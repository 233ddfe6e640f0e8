package server

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/kubling/kubling/pkg/agent"
	"github.com/kubling/kubling/pkg/config"
	"github.com/kubling/kubling/pkg/hostcheck"
	"github.com/kubling/kubling/pkg/server/args"
)

// preflight checks the host before anything is written, so a refusal leaves
// no trace. Each failure is one line that names what is wrong. Unless
// --disable-agent, it returns the server's node, checked against the host
// as an agent's is.
func preflight(c *config.Server, datastorePorts []hostcheck.Port) (*agent.Node, error) {
	if err := hostcheck.RequireRoot("server"); err != nil {
		return nil, err
	}
	cluster := c.Cluster()
	if err := hostcheck.Real.NetworksClear(hostcheck.Network{Flag: "--cluster-cidr", Prefix: cluster.ClusterCIDR}, hostcheck.Network{Flag: "--service-cidr", Prefix: cluster.ServiceCIDR}); err != nil {
		return nil, err
	}
	ports := []hostcheck.Port{
		{Host: c.BindAddress, Port: c.HTTPSPort, What: "the apiserver"},
		{Host: "127.0.0.1", Port: args.SchedulerPort, What: "the scheduler"},
		{Host: "127.0.0.1", Port: args.ControllerManagerPort, What: "the controller-manager"},
	}
	ports = append(ports, datastorePorts...)
	var node *agent.Node
	if !c.DisableAgent {
		ports = append(ports, agent.Ports()...)
		if err := hostcheck.Real.BrNetfilter(); err != nil {
			return nil, err
		}
		// The node goes by the server's address (config.NodeAddress).
		addr, err := config.NodeAddress(c.NodeIP, c.AdvertiseAddress)
		if err != nil {
			return nil, err
		}
		nodeConfig := c.Node
		nodeConfig.NodeIP = addr.String()
		if node, err = agent.NewNode(nodeConfig); err != nil {
			return nil, err
		}
	}
	if err := hostcheck.PortsFree(ports); err != nil {
		return nil, err
	}
	if err := hostcheck.Writable(c.DataDir); err != nil {
		return nil, fmt.Errorf("data dir %s is not writable: %w", c.DataDir, err)
	}
	if c.AuditPolicyFile != "" {
		if _, err := os.ReadFile(c.AuditPolicyFile); err != nil {
			return nil, fmt.Errorf("--audit-policy-file: %w", err)
		}
	}
	if c.WriteKubeconfig != "" {
		if err := hostcheck.Writable(filepath.Dir(c.WriteKubeconfig)); err != nil {
			return nil, fmt.Errorf("cannot write the kubeconfig %s: %w", c.WriteKubeconfig, err)
		}
	}
	return node, nil
}
