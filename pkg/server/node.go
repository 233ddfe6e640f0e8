package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"path/filepath"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
	"k8s.io/kubernetes/pkg/util/taints"

	"github.com/kubling/kubling/pkg/agent"
	"github.com/kubling/kubling/pkg/agent/containerd"
	"github.com/kubling/kubling/pkg/component"
	"github.com/kubling/kubling/pkg/config"
	"github.com/kubling/kubling/pkg/server/kubeconfig"
	"github.com/kubling/kubling/pkg/server/pki"
)

// nodeComponents prepares the server's own node: its certificates (signed
// here, so no CSR waits for approval), kubeconfigs, and the agent's
// components, followed by the server-side labeller.
func nodeComponents(c *config.Server, p pki.PKI, apiURL string, log klog.Logger) ([]component.Component, error) {
	nodeIP := c.NodeIP
	if nodeIP == "" {
		ip, err := utilnet.ChooseHostInterface()
		if err != nil {
			return nil, fmt.Errorf("detect the node IP (set --node-ip): %w", err)
		}
		nodeIP = ip.String()
	}
	tlsDir := filepath.Join(c.DataDir, "agent", "tls")
	if _, err := p.EnsureNode(tlsDir, c.NodeName, []net.IP{net.ParseIP(nodeIP)}, nil); err != nil {
		return nil, fmt.Errorf("node certificates: %w", err)
	}
	node := pki.PKI{Dir: tlsDir}
	kubeletKubeconfig := filepath.Join(c.DataDir, "agent", "kubelet.kubeconfig")
	proxyKubeconfig := filepath.Join(c.DataDir, "agent", "kube-proxy.kubeconfig")
	flannelKubeconfig := filepath.Join(c.DataDir, "agent", "flannel.kubeconfig")
	for path, client := range map[string]string{kubeletKubeconfig: pki.KubeletClient, proxyKubeconfig: pki.KubeProxy, flannelKubeconfig: pki.Flannel} {
		spec := kubeconfig.Spec{Server: apiURL, CAFile: p.Cert(pki.ServerCA), CertFile: node.Cert(client), KeyFile: node.Key(client)}
		if err := kubeconfig.Write(path, spec, 0o600); err != nil {
			return nil, err
		}
	}
	labels := agent.ParseLabels(c.NodeLabels)
	registries, err := containerd.LoadRegistries(c.PrivateRegistry)
	if err != nil {
		return nil, err
	}
	add, _, err := taints.ParseTaints(c.NodeTaints)
	if err != nil {
		return nil, fmt.Errorf("--node-taint: %w", err)
	}
	parts, err := agent.Components(agent.Config{
		DataDir:             c.DataDir,
		NodeName:            c.NodeName,
		NodeIP:              nodeIP,
		Labels:              labels,
		Taints:              add,
		ClusterCIDR:         c.ClusterCIDR,
		ClusterDNS:          c.ClusterDNS,
		ClusterDomain:       c.ClusterDomain,
		KubeletKubeconfig:   kubeletKubeconfig,
		KubeProxyKubeconfig: proxyKubeconfig,
		FlannelKubeconfig:   flannelKubeconfig,
		FlannelBackend:      c.FlannelBackend,
		ClientCAFile:        p.Cert(pki.ClientCA),
		ServingCert:         node.Cert(pki.KubeletServing),
		ServingKey:          node.Key(pki.KubeletServing),
		KubeletArgs:         c.KubeletArgs,
		KubeProxyArgs:       c.KubeProxyArgs,
		DefaultRuntime:      c.DefaultRuntime,
		Registries:          registries,
	}, log)
	if err != nil {
		return nil, err
	}
	return append(parts, &roleLabeller{node: c.NodeName, kubeconfig: AdminKubeconfig(c.DataDir)}), nil
}

// controlPlaneLabel marks the server's node. The NodeRestriction admission
// plugin forbids a kubelet to set node-role labels on itself, so the server
// applies it.
const controlPlaneLabel = "node-role.kubernetes.io/control-plane"

// roleLabeller labels the server's node once it has registered.
type roleLabeller struct {
	node, kubeconfig string
	client           kubernetes.Interface
}

func (r *roleLabeller) Name() string { return "node-labels" }

func (r *roleLabeller) Start(context.Context) error {
	rest, err := clientcmd.BuildConfigFromFlags("", r.kubeconfig)
	if err != nil {
		return err
	}
	r.client, err = kubernetes.NewForConfig(rest)
	return err
}

func (r *roleLabeller) Ready(ctx context.Context) error {
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"labels": map[string]string{controlPlaneLabel: "true"}}})
	if err != nil {
		return err
	}
	for {
		_, err := r.client.CoreV1().Nodes().Patch(ctx, r.node, types.StrategicMergePatchType, patch, metav1.PatchOptions{})
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("label node %s: %w", r.node, err)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func (r *roleLabeller) Stop() error { return nil }
