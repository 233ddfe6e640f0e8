package nodejoin

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	"github.com/kubling/kubling/pkg/component"
)

// Orphan grace and sweep period: a password Secret whose Node never
// registered (the machine joined, then went away) is removed after
// OrphanGrace, so its name does not stay blocked forever; a machine still
// starting its node keeps the name meanwhile.
const (
	OrphanGrace = 24 * time.Hour
	sweepPeriod = time.Hour
)

// PasswordCleaner frees a node's name when its Node is deleted (as users
// expect), by marking its password Secret, and sweeps Secrets whose Node
// has been absent longer than OrphanGrace.
type PasswordCleaner struct {
	// Client makes the client, once the apiserver is up.
	Client func() (kubernetes.Interface, error)
	// Informers is the cluster controllers' shared informer factory.
	Informers func() (informers.SharedInformerFactory, error)
	Log       klog.Logger
	// Now is the clock (tests); nil means time.Now.
	Now func() time.Time

	client kubernetes.Interface
	nodes  cache.SharedIndexInformer
	cancel context.CancelFunc
	done   chan struct{}
}

var _ component.Component = (*PasswordCleaner)(nil)

func (c *PasswordCleaner) Name() string { return "node-password-cleaner" }

func (c *PasswordCleaner) Start(ctx context.Context) error {
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
	c.nodes = factory.Core().V1().Nodes().Informer()
	if _, err := c.nodes.AddEventHandler(cache.ResourceEventHandlerFuncs{DeleteFunc: func(obj any) {
		if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = tomb.Obj
		}
		if n, ok := obj.(*corev1.Node); ok {
			c.nodeDeleted(ctx, n.Name)
		}
	}}); err != nil {
		return err
	}
	factory.Start(ctx.Done())
	c.done = make(chan struct{})
	go func() {
		defer close(c.done)
		if !cache.WaitForCacheSync(ctx.Done(), c.nodes.HasSynced) {
			return
		}
		wait.UntilWithContext(ctx, func(ctx context.Context) {
			if err := c.Sweep(ctx); err != nil {
				c.Log.Error(err, "Sweep node passwords")
			}
		}, sweepPeriod)
	}()
	return nil
}

func (c *PasswordCleaner) Ready(ctx context.Context) error {
	if !cache.WaitForCacheSync(ctx.Done(), c.nodes.HasSynced) {
		return fmt.Errorf("nodes not listed: %w", ctx.Err())
	}
	return nil
}

func (c *PasswordCleaner) Stop() error {
	c.cancel()
	<-c.done
	return nil
}

// nodeDeleted frees a deleted node's name: its password Secret is marked
// (CheckNodePassword then lets another machine take the name while no such
// Node exists) and removed at the next sweep. Deleting it at once would
// lock the name's own machine out if its kubelet registers the Node again
// before it joins (a Node without a stored password is nobody's to take).
func (c *PasswordCleaner) nodeDeleted(ctx context.Context, node string) {
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, NodeDeletedAnnotation, c.now().UTC().Format(time.RFC3339))
	_, err := c.client.CoreV1().Secrets(metav1.NamespaceSystem).Patch(ctx, PasswordSecret(node), types.MergePatchType, []byte(patch), metav1.PatchOptions{})
	switch {
	case err == nil:
		c.Log.Info("Node deleted; its name is free again", "node", node)
	case !apierrors.IsNotFound(err):
		c.Log.Error(err, "Free the name of a deleted node", "node", node)
	}
}

func (c *PasswordCleaner) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// Sweep removes password Secrets whose Node does not exist, OrphanGrace
// after their Node was deleted or, unmarked, after they were made (nodes
// deleted while no server ran, machines that joined and never registered).
func (c *PasswordCleaner) Sweep(ctx context.Context) error {
	secrets := c.client.CoreV1().Secrets(metav1.NamespaceSystem)
	list, err := secrets.List(ctx, metav1.ListOptions{LabelSelector: PasswordSecretLabel + "=true"})
	if err != nil {
		return fmt.Errorf("list node passwords: %w", err)
	}
	for _, s := range list.Items {
		node, ok := strings.CutSuffix(s.Name, PasswordSecret(""))
		since := s.CreationTimestamp.Time
		if at, err := time.Parse(time.RFC3339, s.Annotations[NodeDeletedAnnotation]); err == nil {
			since = at
		}
		if !ok || c.now().Sub(since) < OrphanGrace {
			continue
		}
		if _, exists, _ := c.nodes.GetStore().GetByKey(node); exists {
			continue
		}
		// The live node decides, not the cache alone.
		if _, err := c.client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			continue
		}
		uid := s.UID
		err := secrets.Delete(ctx, s.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return fmt.Errorf("remove the password of node %s: %w", node, err)
		}
		if err == nil {
			c.Log.Info("Removed the password of a node absent for a day", "node", node)
		}
	}
	return nil
}
