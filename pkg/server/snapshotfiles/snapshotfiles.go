// Package snapshotfiles lists each server's datastore snapshots in the
// cluster, as SnapshotFile objects (kubling.io/v1, cluster-scoped), the way
// K3s lists its etcd snapshots as ETCDSnapshotFile objects: `kubectl get
// snapshotfiles` shows what every server holds. The folder is the truth;
// the objects follow it.
package snapshotfiles

import (
	"context"
	_ "embed"
	"fmt"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"

	"github.com/kubling/kubling/pkg/component"
	"github.com/kubling/kubling/pkg/server/apply"
	"github.com/kubling/kubling/pkg/snapshot"
)

//go:embed crd.yaml
var crd []byte

// NodeLabel names the server whose folder an object mirrors.
const NodeLabel = "kubling.io/node"

var gvr = schema.GroupVersionResource{Group: "kubling.io", Version: "v1", Resource: "snapshotfiles"}

// Sync mirrors one server's snapshot folder.
type Sync struct {
	Dir, Node  string
	Kubeconfig string // the admin's
	Applier    *apply.Applier
	Log        klog.Logger

	dyn dynamic.Interface
	crd bool // applied
}

// Component syncs shortly after start and then every interval; a snapshot
// saved from the command line shows within one interval.
func (s *Sync) Component(interval time.Duration) component.Component {
	return component.NewPeriodic("snapshot-files", 2*time.Second, interval, s.Run,
		func(err error) { s.Log.Error(err, "List snapshots in the cluster; trying again", "in", interval) })
}

// Run makes the objects of this node match its folder.
func (s *Sync) Run(ctx context.Context) error {
	if s.dyn == nil {
		cfg, err := clientcmd.BuildConfigFromFlags("", s.Kubeconfig)
		if err != nil {
			return err
		}
		if s.dyn, err = dynamic.NewForConfig(cfg); err != nil {
			return err
		}
	}
	if !s.crd {
		if err := s.Applier.ApplyDocument(ctx, crd); err != nil {
			return fmt.Errorf("SnapshotFile type: %w", err)
		}
		// A new type is served a moment after it is created.
		err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
			_, err := s.dyn.Resource(gvr).List(ctx, metav1.ListOptions{Limit: 1})
			return err == nil, nil
		})
		if err != nil {
			return fmt.Errorf("SnapshotFile type not served: %w", err)
		}
		s.crd = true
	}
	files, err := snapshot.List(s.Dir)
	if err != nil {
		return err
	}
	want := map[string]bool{}
	for _, f := range files {
		obj := Object(f, s.Node)
		if len(validation.IsDNS1123Subdomain(obj.GetName())) > 0 {
			continue // a file copied in under a name no object can have
		}
		want[obj.GetName()] = true
		if _, err := s.Applier.Apply(ctx, obj); err != nil {
			return fmt.Errorf("SnapshotFile %s: %w", obj.GetName(), err)
		}
	}
	have, err := s.dyn.Resource(gvr).List(ctx, metav1.ListOptions{LabelSelector: NodeLabel + "=" + s.Node})
	if err != nil {
		return err
	}
	for _, o := range have.Items {
		if want[o.GetName()] {
			continue
		}
		if err := s.dyn.Resource(gvr).Delete(ctx, o.GetName(), metav1.DeleteOptions{}); err != nil {
			return fmt.Errorf("SnapshotFile %s: %w", o.GetName(), err)
		}
	}
	return nil
}

// Object is the SnapshotFile of f on node: named after the file (unique
// per node, as the node is in the name).
func Object(f snapshot.File, node string) *unstructured.Unstructured {
	kind := string(f.Info.Kind)
	if f.Info.Compressed {
		kind += "+zstd"
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "kubling.io/v1",
		"kind":       "SnapshotFile",
		"metadata": map[string]any{
			"name":   strings.ToLower(f.Name),
			"labels": map[string]any{NodeLabel: node},
		},
		"spec": map[string]any{
			"node":      node,
			"path":      f.Path,
			"kind":      kind,
			"size":      f.Size,
			"createdAt": f.Created.UTC().Format(time.RFC3339),
		},
	}}
}
