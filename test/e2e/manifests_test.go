//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

const userApp = `apiVersion: v1
kind: Namespace
metadata: {name: mf}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: a, namespace: mf}
data: {v: "1"}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: b, namespace: mf}
data: {v: "1"}
`

// TestManifests is issue 5's controller test against the real apiserver:
// bundled files rendered into the folder, a user's file applied, updated,
// pruned and removed, a broken file reported without harm, a user-owned
// bundled file kept across restarts, --disable removing an add-on and its
// objects, and --system-default-registry rewriting bundled images.
func TestManifests(t *testing.T) {
	s := newServer(t)
	s.start("--system-default-registry", "mirror.example:5000",
		"--nfs-server", "10.0.0.5", "--nfs-share", "/export/k8s", "--nfs-mount-options", "nfsvers=4.2", "--nfs-mount-options", "hard")
	dir := filepath.Join(s.dataDir, "server", "manifests")
	coredns := filepath.Join(dir, "coredns.yaml")
	content := readFile(t, coredns)
	if !strings.Contains(content, "Bundled add-on coredns") || !strings.Contains(content, "image: mirror.example:5000/coredns/coredns:v1.14.7") {
		t.Fatalf("coredns.yaml as written:\n%s", content)
	}
	// The add-ons are applied in the background while the node starts.
	eventually(t, time.Minute, "CoreDNS from the mirror", func() string {
		if got, _ := s.tryKubectl("get", "deploy", "-n", "kube-system", "coredns", "-o", "jsonpath={.spec.template.spec.containers[0].image}"); got != "mirror.example:5000/coredns/coredns:v1.14.7" {
			return fmt.Sprintf("CoreDNS image %q", got)
		}
		return ""
	})

	// NFS: the driver's objects, and the StorageClass from the flags, default
	// because no other class is.
	eventually(t, time.Minute, "the NFS driver's objects", func() string {
		for _, obj := range []string{"csidriver/nfs.csi.k8s.io", "-n kube-system daemonset/csi-nfs-node", "-n kube-system deployment/csi-nfs-controller"} {
			if _, err := s.tryKubectl(append([]string{"get"}, strings.Fields(obj)...)...); err != nil {
				return fmt.Sprintf("%s: %v", obj, err)
			}
		}
		return ""
	})
	sc := s.kubectl("get", "storageclass", "nfs-csi", "-o", `jsonpath={.provisioner} {.parameters.server} {.parameters.share} {.reclaimPolicy} {.mountOptions} {.metadata.annotations.storageclass\.kubernetes\.io/is-default-class}`)
	if sc != `nfs.csi.k8s.io 10.0.0.5 /export/k8s Delete ["nfsvers=4.2","hard"] true` {
		t.Errorf("nfs-csi StorageClass: %q", sc)
	}

	// A user's file: applied; edited (one object changed, one removed):
	// updated and pruned.
	app := filepath.Join(dir, "app.yaml")
	writeFile(t, app, userApp)
	eventually(t, time.Minute, "the user's objects", func() string {
		out, err := s.tryKubectl("get", "cm", "-n", "mf", "-o", "name")
		if err != nil || !strings.Contains(out, "configmap/a") || !strings.Contains(out, "configmap/b") {
			return out
		}
		return ""
	})
	edited := strings.Replace(userApp, `metadata: {name: a, namespace: mf}
data: {v: "1"}`, `metadata: {name: a, namespace: mf}
data: {v: "2"}`, 1)
	edited = edited[:strings.LastIndex(edited, "---")]
	writeFile(t, app, edited)
	eventually(t, time.Minute, "update and prune", func() string {
		v, _ := s.tryKubectl("get", "cm", "-n", "mf", "a", "-o", "jsonpath={.data.v}")
		out, err := s.tryKubectl("get", "cm", "-n", "mf", "-o", "name")
		if err != nil || v != "2" || strings.Contains(out, "configmap/b") {
			return "a=" + v + " objects: " + out
		}
		return ""
	})

	// A broken file: an event names it and the object; the server goes on.
	writeFile(t, filepath.Join(dir, "broken.yaml"), "apiVersion: v1\nkind: NoSuchKind\nmetadata: {name: x}\n")
	writeFile(t, filepath.Join(dir, "garbage.yaml"), "apiVersion: v1\nkind: ConfigMap\n  metadata: [\n")
	eventually(t, time.Minute, "events for broken files", func() string {
		out, _ := s.tryKubectl("get", "events", "-n", "kube-system", "--field-selector", "involvedObject.name=kubling-manifests", "-o", "custom-columns=R:.reason,M:.message", "--no-headers")
		if !strings.Contains(out, "broken.yaml: NoSuchKind x") || !strings.Contains(out, "garbage.yaml: document 1") {
			return out
		}
		return ""
	})
	eventually(t, 10*time.Second, "a log line naming the broken file", func() string {
		if !strings.Contains(s.out.String(), `file="`+filepath.Join(dir, "broken.yaml")+`"`) {
			return "not logged"
		}
		return ""
	})
	if _, err := s.tryKubectl("get", "--raw", "/readyz"); err != nil {
		t.Fatal("server unhealthy after broken files:", err)
	}

	// Removing the file deletes its objects.
	for _, f := range []string{"app.yaml", "broken.yaml", "garbage.yaml"} {
		if err := os.Remove(filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, time.Minute, "objects of the removed file gone", func() string {
		cm, err := s.tryKubectl("get", "cm", "-n", "mf", "a", "--ignore-not-found", "-o", "name")
		if err != nil || cm != "" {
			return fmt.Sprintf("configmap a: %q %v", cm, err)
		}
		return ""
	})

	// Never two default StorageClasses: with another default present,
	// nfs-csi stops being one, even when asked.
	writeFile(t, filepath.Join(dir, "local.yaml"), `apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: local
  annotations: {storageclass.kubernetes.io/is-default-class: "true"}
provisioner: kubernetes.io/no-provisioner
`)
	eventually(t, time.Minute, "the user's default StorageClass", func() string {
		if _, err := s.tryKubectl("get", "storageclass", "local"); err != nil {
			return err.Error()
		}
		return ""
	})
	s.stop()
	s.start("--nfs-server", "10.0.0.5", "--nfs-share", "/export/k8s", "--nfs-default-class", "true")
	soon(t, time.Minute, "nfs-csi no longer a default beside another", func() string {
		if d, err := s.tryKubectl("get", "storageclass", "nfs-csi", "-o", `jsonpath={.metadata.annotations.storageclass\.kubernetes\.io/is-default-class}`); err != nil || d != "" {
			return fmt.Sprintf("is-default-class %q %v", d, err)
		}
		return ""
	})
	if !strings.Contains(s.out.String(), "nfs-csi is not made the default StorageClass") {
		t.Error("no log line about the default StorageClass")
	}

	// A bundled file made user-owned keeps the user's edit across restarts.
	s.stop()
	owned := "# kubling: user-owned\n" + strings.Replace(content, "replicas: 1", "replicas: 2", 1)
	if owned == "# kubling: user-owned\n"+content {
		t.Fatal("the CoreDNS manifest has no `replicas: 1` to edit")
	}
	writeFile(t, coredns, owned)
	s.start()
	if readFile(t, coredns) != owned {
		t.Fatal("user-owned coredns.yaml was rewritten")
	}
	eventually(t, time.Minute, "the user's edit applied", func() string {
		r, _ := s.tryKubectl("get", "deploy", "-n", "kube-system", "coredns", "-o", "jsonpath={.spec.replicas}")
		if r != "2" {
			return "replicas " + r
		}
		return ""
	})
	// Without --nfs-server the NFS driver is not deployed: its file and
	// objects go (the StorageClass with them).
	if _, err := os.Stat(filepath.Join(dir, "nfs-csi.yaml")); !os.IsNotExist(err) {
		t.Errorf("nfs-csi.yaml without --nfs-server: %v", err)
	}
	eventually(t, time.Minute, "nfs-csi removed without --nfs-server", func() string {
		out, err := s.tryKubectl("get", "csidriver,storageclass,daemonset,deployment", "-A", "-o", "name")
		if err != nil || strings.Contains(out, "nfs") {
			return fmt.Sprintf("%s %v", out, err)
		}
		return ""
	})

	// --disable: the objects go; the user-owned file stays. A bundled file
	// that is not user-owned is removed with its objects.
	s.stop()
	s.start("--disable", "coredns")
	eventually(t, time.Minute, "CoreDNS removed", func() string {
		out, err := s.tryKubectl("get", "deploy,svc,cm", "-n", "kube-system", "-o", "name")
		if err != nil || strings.Contains(out, "coredns") || strings.Contains(out, "kube-dns") {
			return fmt.Sprintf("%s %v", out, err)
		}
		return ""
	})
	if readFile(t, coredns) != owned {
		t.Error("--disable removed the user's own file")
	}
	if err := os.Remove(coredns); err != nil {
		t.Fatal(err)
	}
	s.stop()
	s.start()
	eventually(t, time.Minute, "CoreDNS back from the bundled file", func() string {
		if _, err := s.tryKubectl("get", "deploy", "-n", "kube-system", "coredns"); err != nil {
			return err.Error()
		}
		return ""
	})
	s.stop()
	s.start("--disable", "coredns")
	if _, err := os.Stat(coredns); !os.IsNotExist(err) {
		t.Errorf("--disable left the bundled file: %v", err)
	}
	eventually(t, time.Minute, "CoreDNS removed again", func() string {
		if out, err := s.tryKubectl("get", "deploy", "-n", "kube-system", "coredns", "--ignore-not-found", "-o", "name"); err != nil || out != "" {
			return fmt.Sprintf("%q %v", out, err)
		}
		return ""
	})
	s.stop()
}

// TestManifestsOwnership is the security issue's regression test (#11,
// part 6): the controller deletes only what it created and still marks as
// its own. (a) A user's Namespace and ConfigMap that a file also declares
// are neither applied to nor deleted with the file. (b) Objects added to
// the state ConfigMap are not deleted. (c) A file emptied prunes nothing;
// removing it does. (d) A delete that keeps failing backs off: no event
// and no state write every 2 s.
func TestManifestsOwnership(t *testing.T) {
	s := newServer(t)
	s.start("--disable", "coredns")
	dir := filepath.Join(s.dataDir, "server", "manifests")
	get := func(args ...string) string {
		out, err := s.tryKubectl(append([]string{"get"}, args...)...)
		if err != nil {
			return "error: " + out
		}
		return out
	}
	marks := `jsonpath={.metadata.labels.kubling\.io/managed-by}|{.metadata.annotations.kubling\.io/manifest-file}`

	// (a) The user's objects first, then a file with the same names.
	s.kubectl("create", "namespace", "pre")
	s.kubectl("create", "configmap", "keep", "-n", "pre", "--from-literal=v=user")
	writeFile(t, filepath.Join(dir, "pre.yaml"), `apiVersion: v1
kind: Namespace
metadata: {name: pre}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: keep, namespace: pre}
data: {v: kubling}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: own, namespace: pre}
data: {v: kubling}
`)
	eventually(t, time.Minute, "kubling's own ConfigMap", func() string {
		if out := get("cm", "-n", "pre", "own", "-o", "name"); out != "configmap/own" {
			return "got " + strconv.Quote(out)
		}
		return ""
	})
	if m := get("cm", "-n", "pre", "own", "-o", marks); m != "kubling|pre.yaml" {
		t.Errorf("kubling's own ConfigMap not marked: %q", m)
	}
	if v := get("cm", "-n", "pre", "keep", "-o", "jsonpath={.data.v}|{.metadata.labels}"); v != "user|" {
		t.Errorf("the user's ConfigMap was applied to: %q", v)
	}
	if m := get("ns", "pre", "-o", marks); m != "|" {
		t.Errorf("the user's Namespace got kubling's marks: %q", m)
	}
	soon(t, 30*time.Second, "an event about the user's objects", func() string {
		out := get("events", "-n", "kube-system", "--field-selector", "involvedObject.name=kubling-manifests,reason=ObjectNotOwned", "-o", "custom-columns=M:.message", "--no-headers")
		if !strings.Contains(out, "pre.yaml: Namespace pre exists and was not created by kubling") || !strings.Contains(out, "pre.yaml: ConfigMap pre/keep exists") {
			return "got " + strconv.Quote(out)
		}
		return ""
	})
	if err := os.Remove(filepath.Join(dir, "pre.yaml")); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "kubling's ConfigMap deleted with the file", func() string {
		if out := get("cm", "-n", "pre", "own", "--ignore-not-found", "-o", "name"); out != "" {
			return "got " + strconv.Quote(out)
		}
		return ""
	})
	time.Sleep(4 * time.Second)
	if phase := get("ns", "pre", "-o", "jsonpath={.status.phase}"); phase != "Active" {
		t.Errorf("the user's Namespace after the file went: %q", phase)
	}
	if v := get("cm", "-n", "pre", "keep", "-o", "jsonpath={.data.v}"); v != "user" {
		t.Errorf("the user's ConfigMap after the file went: %q", v)
	}

	// (b) Someone with ConfigMap rights in kube-system lists the user's
	// objects in the state ConfigMap, under a file that is not there (with
	// and without the state format), and in a file's list that is then
	// pruned; kubling reads it at its next start.
	s.kubectl("create", "namespace", "victim")
	s.kubectl("create", "configmap", "data", "-n", "victim", "--from-literal=v=user")
	writeFile(t, filepath.Join(dir, "hint.yaml"), "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: default}\n")
	eventually(t, time.Minute, "hint.yaml applied", func() string {
		if !strings.Contains(get("cm", "kubling-manifests", "-n", "kube-system", "-o", "jsonpath={.data}"), "hint.yaml") {
			return "not in the state"
		}
		return ""
	})
	victims := []map[string]string{
		{"apiVersion": "v1", "kind": "Namespace", "name": "victim"},
		{"apiVersion": "v1", "kind": "ConfigMap", "namespace": "victim", "name": "data"},
	}
	entry := func(format int, extra ...map[string]string) string {
		raw, err := json.Marshal(map[string]any{"hash": "", "objects": append(extra, victims...), "format": format})
		if err != nil {
			t.Fatal(err)
		}
		return string(raw)
	}
	patch, err := json.Marshal(map[string]any{"data": map[string]string{
		"evil.yaml": entry(2),
		"old.yaml":  entry(0),
		"hint.yaml": entry(2, map[string]string{"apiVersion": "v1", "kind": "ConfigMap", "namespace": "default", "name": "a"}),
	}})
	if err != nil {
		t.Fatal(err)
	}
	s.kubectl("patch", "configmap", "kubling-manifests", "-n", "kube-system", "--type", "merge", "-p", string(patch))
	s.stop()
	s.start("--disable", "coredns")
	// hint.yaml changes, so what left its (edited) list is pruned.
	writeFile(t, filepath.Join(dir, "hint.yaml"), "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b, namespace: default}\n")
	eventually(t, time.Minute, "the edited state looked at", func() string {
		data := get("cm", "kubling-manifests", "-n", "kube-system", "-o", "jsonpath={.data}")
		if strings.Contains(data, "evil.yaml") || strings.Contains(data, "old.yaml") || strings.Contains(data, "victim") || get("cm", "a", "--ignore-not-found", "-o", "name") != "" {
			return "state " + strconv.Quote(data)
		}
		return ""
	})
	if phase := get("ns", "victim", "-o", "jsonpath={.status.phase}"); phase != "Active" {
		t.Errorf("Namespace victim, listed in the state ConfigMap: %q", phase)
	}
	if v := get("cm", "-n", "victim", "data", "-o", "jsonpath={.data.v}"); v != "user" {
		t.Errorf("ConfigMap victim/data, listed in the state ConfigMap: %q", v)
	}
	if !strings.Contains(s.out.String(), "Not deleted: the object does not carry kubling's marks") {
		t.Error("no log line for the objects left alone")
	}

	// (c) A file emptied prunes nothing until it is removed.
	trunc := filepath.Join(dir, "trunc.yaml")
	writeFile(t, trunc, "apiVersion: v1\nkind: Namespace\nmetadata: {name: trunc}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: trunc}\n")
	eventually(t, time.Minute, "trunc.yaml applied", func() string {
		if out := get("cm", "-n", "trunc", "c", "-o", "name"); out != "configmap/c" {
			return "got " + strconv.Quote(out)
		}
		return ""
	})
	writeFile(t, trunc, "")
	soon(t, 30*time.Second, "a log line for the empty file", func() string {
		if !strings.Contains(s.out.String(), "Manifest has no objects") {
			return "not logged"
		}
		return ""
	})
	time.Sleep(6 * time.Second) // three more looks
	if out := get("cm", "-n", "trunc", "c", "-o", "jsonpath={.metadata.name}|{.metadata.deletionTimestamp}"); out != "c|" {
		t.Errorf("ConfigMap of the emptied file: %q", out)
	}
	if phase := get("ns", "trunc", "-o", "jsonpath={.status.phase}"); phase != "Active" {
		t.Errorf("Namespace of the emptied file: %q", phase)
	}
	if err := os.Remove(trunc); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "the removed file's Namespace deleted", func() string {
		out := get("ns", "trunc", "--ignore-not-found", "-o", "jsonpath={.status.phase}")
		if out != "" && out != "Terminating" {
			return "got " + strconv.Quote(out)
		}
		return ""
	})

	// (d) A delete an admission policy refuses.
	writeFile(t, filepath.Join(dir, "stuck.yaml"), "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: stuck, namespace: default}\n")
	eventually(t, time.Minute, "stuck.yaml applied", func() string {
		if out := get("cm", "stuck", "-o", "name"); out != "configmap/stuck" {
			return "got " + strconv.Quote(out)
		}
		return ""
	})
	policy := filepath.Join(t.TempDir(), "policy.yaml")
	writeFile(t, policy, `apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: e2e-block-delete}
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
    - {apiGroups: [""], apiVersions: [v1], operations: [DELETE], resources: [configmaps]}
  matchConditions:
  - {name: stuck, expression: 'request.name == "stuck"'}
  validations:
  - {expression: "false", message: "e2e: deleting this ConfigMap is blocked"}
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: e2e-block-delete}
spec:
  policyName: e2e-block-delete
  validationActions: [Deny]
`)
	s.kubectl("apply", "-f", policy)
	eventually(t, time.Minute, "the policy in force", func() string {
		out, err := s.tryKubectl("delete", "cm", "stuck", "--dry-run=server")
		if err == nil || !strings.Contains(out, "blocked") {
			return fmt.Sprintf("%q %v", out, err)
		}
		return ""
	})
	if err := os.Remove(filepath.Join(dir, "stuck.yaml")); err != nil {
		t.Fatal(err)
	}
	events := func() int {
		out := get("events", "-n", "kube-system", "--field-selector", "involvedObject.name=kubling-manifests,reason=DeleteFailed", "-o", "jsonpath={range .items[*]}{.count}{\"\\n\"}{end}")
		n := 0
		for _, f := range strings.Fields(out) {
			c, _ := strconv.Atoi(f)
			n += c
		}
		return n
	}
	eventually(t, 30*time.Second, "an event for the refused delete", func() string {
		if events() == 0 {
			return "none"
		}
		return ""
	})
	stateRV := get("cm", "kubling-manifests", "-n", "kube-system", "-o", "jsonpath={.metadata.resourceVersion}")
	time.Sleep(20 * time.Second) // ten looks
	if n := events(); n > 2 {
		t.Errorf("%d DeleteFailed events in about 20 s", n)
	}
	if rv := get("cm", "kubling-manifests", "-n", "kube-system", "-o", "jsonpath={.metadata.resourceVersion}"); rv != stateRV {
		t.Errorf("state ConfigMap rewritten while the delete kept failing (%s, then %s)", stateRV, rv)
	}
	if n := strings.Count(s.out.String(), `"reason"="DeleteFailed"`) + strings.Count(s.out.String(), `reason="DeleteFailed"`); n > 2 {
		t.Errorf("%d log lines for the refused delete", n)
	}
	if out := get("cm", "stuck", "-o", "name"); out != "configmap/stuck" {
		t.Fatalf("the refused delete went through: %q", out)
	}
	s.kubectl("delete", "validatingadmissionpolicybinding", "e2e-block-delete")
	eventually(t, 2*time.Minute, "the delete going through once allowed", func() string {
		if out := get("cm", "stuck", "--ignore-not-found", "-o", "name"); out != "" {
			return "got " + strconv.Quote(out)
		}
		return ""
	})
	s.kubectl("delete", "validatingadmissionpolicy", "e2e-block-delete")
	s.stop()
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
