package manifests

import (
	"context"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
)

// FieldManager owns the fields kubling applies.
const FieldManager = "kubling"

// Applier server-side-applies objects as kubling.
type Applier struct {
	dyn    dynamic.Interface
	mapper *restmapper.DeferredDiscoveryRESTMapper
}

// NewApplier works as the kubeconfig's user.
func NewApplier(kubeconfig string) (*Applier, error) {
	rest, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(rest)
	if err != nil {
		return nil, err
	}
	disc, err := discovery.NewDiscoveryClientForConfig(rest)
	if err != nil {
		return nil, err
	}
	return &Applier{dyn: dyn, mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(disc))}, nil
}

// ApplyDocument applies every object of a multi-document YAML, stopping at
// the first error (for kubling's own objects, which must all land).
func (a *Applier) ApplyDocument(ctx context.Context, doc []byte) error {
	objs, err := Decode(doc)
	if err != nil {
		return err
	}
	for _, obj := range objs {
		if _, err := a.Apply(ctx, obj); err != nil {
			return fmt.Errorf("%s: %w", RefOf(obj), err)
		}
	}
	return nil
}

// Apply applies one object and returns its reference (with the namespace
// defaulted for namespaced kinds). A kind that is not discoverable yet (a
// CRD applied a moment ago) is retried for a few seconds.
func (a *Applier) Apply(ctx context.Context, obj *unstructured.Unstructured) (Ref, error) {
	var err error
	for attempt := 0; attempt < 20; attempt++ {
		var ref Ref
		if ref, err = a.applyOnce(ctx, obj); err == nil || !meta.IsNoMatchError(err) {
			return ref, err
		}
		a.mapper.Reset()
		select {
		case <-ctx.Done():
			return RefOf(obj), ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
	return RefOf(obj), err
}

func (a *Applier) resource(ref Ref) (dynamic.ResourceInterface, bool, error) {
	gvk := ref.GroupVersionKind()
	m, err := a.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return nil, false, err
	}
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		ns := ref.Namespace
		if ns == "" {
			ns = metav1.NamespaceDefault
		}
		return a.dyn.Resource(m.Resource).Namespace(ns), true, nil
	}
	return a.dyn.Resource(m.Resource), false, nil
}

func (a *Applier) applyOnce(ctx context.Context, obj *unstructured.Unstructured) (Ref, error) {
	ref := RefOf(obj)
	ri, namespaced, err := a.resource(ref)
	if err != nil {
		return ref, err
	}
	if namespaced && ref.Namespace == "" {
		ref.Namespace = metav1.NamespaceDefault
		obj.SetNamespace(ref.Namespace)
	}
	if !namespaced {
		ref.Namespace = ""
		obj.SetNamespace("")
	}
	_, err = ri.Apply(ctx, obj.GetName(), obj, metav1.ApplyOptions{FieldManager: FieldManager, Force: true})
	return ref, err
}

// Delete removes the object ref names; one already gone is no error.
func (a *Applier) Delete(ctx context.Context, ref Ref) error {
	ri, _, err := a.resource(ref)
	if meta.IsNoMatchError(err) {
		return nil // its type is gone, and with it the object
	}
	if err != nil {
		return err
	}
	policy := metav1.DeletePropagationBackground
	err = ri.Delete(ctx, ref.Name, metav1.DeleteOptions{PropagationPolicy: &policy})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}
