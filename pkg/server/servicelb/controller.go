// Package servicelb answers Services of type LoadBalancer without a pod
// per Service: it writes the chosen nodes' addresses into each Service's
// status.loadBalancer.ingress, and kube-proxy, which already serves a
// Service's ingress addresses on every node, does the rest — so the
// client's address reaches the pod with externalTrafficPolicy Local, and
// two Services never fight over a host port: the younger one gets an Event
// naming the older and no address (Assign). It runs once per cluster,
// leader-elected with the other cluster controllers.
package servicelb

import (
	"context"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"

	"github.com/kubling/kubling/pkg/component"
	"github.com/kubling/kubling/pkg/server/keyqueue"
)

// Name is the component's name, and what --disable turns it off by.
const Name = "servicelb"

// syncKey is the queue's only key: a change to any Service, Node or
// EndpointSlice re-assigns them all (ports are held cluster-wide), and the
// queue folds a burst of changes into one pass.
const syncKey = "all"

// Config is what the controller needs.
type Config struct {
	// Client makes the cluster-admin client, once the apiserver is up.
	Client func() (kubernetes.Interface, error)
	// Informers is the cluster controllers' shared informer factory.
	Informers func() (informers.SharedInformerFactory, error)
	// Reserved are the nodes' own ports.
	Reserved []Port
	Log      klog.Logger
}

// Controller is the ServiceLB component.
type Controller struct {
	cfg         Config
	client      kubernetes.Interface
	services    corelisters.ServiceLister
	nodes       corelisters.NodeLister
	slices      discoverylisters.EndpointSliceLister
	synced      []cache.InformerSynced
	queue       *keyqueue.Queue
	broadcaster record.EventBroadcaster
	recorder    record.EventRecorder
	cancel      context.CancelFunc
	// problems is the last problem told per Service, so an Event is
	// recorded when it changes, not at every pass.
	problems map[string]string
}

var _ component.Component = (*Controller)(nil)

// New returns the controller; Start starts it.
func New(cfg Config) *Controller {
	return &Controller{cfg: cfg, problems: map[string]string{}}
}

func (c *Controller) Name() string { return Name }

func (c *Controller) Start(ctx context.Context) error {
	client, err := c.cfg.Client()
	if err != nil {
		return err
	}
	c.client = client
	ctx, c.cancel = context.WithCancel(ctx)
	factory, err := c.cfg.Informers()
	if err != nil {
		return err
	}
	c.queue = keyqueue.New(Name, "ServiceLB: update Services' addresses", func(ctx context.Context, _ string) error { return c.sync(ctx) }, c.cfg.Log)
	kick := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { c.queue.Add(syncKey) },
		UpdateFunc: func(any, any) { c.queue.Add(syncKey) },
		DeleteFunc: func(any) { c.queue.Add(syncKey) },
	}
	services := factory.Core().V1().Services()
	nodes := factory.Core().V1().Nodes()
	slices := factory.Discovery().V1().EndpointSlices()
	c.services, c.nodes, c.slices = services.Lister(), nodes.Lister(), slices.Lister()
	// Nodes change every heartbeat and endpoints with every pod: only
	// what an assignment reads kicks the queue.
	nodeChanges := cache.ResourceEventHandlerFuncs{
		AddFunc:    kick.AddFunc,
		DeleteFunc: kick.DeleteFunc,
		UpdateFunc: func(old, new any) {
			if o, ok := old.(*corev1.Node); !ok || nodeView(o) != nodeView(new.(*corev1.Node)) {
				c.queue.Add(syncKey)
			}
		},
	}
	sliceChanges := cache.FilteringResourceEventHandler{FilterFunc: c.ofLocalLoadBalancer, Handler: kick}
	for _, h := range []struct {
		informer cache.SharedIndexInformer
		handler  cache.ResourceEventHandler
	}{{services.Informer(), kick}, {nodes.Informer(), nodeChanges}, {slices.Informer(), sliceChanges}} {
		if _, err := h.informer.AddEventHandler(h.handler); err != nil {
			return err
		}
		c.synced = append(c.synced, h.informer.HasSynced)
	}
	c.broadcaster = record.NewBroadcaster(record.WithContext(ctx))
	c.broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: client.CoreV1().Events("")})
	c.recorder = c.broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "kubling-" + Name})
	factory.Start(ctx.Done())
	c.queue.Run(ctx, c.synced...)
	return nil
}

// nodeView is what an assignment reads of a node: its labels, addresses
// and readiness.
func nodeView(n *corev1.Node) string {
	ready := corev1.ConditionUnknown
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			ready = c.Status
		}
	}
	return fmt.Sprint(n.Labels, n.Status.Addresses, ready, n.DeletionTimestamp != nil)
}

// ofLocalLoadBalancer says whether an EndpointSlice belongs to a
// LoadBalancer Service with externalTrafficPolicy Local (the only ones
// whose nodes follow their endpoints).
func (c *Controller) ofLocalLoadBalancer(obj any) bool {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	slice, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok {
		return true
	}
	name := slice.Labels[discoveryv1.LabelServiceName]
	if name == "" {
		return false
	}
	svc, err := c.services.Services(slice.Namespace).Get(name)
	if err != nil {
		return false // gone: its own deletion kicks the queue
	}
	return svc.Spec.Type == corev1.ServiceTypeLoadBalancer && svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal
}

// Ready returns at once: the worker starts once the informers have listed,
// and nothing in kubling's start waits on it (each informer's sync would
// add a 100 ms poll to the node's start).
func (c *Controller) Ready(context.Context) error { return nil }

func (c *Controller) Stop() error {
	c.cancel()
	c.queue.Stop()
	c.broadcaster.Shutdown()
	return nil
}

// sync assigns addresses and writes each Service's status where it differs.
func (c *Controller) sync(ctx context.Context) error {
	var st State
	var err error
	if st.Services, err = c.services.List(labels.Everything()); err != nil {
		return err
	}
	if st.Nodes, err = c.nodes.List(labels.Everything()); err != nil {
		return err
	}
	if st.Endpoints, err = c.slices.List(labels.Everything()); err != nil {
		return err
	}
	st.Reserved = c.cfg.Reserved
	results := Assign(st)
	var errs []error
	for _, s := range st.Services {
		r, ok := results[key(s)]
		if !ok {
			continue
		}
		c.tell(s, r)
		if err := c.writeStatus(ctx, s, r.IPs); err != nil {
			errs = append(errs, err)
		}
	}
	// Forget Services that are gone or no longer ServiceLB's.
	for k := range c.problems {
		if _, ok := results[k]; !ok {
			delete(c.problems, k)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%d Services not updated, first: %w", len(errs), errs[0])
	}
	return nil
}

// tell records an Event when the Service's problem starts or changes.
func (c *Controller) tell(s *corev1.Service, r Result) {
	k, msg := key(s), ""
	if r.Problem != nil {
		msg = r.Problem.Reason + ": " + r.Problem.Message
	}
	if c.problems[k] == msg {
		return
	}
	if r.Problem != nil {
		c.recorder.Event(s, corev1.EventTypeWarning, r.Problem.Reason, r.Problem.Message)
		c.cfg.Log.Info("ServiceLB: no address for a Service", "service", k, "reason", r.Problem.Reason, "message", r.Problem.Message)
	}
	c.problems[k] = msg
}

// writeStatus sets the Service's ingress addresses, when they differ.
func (c *Controller) writeStatus(ctx context.Context, s *corev1.Service, ips []string) error {
	var ingress []corev1.LoadBalancerIngress
	for _, ip := range ips {
		ingress = append(ingress, corev1.LoadBalancerIngress{IP: ip})
	}
	if apiequality.Semantic.DeepEqual(ingress, s.Status.LoadBalancer.Ingress) ||
		len(ingress) == 0 && len(s.Status.LoadBalancer.Ingress) == 0 {
		return nil
	}
	updated := s.DeepCopy()
	updated.Status.LoadBalancer.Ingress = ingress
	_, err := c.client.CoreV1().Services(s.Namespace).UpdateStatus(ctx, updated, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		// Gone, or changed since listed: the informer brings the next pass.
		return nil
	}
	if err != nil {
		return fmt.Errorf("service %s: %w", key(s), err)
	}
	if len(ips) > 0 {
		c.recorder.Event(s, corev1.EventTypeNormal, "AddressesSet", "ServiceLB: answering on "+strings.Join(ips, ", "))
	} else {
		c.recorder.Event(s, corev1.EventTypeNormal, "AddressesRemoved", "ServiceLB: no node answers for this Service")
	}
	c.cfg.Log.V(1).Info("ServiceLB: addresses", "service", key(s), "ips", ips)
	return nil
}

// ReservedPorts are the ports every kubling node uses itself: the
// apiserver's (on servers; agents reach it on their address too), the
// kubelet's and etcd's where etcd runs (each as its owner says), and the
// pod networks' VXLAN and WireGuard ports.
func ReservedPorts(apiserverPort, kubeletPort int, etcdPorts ...int) []Port {
	ports := []Port{
		{Port: int32(apiserverPort), Protocol: corev1.ProtocolTCP, What: "kubling's apiserver"},
		{Port: int32(kubeletPort), Protocol: corev1.ProtocolTCP, What: "the kubelet's"},
		{Port: 8472, Protocol: corev1.ProtocolUDP, What: "flannel's VXLAN port"},
		{Port: 51820, Protocol: corev1.ProtocolUDP, What: "flannel's WireGuard port"},
		{Port: 51821, Protocol: corev1.ProtocolUDP, What: "flannel's WireGuard (IPv6) port"},
		{Port: 4789, Protocol: corev1.ProtocolUDP, What: "Calico's VXLAN port"},
	}
	for _, p := range etcdPorts {
		ports = append(ports, Port{Port: int32(p), Protocol: corev1.ProtocolTCP, What: "etcd's"})
	}
	return slices.Clip(ports)
}
