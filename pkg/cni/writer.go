package cni

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"

	"github.com/kubling/kubling/pkg/component"
	"github.com/kubling/kubling/pkg/fileutil"
	"github.com/kubling/kubling/pkg/kubeconfig"
)

// WriterConfig says where the node's CNI configuration goes and what it holds.
type WriterConfig struct {
	NodeName    string
	NodeIP      string
	ClusterCIDR string
	// Kubeconfig may read the node (the kubelet's).
	Kubeconfig string
	// ConfDir receives the conflist; IPAMDir keeps the address leases.
	ConfDir, IPAMDir string
	// Masquerade pod traffic leaving the cluster CIDR on the bridge (when
	// flannel, which masquerades itself, is off).
	Masquerade bool
	Log        klog.Logger
}

// Writer is a component: it waits for the node's pod CIDR (from the
// controller-manager's node IPAM) and writes the CNI configuration; the
// runtime reports the network ready once it exists, and the node turns Ready.
type Writer struct {
	cfg    WriterConfig
	cancel context.CancelFunc
	done   chan error
}

var _ component.Component = (*Writer)(nil)

// NewWriter returns the CNI configuration writer.
func NewWriter(c WriterConfig) *Writer { return &Writer{cfg: c} }

func (w *Writer) Name() string { return "cni" }

func (w *Writer) Start(context.Context) error {
	client, err := kubeconfig.NewClient(w.cfg.Kubeconfig)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel = cancel
	w.done = make(chan error, 1)
	go func() { w.done <- w.run(ctx, client) }()
	return nil
}

func (w *Writer) run(ctx context.Context, client kubernetes.Interface) error {
	for {
		node, err := client.CoreV1().Nodes().Get(ctx, w.cfg.NodeName, metav1.GetOptions{})
		if err == nil && node.Spec.PodCIDR != "" {
			return w.write(node.Spec.PodCIDR)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// write renders the conflist for podCIDR, leaving room in the MTU for the
// VXLAN header.
func (w *Writer) write(podCIDR string) error {
	mtu, err := InterfaceMTU(w.cfg.NodeIP)
	if err != nil {
		return err
	}
	conf, err := Conflist(podCIDR, w.cfg.ClusterCIDR, mtu-50, w.cfg.IPAMDir, w.cfg.Masquerade)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(w.cfg.ConfDir, 0o755); err != nil {
		return err
	}
	w.cfg.Log.V(1).Info("Writing CNI configuration", "podCIDR", podCIDR)
	return fileutil.WriteAtomic(filepath.Join(w.cfg.ConfDir, ConflistName), conf, 0o644)
}

func (w *Writer) Ready(ctx context.Context) error {
	select {
	case err := <-w.done:
		w.done <- err
		return err
	case <-ctx.Done():
		return fmt.Errorf("node %s has no pod CIDR yet: %w", w.cfg.NodeName, ctx.Err())
	}
}

func (w *Writer) Stop() error {
	w.cancel()
	return nil
}

// RemoveConflist removes the CNI configuration the writer wrote, for a
// node whose pod network is another's (Calico's); none is fine.
func RemoveConflist(confDir string) error {
	if err := os.Remove(filepath.Join(confDir, ConflistName)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove kubling's CNI configuration: %w", err)
	}
	return nil
}
