package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"

	"github.com/kubling/kubling/manifests"
)

// fieldManager owns the fields kubling applies.
const fieldManager = "kubling"

// addons applies the bundled add-ons (minus --disable) with server-side
// apply at start. The manifests controller of a later issue re-applies on
// change and prunes; this is the start-time apply it will grow from.
type addons struct {
	kubeconfig string
	values     manifests.Values
	disabled   map[string]bool
	log        klog.Logger
}

func (a *addons) Name() string { return "addons" }

func (a *addons) Start(ctx context.Context) error {
	ap, err := newApplier(a.kubeconfig)
	if err != nil {
		return err
	}
	for _, name := range manifests.Names() {
		if a.disabled[name] {
			continue
		}
		doc, err := manifests.Render(name, a.values)
		if err != nil {
			return err
		}
		if err := ap.apply(ctx, doc); err != nil {
			return fmt.Errorf("add-on %s: %w", name, err)
		}
		a.log.V(1).Info("Applied add-on", "name", name)
	}
	return nil
}

func (a *addons) Ready(context.Context) error { return nil }
func (a *addons) Stop() error                 { return nil }

// applier server-side-applies YAML documents as kubling.
type applier struct {
	dyn    dynamic.Interface
	mapper *restmapper.DeferredDiscoveryRESTMapper
}

func newApplier(kubeconfig string) (*applier, error) {
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
	return &applier{dyn: dyn, mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(disc))}, nil
}

// apply server-side-applies every object of a multi-document YAML.
func (a *applier) apply(ctx context.Context, doc []byte) error {
	dyn, mapper := a.dyn, a.mapper
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(doc), 4096)
	for {
		obj := &unstructured.Unstructured{}
		if err := dec.Decode(&obj.Object); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return err
		}
		if len(obj.Object) == 0 {
			continue
		}
		gvk := obj.GroupVersionKind()
		var err error
		for attempt := 0; attempt < 20; attempt++ {
			err = applyOne(ctx, dyn, mapper, obj)
			if err == nil {
				break
			}
			// A type may not be discoverable yet right after start.
			mapper.Reset()
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(250 * time.Millisecond):
			}
		}
		if err != nil {
			return fmt.Errorf("%s %s/%s: %w", gvk.Kind, obj.GetNamespace(), obj.GetName(), err)
		}
	}
}

func applyOne(ctx context.Context, dyn dynamic.Interface, mapper *restmapper.DeferredDiscoveryRESTMapper, obj *unstructured.Unstructured) error {
	gvk := obj.GroupVersionKind()
	m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return err
	}
	var ri dynamic.ResourceInterface = dyn.Resource(m.Resource)
	if m.Scope.Name() == "namespace" {
		ri = dyn.Resource(m.Resource).Namespace(obj.GetNamespace())
	}
	_, err = ri.Apply(ctx, obj.GetName(), obj, metav1.ApplyOptions{FieldManager: fieldManager, Force: true})
	return err
}
