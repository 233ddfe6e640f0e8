package apply

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// Ref names one applied object.
type Ref struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Namespace  string `json:"namespace,omitempty"`
	Name       string `json:"name"`
}

// RefOf is the reference of an object as written.
func RefOf(obj *unstructured.Unstructured) Ref {
	return Ref{APIVersion: obj.GetAPIVersion(), Kind: obj.GetKind(), Namespace: obj.GetNamespace(), Name: obj.GetName()}
}

// GroupVersionKind of the referenced object.
func (r Ref) GroupVersionKind() schema.GroupVersionKind {
	return schema.FromAPIVersionAndKind(r.APIVersion, r.Kind)
}

func (r Ref) String() string {
	if r.Namespace == "" {
		return r.Kind + " " + r.Name
	}
	return r.Kind + " " + r.Namespace + "/" + r.Name
}

// Key identifies the object, whatever the version (see SameObject).
func (r Ref) Key() string {
	gk := r.GroupVersionKind().GroupKind()
	return gk.Kind + "." + gk.Group + "/" + r.Namespace + "/" + r.Name
}

// SameObject compares ignoring the version: moving an object from
// v1beta1 to v1 in a file is not a removal.
func (r Ref) SameObject(o Ref) bool {
	return r.GroupVersionKind().GroupKind() == o.GroupVersionKind().GroupKind() && r.Namespace == o.Namespace && r.Name == o.Name
}

// Decode splits a YAML or JSON stream into objects; `kind: List` is
// flattened. Every object needs apiVersion, kind and metadata.name.
func Decode(doc []byte) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(doc), 4096)
	var out []*unstructured.Unstructured
	for i := 1; ; i++ {
		var js json.RawMessage
		if err := dec.Decode(&js); errors.Is(err, io.EOF) {
			return out, nil
		} else if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if t := bytes.TrimSpace(js); len(t) == 0 || bytes.Equal(t, []byte("null")) {
			continue // an empty document, or only comments
		}
		// Integers stay integers (int64), as the apiserver reads them: a
		// plain map would make every number a float64 and lose digits.
		raw := map[string]any{}
		if err := utiljson.Unmarshal(js, &raw); err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if len(raw) == 0 {
			continue
		}
		objs, err := flatten(&unstructured.Unstructured{Object: raw}, 0)
		if err != nil {
			return nil, fmt.Errorf("document %d%w", i, err)
		}
		out = append(out, objs...)
	}
}

// maxListDepth bounds how deeply Lists may nest in one document.
const maxListDepth = 4

// flatten returns obj, or the items of a List kind (`kind: List`,
// `ConfigMapList`…; nested Lists too). Only kinds named …List are lists:
// a ConfigMap with a top-level `items` key is a ConfigMap.
func flatten(obj *unstructured.Unstructured, depth int) ([]*unstructured.Unstructured, error) {
	if !strings.HasSuffix(obj.GetKind(), "List") || !obj.IsList() {
		if err := check(obj); err != nil {
			return nil, fmt.Errorf(": %w", err)
		}
		return []*unstructured.Unstructured{obj}, nil
	}
	if depth >= maxListDepth {
		return nil, fmt.Errorf(": Lists nested more than %d deep", maxListDepth)
	}
	list, err := obj.ToList()
	if err != nil {
		return nil, fmt.Errorf(": %w", err)
	}
	var out []*unstructured.Unstructured
	for j := range list.Items {
		items, err := flatten(&list.Items[j], depth+1)
		if err != nil {
			return nil, fmt.Errorf(", item %d%w", j+1, err)
		}
		out = append(out, items...)
	}
	return out, nil
}

func check(obj *unstructured.Unstructured) error {
	switch {
	case obj.GetAPIVersion() == "":
		return errors.New("no apiVersion")
	case obj.GetKind() == "":
		return errors.New("no kind")
	case obj.GetName() == "":
		return fmt.Errorf("%s without metadata.name", obj.GetKind())
	}
	return nil
}
