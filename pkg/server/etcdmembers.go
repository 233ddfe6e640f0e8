package server

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"

	"github.com/kubling/kubling/pkg/component"
	"github.com/kubling/kubling/pkg/datastore"
)

// EtcdMemberFinalizer holds a server's Node until its etcd member is
// removed: deleting the Node of a server removes the server from etcd,
// whichever server leads at the time (or later, should none lead then).
const EtcdMemberFinalizer = "kubling.io/etcd-member"

// etcdMembers is the controller behind EtcdMemberFinalizer. It runs on the
// leader only: it puts the finalizer on every server's Node (labelled
// control-plane) named after an etcd member, and, once such a Node is
// being deleted, removes the member and then the finalizer. The last
// member is never removed.
type etcdMembers struct {
	backend   datastore.Backend
	client    func() (kubernetes.Interface, error)
	informers func() (informers.SharedInformerFactory, error)
	log       klog.Logger

	kube   kubernetes.Interface
	nodes  corelisters.NodeLister
	synced cache.InformerSynced
	queue  workqueue.TypedRateLimitingInterface[string]
	cancel context.CancelFunc
	done   chan struct{}
}

var _ component.Component = (*etcdMembers)(nil)

func (m *etcdMembers) Name() string { return "etcd-member-controller" }

func (m *etcdMembers) Start(ctx context.Context) error {
	kube, err := m.client()
	if err != nil {
		return err
	}
	m.kube = kube
	ctx, m.cancel = context.WithCancel(ctx)
	factory, err := m.informers()
	if err != nil {
		return err
	}
	informer := factory.Core().V1().Nodes()
	m.nodes, m.synced = informer.Lister(), informer.Informer().HasSynced
	m.queue = workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]())
	enqueue := func(obj any) {
		if n, ok := obj.(*corev1.Node); ok {
			m.queue.Add(n.Name)
		}
	}
	if _, err := informer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: enqueue, UpdateFunc: func(_, obj any) { enqueue(obj) },
	}); err != nil {
		return err
	}
	factory.Start(ctx.Done())
	m.done = make(chan struct{})
	go func() {
		defer close(m.done)
		if !cache.WaitForCacheSync(ctx.Done(), m.synced) {
			return
		}
		// Every Node again each minute retries what etcd refused (it
		// refuses membership changes while its members are unsettled).
		go wait.UntilWithContext(ctx, func(context.Context) {
			nodes, _ := m.nodes.List(labels.Everything())
			for _, n := range nodes {
				m.queue.Add(n.Name)
			}
		}, time.Minute)
		wait.UntilWithContext(ctx, m.work, time.Second)
	}()
	return nil
}

func (m *etcdMembers) work(ctx context.Context) {
	for {
		name, quit := m.queue.Get()
		if quit {
			return
		}
		if err := m.sync(ctx, name); err != nil {
			m.log.V(1).Info("Etcd member of a node: trying again", "node", name, "err", err.Error())
			m.queue.AddRateLimited(name)
		} else {
			m.queue.Forget(name)
		}
		m.queue.Done(name)
	}
}

// memberAction is what the controller does about one Node.
type memberAction int

const (
	memberNone memberAction = iota
	// memberHold: a server's Node without the finalizer: put it on if the
	// Node is named after an etcd member.
	memberHold
	// memberRemove: a Node with the finalizer is being deleted: remove its
	// member (never the last), then the finalizer.
	memberRemove
)

// memberActionFor decides from the Node alone. Only servers' Nodes
// (labelled by their own server) can be members: agents' Nodes, updated
// all the time, cost etcd nothing.
func memberActionFor(node *corev1.Node) memberAction {
	has := slices.Contains(node.Finalizers, EtcdMemberFinalizer)
	_, server := node.Labels[controlPlaneLabel]
	switch {
	case node.DeletionTimestamp != nil && has:
		return memberRemove
	case node.DeletionTimestamp == nil && server && !has:
		return memberHold
	}
	return memberNone
}

// sync brings one Node's finalizer and etcd member in line.
func (m *etcdMembers) sync(ctx context.Context, name string) error {
	node, err := m.nodes.Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	} else if err != nil {
		return err
	}
	switch memberActionFor(node) {
	case memberHold:
		members, err := datastore.MemberNames(ctx, m.backend)
		if err != nil || !slices.Contains(members, name) {
			return err
		}
		return m.setFinalizer(ctx, node, append(slices.Clip(node.Finalizers), EtcdMemberFinalizer))
	case memberRemove:
		removed, err := datastore.RemoveMember(ctx, m.backend, name)
		switch {
		case errors.Is(err, datastore.ErrLastMember):
			m.log.Info("Node deleted; its etcd member is the cluster's last and stays", "node", name)
		case err != nil:
			return err
		case removed:
			m.log.Info("Node deleted; removed its etcd member", "node", name)
		}
		return m.setFinalizer(ctx, node, slices.DeleteFunc(slices.Clone(node.Finalizers), func(f string) bool { return f == EtcdMemberFinalizer }))
	}
	return nil
}

// setFinalizer writes a Node's finalizers (a conflict is retried by the
// queue with the Node as it is then).
func (m *etcdMembers) setFinalizer(ctx context.Context, node *corev1.Node, finalizers []string) error {
	n := node.DeepCopy()
	n.Finalizers = finalizers
	if _, err := m.kube.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("set the finalizers of node %s: %w", node.Name, err)
	}
	return nil
}

func (m *etcdMembers) Ready(ctx context.Context) error {
	if !cache.WaitForCacheSync(ctx.Done(), m.synced) {
		return fmt.Errorf("nodes not listed: %w", ctx.Err())
	}
	return nil
}

func (m *etcdMembers) Stop() error {
	m.cancel()
	m.queue.ShutDown()
	<-m.done
	return nil
}
