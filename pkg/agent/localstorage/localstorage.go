// Package localstorage makes and removes this node's local-path volume
// folders (the server's pkg/server/localstorage writes the
// PersistentVolume objects). It watches the volumes, with the node's own
// credential (nodes may read PersistentVolumes: pkg/server/rbac.yaml),
// and keeps what it saw of each of its volumes in a small state file, so a
// volume deleted while the node was down is handled at its next start.
//
// A folder is removed only when its volume was Released with reclaim
// policy Delete the last time this node saw it, and is then gone: a volume
// that disappears while still Bound (a datastore restored from an older
// snapshot, say) keeps its data.
package localstorage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	"github.com/kubling/kubling/pkg/component"
	"github.com/kubling/kubling/pkg/fileutil"
)

// Name is the component's name (the server's provisioner is
// "local-storage").
const Name = "local-storage-node"

// Provisioner is the local-path StorageClass's provisioner name (the
// server's pkg/server/localstorage).
const Provisioner = "kubling.io/local-path"

// NodeAnnotation on a local-path volume names the node whose folder it is
// (its node affinity matches that node's hostname label).
const NodeAnnotation = "local.kubling.io/node"

// Config is what the node side needs.
type Config struct {
	NodeName string
	// Client makes the node's client (its kubelet credential).
	Client func() (kubernetes.Interface, error)
	// StateDir keeps one file per volume of this node.
	StateDir string
	Log      klog.Logger
}

// Node is the node-side component.
type Node struct {
	cfg    Config
	mu     sync.Mutex // one volume change at a time
	cancel context.CancelFunc
	done   sync.WaitGroup
	synced cache.InformerSynced
}

var _ component.Component = (*Node)(nil)

// New returns the component; Start starts it.
func New(cfg Config) *Node { return &Node{cfg: cfg} }

func (n *Node) Name() string { return Name }

// seen is what the node last saw of one of its volumes.
type seen struct {
	Path    string                               `json:"path"`
	Reclaim corev1.PersistentVolumeReclaimPolicy `json:"reclaimPolicy"`
	Phase   corev1.PersistentVolumePhase         `json:"phase"`
}

func (n *Node) Start(ctx context.Context) error {
	client, err := n.cfg.Client()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(n.cfg.StateDir, 0o700); err != nil {
		return fmt.Errorf("local storage state: %w", err)
	}
	ctx, n.cancel = context.WithCancel(ctx)
	factory := informers.NewSharedInformerFactory(client, 0)
	volumes := factory.Core().V1().PersistentVolumes().Informer()
	if _, err := volumes.AddEventHandler(cache.FilteringResourceEventHandler{
		FilterFunc: func(obj any) bool {
			pv, ok := volumeOf(obj)
			return ok && n.owns(pv)
		},
		Handler: cache.ResourceEventHandlerFuncs{
			AddFunc:    func(obj any) { n.saw(obj.(*corev1.PersistentVolume)) },
			UpdateFunc: func(_, obj any) { n.saw(obj.(*corev1.PersistentVolume)) },
			DeleteFunc: func(obj any) {
				if pv, ok := volumeOf(obj); ok {
					n.gone(pv.Name, pv)
				}
			},
		},
	}); err != nil {
		return err
	}
	n.synced = volumes.HasSynced
	factory.Start(ctx.Done())
	n.done.Go(func() {
		defer factory.Shutdown()
		if !cache.WaitForCacheSync(ctx.Done(), volumes.HasSynced) {
			return
		}
		n.sweep(volumes.GetStore())
		<-ctx.Done()
	})
	return nil
}

// Ready returns at once: volumes are handled whenever the apiserver answers.
func (n *Node) Ready(context.Context) error { return nil }

func (n *Node) Stop() error {
	n.cancel()
	n.done.Wait()
	return nil
}

func volumeOf(obj any) (*corev1.PersistentVolume, bool) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	pv, ok := obj.(*corev1.PersistentVolume)
	return pv, ok
}

// owns says the volume is a local-path volume of this node.
func (n *Node) owns(pv *corev1.PersistentVolume) bool {
	return pv.Annotations["pv.kubernetes.io/provisioned-by"] == Provisioner &&
		pv.Annotations[NodeAnnotation] == n.cfg.NodeName && pv.Spec.HostPath != nil
}

// folder is the volume's folder, if it is one kubling may make and remove:
// an absolute, clean path whose last element is the volume's name, a
// provisioned one (pvc-<claim UID>), so a hand-made volume that copies the
// annotations cannot name a folder of the system's.
func folder(pv *corev1.PersistentVolume) (string, error) {
	p := pv.Spec.HostPath.Path
	if !strings.HasPrefix(pv.Name, "pvc-") || !filepath.IsAbs(p) || filepath.Clean(p) != p || filepath.Base(p) != pv.Name || filepath.Dir(p) == "/" {
		return "", fmt.Errorf("volume %s: path %q is not a local-path folder (<root>/%s)", pv.Name, p, pv.Name)
	}
	return p, nil
}

// saw makes a new volume's folder (writable by any pod user, as the
// kubelet would make it only for root) and records the volume's state.
func (n *Node) saw(pv *corev1.PersistentVolume) {
	n.mu.Lock()
	defer n.mu.Unlock()
	log := n.cfg.Log.WithValues("volume", pv.Name)
	path, err := folder(pv)
	if err != nil {
		log.Error(err, "Local volume left alone")
		return
	}
	state := n.statePath(pv.Name)
	if _, err := os.Stat(state); errors.Is(err, os.ErrNotExist) && pv.DeletionTimestamp == nil && pv.Status.Phase != corev1.VolumeReleased {
		if err := makeFolder(path); err != nil {
			log.Error(err, "Make local volume folder")
			return
		}
		log.Info("Made local volume folder", "path", path)
	}
	data, _ := json.Marshal(seen{Path: path, Reclaim: pv.Spec.PersistentVolumeReclaimPolicy, Phase: pv.Status.Phase})
	if err := fileutil.WriteAtomic(state, data, 0o600); err != nil {
		log.Error(err, "Record local volume")
	}
}

func makeFolder(path string) error {
	if err := os.MkdirAll(path, 0o777); err != nil {
		return err
	}
	return os.Chmod(path, 0o777) // MkdirAll's mode passes the umask
}

// gone handles a volume whose object is deleted: last (when known) is its
// final state, else the recorded one decides.
func (n *Node) gone(name string, last *corev1.PersistentVolume) {
	n.mu.Lock()
	defer n.mu.Unlock()
	log := n.cfg.Log.WithValues("volume", name)
	state := n.statePath(name)
	var s seen
	data, err := os.ReadFile(state)
	if err == nil {
		err = json.Unmarshal(data, &s)
	}
	if err != nil && last == nil {
		log.Error(err, "Local volume state unreadable; its folder is kept")
		return
	}
	if last != nil {
		path, err := folder(last)
		if err != nil {
			log.Error(err, "Local volume left alone")
			return
		}
		s = seen{Path: path, Reclaim: last.Spec.PersistentVolumeReclaimPolicy, Phase: last.Status.Phase}
	}
	if s.Reclaim == corev1.PersistentVolumeReclaimDelete && s.Phase == corev1.VolumeReleased {
		if err := os.RemoveAll(s.Path); err != nil {
			log.Error(err, "Remove local volume folder", "path", s.Path)
			return // the state stays: tried again at the next start
		}
		log.Info("Removed local volume folder", "path", s.Path)
	} else {
		log.Info("Local volume gone; its folder is kept", "path", s.Path, "reclaimPolicy", s.Reclaim, "phase", s.Phase)
	}
	if err := os.Remove(state); err != nil && !errors.Is(err, os.ErrNotExist) {
		log.Error(err, "Forget local volume")
	}
}

// sweep handles the volumes deleted while the node was down: recorded, and
// no longer in the (synced) store.
func (n *Node) sweep(store cache.Store) {
	entries, err := os.ReadDir(n.cfg.StateDir)
	if err != nil {
		n.cfg.Log.Error(err, "Read local volume states")
		return
	}
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok {
			continue
		}
		if _, exists, err := store.GetByKey(name); err == nil && !exists {
			n.gone(name, nil)
		}
	}
}

func (n *Node) statePath(volume string) string {
	return filepath.Join(n.cfg.StateDir, volume+".json")
}
