package server

import (
	"context"
	"testing"

	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/klog/v2"
)

func TestDefaultClassesNeverMakesTwoDefaults(t *testing.T) {
	class := func(name, annotation string) *storagev1.StorageClass {
		sc := &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: name}, Provisioner: "example.com/x"}
		if annotation != "" {
			sc.Annotations = map[string]string{annotation: "true"}
		}
		return sc
	}
	for _, tc := range []struct {
		name           string
		nfs            bool
		mode           string
		local          bool
		classes        []runtime.Object
		wantNFS, wantL bool
	}{
		{"nfs auto, no classes", true, "auto", true, nil, true, false},
		{"nfs auto, other classes not default", true, "auto", true, []runtime.Object{class("slow", "")}, true, false},
		{"nfs auto, nfs-csi itself default already", true, "auto", true, []runtime.Object{class(nfsStorageClass, defaultClassAnnotations[0])}, true, false},
		{"nfs auto, local-path default from an earlier start", true, "auto", true, []runtime.Object{class(localPathStorageClass, defaultClassAnnotations[0])}, true, false},
		{"nfs auto, another default", true, "auto", true, []runtime.Object{class("fast", defaultClassAnnotations[0])}, false, false},
		{"nfs auto, another default by the beta annotation", true, "auto", true, []runtime.Object{class("fast", defaultClassAnnotations[1])}, false, false},
		{"nfs true, another default: still not two", true, "true", true, []runtime.Object{class("fast", defaultClassAnnotations[0])}, false, false},
		{"nfs true, none", true, "true", false, nil, true, false},
		{"nfs false: local-path is", true, "false", true, nil, false, true},
		{"nfs false, local-storage disabled", true, "false", false, nil, false, false},
		{"no nfs: local-path", false, "auto", true, nil, false, true},
		{"no nfs, nfs-csi default from an earlier start: local-path", false, "auto", true, []runtime.Object{class(nfsStorageClass, defaultClassAnnotations[0])}, false, true},
		{"no nfs, another default", false, "auto", true, []runtime.Object{class("fast", defaultClassAnnotations[0])}, false, false},
	} {
		gotNFS, gotL, err := defaultClasses(context.Background(), fake.NewClientset(tc.classes...), tc.nfs, tc.mode, tc.local, klog.Background())
		if err != nil || gotNFS != tc.wantNFS || gotL != tc.wantL {
			t.Errorf("%s: nfs %v, local-path %v, %v; want %v, %v", tc.name, gotNFS, gotL, err, tc.wantNFS, tc.wantL)
		}
	}
}
