// Package agent runs a Kubernetes node in kubling's process: containerd
// (supervised child from the payload), the kubelet, the CNI configuration
// and kube-proxy. Components returns them in start order.
package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"

	"github.com/kubling/kubling/pkg/agent/containerd"
	"github.com/kubling/kubling/pkg/agent/host"
	"github.com/kubling/kubling/pkg/agent/nvidia"
	"github.com/kubling/kubling/pkg/agent/payload"
	"github.com/kubling/kubling/pkg/cni"
	"github.com/kubling/kubling/pkg/cni/flannel"
	"github.com/kubling/kubling/pkg/component"
	"github.com/kubling/kubling/pkg/fileutil"
	"github.com/kubling/kubling/pkg/hostcheck"
)

// RunDir holds the node's runtime sockets and state.
const RunDir = "/run/kubling"

// ContainerdSocket is where kubling's containerd listens.
const ContainerdSocket = RunDir + "/containerd/containerd.sock"

// Ports are the ports every node's components listen on.
func Ports() []hostcheck.Port {
	return []hostcheck.Port{
		{Host: "", Port: 10250, What: "the kubelet"},
		{Host: "127.0.0.1", Port: 10248, What: "the kubelet's health check"},
		{Host: "127.0.0.1", Port: 10256, What: "kube-proxy's health check"},
	}
}

// Config is what a node needs; the server (or, later, the join) provides
// the credentials.
type Config struct {
	DataDir       string
	NodeName      string
	NodeIP        string
	Labels        map[string]string
	Taints        []corev1.Taint
	ClusterCIDR   string
	ClusterDNS    string
	ClusterDomain string

	KubeletKubeconfig   string
	KubeProxyKubeconfig string
	// FlannelKubeconfig may list/watch nodes and patch nodes/status.
	FlannelKubeconfig string
	// FlannelBackend is vxlan, host-gw or none.
	FlannelBackend string
	ClientCAFile   string
	ServingCert    string
	ServingKey     string

	KubeletArgs   []string
	KubeProxyArgs []string
	// DefaultRuntime is containerd's runtime for pods without a
	// RuntimeClass ("" or runc, or a detected one such as nvidia).
	DefaultRuntime string
	// Registries are the mirrors, credentials and TLS settings of
	// registries.yaml (checked before the node starts).
	Registries *containerd.Registries
}

// Paths under the data dir.
func agentDir(dataDir string) string { return filepath.Join(dataDir, "agent") }

// KubeletDir is the kubelet's root folder.
func KubeletDir(dataDir string) string { return filepath.Join(agentDir(dataDir), "kubelet") }

// AirgapDir is where image archives are imported from before the kubelet starts.
func AirgapDir(dataDir string) string { return filepath.Join(agentDir(dataDir), "images") }

// Components prepares the node (payload, host facts) and returns its
// components in start order.
func Components(c Config, log klog.Logger) ([]component.Component, error) {
	p, err := payload.Embedded()
	if err != nil {
		return nil, err
	}
	begin := time.Now()
	payloadDir, unpacked, err := p.Install(c.DataDir)
	if err != nil {
		return nil, err
	}
	log.Info("Payload ready", "dir", payloadDir, "unpacked", unpacked, "duration", time.Since(begin).Round(time.Millisecond))
	facts, err := host.Root("/").Detect()
	if err != nil {
		return nil, fmt.Errorf("inspect host: %w", err)
	}
	if err := hostPrerequisites(); err != nil {
		return nil, err
	}
	snapshotter := "native"
	if facts.Overlay {
		snapshotter = "overlayfs"
	}
	ctrCfg := containerd.Config{
		Root:                filepath.Join(agentDir(c.DataDir), "containerd"),
		State:               filepath.Dir(ContainerdSocket),
		PayloadDir:          payloadDir,
		CNIConfDir:          filepath.Join(agentDir(c.DataDir), "etc", "cni", "net.d"),
		RegistryConfigDir:   filepath.Join(agentDir(c.DataDir), "etc", "containerd", "certs.d"),
		SystemdCgroup:       facts.CgroupDriver == "systemd",
		Snapshotter:         snapshotter,
		RestrictOOMScoreAdj: !facts.CapSysResource,
	}
	log.Info("Host", "cgroupV2", facts.CgroupV2, "cgroupDriver", facts.CgroupDriver, "snapshotter", snapshotter, "restrictOOMScoreAdj", ctrCfg.RestrictOOMScoreAdj)
	labels, err := setupNvidia(c, &ctrCfg, log)
	if err != nil {
		return nil, err
	}
	if c.Registries != nil {
		if err := c.Registries.WriteHostsDir(ctrCfg.RegistryConfigDir); err != nil {
			return nil, fmt.Errorf("registry configuration: %w", err)
		}
		ctrCfg.RegistryAuths = c.Registries.Auths()
	}
	resolv, err := resolvConf(agentDir(c.DataDir))
	if err != nil {
		return nil, err
	}
	archives, err := containerd.AirgapArchives(AirgapDir(c.DataDir))
	if err != nil {
		return nil, err
	}
	images := &imports{socket: ctrCfg.Socket(), snapshotter: snapshotter, pause: filepath.Join(payloadDir, "images", "pause.tar"), archives: archives, log: log}
	kubelet := newKubelet(kubeletSettings{
		NodeName:         c.NodeName,
		NodeIP:           c.NodeIP,
		Kubeconfig:       c.KubeletKubeconfig,
		RootDir:          KubeletDir(c.DataDir),
		CertDir:          filepath.Join(agentDir(c.DataDir), "kubelet", "pki"),
		ClientCAFile:     c.ClientCAFile,
		TLSCertFile:      c.ServingCert,
		TLSKey:           c.ServingKey,
		ContainerdSocket: ctrCfg.Socket(),
		CgroupDriver:     facts.CgroupDriver,
		ClusterDNS:       c.ClusterDNS,
		ClusterDomain:    c.ClusterDomain,
		ResolvConf:       resolv,
		Labels:           labels,
		Taints:           c.Taints,
		ExtraArgs:        c.KubeletArgs,
	})
	network := &cniWriter{cfg: c, confDir: ctrCfg.CNIConfDir, log: log}
	report := &nodeReport{node: c.NodeName, kubeconfig: c.KubeletKubeconfig, nfs: host.Root("/").DetectNFS(), gpu: labels[nvidia.Label] == "true", log: log}
	parts := []component.Component{
		containerd.NewProcess(ctrCfg, filepath.Join(agentDir(c.DataDir), "containerd", "containerd.log"), log),
		images, kubelet, network, report,
	}
	if c.FlannelBackend != "none" {
		parts = append(parts, flannel.New(flannel.Config{
			NodeName:    c.NodeName,
			NodeIP:      c.NodeIP,
			ClusterCIDR: c.ClusterCIDR,
			Backend:     c.FlannelBackend,
			Kubeconfig:  c.FlannelKubeconfig,
			Dir:         filepath.Join(agentDir(c.DataDir), "etc", "flannel"),
		}))
	}
	return append(parts, newKubeProxy(c)), nil
}

// CheckDefaultRuntime refuses, before anything is written, a
// --default-runtime this node does not have.
func CheckDefaultRuntime(name string) error {
	if name == "" || name == "runc" {
		return nil
	}
	gpu := nvidia.Detect("/", os.Getenv("PATH"))
	if _, ok := gpu.Runtimes[name]; !ok {
		return fmt.Errorf("--default-runtime %s: this node has no such runtime (NVIDIA: %s)", name, gpu.Summary())
	}
	return nil
}

// setupNvidia registers the NVIDIA container runtimes the host has in
// containerd (with kubling's toolkit settings, see nvidia.ToolkitConfig),
// sets the default runtime, and returns the node's labels: the user's plus
// nvidia.com/gpu.present=true where containers can get GPUs.
func setupNvidia(c Config, ctr *containerd.Config, log klog.Logger) (map[string]string, error) {
	labels := map[string]string{}
	for k, v := range c.Labels {
		labels[k] = v
	}
	gpu := nvidia.Detect("/", os.Getenv("PATH"))
	if gpu.Driver != "" || len(gpu.Runtimes) > 0 {
		log.Info("NVIDIA: "+gpu.Summary(), "driver", gpu.Driver)
	}
	if len(gpu.Runtimes) > 0 {
		etc := filepath.Join(agentDir(c.DataDir), "etc")
		host, err := os.ReadFile(nvidia.HostToolkitConfig)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("read %s: %w", nvidia.HostToolkitConfig, err)
		}
		conf, err := nvidia.ToolkitConfig(host)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", nvidia.HostToolkitConfig, err)
		}
		path := filepath.Join(etc, "nvidia-container-runtime", "config.toml")
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return nil, err
		}
		if err := fileutil.WriteAtomic(path, conf, 0o644); err != nil {
			return nil, err
		}
		// The runtimes read their configuration from $XDG_CONFIG_HOME.
		ctr.Runtimes, ctr.Env = gpu.Runtimes, append(ctr.Env, "XDG_CONFIG_HOME="+etc)
	}
	if gpu.Usable() {
		labels[nvidia.Label] = "true"
	}
	if c.DefaultRuntime != "" && c.DefaultRuntime != "runc" {
		if _, ok := ctr.Runtimes[c.DefaultRuntime]; !ok {
			return nil, fmt.Errorf("--default-runtime %s: this node has no such runtime (NVIDIA: %s)", c.DefaultRuntime, gpu.Summary())
		}
		ctr.DefaultRuntime = c.DefaultRuntime
	}
	return labels, nil
}

// hostPrerequisites sets what the kubeadm guides set by hand; where it
// cannot, one error names the missing piece.
func hostPrerequisites() error {
	sysctls := map[string]string{
		"net/ipv4/ip_forward":                 "1",
		"net/bridge/bridge-nf-call-iptables":  "1",
		"net/bridge/bridge-nf-call-ip6tables": "1",
	}
	for key, want := range sysctls {
		path := "/proc/sys/" + key
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) && strings.HasPrefix(key, "net/bridge/") {
			return fmt.Errorf("the kernel lacks br_netfilter (%s is missing): load it with `modprobe br_netfilter`", path)
		}
		if cur, err := os.ReadFile(path); err == nil && strings.TrimSpace(string(cur)) == want {
			continue
		}
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			return fmt.Errorf("cannot set sysctl %s=%s: %w", strings.ReplaceAll(key, "/", "."), want, err)
		}
	}
	return nil
}

// resolvConf picks a resolv.conf for pods with dnsPolicy Default (CoreDNS
// among them): the host's, unless it only names loopback resolvers (such as
// systemd-resolved's 127.0.0.53), which pods cannot reach.
func resolvConf(dir string) (string, error) {
	for _, candidate := range []string{"/etc/resolv.conf", "/run/systemd/resolve/resolv.conf"} {
		if usableResolvConf(candidate) {
			return candidate, nil
		}
	}
	path := filepath.Join(dir, "etc", "resolv.conf")
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

// imports loads the pause image (pinned) and the airgap archives into
// containerd before the kubelet starts.
type imports struct {
	socket, snapshotter, pause string
	archives                   []string
	log                        klog.Logger
}

func (i *imports) Name() string { return "images" }

func (i *imports) Start(ctx context.Context) error {
	if err := containerd.ImportArchives(ctx, i.socket, i.snapshotter, []string{i.pause}, true, i.log); err != nil {
		return err
	}
	return containerd.ImportArchives(ctx, i.socket, i.snapshotter, i.archives, false, i.log)
}

func (i *imports) Ready(context.Context) error { return nil }
func (i *imports) Stop() error                 { return nil }

// cniWriter waits for the node's pod CIDR (from the controller-manager's
// node IPAM) and writes the CNI configuration; the runtime reports the
// network ready once it exists, and the node turns Ready.
type cniWriter struct {
	cfg     Config
	confDir string
	log     klog.Logger
	cancel  context.CancelFunc
	done    chan error
}

func (w *cniWriter) Name() string { return "cni" }

func (w *cniWriter) Start(context.Context) error {
	rest, err := clientcmd.BuildConfigFromFlags("", w.cfg.KubeletKubeconfig)
	if err != nil {
		return err
	}
	client, err := kubernetes.NewForConfig(rest)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel = cancel
	w.done = make(chan error, 1)
	go func() { w.done <- w.run(ctx, client) }()
	return nil
}

func (w *cniWriter) run(ctx context.Context, client kubernetes.Interface) error {
	for {
		node, err := client.CoreV1().Nodes().Get(ctx, w.cfg.NodeName, metav1.GetOptions{})
		if err == nil && node.Spec.PodCIDR != "" {
			mtu, err := hostMTU(w.cfg.NodeIP)
			if err != nil {
				return err
			}
			conf, err := cni.Conflist(node.Spec.PodCIDR, w.cfg.ClusterCIDR, mtu-50, filepath.Join(agentDir(w.cfg.DataDir), "cni"), w.cfg.FlannelBackend == "none")
			if err != nil {
				return err
			}
			if err := os.MkdirAll(w.confDir, 0o755); err != nil {
				return err
			}
			w.log.V(1).Info("Writing CNI configuration", "podCIDR", node.Spec.PodCIDR)
			return fileutil.WriteAtomic(filepath.Join(w.confDir, cni.ConflistName), conf, 0o644)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func (w *cniWriter) Ready(ctx context.Context) error {
	select {
	case err := <-w.done:
		w.done <- err
		return err
	case <-ctx.Done():
		return fmt.Errorf("node %s has no pod CIDR yet: %w", w.cfg.NodeName, ctx.Err())
	}
}

func (w *cniWriter) Stop() error {
	w.cancel()
	return nil
}

// hostMTU is the MTU of the interface that holds ip (1500 if none does).
func hostMTU(ip string) (int, error) {
	ifaces, err := net.Interfaces()
	if err != nil {
		return 0, err
	}
	want := net.ParseIP(ip)
	for _, iface := range ifaces {
		addrs, _ := iface.Addrs()
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.Equal(want) {
				return iface.MTU, nil
			}
		}
	}
	return 1500, nil
}
