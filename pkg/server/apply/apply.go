// Package apply server-side-applies objects as kubling (field manager
// "kubling"): the cluster bootstrap, node passwords, snapshot settings and
// the add-on controller all apply through it.
package apply

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
)

// FieldManager owns the fields kubling applies.
const FieldManager = "kubling"

// Applier server-side-applies objects as kubling.
type Applier struct {
	rc     rest.Interface // the dynamic client's, for what it does not expose
	dyn    dynamic.Interface
	mapper *restmapper.DeferredDiscoveryRESTMapper
}

// NewApplier works as the kubeconfig's user.
func NewApplier(kubeconfig string) (*Applier, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", kubeconfig, err)
	}
	// The dynamic client's own settings, so kubling can also read the
	// status of an apply (201: this apply created the object).
	dcfg := dynamic.ConfigFor(cfg)
	dcfg.GroupVersion = nil
	dcfg.APIPath = "/"
	httpClient, err := rest.HTTPClientFor(dcfg)
	if err != nil {
		return nil, fmt.Errorf("API client: %w", err)
	}
	rc, err := rest.UnversionedRESTClientForConfigAndClient(dcfg, httpClient)
	if err != nil {
		return nil, fmt.Errorf("API client: %w", err)
	}
	disc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("discovery client: %w", err)
	}
	return &Applier{rc: rc, dyn: dynamic.New(rc), mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(disc))}, nil
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

// Apply applies one object (forced, no ownership marks: for kubling's own
// objects, not the manifests folder's) and returns its reference, with the
// namespace defaulted for namespaced kinds. A kind that is not discoverable
// yet (a CRD applied a moment ago) is retried for a few seconds.
func (a *Applier) Apply(ctx context.Context, obj *unstructured.Unstructured) (Ref, error) {
	ref, err := a.Resolve(ctx, obj)
	if err != nil {
		return ref, err
	}
	_, err = a.ApplyRef(ctx, ref, obj, true)
	return ref, err
}

// target is where an object lives in the API.
type target struct {
	gvr       schema.GroupVersionResource
	namespace string // "" for cluster-scoped kinds
}

// path is the object's URL path, as the dynamic client builds it.
func (t target) path(name string) []string {
	p := []string{"apis", t.gvr.Group, t.gvr.Version}
	if t.gvr.Group == "" {
		p = []string{"api", t.gvr.Version}
	}
	if t.namespace != "" {
		p = append(p, "namespaces", t.namespace)
	}
	return append(p, t.gvr.Resource, name)
}

func (a *Applier) resource(t target) dynamic.ResourceInterface {
	if t.namespace == "" {
		return a.dyn.Resource(t.gvr)
	}
	return a.dyn.Resource(t.gvr).Namespace(t.namespace)
}

// target maps ref to its resource; a namespaced kind without a namespace
// goes to default.
func (a *Applier) target(ref Ref) (target, error) {
	gvk := ref.GroupVersionKind()
	m, err := a.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return target{}, err
	}
	if m.Scope.Name() != meta.RESTScopeNameNamespace {
		return target{gvr: m.Resource}, nil
	}
	ns := ref.Namespace
	if ns == "" {
		ns = metav1.NamespaceDefault
	}
	return target{gvr: m.Resource, namespace: ns}, nil
}

// Resolve returns obj's reference with its namespace settled (defaulted
// for namespaced kinds, dropped for cluster-scoped ones), and sets obj's to
// match. A kind not discoverable yet is retried for a few seconds.
func (a *Applier) Resolve(ctx context.Context, obj *unstructured.Unstructured) (Ref, error) {
	ref := RefOf(obj)
	var err error
	for attempt := 0; attempt < 20; attempt++ {
		var t target
		if t, err = a.target(ref); err == nil {
			ref.Namespace = t.namespace
			obj.SetNamespace(t.namespace)
			return ref, nil
		}
		if !meta.IsNoMatchError(err) {
			return ref, err
		}
		a.mapper.Reset()
		select {
		case <-ctx.Done():
			return ref, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
	return ref, err
}

// Get returns the live object, or nil when there is none (or its type is
// gone, and the object with it).
func (a *Applier) Get(ctx context.Context, ref Ref) (*unstructured.Unstructured, error) {
	t, err := a.target(ref)
	if meta.IsNoMatchError(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	live, err := a.resource(t).Get(ctx, ref.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	return live, err
}

// ApplyRef server-side-applies obj (resolved first) and says whether this
// apply created it (the API answers 201 then, 200 for an update).
func (a *Applier) ApplyRef(ctx context.Context, ref Ref, obj *unstructured.Unstructured, force bool) (bool, error) {
	t, err := a.target(ref)
	if err != nil {
		return false, err
	}
	if len(obj.GetManagedFields()) > 0 {
		return false, fmt.Errorf("cannot apply an object with metadata.managedFields set")
	}
	body, err := runtime.Encode(unstructured.UnstructuredJSONScheme, obj)
	if err != nil {
		return false, fmt.Errorf("encode: %w", err)
	}
	req := a.rc.Patch(types.ApplyPatchType).AbsPath(t.path(ref.Name)...).Param("fieldManager", FieldManager).Body(body)
	if force {
		req = req.Param("force", "true")
	}
	var code int
	_, err = req.Do(ctx).StatusCode(&code).Raw()
	return err == nil && code == http.StatusCreated, err
}

// Unmark takes labels and annotations (marks such as the add-on
// controller's ownership) off an object, only if each still has the value
// given: one JSON patch that fails as a whole otherwise.
func (a *Applier) Unmark(ctx context.Context, ref Ref, labels, annotations map[string]string) error {
	t, err := a.target(ref)
	if err != nil {
		return err
	}
	var ops []map[string]string
	for _, marks := range []struct {
		field string
		kv    map[string]string
	}{{"labels", labels}, {"annotations", annotations}} {
		for _, k := range slices.Sorted(maps.Keys(marks.kv)) {
			path := "/metadata/" + marks.field + "/" + jsonPointer(k)
			ops = append(ops, map[string]string{"op": "test", "path": path, "value": marks.kv[k]}, map[string]string{"op": "remove", "path": path})
		}
	}
	patch, err := json.Marshal(ops)
	if err != nil {
		return err
	}
	_, err = a.resource(t).Patch(ctx, ref.Name, types.JSONPatchType, patch, metav1.PatchOptions{FieldManager: FieldManager})
	return err
}

// DeleteExact deletes the object only while it is the very one kubling
// looked at (same UID and resourceVersion): one replaced or changed since
// gets a Conflict. One already gone is no error.
func (a *Applier) DeleteExact(ctx context.Context, ref Ref, uid types.UID, resourceVersion string) error {
	t, err := a.target(ref)
	if meta.IsNoMatchError(err) {
		return nil // its type is gone, and with it the object
	}
	if err != nil {
		return err
	}
	policy := metav1.DeletePropagationBackground
	err = a.resource(t).Delete(ctx, ref.Name, metav1.DeleteOptions{
		PropagationPolicy: &policy,
		Preconditions:     &metav1.Preconditions{UID: &uid, ResourceVersion: &resourceVersion},
	})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// jsonPointer escapes a map key for a JSON patch path (RFC 6901).
var jsonPointer = strings.NewReplacer("~", "~0", "/", "~1").Replace
