package agent

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"
	"k8s.io/kubernetes/pkg/util/taints"

	"github.com/kubling/kubling/pkg/agent/containerd"
	"github.com/kubling/kubling/pkg/agent/iptables"
	"github.com/kubling/kubling/pkg/agent/localstorage"
	"github.com/kubling/kubling/pkg/agent/nvidia"
	"github.com/kubling/kubling/pkg/agent/payload"
	"github.com/kubling/kubling/pkg/cni"
	"github.com/kubling/kubling/pkg/cni/flannel"
	"github.com/kubling/kubling/pkg/cni/netpol"
	"github.com/kubling/kubling/pkg/component"
	"github.com/kubling/kubling/pkg/config"
	"github.com/kubling/kubling/pkg/datadir"
	"github.com/kubling/kubling/pkg/hostcheck"
	"github.com/kubling/kubling/pkg/join"
	"github.com/kubling/kubling/pkg/kubeconfig"
)

// Node is one machine's node, prepared from its flags: the same for the
// server's own node and for an agent. NewNode checks what can be checked
// before anything is written; Components builds the running parts once the
// node has credentials.
type Node struct {
	cfg        config.Node
	layout     datadir.Layout
	ip         string
	labels     map[string]string
	taints     []corev1.Taint
	registries *containerd.Registries
	runtime    *nodeRuntime // set by Runtime
}

// NewNode checks the node's flags against this host (taints, registries.yaml,
// the default runtime, the programs it needs from the host) and picks its
// IP. It writes nothing.
func NewNode(c config.Node) (*Node, error) {
	n := &Node{cfg: c, layout: c.Layout(), ip: c.NodeIP, labels: map[string]string{}}
	for _, l := range c.NodeLabels {
		k, v, _ := strings.Cut(l, "=") // shape checked by config.Node.Validate
		n.labels[k] = v
	}
	var err error
	if n.taints, _, err = taints.ParseTaints(c.NodeTaints); err != nil {
		return nil, fmt.Errorf("--node-taint: %w", err)
	}
	if n.registries, err = containerd.LoadRegistries(c.PrivateRegistry); err != nil {
		return nil, err
	}
	if err := checkDefaultRuntime(c.DefaultRuntime, nvidia.Detect("/", os.Getenv("PATH"))); err != nil {
		return nil, err
	}
	if err := hostcheck.ProgramsPresent(nil); err != nil {
		return nil, err
	}
	if c.ResolvConf != "" && !usableResolvConf(c.ResolvConf) {
		return nil, fmt.Errorf("--resolv-conf %s: not a readable resolv.conf naming a nameserver pods can reach (not loopback)", c.ResolvConf)
	}
	// A server's node comes with its address chosen (config.NodeAddress
	// with --advertise-address); an agent's has --node-ip or the default route's.
	addr, err := config.NodeAddress(c.NodeIP, "")
	if err != nil {
		return nil, err
	}
	n.ip = addr.String()
	return n, nil
}

// Name is the node's name.
func (n *Node) Name() string { return n.cfg.NodeName }

// IP is the address the node advertises (--node-ip, or the host's primary one).
func (n *Node) IP() string { return n.ip }

// KubeletPort is where every node's kubelet serves (logs, exec, metrics).
const KubeletPort = 10250

// Ports are the ports every node's components listen on.
func Ports() []hostcheck.Port {
	return []hostcheck.Port{
		{Host: "", Port: KubeletPort, What: "the kubelet"},
		{Host: "127.0.0.1", Port: kubeletHealthPort, What: "the kubelet's health check"},
		{Host: "127.0.0.1", Port: kubeProxyHealthPort, What: "kube-proxy's health check"},
	}
}

// readyTimeout bounds how long one node component may take to become ready.
const readyTimeout = 2 * time.Minute

// Connection is how the node reaches its cluster: the apiserver URL its
// components use (the local apiserver on a server, the load balancer on an
// agent) and the cluster's settings, parsed. The node's certificates, keys and the
// CAs it trusts are already in the data dir's node TLS folder: signed by the
// server itself for its own node, or received when an agent joined.
type Connection struct {
	APIServer string
	Cluster   config.Cluster
}

// Runtime prepares the node's container runtime — the payload, host
// settings, containerd's configuration — and returns its components
// (containerd, then the images it imports) in start order. It needs no
// cluster, so a server starts them beside its apiserver. Call it before
// Components, once.
func (n *Node) Runtime(log klog.Logger) ([]component.Component, error) {
	l := n.layout
	p, err := payload.Embedded()
	if err != nil {
		return nil, err
	}
	begin := time.Now()
	payloadDir, unpacked, err := p.Install(l.PayloadRoot())
	if err != nil {
		return nil, err
	}
	log.Info("Payload ready", "dir", payloadDir, "unpacked", unpacked, "duration", time.Since(begin).Round(time.Millisecond))
	// Earlier versions' folders (upgrades), unless a pod's shim still runs one.
	if removed, err := p.PruneOld(l.PayloadRoot(), "/proc"); err != nil {
		log.Error(err, "Prune old payload versions")
	} else if len(removed) > 0 {
		log.Info("Removed old payload versions", "dirs", removed)
	}
	ipt, err := iptables.Setup(iptables.Bundled{Dir: payload.IptablesDir(payloadDir)}, l.NodeBin(), n.cfg.PreferBundledBin)
	if err != nil {
		return nil, fmt.Errorf("iptables: %w", err)
	}
	log.Info("iptables", "path", ipt.Path, "bundled", ipt.Bundled, "mode", ipt.Mode, "version", ipt.Version,
		"ipset", ipt.Tools[iptables.Ipset].Path, "nft", ipt.Tools[iptables.Nft].Path)
	facts, err := hostcheck.Real.Detect()
	if err != nil {
		return nil, fmt.Errorf("inspect host: %w", err)
	}
	if err := hostcheck.Real.SetNodeSysctls(); err != nil {
		return nil, err
	}
	ctr, err := n.containerdConfig(payloadDir, facts, log)
	if err != nil {
		return nil, err
	}
	gpu, err := setupNvidia(l, n.cfg.DefaultRuntime, &ctr, log)
	if err != nil {
		return nil, err
	}
	resolv, err := resolvConf(l, n.cfg.ResolvConf, log)
	if err != nil {
		return nil, err
	}
	images, err := newImports(ctr, payloadDir, l.AirgapImages(), log)
	if err != nil {
		return nil, err
	}
	n.runtime = &nodeRuntime{ctr: ctr, facts: facts, gpu: gpu, resolvConf: resolv}
	return []component.Component{containerd.NewProcess(ctr, l.ContainerdLog(), log), images}, nil
}

// nodeRuntime is what Runtime settled that the node's other components use.
type nodeRuntime struct {
	ctr        containerd.Config
	facts      hostcheck.Facts
	gpu        nvidia.Info
	resolvConf string
}

// Components writes the node's credentials into kubeconfigs and returns
// the components that run on the container runtime (Runtime, called
// before) and reach the cluster: the kubelet, kube-proxy, the local
// volume folders, the pod network's configuration, flannel and the
// NetworkPolicy controller, in start order; with Calico (its own pods)
// only the first three.
func (n *Node) Components(conn Connection, log klog.Logger) ([]component.Component, error) {
	l, cluster, rt := n.layout, conn.Cluster, n.runtime
	if rt == nil {
		return nil, fmt.Errorf("node %s: the container runtime is not prepared", n.Name())
	}
	if err := n.writeKubeconfigs(conn.APIServer); err != nil {
		return nil, err
	}
	ctr, facts, resolv := rt.ctr, rt.facts, rt.resolvConf
	labels := n.labelsWith(rt.gpu)
	report := &nodeReport{node: n.Name(), kubeconfig: l.NodeKubeconfig(kubeletComponent), nfs: hostcheck.Real.DetectNFS(), gpu: labels[nvidia.Label] == "true",
		externalIPs: n.cfg.NodeExternalIPs, log: log}
	if cluster.CNI == config.CNICalico {
		report.networkAddOn = "Calico"
	}
	parts := []component.Component{
		newKubelet(kubeletSettings{
			NodeName:         n.Name(),
			NodeIP:           n.ip,
			Kubeconfig:       l.NodeKubeconfig(kubeletComponent),
			RootDir:          l.KubeletDir(),
			CertDir:          l.KubeletPKI(),
			ClientCAFile:     l.NodeClientCA(),
			TLSCertFile:      l.NodeCert(join.KubeletServing),
			TLSKey:           l.NodeKey(join.KubeletServing),
			ContainerdSocket: ctr.Socket(),
			CgroupDriver:     facts.CgroupDriver,
			ClusterDNS:       cluster.ClusterDNS.String(),
			ClusterDomain:    cluster.ClusterDomain,
			ResolvConf:       resolv,
			Labels:           labels,
			Taints:           n.taints,
			// The server's node-address controller owns the addresses
			// of a node with an external IP.
			ExternalCloudProvider: len(n.cfg.NodeExternalIPs) > 0,
			ExtraArgs:             n.cfg.KubeletArgs,
		}),
		// Services' rules before any pod has a network (the CNI config,
		// next): a pod that dials a Service IP before kube-proxy's rules
		// exist keeps an un-NATed conntrack entry and waits out its dial
		// timeout (CoreDNS Ready 40 s instead of 9 s).
		newKubeProxy(kubeProxySettings{
			NodeName:    n.Name(),
			ClusterCIDR: cluster.ClusterCIDR.String(),
			Kubeconfig:  l.NodeKubeconfig(kubeProxyComponent),
			ExtraArgs:   n.cfg.KubeProxyArgs,
		}),
		// This node's local-path volume folders.
		localstorage.New(localstorage.Config{
			NodeName: n.Name(),
			Client:   func() (kubernetes.Interface, error) { return kubeconfig.NewClient(l.NodeKubeconfig(kubeletComponent)) },
			StateDir: l.LocalStorageState(),
			Log:      log.WithName(localstorage.Name),
		}),
	}
	if cluster.CNI == config.CNICalico {
		// Calico's pods (the add-on) write the CNI configuration and
		// enforce NetworkPolicy; kubling's of an earlier run go, so that
		// neither shadows Calico's.
		if err := cni.RemoveConflist(l.CNIConfDir()); err != nil {
			return nil, err
		}
		if _, err := netpol.Remove(log); err != nil {
			return nil, fmt.Errorf("remove NetworkPolicy rules: %w", err)
		}
		return append(parts, report), nil
	}
	parts = append(parts, cni.NewWriter(cni.WriterConfig{
		NodeName:    n.Name(),
		NodeIP:      n.ip,
		ClusterCIDR: cluster.ClusterCIDR.String(),
		Kubeconfig:  l.NodeKubeconfig(kubeletComponent),
		ConfDir:     l.CNIConfDir(),
		IPAMDir:     l.CNIIPAMDir(),
		Masquerade:  cluster.FlannelBackend == "none",
		Log:         log,
	}), report)
	if cluster.FlannelBackend != "none" {
		parts = append(parts, flannel.New(flannel.Config{
			NodeName:    n.Name(),
			NodeIP:      n.ip,
			PublicIP:    n.cfg.ExternalIPv4(),
			ClusterCIDR: cluster.ClusterCIDR.String(),
			Backend:     cluster.FlannelBackend,
			// The node's own identity: the Node authorizer and
			// NodeRestriction let it change its own Node only.
			Kubeconfig: l.NodeKubeconfig(kubeletComponent),
			Dir:        l.FlannelDir(),
		}))
	}
	if cluster.DisableNetworkPolicy {
		// Before kube-proxy starts: the rules of a run with it on go.
		if _, err := netpol.Remove(log); err != nil {
			return nil, fmt.Errorf("remove NetworkPolicy rules: %w", err)
		}
	} else {
		nodePorts := cluster.NodePortRange
		parts = append(parts, netpol.New(netpol.Config{
			NodeName:    n.Name(),
			ServiceCIDR: cluster.ServiceCIDR,
			// The apiserver's service-node-port-range, as the server
			// handed it with the cluster's settings.
			NodePortFirst: nodePorts.Base, NodePortLast: nodePorts.Base + nodePorts.Size - 1,
			Kubeconfig: l.NodeKubeconfig(networkPolicyComponent),
			SyncPeriod: time.Minute,
		}, log))
	}
	return parts, nil
}

// Node components with a kubeconfig of their own, and the credential each uses.
const (
	kubeletComponent       = "kubelet"
	kubeProxyComponent     = "kube-proxy"
	networkPolicyComponent = netpol.Name
)

var componentCredentials = map[string]string{
	kubeletComponent:       join.KubeletClient,
	kubeProxyComponent:     join.KubeProxy,
	networkPolicyComponent: join.NetworkPolicy,
}

// retiredKubeconfigs are those earlier versions wrote (flannel's own
// identity, now the node's).
var retiredKubeconfigs = []string{"flannel"}

// writeKubeconfigs points each node component at the apiserver with its
// own certificate, and removes the credentials earlier versions kept.
func (n *Node) writeKubeconfigs(apiServer string) error {
	l := n.layout
	var retired []string
	for _, name := range retiredKubeconfigs {
		retired = append(retired, l.NodeKubeconfig(name))
	}
	for _, cred := range join.Retired {
		retired = append(retired, l.NodeCert(cred), l.NodeKey(cred))
	}
	for _, path := range retired {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove retired credential: %w", err)
		}
	}
	for name, cred := range componentCredentials {
		spec := kubeconfig.Spec{Server: apiServer, CAFile: l.NodeServerCA(), CertFile: l.NodeCert(cred), KeyFile: l.NodeKey(cred)}
		if err := kubeconfig.Write(l.NodeKubeconfig(name), spec, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// containerdConfig makes containerd's settings from the host's facts (the
// same cgroup driver the kubelet gets) and registries.yaml.
func (n *Node) containerdConfig(payloadDir string, facts hostcheck.Facts, log klog.Logger) (containerd.Config, error) {
	l := n.layout
	snapshotter := "native"
	if facts.Overlay {
		snapshotter = "overlayfs"
	}
	c := containerd.Config{
		Root:                l.ContainerdRoot(),
		State:               l.ContainerdState(),
		PayloadDir:          payloadDir,
		CNIConfDir:          l.CNIConfDir(),
		CNIPluginDir:        l.CNIPluginDir(),
		RegistryConfigDir:   l.RegistryHosts(),
		SystemdCgroup:       facts.CgroupDriver == "systemd",
		Snapshotter:         snapshotter,
		RestrictOOMScoreAdj: !facts.CapSysResource,
	}
	log.Info("Host", "cgroupV2", facts.CgroupV2, "cgroupDriver", facts.CgroupDriver, "snapshotter", snapshotter, "restrictOOMScoreAdj", c.RestrictOOMScoreAdj)
	if n.registries != nil {
		if err := n.registries.WriteHostsDir(c.RegistryConfigDir); err != nil {
			return c, fmt.Errorf("registry configuration: %w", err)
		}
		c.RegistryAuths = n.registries.Auths()
	}
	return c, nil
}

// labelsWith returns the user's labels plus nvidia.com/gpu.present=true
// where containers can get GPUs.
func (n *Node) labelsWith(gpu nvidia.Info) map[string]string {
	labels := make(map[string]string, len(n.labels)+1)
	for k, v := range n.labels {
		labels[k] = v
	}
	if gpu.Usable() {
		labels[nvidia.Label] = "true"
	}
	return labels
}
