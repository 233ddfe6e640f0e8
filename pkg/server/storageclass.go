package server

import (
	"context"
	"fmt"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"
)

// The StorageClasses the bundled add-ons make.
const (
	nfsStorageClass       = "nfs-csi"
	localPathStorageClass = "local-path"
)

// defaultClassAnnotations mark a default StorageClass (the beta one is
// still honoured by the apiserver).
var defaultClassAnnotations = []string{"storageclass.kubernetes.io/is-default-class", "storageclass.beta.kubernetes.io/is-default-class"}

// defaultClasses decides which bundled class (if any) is the default, never
// two: none when a class of the user's already is; else nfs-csi when it is
// deployed (nfs) and nfsMode is true or auto; else local-path when it is
// deployed (local).
func defaultClasses(ctx context.Context, client kubernetes.Interface, nfs bool, nfsMode string, local bool, log klog.Logger) (nfsDefault, localDefault bool, err error) {
	classes, err := client.StorageV1().StorageClasses().List(ctx, metav1.ListOptions{})
	if err != nil {
		return false, false, fmt.Errorf("list StorageClasses: %w", err)
	}
	var others []string
	for _, sc := range classes.Items {
		if sc.Name == nfsStorageClass || sc.Name == localPathStorageClass {
			continue
		}
		if slices.ContainsFunc(defaultClassAnnotations, func(a string) bool { return sc.Annotations[a] == "true" }) {
			others = append(others, sc.Name)
		}
	}
	if len(others) > 0 {
		if nfs && nfsMode == "true" {
			log.Error(nil, "nfs-csi is not made the default StorageClass: another one already is (remove its default annotation first)", "default", strings.Join(others, ","))
		}
		return false, false, nil
	}
	if nfs && nfsMode != "false" {
		return true, false, nil
	}
	return false, local, nil
}
