package localstorage

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/klog/v2"
)

func volume(root, name, node string, reclaim corev1.PersistentVolumeReclaimPolicy) *corev1.PersistentVolume {
	return &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{"pv.kubernetes.io/provisioned-by": Provisioner, NodeAnnotation: node}},
		Spec: corev1.PersistentVolumeSpec{PersistentVolumeReclaimPolicy: reclaim,
			PersistentVolumeSource: corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: filepath.Join(root, name)}}},
		Status: corev1.PersistentVolumeStatus{Phase: corev1.VolumeBound},
	}
}

func start(t *testing.T, client kubernetes.Interface, state string) {
	t.Helper()
	n := New(Config{NodeName: "edge-1", Client: func() (kubernetes.Interface, error) { return client, nil }, StateDir: state, Log: klog.Background()})
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Stop() })
}

func eventually(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if ok() {
			return
		}
	}
	t.Fatalf("timed out waiting: %s", what)
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

func TestFoldersFollowTheNodesVolumes(t *testing.T) {
	ctx := context.Background()
	root, state := t.TempDir(), t.TempDir()
	client := fake.NewClientset()
	start(t, client, state)
	pvs := client.CoreV1().PersistentVolumes()

	gone := volume(root, "pvc-gone", "edge-1", corev1.PersistentVolumeReclaimDelete)
	kept := volume(root, "pvc-kept", "edge-1", corev1.PersistentVolumeReclaimRetain)
	other := volume(root, "pvc-other", "edge-2", corev1.PersistentVolumeReclaimDelete)
	for _, pv := range []*corev1.PersistentVolume{gone, kept, other} {
		if _, err := pvs.Create(ctx, pv, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "folders made", func() bool { return exists(filepath.Join(root, "pvc-gone")) && exists(filepath.Join(root, "pvc-kept")) })
	if fi, _ := os.Stat(filepath.Join(root, "pvc-gone")); fi.Mode().Perm() != 0o777 {
		t.Errorf("folder mode %v, want 0777 (pods of any user write there)", fi.Mode().Perm())
	}
	if exists(filepath.Join(root, "pvc-other")) {
		t.Error("made another node's folder")
	}
	os.WriteFile(filepath.Join(root, "pvc-gone", "data"), []byte("x"), 0o600)
	os.WriteFile(filepath.Join(root, "pvc-kept", "data"), []byte("x"), 0o600)

	// Released, then deleted (what the provisioner does for Delete).
	for _, pv := range []*corev1.PersistentVolume{gone, kept} {
		pv.Status.Phase = corev1.VolumeReleased
		if _, err := pvs.UpdateStatus(ctx, pv, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "released recorded", func() bool {
		data, _ := os.ReadFile(filepath.Join(state, "pvc-kept.json"))
		var s seen
		return json.Unmarshal(data, &s) == nil && s.Phase == corev1.VolumeReleased
	})
	for _, name := range []string{"pvc-gone", "pvc-kept"} {
		if err := pvs.Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "Delete volume's folder removed", func() bool { return !exists(filepath.Join(root, "pvc-gone")) })
	eventually(t, "states forgotten", func() bool {
		return !exists(filepath.Join(state, "pvc-gone.json")) && !exists(filepath.Join(state, "pvc-kept.json"))
	})
	if !exists(filepath.Join(root, "pvc-kept", "data")) {
		t.Error("Retain volume's data removed")
	}
}

// A volume deleted while the node was down: removed at its next start
// when it was released, kept when it was still bound (a datastore restored
// from an older snapshot lacks it, but its data is the user's).
func TestVolumesGoneWhileDown(t *testing.T) {
	root, state := t.TempDir(), t.TempDir()
	record := func(name string, phase corev1.PersistentVolumePhase) string {
		path := filepath.Join(root, name)
		os.MkdirAll(path, 0o777)
		data, _ := json.Marshal(seen{Path: path, Reclaim: corev1.PersistentVolumeReclaimDelete, Phase: phase})
		os.WriteFile(filepath.Join(state, name+".json"), data, 0o600)
		return path
	}
	released, bound, alive := record("pvc-released", corev1.VolumeReleased), record("pvc-bound", corev1.VolumeBound), record("pvc-alive", corev1.VolumeReleased)
	client := fake.NewClientset(volume(root, "pvc-alive", "edge-1", corev1.PersistentVolumeReclaimDelete))
	start(t, client, state)
	eventually(t, "released volume's folder removed", func() bool { return !exists(released) })
	eventually(t, "bound volume forgotten", func() bool { return !exists(filepath.Join(state, "pvc-bound.json")) })
	if !exists(bound) || !exists(alive) {
		t.Errorf("removed a folder it must keep: bound %v, alive %v", exists(bound), exists(alive))
	}
}

func TestFolderOnlyForItsOwnName(t *testing.T) {
	for _, p := range []string{"relative/pvc-1", "/srv/../etc/pvc-1", "/pvc-1", "/srv/other", "/srv/pvc-1/"} {
		pv := volume("/", "pvc-1", "n", corev1.PersistentVolumeReclaimDelete)
		pv.Spec.HostPath.Path = p
		if _, err := folder(pv); err == nil {
			t.Errorf("%q accepted as pvc-1's folder", p)
		}
	}
	if _, err := folder(volume("/var/lib/kubling/agent", "kubelet", "n", "")); err == nil {
		t.Error("a volume not named pvc-… accepted")
	}
	if p, err := folder(volume("/srv", "pvc-1", "n", "")); err != nil || p != "/srv/pvc-1" {
		t.Errorf("%q, %v", p, err)
	}
}
