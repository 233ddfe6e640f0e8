package agent

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"

	"github.com/kubling/kubling/pkg/agent/nvidia"
	"github.com/kubling/kubling/pkg/component"
	"github.com/kubling/kubling/pkg/hostcheck"
	"github.com/kubling/kubling/pkg/join"
	"github.com/kubling/kubling/pkg/kubeconfig"
)

// NFSCondition is the node condition that says NFS volumes cannot mount on
// a node (True) or can (False), in the style of node-problem-detector.
const NFSCondition = "NFSUnavailable"

// nodeReport puts what the agent found on the host onto its Node at every
// start: NFS support as a condition, so a missing client shows on the node
// (`kubectl describe node`) instead of as pods failing to mount later (the
// kubelet keeps conditions it does not own); and the GPU label, set or
// removed, since the kubelet applies its --node-labels only when it first
// registers the node.
type nodeReport struct {
	node, kubeconfig string
	nfs              hostcheck.NFS
	gpu              bool
	// externalIPs (--node-external-ip) go into join.ExternalIPAnnotation,
	// removed when none.
	externalIPs []string
	// networkAddOn names the pod network add-on (Calico) whose pods make
	// the node Ready; start-up does not wait for it, as they may first
	// pull their images for minutes (or never, airgapped without them).
	networkAddOn string
	log          klog.Logger
	client       kubernetes.Interface
}

var _ component.Component = (*nodeReport)(nil)

func (n *nodeReport) Name() string { return "node-report" }

func (n *nodeReport) Start(context.Context) error {
	var err error
	n.client, err = kubeconfig.NewClient(n.kubeconfig)
	if problem := n.nfs.Problem(); problem != "" {
		n.log.Info("NFS volumes: "+problem, "node", n.node)
	}
	return err
}

// condition is what the node should say.
func (n *nodeReport) condition(now metav1.Time) corev1.NodeCondition {
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

// Ready patches the node once it exists, then waits until it is Ready
// (unless a network add-on's pods make it so).
func (n *nodeReport) Ready(ctx context.Context) error {
	var gpu any // null removes the label
	if n.gpu {
		gpu = "true"
	}
	var external any // null removes the annotation
	if len(n.externalIPs) > 0 {
		external = strings.Join(n.externalIPs, ",")
	}
	if err := patchNode(ctx, n.client, n.node, map[string]any{nvidia.Label: gpu}, map[string]any{join.ExternalIPAnnotation: external},
		[]corev1.NodeCondition{n.condition(metav1.Now())}); err != nil {
		return err
	}
	if n.networkAddOn != "" {
		n.log.Info("The node turns Ready once "+n.networkAddOn+"'s pods have written the CNI configuration (kubectl -n kube-system get pods)", "node", n.node)
		return nil
	}
	return waitNodeReady(ctx, n.client, n.node)
}

// waitNodeReady waits until the kubelet reports the node Ready, so "ready"
// in kubling's log means pods can start; the error names the kubelet's last
// reason.
func waitNodeReady(ctx context.Context, client kubernetes.Interface, node string) error {
	last := "not registered"
	err := wait.PollUntilContextCancel(ctx, 200*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		n, err := client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
		if err != nil {
			last = err.Error()
			return false, nil
		}
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady {
				last = fmt.Sprintf("Ready=%s %s: %s", c.Status, c.Reason, c.Message)
				return c.Status == corev1.ConditionTrue, nil
			}
		}
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("node %s not Ready (%s): %w", node, last, err)
	}
	return nil
}

// LabelNode sets (a value) or removes (nil) labels on a node, retrying while
// it does not exist yet, until ctx ends. The server labels its own node's
// role with it, which the NodeRestriction admission plugin forbids the node.
func LabelNode(ctx context.Context, client kubernetes.Interface, node string, labels map[string]any) error {
	return patchNode(ctx, client, node, labels, nil, nil)
}

// patchNode sets the node's status conditions (when given), labels and
// annotations (when given; a nil value removes one), every 250 ms until
// both succeed (the node may not be registered yet) or ctx ends.
func patchNode(ctx context.Context, client kubernetes.Interface, node string, labels, annotations map[string]any, conditions []corev1.NodeCondition) error {
	meta := map[string]any{"labels": labels}
	if annotations != nil {
		meta["annotations"] = annotations
	}
	labelPatch, err := json.Marshal(map[string]any{"metadata": meta})
	if err != nil {
		return err
	}
	statusPatch, err := json.Marshal(map[string]any{"status": map[string]any{"conditions": conditions}})
	if err != nil {
		return err
	}
	var last error
	err = wait.PollUntilContextCancel(ctx, 250*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		last = nil
		if conditions != nil {
			_, last = client.CoreV1().Nodes().PatchStatus(ctx, node, statusPatch)
		}
		if last == nil {
			_, last = client.CoreV1().Nodes().Patch(ctx, node, types.StrategicMergePatchType, labelPatch, metav1.PatchOptions{})
		}
		return last == nil, nil
	})
	if err != nil {
		return fmt.Errorf("patch node %s: %w", node, cmp.Or(last, err))
	}
	return nil
}

func (n *nodeReport) Stop() error { return nil }
