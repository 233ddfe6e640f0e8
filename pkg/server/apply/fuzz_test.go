package apply

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"
)

// FuzzDecode: a file a user drops into the manifests folder. Decode
// returns objects or an error naming the document, never panics. Every
// object it returns has an apiVersion, a kind and a name, and its Ref says
// so; it encodes as the apply request's JSON body does and deep-copies to
// an equal object; decoding is the same twice; and the objects written
// back, as a JSON stream, as YAML documents or as one `kind: List`, decode
// to the same objects.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		"# comment\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: x}\n---\n---\napiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: b}}\n- {apiVersion: v1, kind: Secret, metadata: {name: c}}\n",
		"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  labels: {app: web}\nspec:\n  replicas: 2\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      containers:\n      - {name: c, image: busybox, args: [sleep, \"3600\"], env: [{name: X, value: \"0640\"}]}\n",
		"apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata:\n  name: nfs\n  annotations: {storageclass.kubernetes.io/is-default-class: \"true\"}\nprovisioner: nfs.csi.k8s.io\nparameters: {server: 10.0.0.1, share: /export}\nmountOptions: [nfsvers=4.1]\n",
		`{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "j"}, "data": {"k": "v"}}`,
		`{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "j1"}}{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "j2"}}`,
		`{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "j"}}` + "\napiVersion: v1\nkind: Secret\nmetadata: {name: y}\n",
		`{"apiVersion": "v1", "kind": "List", "items": [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "i"}}]}`,
		"apiVersion: v1\nkind: ConfigMapList\nitems: []\n",
		"apiVersion: v1\nkind: List\nitems: [5]\n",
		"apiVersion: v1\nkind: List\nitems: [{kind: X}]\n",
		"apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: List\n  metadata: {name: nested}\n  items: [{apiVersion: v1, kind: ConfigMap, metadata: {name: inner}}]\n",
		"apiVersion: v1\nkind: List\nitems: {a: b}\nmetadata: {name: l}\n",
		"kind: ConfigMap\nmetadata: {name: a}",
		"apiVersion: v1\nmetadata: {name: a}",
		"apiVersion: v1\nkind: ConfigMap",
		"apiVersion: 1\nkind: ConfigMap\nmetadata: {name: a}",
		"apiVersion: v1\nkind: [ConfigMap]\nmetadata: {name: a}",
		"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: 5}",
		"apiVersion: v1\nkind: ConfigMap\nmetadata: name",
		"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: [x]}",
		"apiVersion: v1\nkind: ConfigMap\n  bad: [",
		"a: 1\n---\napiVersion: v1\nkind: X\n",
		"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {n: .nan, i: .inf, big: 123456789012345678901234567890, o: 0o17, h: 0x1F, t: 2001-12-14t21:59:43.10-05:00}\n",
		"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {? [x, y] : z}\n",
		"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {1: one, true: yes, null: n, 1.5: f}\n",
		"apiVersion: v1\nkind: ConfigMap\nmetadata: &m {name: a}\nx: *m\ny: &s [*m, *m]\nz: [*s, *s]\n",
		"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n<<: {data: {k: v}}\n",
		"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: !!binary aGVsbG8=\n",
		"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: \"\\u0000\\ud800\"}\n",
		"\ufeffapiVersion: v1\nkind: ConfigMap\nmetadata: {name: bom}\n",
		"apiVersion: v1\r\nkind: ConfigMap\r\nmetadata: {name: crlf}\r\n",
		"--- |\n  text\n", "- a\n- b\n", "just text", "null", "~", "{}", "[]", "", "---", "\n\n---\n\n",
		"{", "{\"a\":", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"}} trailing`,
		strings.Repeat("[", 5000), strings.Repeat("- ", 3000) + "x\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		objs, err := Decode(doc)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "document ") {
				t.Fatalf("error does not name the document: %v", err)
			}
			return
		}
		again, err := Decode(doc)
		if err != nil || len(again) != len(objs) {
			t.Fatalf("decoded twice: %d objects, then %d (%v)", len(objs), len(again), err)
		}
		var stream, docs bytes.Buffer
		items := []any{}
		flat := true
		for i, obj := range objs {
			ref := RefOf(obj)
			if ref.APIVersion == "" || ref.Kind == "" || ref.Name == "" {
				t.Fatalf("object %d: %+v lacks apiVersion, kind or name", i, ref)
			}
			if ref.APIVersion != obj.GetAPIVersion() || ref.Kind != obj.GetKind() || ref.Name != obj.GetName() || ref.Namespace != obj.GetNamespace() {
				t.Fatalf("object %d: ref %+v is not the object's", i, ref)
			}
			if s := ref.String(); !strings.Contains(s, ref.Kind) || !strings.HasSuffix(s, ref.Name) {
				t.Fatalf("object %d: %q does not name %+v", i, s, ref)
			}
			body, err := runtime.Encode(unstructured.UnstructuredJSONScheme, obj)
			if err != nil {
				t.Fatalf("object %d (%v) does not encode for apply: %v", i, ref, err)
			}
			if !reflect.DeepEqual(obj.DeepCopy().Object, obj.Object) {
				t.Fatalf("object %d (%v): a deep copy differs", i, ref)
			}
			if !reflect.DeepEqual(again[i].Object, obj.Object) {
				t.Fatalf("object %d (%v) decoded differently the second time", i, ref)
			}
			// An object with a list in "items" is read as a List: it would
			// be flattened when written back on its own.
			flat = flat && !obj.IsList()
			stream.Write(body)
			stream.WriteString("\n")
			y, err := yaml.JSONToYAML(body)
			if err != nil {
				t.Fatalf("object %d (%v) as YAML: %v", i, ref, err)
			}
			docs.WriteString("---\n")
			docs.Write(y)
			items = append(items, obj.Object)
		}
		if !flat {
			return
		}
		list, err := json.Marshal(map[string]any{"apiVersion": "v1", "kind": "List", "items": items})
		if err != nil {
			t.Fatal(err)
		}
		for form, written := range map[string][]byte{"JSON stream": stream.Bytes(), "YAML documents": docs.Bytes(), "List": list} {
			back, err := Decode(written)
			if err != nil {
				t.Fatalf("written back as %s:\n%s\ndoes not decode: %v", form, written, err)
			}
			if len(back) != len(objs) {
				t.Fatalf("written back as %s: %d objects, want %d", form, len(back), len(objs))
			}
			for i := range objs {
				if !reflect.DeepEqual(back[i].Object, objs[i].Object) {
					t.Fatalf("written back as %s, object %d reads\n%v\nwant\n%v", form, i, back[i].Object, objs[i].Object)
				}
			}
		}
	})
}
