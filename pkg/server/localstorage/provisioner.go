// Package localstorage provisions the local-path StorageClass's volumes:
// a folder on the node the claim's pod was scheduled to
// (WaitForFirstConsumer), as a hostPath PersistentVolume bound to that
// node. It runs in the server, once per cluster with the other cluster
// controllers, on sig-storage-lib-external-provisioner; no helper pod and
// no image. The node that owns a folder makes and removes it
// (pkg/agent/localstorage): this side only writes and deletes the
// PersistentVolume objects.
package localstorage

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/klog/v2"
	"sigs.k8s.io/sig-storage-lib-external-provisioner/v13/controller"

	nodestorage "github.com/kubling/kubling/pkg/agent/localstorage"
	"github.com/kubling/kubling/pkg/component"
)

// Name is the component's name, the bundled StorageClass's add-on and what
// --disable turns both off by.
const Name = "local-storage"

const hostnameLabel = "kubernetes.io/hostname"

// Config is what the provisioner needs.
type Config struct {
	// Client makes the cluster-admin client, once the apiserver is up.
	Client func() (kubernetes.Interface, error)
	// Informers is the cluster controllers' shared informer factory.
	Informers func() (informers.SharedInformerFactory, error)
	// Root is the folder volumes are made in on every node
	// (--default-local-storage-path).
	Root string
	Log  klog.Logger
}

// Controller is the local-path provisioner component.
type Controller struct {
	cfg    Config
	nodes  corelisters.NodeLister
	cancel context.CancelFunc
	done   sync.WaitGroup
}

var _ component.Component = (*Controller)(nil)

// New returns the provisioner; Start starts it.
func New(cfg Config) *Controller { return &Controller{cfg: cfg} }

func (c *Controller) Name() string { return Name }

func (c *Controller) Start(ctx context.Context) error {
	client, err := c.cfg.Client()
	if err != nil {
		return err
	}
	factory, err := c.cfg.Informers()
	if err != nil {
		return err
	}
	ctx, c.cancel = context.WithCancel(klog.NewContext(ctx, c.cfg.Log.WithName(Name)))
	c.nodes = factory.Core().V1().Nodes().Lister()
	pc := controller.NewProvisionController(ctx, client, nodestorage.Provisioner, volumes{root: c.cfg.Root, nodes: c.nodes},
		controller.LeaderElection(false), // the cluster controllers are elected together
		controller.ClaimsInformer(factory.Core().V1().PersistentVolumeClaims().Informer()),
		controller.VolumesInformer(factory.Core().V1().PersistentVolumes().Informer()),
		controller.ClassesInformer(factory.Storage().V1().StorageClasses().Informer()),
	)
	factory.Start(ctx.Done())
	c.done.Go(func() { pc.Run(ctx) })
	return nil
}

func (c *Controller) Ready(context.Context) error { return nil }

func (c *Controller) Stop() error {
	c.cancel()
	c.done.Wait()
	return nil
}

// volumes makes and deletes the PersistentVolume objects.
type volumes struct {
	root  string
	nodes corelisters.NodeLister
}

var (
	_ controller.Provisioner = volumes{}
	_ controller.Qualifier   = volumes{}
)

// ShouldProvision takes claims whose pod is scheduled (the library checks
// the class's binding mode; a class of ours with Immediate gets an Event
// from Provision).
func (v volumes) ShouldProvision(context.Context, *corev1.PersistentVolumeClaim) bool { return true }

// Provision returns the volume for a claim whose pod was scheduled to
// SelectedNodeName: <root>/<volume name> on that node.
func (v volumes) Provision(_ context.Context, o controller.ProvisionOptions) (*corev1.PersistentVolume, controller.ProvisioningState, error) {
	pv, err := Volume(o, v.root, v.hostname(o.SelectedNodeName))
	if err != nil {
		return nil, controller.ProvisioningFinished, err
	}
	return pv, controller.ProvisioningFinished, nil
}

// hostname is the node's hostname label (the node affinity's key), its
// name where it has none.
func (v volumes) hostname(node string) string {
	if n, err := v.nodes.Get(node); err == nil && n.Labels[hostnameLabel] != "" {
		return n.Labels[hostnameLabel]
	}
	return node
}

// Delete lets the library delete a released volume's object: the node
// that owns the folder removes it once the object is gone
// (pkg/agent/localstorage), or at its next start when it was down.
func (v volumes) Delete(context.Context, *corev1.PersistentVolume) error { return nil }

// Volume is the PersistentVolume for a claim on node (whose hostname label
// is hostname): a hostPath folder named after the volume under root, the
// claim's requested size, the class's reclaim policy.
func Volume(o controller.ProvisionOptions, root, hostname string) (*corev1.PersistentVolume, error) {
	if o.SelectedNodeName == "" {
		return nil, errors.New("local-path volumes are made on the node a pod is scheduled to: the StorageClass needs volumeBindingMode WaitForFirstConsumer")
	}
	if slices.Contains(o.PVC.Spec.AccessModes, corev1.ReadWriteMany) {
		return nil, errors.New("a local-path volume is a folder on one node: ReadWriteMany is not possible (use ReadWriteOnce, or nfs-csi)")
	}
	if o.PVC.Spec.VolumeMode != nil && *o.PVC.Spec.VolumeMode == corev1.PersistentVolumeBlock {
		return nil, errors.New("a local-path volume is a folder: volumeMode Block is not possible")
	}
	size, ok := o.PVC.Spec.Resources.Requests[corev1.ResourceStorage]
	if !ok {
		return nil, fmt.Errorf("claim %s/%s requests no storage size", o.PVC.Namespace, o.PVC.Name)
	}
	reclaim := corev1.PersistentVolumeReclaimDelete
	if o.StorageClass.ReclaimPolicy != nil {
		reclaim = *o.StorageClass.ReclaimPolicy
	}
	folder := corev1.HostPathDirectoryOrCreate
	filesystem := corev1.PersistentVolumeFilesystem
	return &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: o.PVName, Annotations: map[string]string{nodestorage.NodeAnnotation: o.SelectedNodeName}},
		Spec: corev1.PersistentVolumeSpec{
			PersistentVolumeReclaimPolicy: reclaim,
			AccessModes:                   o.PVC.Spec.AccessModes,
			VolumeMode:                    &filesystem,
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: size},
			PersistentVolumeSource: corev1.PersistentVolumeSource{
				HostPath: &corev1.HostPathVolumeSource{Path: filepath.Join(root, o.PVName), Type: &folder},
			},
			NodeAffinity: &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
				MatchExpressions: []corev1.NodeSelectorRequirement{{Key: hostnameLabel, Operator: corev1.NodeSelectorOpIn, Values: []string{hostname}}},
			}}}},
		},
	}, nil
}
