// Package nodeaddress gives nodes started with --node-external-ip their
// ExternalIP addresses. The kubelet has no flag for an external address
// and rewrites a Node's addresses from its own flags, except when it runs
// with --cloud-provider=external: then it sets them once (InternalIP from
// --node-ip, Hostname) and leaves them to a cloud controller, and taints a
// new Node node.cloudprovider.kubernetes.io/uninitialized until one has
// been. This controller is kubling's cloud controller for addresses only:
// for each Node carrying join.ExternalIPAnnotation (written by the node),
// it writes InternalIP, ExternalIP and Hostname addresses and lifts the
// taint. Nodes without the annotation are the kubelet's alone.
package nodeaddress

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	cloudproviderapi "k8s.io/cloud-provider/api"
	"k8s.io/klog/v2"

	"github.com/kubling/kubling/pkg/component"
	"github.com/kubling/kubling/pkg/join"
	"github.com/kubling/kubling/pkg/server/keyqueue"
)

// Name is the component's name.
const Name = "node-address"

// Controller is the node-address component.
type Controller struct {
	// Client makes the cluster-admin client, once the apiserver is up.
	Client func() (kubernetes.Interface, error)
	// Informers is the cluster controllers' shared informer factory.
	Informers func() (informers.SharedInformerFactory, error)
	Log       klog.Logger

	client kubernetes.Interface
	nodes  corelisters.NodeLister
	synced cache.InformerSynced
	queue  *keyqueue.Queue
	cancel context.CancelFunc
}

var _ component.Component = (*Controller)(nil)

func (c *Controller) Name() string { return Name }

func (c *Controller) Start(ctx context.Context) error {
	client, err := c.Client()
	if err != nil {
		return err
	}
	c.client = client
	ctx, c.cancel = context.WithCancel(ctx)
	factory, err := c.Informers()
	if err != nil {
		return err
	}
	c.queue = keyqueue.New(Name, "Node addresses", c.sync, c.Log)
	nodes := factory.Core().V1().Nodes()
	enqueue := func(obj any) {
		if n, ok := obj.(*corev1.Node); ok && n.Annotations[join.ExternalIPAnnotation] != "" {
			c.queue.Add(n.Name)
		}
	}
	if _, err := nodes.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: enqueue, UpdateFunc: func(_, obj any) { enqueue(obj) },
	}); err != nil {
		return err
	}
	c.nodes, c.synced = nodes.Lister(), nodes.Informer().HasSynced
	factory.Start(ctx.Done())
	c.queue.Run(ctx, c.synced)
	return nil
}

// Ready returns at once: the worker starts once the Nodes are listed, and
// nothing in kubling's start waits on it.
func (c *Controller) Ready(context.Context) error { return nil }

func (c *Controller) Stop() error {
	c.cancel()
	c.queue.Stop()
	return nil
}

// sync writes one node's addresses and lifts its taint.
func (c *Controller) sync(ctx context.Context, name string) error {
	n, err := c.nodes.Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	want, ok := Addresses(n)
	if !ok {
		return nil
	}
	if !apiequality.Semantic.DeepEqual(want, n.Status.Addresses) {
		// A merge patch replaces the list whole (a strategic one merges
		// addresses by type, and a node may have two of one type).
		patch, err := json.Marshal(map[string]any{"status": map[string]any{"addresses": want}})
		if err != nil {
			return err
		}
		if _, err := c.client.CoreV1().Nodes().Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{}, "status"); err != nil {
			return fmt.Errorf("set addresses: %w", err)
		}
		c.Log.Info("Node addresses set", "node", name, "addresses", want)
	}
	if !slices.ContainsFunc(n.Spec.Taints, uninitialized) {
		return nil
	}
	updated := n.DeepCopy()
	updated.Spec.Taints = slices.DeleteFunc(updated.Spec.Taints, uninitialized)
	// The resourceVersion guards against a taint added meanwhile; a
	// conflict comes back through the informer.
	if _, err := c.client.CoreV1().Nodes().Update(ctx, updated, metav1.UpdateOptions{}); err != nil && !apierrors.IsConflict(err) {
		return fmt.Errorf("remove taint %s: %w", cloudproviderapi.TaintExternalCloudProvider, err)
	}
	return nil
}

func uninitialized(t corev1.Taint) bool { return t.Key == cloudproviderapi.TaintExternalCloudProvider }

// Addresses are the node's addresses with its external IPs: InternalIPs
// from the kubelet's --node-ip (its provided-node-ip annotation, else the
// InternalIPs it set), the annotation's ExternalIPs, and the Hostname
// addresses it has. False when the node carries no (valid) external IP.
func Addresses(n *corev1.Node) ([]corev1.NodeAddress, bool) {
	external := parseIPs(n.Annotations[join.ExternalIPAnnotation])
	if len(external) == 0 {
		return nil, false
	}
	var out []corev1.NodeAddress
	internal := parseIPs(n.Annotations[cloudproviderapi.AnnotationAlphaProvidedIPAddr])
	if len(internal) == 0 {
		for _, a := range n.Status.Addresses {
			if a.Type == corev1.NodeInternalIP {
				internal = append(internal, a.Address)
			}
		}
	}
	for _, ip := range internal {
		out = append(out, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: ip})
	}
	for _, ip := range external {
		out = append(out, corev1.NodeAddress{Type: corev1.NodeExternalIP, Address: ip})
	}
	hostname := false
	for _, a := range n.Status.Addresses {
		if a.Type == corev1.NodeHostName {
			out, hostname = append(out, a), true
		}
	}
	if !hostname {
		out = append(out, corev1.NodeAddress{Type: corev1.NodeHostName, Address: n.Name})
	}
	return out, true
}

// parseIPs reads a comma-separated address list, skipping what is not an IP.
func parseIPs(list string) []string {
	var ips []string
	for _, s := range strings.Split(list, ",") {
		if ip, err := netip.ParseAddr(strings.TrimSpace(s)); err == nil {
			ips = append(ips, ip.String())
		}
	}
	return ips
}
