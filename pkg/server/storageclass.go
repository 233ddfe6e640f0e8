package server

import (
	"context"
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"
)

// nfsStorageClass is the StorageClass the nfs-csi add-on makes.
const nfsStorageClass = "nfs-csi"

// defaultClassAnnotations mark a default StorageClass (the beta one is
// still honoured by the apiserver).
var defaultClassAnnotations = []string{"storageclass.kubernetes.io/is-default-class", "storageclass.beta.kubernetes.io/is-default-class"}

// nfsDefault decides whether nfs-csi is the default StorageClass: never
// when another class already is (never two defaults), else when mode is
// true or auto.
func nfsDefault(ctx context.Context, client kubernetes.Interface, mode string, log klog.Logger) (bool, error) {
	if mode == "false" {
		return false, nil
	}
	classes, err := client.StorageV1().StorageClasses().List(ctx, metav1.ListOptions{})
	if err != nil {
		return false, fmt.Errorf("list StorageClasses: %w", err)
	}
	var others []string
	for _, sc := range classes.Items {
		if sc.Name == nfsStorageClass {
			continue
		}
		for _, a := range defaultClassAnnotations {
			if sc.Annotations[a] == "true" {
				others = append(others, sc.Name)
				break
			}
		}
	}
	if len(others) == 0 {
		return true, nil
	}
	if mode == "true" {
		log.Error(nil, "nfs-csi is not made the default StorageClass: another one already is (remove its default annotation first)", "default", strings.Join(others, ","))
	}
	return false, nil
}
