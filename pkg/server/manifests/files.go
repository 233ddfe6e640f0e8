// Package manifests is kubling's manifests controller: it keeps the cluster in
// step with the YAML files of <data-dir>/server/manifests — the bundled
// add-ons (coredns, nfs-csi, nvidia-device-plugin), rendered there at
// start, and any file a user drops in. Files are applied with server-side
// apply, re-applied when they change, objects that leave a file are pruned,
// and a removed file takes its objects with it — but only objects kubling
// created and that still carry its ownership marks (owner.go).
package manifests

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// UserOwnedMarker, as one of a file's first lines, keeps kubling from
// rewriting a bundled add-on's file: the user's edits survive restarts.
const UserOwnedMarker = "# kubling: user-owned"

// Header starts every bundled file kubling writes.
func Header(name string) string {
	return "# Bundled add-on " + name + ", written by kubling at every start: edits are\n" +
		"# overwritten unless the first line is \"" + UserOwnedMarker + "\".\n" +
		"# Remove the add-on with `kubling server --disable " + name + "`.\n"
}

// UserOwned says whether a file carries the marker in its first lines.
func UserOwned(content []byte) bool {
	s := bufio.NewScanner(bytes.NewReader(content))
	for i := 0; i < 5 && s.Scan(); i++ {
		if strings.TrimSpace(s.Text()) == UserOwnedMarker {
			return true
		}
	}
	return false
}

// Manifest reports whether a file name is one the controller applies.
func Manifest(name string) bool {
	if strings.HasPrefix(name, ".") {
		return false
	}
	for _, ext := range []string{".yaml", ".yml", ".json"} {
		if strings.HasSuffix(name, ext) {
			return true
		}
	}
	return false
}

// validKey: state is kept in a ConfigMap, keyed by file name.
var validKey = regexp.MustCompile(`^[-._a-zA-Z0-9]+$`)

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

// key identifies the object, whatever the version (see sameObject).
func (r Ref) key() string {
	gk := r.GroupVersionKind().GroupKind()
	return gk.Kind + "." + gk.Group + "/" + r.Namespace + "/" + r.Name
}

// sameObject compares ignoring the version: moving an object from
// v1beta1 to v1 in a file is not a removal.
func (r Ref) sameObject(o Ref) bool {
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

// Hash fingerprints a file's content.
func Hash(content []byte) string {
	sum := sha256.Sum256(content)
	return hex.EncodeToString(sum[:])
}

// FileState is what the controller remembers of a file it applied. It is
// a hint of where to look, not a licence to delete: an object is deleted
// only if the live object carries kubling's marks naming the file.
type FileState struct {
	Hash    string `json:"hash"`
	Objects []Ref  `json:"objects"`
	// Prune: objects that left the file and could not be deleted yet
	// (retried with back-off).
	Prune []Ref `json:"prune,omitempty"`
	// Format 2 (stateFormat): the objects carry ownership marks. Entries
	// from earlier versions have none.
	Format int `json:"format,omitempty"`
}

// Pruned lists the objects of old that are not in current.
func Pruned(old, current []Ref) []Ref {
	var out []Ref
	for _, o := range old {
		if !slices.ContainsFunc(current, o.sameObject) {
			out = append(out, o)
		}
	}
	return out
}
