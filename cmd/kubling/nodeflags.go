package main

import (
	"github.com/urfave/cli/v2"

	"github.com/kubling/kubling/pkg/config"
)

// nodeFlags are the flags of a node, which `kubling server` (for its own
// node) and `kubling agent` both take: declared here once, read into one
// config.Node. List flags land in cli.StringSlice values and are copied
// into the config by collect, after parsing.
type nodeFlags struct {
	node                                       *config.Node
	labels, taints, kubeletArgs, kubeProxyArgs cli.StringSlice
	externalIPs                                cli.StringSlice
}

// flags returns the node flags, each with its KUBLING_* variable.
func (f *nodeFlags) flags() []cli.Flag {
	n := f.node
	flags := []cli.Flag{
		&cli.StringFlag{Name: "data-dir", Aliases: []string{"d"}, Usage: "folder for state, certificates and (on a server) the datastore", Value: config.DefaultDataDir, Destination: &n.DataDir},
		&cli.StringFlag{Name: "node-name", Usage: "name of this machine's node (default: the lowercase hostname)", Destination: &n.NodeName},
		&cli.StringFlag{Name: "node-ip", Usage: "IP the node advertises (default: the address of the default route's interface)", Destination: &n.NodeIP},
		&cli.StringSliceFlag{Name: "node-external-ip", Usage: "public address of the node, one per IP family (behind NAT, or a public IP): the Node's ExternalIP, what ServiceLB lists and flannel's peers send to", Destination: &f.externalIPs},
		&cli.StringSliceFlag{Name: "node-label", Usage: "label for this node, key=value", Destination: &f.labels},
		&cli.StringSliceFlag{Name: "node-taint", Usage: "taint for this node, key=value:Effect (a server's node takes workloads unless tainted)", Destination: &f.taints},
		&cli.StringSliceFlag{Name: "kubelet-arg", Usage: "extra or overriding kubelet flag, key=value", Destination: &f.kubeletArgs},
		&cli.StringSliceFlag{Name: "kube-proxy-arg", Usage: "extra or overriding kube-proxy flag, key=value", Destination: &f.kubeProxyArgs},
		&cli.StringFlag{Name: "private-registry", Usage: "registry mirrors, credentials and TLS for this node (registries.yaml)", Value: "/etc/kubling/registries.yaml", Destination: &n.PrivateRegistry},
		&cli.StringFlag{Name: "resolv-conf", Usage: "resolv.conf for pods with dnsPolicy Default, CoreDNS's upstream among them (default: the host's, unless it names only loopback resolvers)", Destination: &n.ResolvConf},
		&cli.StringFlag{Name: "default-runtime", Usage: "containerd runtime for pods without a RuntimeClass: runc, or one found on the node such as nvidia", Destination: &n.DefaultRuntime},
		&cli.BoolFlag{Name: "prefer-bundled-bin", Usage: "run kubling's bundled iptables even where the host has its own", Destination: &n.PreferBundledBin},
		&cli.BoolFlag{Name: "debug", Usage: "log upstream components' info lines too", Destination: &n.Debug},
	}
	for _, fl := range flags {
		setEnv(fl)
	}
	return flags
}

// collect copies the parsed list flags into the node's configuration.
func (f *nodeFlags) collect() {
	f.node.NodeLabels, f.node.NodeTaints = f.labels.Value(), f.taints.Value()
	f.node.NodeExternalIPs = f.externalIPs.Value()
	f.node.KubeletArgs, f.node.KubeProxyArgs = f.kubeletArgs.Value(), f.kubeProxyArgs.Value()
}
