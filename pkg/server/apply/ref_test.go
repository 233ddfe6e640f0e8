package apply

import (
	"strings"
	"testing"
)

func TestDecode(t *testing.T) {
	objs, err := Decode([]byte(`# comment
apiVersion: v1
kind: ConfigMap
metadata: {name: a, namespace: x}
---
---
apiVersion: v1
kind: List
items:
- {apiVersion: v1, kind: ConfigMap, metadata: {name: b}}
- {apiVersion: v1, kind: Secret, metadata: {name: c}}
`))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range objs {
		got = append(got, RefOf(o).String())
	}
	if strings.Join(got, ",") != "ConfigMap x/a,ConfigMap b,Secret c" {
		t.Fatalf("decoded %v", got)
	}
	for doc, want := range map[string]string{
		"kind: ConfigMap\nmetadata: {name: a}":      "no apiVersion",
		"apiVersion: v1\nmetadata: {name: a}":       "no kind",
		"apiVersion: v1\nkind: ConfigMap":           "without metadata.name",
		"apiVersion: v1\nkind: ConfigMap\n  bad: [": "document 1",
		"a: 1\n---\napiVersion: v1\nkind: X\n":      "document 1",
	} {
		if _, err := Decode([]byte(doc)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want %q", doc, err, want)
		}
	}
}

// TestDecodeListsAndNumbers: only …List kinds are unfolded (nested ones
// too), and integers keep every digit (fuzzing found all three).
func TestDecodeListsAndNumbers(t *testing.T) {
	objs, err := Decode([]byte(`apiVersion: v1
kind: ConfigMap
metadata: {name: has-items}
items: []
---
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: List
  items:
  - {apiVersion: v1, kind: ConfigMap, metadata: {name: nested}}
- apiVersion: apps/v1
  kind: Deployment
  metadata: {name: big}
  spec: {progressDeadlineSeconds: 9007199254740993, replicas: 3}
`))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, o := range objs {
		names = append(names, o.GetKind()+"/"+o.GetName())
	}
	if strings.Join(names, " ") != "ConfigMap/has-items ConfigMap/nested Deployment/big" {
		t.Fatalf("decoded %v", names)
	}
	if v := objs[2].Object["spec"].(map[string]any)["progressDeadlineSeconds"]; v != int64(9007199254740993) {
		t.Errorf("big integer decoded as %T %v", v, v)
	}
	deep := "apiVersion: v1\nkind: List\nitems:\n"
	for i := 0; i < maxListDepth; i++ {
		deep += strings.Repeat("  ", i) + "- apiVersion: v1\n" + strings.Repeat("  ", i) + "  kind: List\n" + strings.Repeat("  ", i) + "  items:\n"
	}
	if _, err := Decode([]byte(deep + strings.Repeat("  ", maxListDepth) + "- {apiVersion: v1, kind: ConfigMap, metadata: {name: x}}\n")); err == nil || !strings.HasPrefix(err.Error(), "document 1, item 1") {
		t.Errorf("Lists nested too deep: %v", err)
	}
}
