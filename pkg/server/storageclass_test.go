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

func TestNFSDefaultNeverMakesTwoDefaults(t *testing.T) {
	class := func(name, annotation string) *storagev1.StorageClass {
		sc := &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: name}, Provisioner: "example.com/x"}
		if annotation != "" {
			sc.Annotations = map[string]string{annotation: "true"}
		}
		return sc
	}
	for _, tc := range []struct {
		name    string
		mode    string
		classes []runtime.Object
		want    bool
	}{
		{"auto, no classes", "auto", nil, true},
		{"auto, other classes not default", "auto", []runtime.Object{class("slow", "")}, true},
		{"auto, nfs-csi itself default already", "auto", []runtime.Object{class(nfsStorageClass, defaultClassAnnotations[0])}, true},
		{"auto, another default", "auto", []runtime.Object{class("local", defaultClassAnnotations[0])}, false},
		{"auto, another default by the beta annotation", "auto", []runtime.Object{class("local", defaultClassAnnotations[1])}, false},
		{"true, another default: still not two", "true", []runtime.Object{class("local", defaultClassAnnotations[0])}, false},
		{"true, none", "true", nil, true},
		{"false", "false", nil, false},
	} {
		got, err := nfsDefault(context.Background(), fake.NewClientset(tc.classes...), tc.mode, klog.Background())
		if err != nil || got != tc.want {
			t.Errorf("%s: %v, %v; want %v", tc.name, got, err, tc.want)
		}
	}
}
