package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"

	"github.com/kubling/kubling/pkg/agent/host"
)

// NFSCondition is the node condition that says NFS volumes cannot mount on
// a node (True) or can (False), in the style of node-problem-detector.
const NFSCondition = "NFSUnavailable"

// nfsCondition reports the host's NFS support on its Node, so a missing
// client shows on the node (`kubectl describe node`) instead of as pods
// failing to mount later. The kubelet keeps conditions it does not own.
type nfsCondition struct {
	node, kubeconfig string
	nfs              host.NFS
	log              klog.Logger
	client           kubernetes.Interface
}

func (n *nfsCondition) Name() string { return "nfs-check" }

func (n *nfsCondition) Start(context.Context) error {
	rest, err := clientcmd.BuildConfigFromFlags("", n.kubeconfig)
	if err != nil {
		return err
	}
	n.client, err = kubernetes.NewForConfig(rest)
	if problem := n.nfs.Problem(); problem != "" {
		n.log.Info("NFS volumes: "+problem, "node", n.node)
	}
	return err
}

// condition is what the node should say.
func (n *nfsCondition) condition(now metav1.Time) corev1.NodeCondition {
	c := corev1.NodeCondition{Type: NFSCondition, Status: corev1.ConditionFalse, Reason: "NFSClientPresent",
		Message: "the kernel has an NFS client and mount.nfs is " + n.nfs.MountHelper, LastHeartbeatTime: now, LastTransitionTime: now}
	if problem := n.nfs.Problem(); problem != "" {
		c.Status, c.Message = corev1.ConditionTrue, problem
		c.Reason = "NFSClientMissing"
		if n.nfs.Kernel {
			c.Reason = "MountHelperMissing"
		}
	}
	return c
}

// Ready patches the condition once the node exists.
func (n *nfsCondition) Ready(ctx context.Context) error {
	patch, err := json.Marshal(map[string]any{"status": map[string]any{"conditions": []corev1.NodeCondition{n.condition(metav1.Now())}}})
	if err != nil {
		return err
	}
	for {
		_, err := n.client.CoreV1().Nodes().PatchStatus(ctx, n.node, patch)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("set node condition %s: %w", NFSCondition, err)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func (n *nfsCondition) Stop() error { return nil }
