package localstorage

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/sig-storage-lib-external-provisioner/v13/controller"

	nodestorage "github.com/kubling/kubling/pkg/agent/localstorage"
)

func options(modes ...corev1.PersistentVolumeAccessMode) controller.ProvisionOptions {
	retain := corev1.PersistentVolumeReclaimRetain
	return controller.ProvisionOptions{
		StorageClass: &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "local-path"}, ReclaimPolicy: &retain},
		PVName:       "pvc-1234",
		PVC: &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "data", Namespace: "app"}, Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: modes,
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("2Gi")}},
		}},
		SelectedNodeName: "edge-1",
	}
}

func TestVolumeIsAFolderOnTheSelectedNode(t *testing.T) {
	pv, err := Volume(options(corev1.ReadWriteOnce), "/var/lib/kubling/storage", "edge-1.lan")
	if err != nil {
		t.Fatal(err)
	}
	if hp := pv.Spec.HostPath; hp == nil || hp.Path != "/var/lib/kubling/storage/pvc-1234" || *hp.Type != corev1.HostPathDirectoryOrCreate {
		t.Errorf("hostPath %+v", pv.Spec.HostPath)
	}
	if pv.Name != "pvc-1234" || pv.Annotations[nodestorage.NodeAnnotation] != "edge-1" {
		t.Errorf("meta %+v", pv.ObjectMeta)
	}
	if got := pv.Spec.Capacity[corev1.ResourceStorage]; got.String() != "2Gi" {
		t.Errorf("capacity %s", got.String())
	}
	if pv.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimRetain {
		t.Errorf("reclaim %s, want the class's", pv.Spec.PersistentVolumeReclaimPolicy)
	}
	term := pv.Spec.NodeAffinity.Required.NodeSelectorTerms[0].MatchExpressions[0]
	if term.Key != "kubernetes.io/hostname" || term.Operator != corev1.NodeSelectorOpIn || len(term.Values) != 1 || term.Values[0] != "edge-1.lan" {
		t.Errorf("node affinity %+v", term)
	}
}

func TestVolumeRefusesWhatAFolderCannotBe(t *testing.T) {
	immediate := options(corev1.ReadWriteOnce)
	immediate.SelectedNodeName = ""
	block := options(corev1.ReadWriteOnce)
	mode := corev1.PersistentVolumeBlock
	block.PVC.Spec.VolumeMode = &mode
	sizeless := options(corev1.ReadWriteOnce)
	sizeless.PVC.Spec.Resources.Requests = nil
	for name, tc := range map[string]struct {
		o    controller.ProvisionOptions
		want string
	}{
		"no node":       {immediate, "WaitForFirstConsumer"},
		"ReadWriteMany": {options(corev1.ReadWriteMany), "ReadWriteMany"},
		"block":         {block, "Block"},
		"no size":       {sizeless, "no storage size"},
	} {
		if _, err := Volume(tc.o, "/srv", "n"); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error naming %q", name, err, tc.want)
		}
	}
}
